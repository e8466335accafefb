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
];

/// Brings the database up to the newest schema.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
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
}
