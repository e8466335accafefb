//! Schema migrations, applied in order and tracked by `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema one version forward. Never edit a released
/// entry; append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE owners (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO owners (id, name) VALUES (1, 'default');

CREATE TABLE files (
    id         INTEGER PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES owners(id),
    path       TEXT NOT NULL,
    deleted_at TEXT,
    UNIQUE (owner_id, path)
);

CREATE TABLE chunks (
    id         TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE versions (
    file_id    INTEGER NOT NULL REFERENCES files(id),
    number     INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    uploader   TEXT NOT NULL,
    restored_from INTEGER,
    PRIMARY KEY (file_id, number)
) WITHOUT ROWID;

CREATE TABLE version_chunks (
    file_id  INTEGER NOT NULL,
    number   INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    chunk_id TEXT NOT NULL REFERENCES chunks(id),
    PRIMARY KEY (file_id, number, idx),
    FOREIGN KEY (file_id, number) REFERENCES versions(file_id, number)
) WITHOUT ROWID;
CREATE INDEX version_chunks_by_chunk ON version_chunks(chunk_id);

CREATE TABLE replicas (
    chunk_id   TEXT NOT NULL,
    node       TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('ok', 'missing', 'corrupt')),
    checked_at TEXT NOT NULL,
    PRIMARY KEY (chunk_id, node)
) WITHOUT ROWID;
CREATE INDEX replicas_needing_repair ON replicas(state) WHERE state <> 'ok';

