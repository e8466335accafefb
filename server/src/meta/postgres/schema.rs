//! PostgreSQL schema migrations, applied in order and tracked in
//! `coffer_schema`. Plain SQL that the Postgres-wire distributed databases
//! also speak: no advisory locks, no PL/pgSQL.

use crate::meta::MetaError;
use deadpool_postgres::Object;

/// Each entry moves the schema one version forward. Never edit a released
/// entry; append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE owners (
    id   BIGINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO owners (id, name) VALUES (1, 'default');

-- Paths compare byte-wise ("C"), as in SQLite, so listings page alike.
CREATE TABLE files (
    id         BIGSERIAL PRIMARY KEY,
    owner_id   BIGINT NOT NULL REFERENCES owners(id),
    path       TEXT COLLATE "C" NOT NULL,
    deleted_at TIMESTAMPTZ,
    UNIQUE (owner_id, path)
);
CREATE INDEX files_deleted ON files(deleted_at) WHERE deleted_at IS NOT NULL;

-- A chunk row is a hold as well as a record: 'pending' while an upload
-- writes it (under the random `hold`), 'ok' once W nodes took it,
-- 'deleting' while gc deletes its objects. Only 'ok' chunks are stored.
CREATE TABLE chunks (
    id         TEXT COLLATE "C" PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    state      TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('pending', 'ok', 'deleting')),
    hold       TEXT
);
CREATE INDEX chunks_not_ok ON chunks(state) WHERE state <> 'ok';

CREATE TABLE versions (
    file_id       BIGINT NOT NULL REFERENCES files(id),
    number        BIGINT NOT NULL,
    size          BIGINT NOT NULL,
    hash          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    uploader      TEXT NOT NULL,
    restored_from BIGINT,
    PRIMARY KEY (file_id, number)
);

CREATE TABLE version_chunks (
    file_id  BIGINT NOT NULL,
    number   BIGINT NOT NULL,
    idx      INTEGER NOT NULL,
    chunk_id TEXT COLLATE "C" NOT NULL REFERENCES chunks(id),
    PRIMARY KEY (file_id, number, idx),
    FOREIGN KEY (file_id, number) REFERENCES versions(file_id, number)
);
CREATE INDEX version_chunks_by_chunk ON version_chunks(chunk_id);

CREATE TABLE replicas (
    chunk_id   TEXT COLLATE "C" NOT NULL,
    node       TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('ok', 'missing', 'corrupt')),
    checked_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (chunk_id, node)
);
CREATE INDEX replicas_needing_repair ON replicas(state) WHERE state <> 'ok';