CREATE TABLE upload_sessions (
    id         TEXT PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES owners(id),
    path       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE session_chunks (
    session_id TEXT NOT NULL REFERENCES upload_sessions(id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    chunk_id   TEXT NOT NULL,
    size       INTEGER NOT NULL,
    PRIMARY KEY (session_id, idx)
) WITHOUT ROWID;
CREATE INDEX session_chunks_by_chunk ON session_chunks(chunk_id);
"#,
    r#"
-- Objects found on a node that no chunk row names: deleted by gc once they
-- have stayed unclaimed for the grace period.
CREATE TABLE gc_orphans (
    node       TEXT NOT NULL,
    chunk_id   TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (node, chunk_id)
) WITHOUT ROWID;
CREATE INDEX files_deleted ON files(deleted_at) WHERE deleted_at IS NOT NULL;
"#,
    r#"
-- A finished session stays until it expires, remembering what it
-- committed, so FinishUpload can be retried.
ALTER TABLE upload_sessions ADD COLUMN committed_version INTEGER;
"#,
    r#"
-- A chunk row is a hold as well as a record: 'pending' while an upload
-- writes it (under the random `hold`), 'ok' once W nodes took it,
-- 'deleting' while gc deletes its objects. Only 'ok' chunks are stored.
ALTER TABLE chunks ADD COLUMN state TEXT NOT NULL DEFAULT 'ok'
    CHECK (state IN ('pending', 'ok', 'deleting'));
ALTER TABLE chunks ADD COLUMN hold TEXT;
CREATE INDEX chunks_not_ok ON chunks(state) WHERE state <> 'ok';

-- A streamed upload references its chunks through a session with no plan.
ALTER TABLE upload_sessions ADD COLUMN stream INTEGER NOT NULL DEFAULT 0;

-- One server at a time runs each background worker.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Facts about this database: its cluster identity.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    r#"
-- Accounts: an owner with a password hash can log in. The default owner
-- (1) has none until the first user takes it over.
ALTER TABLE owners ADD COLUMN password_hash TEXT;
ALTER TABLE owners ADD COLUMN role TEXT NOT NULL DEFAULT 'user'
    CHECK (role IN ('admin', 'user'));
ALTER TABLE owners ADD COLUMN created_at TEXT;
ALTER TABLE owners ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;

-- A login: its refresh token's hash; access tokens name it (sid), so
-- revoking it ends them too.
CREATE TABLE logins (
    id         TEXT PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES owners(id),
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX logins_by_owner ON logins(owner_id);

-- Which owner has sent (or committed) which chunk: dedup never answers
-- "stored" for content the asker has not shown they have.
CREATE TABLE owner_chunks (
    owner_id INTEGER NOT NULL,
    chunk_id TEXT NOT NULL,
    PRIMARY KEY (owner_id, chunk_id)
) WITHOUT ROWID;
CREATE INDEX owner_chunks_by_chunk ON owner_chunks(chunk_id);
INSERT OR IGNORE INTO owner_chunks (owner_id, chunk_id)
    SELECT DISTINCT f.owner_id, vc.chunk_id
    FROM version_chunks vc JOIN files f ON f.id = vc.file_id;
"#,
    r#"
-- Quotas: logical bytes of every retained version; NULL: none.
ALTER TABLE owners ADD COLUMN quota_bytes INTEGER;

-- Open sessions are counted per owner (the cap on open sessions).
CREATE INDEX upload_sessions_by_owner ON upload_sessions(owner_id, expires_at);

-- The chunks a session still lacks, and how many, so PutChunk's
-- bookkeeping is two index lookups, not a scan of the session.
ALTER TABLE upload_sessions ADD COLUMN missing INTEGER NOT NULL DEFAULT 0;
CREATE TABLE session_missing (
    session_id TEXT NOT NULL,
    chunk_id   TEXT NOT NULL,
    PRIMARY KEY (session_id, chunk_id)
) WITHOUT ROWID;

-- Share links: one version of one file, for anyone with the URL.
CREATE TABLE share_links (
    id            TEXT PRIMARY KEY,
    owner_id      INTEGER NOT NULL REFERENCES owners(id),
    file_id       INTEGER NOT NULL REFERENCES files(id),
    number        INTEGER NOT NULL,
    password_hash TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    revoked_at    TEXT
);
CREATE INDEX share_links_by_owner ON share_links(owner_id, created_at);
"#,
    r#"
-- The change feed: every commit, restore, delete and move of an owner,
-- numbered from the owner's counter, so numbers have no gaps.
ALTER TABLE owners ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
CREATE TABLE changes (
    owner_id INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    path     TEXT NOT NULL,
    deleted  INTEGER NOT NULL,
    version  INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    hash     TEXT NOT NULL,
    at       TEXT NOT NULL,
    PRIMARY KEY (owner_id, seq)
) WITHOUT ROWID;
CREATE INDEX changes_by_time ON changes(at);

-- The content's modification time, as the uploading client gave it.
ALTER TABLE versions ADD COLUMN modified_at TEXT;
ALTER TABLE upload_sessions ADD COLUMN modified_at TEXT;
ALTER TABLE changes ADD COLUMN modified_at TEXT;
"#,
    r#"
-- Versions each owner keeps (deleted files' too), for the per-user limit
-- on versions: kept up to date by every insert and delete of a version.
ALTER TABLE owners ADD COLUMN version_count INTEGER NOT NULL DEFAULT 0;
UPDATE owners SET version_count =
    (SELECT COUNT(*) FROM versions v JOIN files f ON f.id = v.file_id
     WHERE f.owner_id = owners.id);
"#,
    // Times become integer milliseconds since the Unix epoch, as on every
    // engine: see `times_to_ms`.
    "",
    r#"
-- Folders made on their own (WebDAV MKCOL, a new empty folder): a folder
-- also exists, without a row, while a live file is inside it.
CREATE TABLE folders (
    owner_id   BIGINT NOT NULL,
    path       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner_id, path)
) WITHOUT ROWID;

-- WebDAV dead properties (PROPPATCH) of a file or folder, by path.
CREATE TABLE dead_props (
    owner_id BIGINT NOT NULL,
    path     TEXT NOT NULL,
    ns       TEXT NOT NULL,
    name     TEXT NOT NULL,
    prefix   TEXT,
    xml      TEXT,
    PRIMARY KEY (owner_id, path, ns, name)
) WITHOUT ROWID;

-- WebDAV locks, in the database so that every server of it honours them.
CREATE TABLE dav_locks (
    token      TEXT PRIMARY KEY,
    owner_id   BIGINT NOT NULL,
    path       TEXT NOT NULL,
    principal  TEXT,
    owner_xml  TEXT,
    shared     INTEGER NOT NULL,
    deep       INTEGER NOT NULL,
    timeout_ms BIGINT,
    expires_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX dav_locks_by_path ON dav_locks(owner_id, path);

-- App passwords: for clients that speak only HTTP Basic (WebDAV). Each is
-- `ID.SECRET`, stored as the secret's hash; revoked by deleting the row.
CREATE TABLE app_passwords (
    id          TEXT PRIMARY KEY,
    owner_id    BIGINT NOT NULL,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (owner_id, name)
);

-- Checksums of a version's content computed as it arrived over WebDAV
-- (ownCloud's `SHA1:hex MD5:hex`), which rclone and ownCloud clients
-- compare.
ALTER TABLE versions ADD COLUMN checksums TEXT;
"#,
    r#"
-- Thumbnails of a user's images, kept on the nodes
-- (`coffer/thumbs/<key>-<edge>.jpg`): a row each, so gc finds those
-- whose content no version of that user holds any more.
CREATE TABLE thumbnails (
    owner_id   BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    edge       INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner_id, hash, edge)
);
CREATE INDEX versions_by_hash ON versions(hash);
"#,
    r#"
-- Packs: a chunk stored inside a pack names it (the pack's own row is a
-- chunk like any other, named by the BLAKE3 of its bytes) and where in
-- it its bytes start. NULL: the chunk is an object of its own.
ALTER TABLE chunks ADD COLUMN pack_id TEXT;
ALTER TABLE chunks ADD COLUMN pack_offset BIGINT;
CREATE INDEX chunks_by_pack ON chunks(pack_id) WHERE pack_id IS NOT NULL;
"#,
    r#"
-- Batches: the sessions one StartUploads opened share a tag and count as
-- one open upload. NULL: a session opened on its own.
ALTER TABLE upload_sessions ADD COLUMN batch_id TEXT;
"#,
];

/// Steps in Rust, run after the SQL migration of the same index, in its
/// transaction.
type RustStep = fn(&rusqlite::Transaction) -> rusqlite::Result<()>;
const RUST_STEPS: &[(usize, RustStep)] = &[(5, rehash_versions), (8, times_to_ms)];

/// Turns every time column from RFC 3339 text into integer milliseconds
/// (migration 8). A column's type is its affinity in SQLite, so each is
/// added anew, filled, and put in the old one's place; the indexes on
/// them are made again.
fn times_to_ms(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "DROP INDEX files_deleted; DROP INDEX upload_sessions_by_owner;
         DROP INDEX share_links_by_owner; DROP INDEX changes_by_time;",
    )?;
    for &(table, column, not_null) in crate::meta::sql::TIME_COLUMNS {
        let ms = format!("CAST(round((julianday({column}) - 2440587.5) * 86400000.0) AS INTEGER)");
        let (decl, value) = if not_null {
            ("INTEGER NOT NULL DEFAULT 0", format!("COALESCE({ms}, 0)"))
        } else {
            ("INTEGER", ms)
        };
        tx.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN {column}_ms {decl};
             UPDATE {table} SET {column}_ms = {value};
             ALTER TABLE {table} DROP COLUMN {column};
             ALTER TABLE {table} RENAME COLUMN {column}_ms TO {column};"
        ))?;
    }
    tx.execute_batch(
        "CREATE INDEX files_deleted ON files(deleted_at) WHERE deleted_at IS NOT NULL;
         CREATE INDEX upload_sessions_by_owner ON upload_sessions(owner_id, expires_at);
         CREATE INDEX share_links_by_owner ON share_links(owner_id, created_at);
         CREATE INDEX changes_by_time ON changes(at);",
    )
}

/// Content hashes became a hash over the chunk ids (the server computes
/// it from the chunk list): recompute every version's and every open
/// session's from the chunk lists the database holds.
fn rehash_versions(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    let lists = |sql: &str| -> rusqlite::Result<Vec<(String, String)>> {
        let mut stmt = tx.prepare(sql)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        crate::meta::content_hashes(rows)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    };
    let versions = lists(
        "SELECT v.file_id || ':' || v.number, vc.chunk_id FROM versions v
         LEFT JOIN version_chunks vc ON vc.file_id = v.file_id AND vc.number = v.number
         ORDER BY v.file_id, v.number, vc.idx",
    )?;
    for (key, hash) in versions {
        let (file, number) = key.split_once(':').unwrap_or_default();
        tx.execute(
            "UPDATE versions SET hash = ?3 WHERE file_id = ?1 AND number = ?2",
            rusqlite::params![file, number, hash],
        )?;
    }
    let sessions = lists(
        "SELECT s.id, sc.chunk_id FROM upload_sessions s
         LEFT JOIN session_chunks sc ON sc.session_id = s.id
         WHERE s.stream = 0 ORDER BY s.id, sc.idx",
    )?;
    for (id, hash) in sessions {
        tx.execute(
            "UPDATE upload_sessions SET hash = ?2 WHERE id = ?1",
            rusqlite::params![id, hash],
        )?;
    }
    Ok(())
}

/// Brings the database up to the newest schema.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        for (_, step) in RUST_STEPS.iter().filter(|(at, _)| *at == i) {
            step(&tx)?;
        }
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: usize = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len());
    }

    #[test]
    fn upgrading_rehashes_versions_from_their_chunk_lists() {
        let mut c = Connection::open_in_memory().unwrap();
        let tx = c.transaction().unwrap();
        for sql in &MIGRATIONS[..5] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 5).unwrap();
        let ids = ["a".repeat(64), "b".repeat(64)];
        tx.execute_batch(&format!(
            "INSERT INTO files (id, owner_id, path) VALUES (1, 1, 'f'), (2, 1, 'empty');
             INSERT INTO chunks (id, size, created_at) VALUES ('{a}', 1, ''), ('{b}', 1, '');
             INSERT INTO versions VALUES (1, 1, 2, 'old', '', 'u', NULL), (2, 1, 0, 'old', '', 'u', NULL);
             INSERT INTO version_chunks VALUES (1, 1, 0, '{b}'), (1, 1, 1, '{a}');",
            a = ids[0],
            b = ids[1]
        ))
        .unwrap();
        tx.commit().unwrap();
        migrate(&mut c).unwrap();
        let hash = |file: i64| -> String {
            c.query_row(
                "SELECT hash FROM versions WHERE file_id = ?1",
                [file],
                |r| r.get(0),
            )
            .unwrap()
        };
        let want =
            coffer_proto::chunking::content_hash([ids[1].as_str(), ids[0].as_str()]).unwrap();
        assert_eq!(hash(1), want);
        assert_eq!(hash(2), coffer_proto::chunking::content_hash([]).unwrap());
    }
}