CREATE TABLE upload_sessions (
    id                TEXT PRIMARY KEY,
    owner_id          BIGINT NOT NULL REFERENCES owners(id),
    path              TEXT NOT NULL,
    size              BIGINT NOT NULL,
    hash              TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL,
    committed_version BIGINT,
    stream            BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX upload_sessions_expiry ON upload_sessions(expires_at);

CREATE TABLE session_chunks (
    session_id TEXT NOT NULL REFERENCES upload_sessions(id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    chunk_id   TEXT COLLATE "C" NOT NULL,
    size       INTEGER NOT NULL,
    PRIMARY KEY (session_id, idx)
);
CREATE INDEX session_chunks_by_chunk ON session_chunks(chunk_id);

CREATE TABLE gc_orphans (
    node       TEXT NOT NULL,
    chunk_id   TEXT COLLATE "C" NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (node, chunk_id)
);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    r#"
-- Accounts: an owner with a password hash can log in. The default owner
-- (1) has none until the first user takes it over.
CREATE SEQUENCE owners_id_seq START 2 OWNED BY owners.id;
ALTER TABLE owners ALTER COLUMN id SET DEFAULT nextval('owners_id_seq');
ALTER TABLE owners ADD COLUMN password_hash TEXT;
ALTER TABLE owners ADD COLUMN role TEXT NOT NULL DEFAULT 'user'
    CHECK (role IN ('admin', 'user'));
ALTER TABLE owners ADD COLUMN created_at TIMESTAMPTZ;
ALTER TABLE owners ADD COLUMN removed BOOLEAN NOT NULL DEFAULT FALSE;

-- A login: its refresh token's hash; access tokens name it (sid), so
-- revoking it ends them too.
CREATE TABLE logins (
    id         TEXT PRIMARY KEY,
    owner_id   BIGINT NOT NULL REFERENCES owners(id),
    token_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX logins_by_owner ON logins(owner_id);

-- Which owner has sent (or committed) which chunk: dedup never answers
-- "stored" for content the asker has not shown they have.
CREATE TABLE owner_chunks (
    owner_id BIGINT NOT NULL,
    chunk_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (owner_id, chunk_id)
);
CREATE INDEX owner_chunks_by_chunk ON owner_chunks(chunk_id);
INSERT INTO owner_chunks (owner_id, chunk_id)
    SELECT DISTINCT f.owner_id, vc.chunk_id
    FROM version_chunks vc JOIN files f ON f.id = vc.file_id
    ON CONFLICT DO NOTHING;
"#,
    r#"
-- Quotas: logical bytes of every retained version; NULL: none.
ALTER TABLE owners ADD COLUMN quota_bytes BIGINT;

-- Open sessions are counted per owner (the cap on open sessions).
CREATE INDEX upload_sessions_by_owner ON upload_sessions(owner_id, expires_at);

-- The chunks a session still lacks, and how many, so PutChunk's
-- bookkeeping is two index lookups, not a scan of the session.
ALTER TABLE upload_sessions ADD COLUMN missing BIGINT NOT NULL DEFAULT 0;
CREATE TABLE session_missing (
    session_id TEXT NOT NULL REFERENCES upload_sessions(id) ON DELETE CASCADE,
    chunk_id   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (session_id, chunk_id)
);

-- Share links: one version of one file, for anyone with the URL.
CREATE TABLE share_links (
    id            TEXT PRIMARY KEY,
    owner_id      BIGINT NOT NULL REFERENCES owners(id),
    file_id       BIGINT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    number        BIGINT NOT NULL,
    password_hash TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX share_links_by_owner ON share_links(owner_id, created_at);
"#,
    r#"
-- The change feed (see the SQLite schema).
ALTER TABLE owners ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE TABLE changes (
    owner_id BIGINT NOT NULL,
    seq      BIGINT NOT NULL,
    path     TEXT COLLATE "C" NOT NULL,
    deleted  BOOLEAN NOT NULL,
    version  BIGINT NOT NULL,
    size     BIGINT NOT NULL,
    hash     TEXT NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner_id, seq)
);
CREATE INDEX changes_by_time ON changes(at);

-- The content's modification time, as the uploading client gave it.
ALTER TABLE versions ADD COLUMN modified_at TEXT;
ALTER TABLE upload_sessions ADD COLUMN modified_at TEXT;
ALTER TABLE changes ADD COLUMN modified_at TEXT;
"#,
    r#"
-- Versions each owner keeps (deleted files' too), for the per-user limit
-- on versions: kept up to date by every insert and delete of a version.
ALTER TABLE owners ADD COLUMN version_count BIGINT NOT NULL DEFAULT 0;
UPDATE owners SET version_count =
    (SELECT COUNT(*) FROM versions v JOIN files f ON f.id = v.file_id
     WHERE f.owner_id = owners.id);
"#,
    r#"
-- Booleans become integers (0, 1), as on every engine; times too, below
-- (`times_to_ms`).
ALTER TABLE upload_sessions ALTER COLUMN stream DROP DEFAULT;
ALTER TABLE upload_sessions ALTER COLUMN stream TYPE INTEGER USING CASE WHEN stream THEN 1 ELSE 0 END;
ALTER TABLE upload_sessions ALTER COLUMN stream SET DEFAULT 0;
ALTER TABLE owners ALTER COLUMN removed DROP DEFAULT;
ALTER TABLE owners ALTER COLUMN removed TYPE INTEGER USING CASE WHEN removed THEN 1 ELSE 0 END;
ALTER TABLE owners ALTER COLUMN removed SET DEFAULT 0;
ALTER TABLE changes ALTER COLUMN deleted TYPE INTEGER USING CASE WHEN deleted THEN 1 ELSE 0 END;
"#,
    r#"
-- Folders made on their own (WebDAV MKCOL, a new empty folder): a folder
-- also exists, without a row, while a live file is inside it.
CREATE TABLE folders (
    owner_id   BIGINT NOT NULL,
    path       TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner_id, path)
);

-- WebDAV dead properties (PROPPATCH) of a file or folder, by path.
CREATE TABLE dead_props (
    owner_id BIGINT NOT NULL,
    path     TEXT COLLATE "C" NOT NULL,
    ns       TEXT NOT NULL,
    name     TEXT NOT NULL,
    prefix   TEXT,
    xml      TEXT,
    PRIMARY KEY (owner_id, path, ns, name)
);

-- WebDAV locks, in the database so that every server of it honours them.
CREATE TABLE dav_locks (
    token      TEXT PRIMARY KEY,
    owner_id   BIGINT NOT NULL,
    path       TEXT COLLATE "C" NOT NULL,
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

/// Turns every time column into integer milliseconds since the Unix
/// epoch, as on every engine (migration 5).
async fn times_to_ms(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), MetaError> {
    for &(table, column, _) in crate::meta::sql::TIME_COLUMNS {
        tx.batch_execute(&format!(
            "ALTER TABLE {table} ALTER COLUMN {column} TYPE BIGINT
             USING CAST(FLOOR(EXTRACT(EPOCH FROM {column}) * 1000) AS BIGINT)"
        ))
        .await
        .map_err(super::pg)?;
    }
    Ok(())
}

/// Brings the database up to the newest schema. Servers starting together
/// take turns on the version row's lock.
pub async fn migrate(client: &mut Object) -> Result<(), MetaError> {
    // Two servers creating the table at once: one may lose the race on
    // the catalog; the second attempt sees the table.
    for attempt in 0..3 {
        let created = client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS coffer_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL);
                 INSERT INTO coffer_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
            )
            .await;
        match created {
            Ok(()) => break,
            Err(e) if attempt < 2 => {
                tracing::debug!(error = %e, "creating the schema table raced; again");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(super::pg(e)),
        }
    }
    let tx = client.transaction().await.map_err(super::pg)?;
    let current: i32 = tx
        .query_one(
            "SELECT version FROM coffer_schema WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await
        .map_err(super::pg)?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql).await.map_err(super::pg)?;
        if i == 5 {
            times_to_ms(&tx).await?;
        }
        tx.execute(
            "UPDATE coffer_schema SET version = $1 WHERE id = 1",
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(super::pg)?;
    }
    tx.commit().await.map_err(super::pg)?;
    Ok(())
}
