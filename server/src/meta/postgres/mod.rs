//! The PostgreSQL backend of [`MetaStore`]: one database that several
//! stateless servers share.
//!
//! tokio-postgres with a deadpool pool. Writers run at READ COMMITTED and
//! make every reference to a stored chunk *write* the chunk's row (a
//! touch), while gc claims chunks at REPEATABLE READ: a claim that meets a
//! row touched since its snapshot fails with a serialization error and is
//! retried, and a touch that meets a claimed row sees `deleting`. So a
//! chunk is never claimed once a committed version or session references
//! it, on any number of servers. Serialization failures and deadlocks are
//! retried with growing back-off. Time is the database's `now()`.

mod changes;
mod limits;
pub mod schema;
mod shares;

use super::{
    random_id, ChangeRow, ChunkHold, ChunkRef, ChunkSlot, HealthCounts, LeaseRow, LoginRow,
    MetaError, MetaReport, MetaStore, NewSession, NewShare, NewVersion, OwnerId, ReplicaOutcome,
    Retention, Role, SessionRow, ShareRow, StreamRef, Usage, UserRow, VersionRow, DEFAULT_OWNER,
    PENDING_FLOOR,
};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls, Row};

/// Connections per server.
const POOL_SIZE: usize = 16;
/// Attempts of a transaction that hits serialization failures.
const ATTEMPTS: u32 = 8;

/// Whether `url` names a PostgreSQL database.
pub fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A PostgreSQL error as a [`MetaError`] kind.
pub(crate) fn pg(e: tokio_postgres::Error) -> MetaError {
    let msg = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    };
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::LOCK_NOT_AVAILABLE =>
        {
            MetaError::Busy(msg)
        }
        Some(c)
            if *c == SqlState::DISK_FULL
                || *c == SqlState::INSUFFICIENT_RESOURCES
                || *c == SqlState::OUT_OF_MEMORY =>
        {
            MetaError::Full(msg)
        }
        Some(c)
            if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::CONNECTION_FAILURE
                || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            MetaError::Unreachable(msg)
        }
        Some(_) => MetaError::Backend(msg),
        None if e.is_closed() || msg.contains("connect") || msg.contains("timed out") => {
            MetaError::Unreachable(msg)
        }
        None => MetaError::Backend(msg),
    }
}

impl From<tokio_postgres::Error> for MetaError {
    fn from(e: tokio_postgres::Error) -> Self {
        pg(e)
    }
}

/// Milliseconds, as the SQL takes durations (`$n * INTERVAL '1 millisecond'`).
fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

fn ts(t: time::OffsetDateTime) -> String {
    super::rfc3339(t)
}

const SELECT_USER: &str = "SELECT id, name, role, password_hash, created_at FROM owners";

fn user_row(r: &Row) -> UserRow {
    user_at(r, 0)
}

/// A user from columns `i..i + 5` (id, name, role, hash, created).
fn user_at(r: &Row, i: usize) -> UserRow {
    let role: String = r.get(i + 2);
    let created: Option<time::OffsetDateTime> = r.get(i + 4);
    UserRow {
        id: r.get(i),
        name: r.get(i + 1),
        role: Role::parse(&role).unwrap_or(Role::User),
        password_hash: r.get(i + 3),
        created_at: created.map(ts).unwrap_or_default(),
    }
}

async fn user_named<C: GenericClient>(c: &C, name: &str) -> Result<Option<UserRow>, MetaError> {
    Ok(c.query_opt(
        &format!("{SELECT_USER} WHERE name = $1 AND password_hash IS NOT NULL AND NOT removed"),
        &[&name],
    )
    .await?
    .map(|r| user_row(&r)))
}

/// Runs `$body` (an expression of type `Result<T, MetaError>` using the
/// transaction `$tx`) in one transaction at `$level`, again on
/// serialization failures, deadlocks and lost races. With `unsynced`, the
/// commit does not wait for its WAL flush: for rows that only matter once
/// a later, synced commit names them (chunk holds and records, replica
/// outcomes, leases). WAL is flushed in order, so that commit makes them
/// durable too; a crash before it may forget them, never tear them, as
/// with SQLite's unsynced commits.
macro_rules! transaction {
    ($self:expr, $level:expr, unsynced, |$tx:ident| $body:expr) => {
        transaction!(@run $self, $level, true, |$tx| $body)
    };
    ($self:expr, $level:expr, |$tx:ident| $body:expr) => {
        transaction!(@run $self, $level, false, |$tx| $body)
    };
    (@run $self:expr, $level:expr, $unsynced:expr, |$tx:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let result: Result<_, MetaError> = async {
                let mut client = $self.client().await?;
                let $tx = client
                    .build_transaction()
                    .isolation_level($level)
                    .start()
                    .await?;
                if $unsynced {
                    $tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
                }
                let out: Result<_, MetaError> = $body;
                let out = out?;
                $tx.commit().await?;
                Ok(out)
            }
            .await;
            match result {
                Err(MetaError::Busy(msg)) if attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(attempt, %msg, "metadata transaction retried");
                    let jitter = rand::random::<u64>() % 20;
                    let wait = Duration::from_millis((10u64 << attempt.min(7)) + jitter);
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        }
    }};
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct PgMeta {
    pool: Pool,
}

impl PgMeta {
    /// Connects to `url` and migrates the schema.
    pub async fn connect(url: &str) -> Result<Self, MetaError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            MetaError::Backend(format!("bad database URL {}: {e}", super::redact(url)))
        })?;
        let mut config = config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| MetaError::Backend(e.to_string()))?;
        let meta = Self { pool };
        let mut client = meta.client().await?;
        schema::migrate(&mut client).await?;
        Ok(meta)
    }

    async fn client(&self) -> Result<Object, MetaError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => pg(e),
            other => MetaError::Unreachable(other.to_string()),
        })
    }
}

const SELECT_VERSION: &str = "
    SELECT f.id, f.path, v.number, v.size, v.hash, v.created_at, f.deleted_at IS NOT NULL,
           (SELECT COUNT(*) FROM version_chunks vc WHERE vc.file_id = v.file_id AND vc.number = v.number)::INTEGER,
           v.modified_at
    FROM files f JOIN versions v ON v.file_id = f.id";

/// A `(chunk id, size)` row.
fn chunk_ref(r: &Row) -> ChunkRef {
    ChunkRef {
        id: r.get(0),
        size: r.get::<_, i32>(1) as u32,
    }
}

fn version_row(r: &Row) -> VersionRow {
    VersionRow {
        file_id: r.get(0),
        path: r.get(1),
        number: r.get::<_, i64>(2) as u64,
        size: r.get::<_, i64>(3) as u64,
        hash: r.get(4),
        created_at: ts(r.get(5)),
        deleted: r.get(6),
        chunk_count: r.get::<_, i32>(7) as u32,
        modified: r.get(8),
    }
}

async fn version<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    path: &str,
    number: Option<u64>,
) -> Result<Option<VersionRow>, MetaError> {
    let row = match number {
        Some(n) => {
            c.query_opt(
                &format!("{SELECT_VERSION} WHERE f.owner_id = $1 AND f.path = $2 AND v.number = $3"),
                &[&owner, &path, &(n as i64)],
            )
            .await?
        }
        None => {
            c.query_opt(
                &format!(
                    "{SELECT_VERSION} WHERE f.owner_id = $1 AND f.path = $2 ORDER BY v.number DESC LIMIT 1"
                ),
                &[&owner, &path],
            )
            .await?
        }
    };
    Ok(row.as_ref().map(version_row))
}

async fn version_chunks<C: GenericClient>(
    c: &C,
    file_id: i64,
    number: u64,
) -> Result<Vec<ChunkRef>, MetaError> {
    let rows = c
        .query(
            "SELECT vc.chunk_id, c.size FROM version_chunks vc JOIN chunks c ON c.id = vc.chunk_id
             WHERE vc.file_id = $1 AND vc.number = $2 ORDER BY vc.idx",
            &[&file_id, &(number as i64)],
        )
        .await?;
    Ok(rows.iter().map(chunk_ref).collect())
}

/// Which of `chunks` are not stored; every stored one is touched (its age
/// refreshed, its row written), which is what keeps gc's claim off it.
/// Fails on a stored chunk listed with another size.
/// Which of `chunks` `owner` must send (see
/// [`MetaStore::unknown_chunks`]); with `touch`, the age of every stored
/// one of theirs is refreshed, which is how a new reference keeps gc away.
async fn owner_unknown<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    chunks: &[ChunkRef],
    touch: bool,
) -> Result<Vec<String>, MetaError> {
    let mut ids: Vec<&str> = chunks.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let owned = "id = ANY($1) AND state = 'ok' AND EXISTS
         (SELECT 1 FROM owner_chunks o WHERE o.owner_id = $2 AND o.chunk_id = chunks.id)";
    let sql = if touch {
        format!("UPDATE chunks SET created_at = now() WHERE {owned} RETURNING id, size")
    } else {
        format!("SELECT id, size FROM chunks WHERE {owned}")
    };
    let rows = c.query(&sql, &[&ids, &owner]).await?;
    let stored: HashMap<String, u32> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1) as u32))
        .collect();
    missing_of(chunks, &stored)
}

/// Records that `owner` sent (or committed) the chunks `ids`.
async fn grant<C: GenericClient>(c: &C, owner: OwnerId, ids: &[&str]) -> Result<(), MetaError> {
    c.execute(
        "INSERT INTO owner_chunks (owner_id, chunk_id) SELECT $1, UNNEST($2::TEXT[])
         ON CONFLICT DO NOTHING",
        &[&owner, &ids],
    )
    .await?;
    Ok(())
}

/// The ids of `chunks` not in `stored`, each once in first-seen order;
/// a size mismatch is an error.
fn missing_of(
    chunks: &[ChunkRef],
    stored: &HashMap<String, u32>,
) -> Result<Vec<String>, MetaError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for ch in chunks {
        if !seen.insert(ch.id.as_str()) {
            continue;
        }
        match stored.get(&ch.id) {
            None => out.push(ch.id.clone()),
            Some(&size) if size != ch.size => {
                return Err(MetaError::ChunkSize {
                    id: ch.id.clone(),
                    stored: size,
                    declared: ch.size,
                })
            }
            Some(_) => {}
        }
    }
    Ok(out)
}

async fn insert_version<C: GenericClient>(
    c: &C,
    v: &NewVersion,
    restored_from: Option<u64>,
) -> Result<VersionRow, MetaError> {
    let missing = owner_unknown(c, v.owner, &v.chunks, true).await?.len();
    if missing > 0 {
        return Err(MetaError::MissingChunks(missing));
    }
    let quota = limits::lock_owner(c, v.owner).await?;
    changes::check_base(c, v.owner, &v.path, v.base).await?;
    limits::check_path_free(c, v.owner, &v.path).await?;
    limits::check_quota(c, v.owner, quota, v.size, v.completes()).await?;
    limits::check_versions(c, v.owner).await?;
    let file_id: i64 = c
        .query_one(
            "INSERT INTO files (owner_id, path) VALUES ($1, $2)
             ON CONFLICT (owner_id, path) DO UPDATE SET deleted_at = NULL RETURNING id",
            &[&v.owner, &v.path],
        )
        .await?
        .get(0);
    // The file's row is locked until commit, so versions of one file are
    // numbered one commit at a time, on every server.
    let number: i64 = c
        .query_one(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE file_id = $1",
            &[&file_id],
        )
        .await?
        .get(0);
    let created: time::OffsetDateTime = c
        .query_one(
            "INSERT INTO versions
                 (file_id, number, size, hash, created_at, uploader, restored_from, modified_at)
             VALUES ($1, $2, $3, $4, now(), $5, $6, $7) RETURNING created_at",
            &[
                &file_id,
                &number,
                &(v.size as i64),
                &v.hash,
                &v.uploader,
                &restored_from.map(|n| n as i64),
                &v.modified,
            ],
        )
        .await?
        .get(0);
    c.execute(
        "UPDATE owners SET version_count = version_count + 1 WHERE id = $1",
        &[&v.owner],
    )
    .await?;
    let idx: Vec<i32> = (0..v.chunks.len() as i32).collect();
    let ids: Vec<&str> = v.chunks.iter().map(|c| c.id.as_str()).collect();
    c.execute(
        "INSERT INTO version_chunks (file_id, number, idx, chunk_id)
         SELECT $1::BIGINT, $2::BIGINT, i, id FROM UNNEST($3::INTEGER[], $4::TEXT[]) AS t(i, id)",
        &[&file_id, &number, &idx, &ids],
    )
    .await?;
    if let Some(stream) = &v.stream {
        drop_session(c, stream).await?;
    }
    changes::record(
        c,
        v.owner,
        &v.path,
        false,
        (number as u64, v.size, &v.hash, v.modified.as_deref()),
    )
    .await?;
    Ok(VersionRow {
        file_id,
        path: v.path.clone(),
        number: number as u64,
        size: v.size,
        hash: v.hash.clone(),
        created_at: ts(created),
        deleted: false,
        chunk_count: v.chunks.len() as u32,
        modified: v.modified.clone(),
    })
}

/// See [`crate::meta::MetaStore::delete_file`].
async fn delete_file<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    path: &str,
    base: Option<u64>,
) -> Result<Option<u64>, MetaError> {
    // The owner's lock before the file's, as every write of theirs.
    limits::lock_owner(c, owner).await?;
    let Some(latest) = version(c, owner, path, None).await?.filter(|v| !v.deleted) else {
        return Ok(None);
    };
    changes::check_base(c, owner, path, base).await?;
    c.execute(
        "UPDATE files SET deleted_at = now()
         WHERE owner_id = $1 AND path = $2 AND deleted_at IS NULL",
        &[&owner, &path],
    )
    .await?;
    // A deleted file's links end for good: re-creating the path (an
    // upload, a restore, a move back) must not bring them back.
    c.execute(
        "UPDATE share_links SET revoked_at = now()
         WHERE revoked_at IS NULL
           AND file_id = (SELECT id FROM files WHERE owner_id = $1 AND path = $2)",
        &[&owner, &path],
    )
    .await?;
    changes::record(
        c,
        owner,
        path,
        true,
        (
            latest.number,
            latest.size,
            &latest.hash,
            latest.modified.as_deref(),
        ),
    )
    .await?;
    Ok(Some(latest.number))
}

async fn drop_session<C: GenericClient>(c: &C, id: &str) -> Result<(), MetaError> {
    c.execute("DELETE FROM session_chunks WHERE session_id = $1", &[&id])
        .await?;
    c.execute("DELETE FROM session_missing WHERE session_id = $1", &[&id])
        .await?;
    c.execute("DELETE FROM upload_sessions WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

/// `rows` with their health against `r`, in one query for all of them.
async fn with_health<C: GenericClient>(
    c: &C,
    rows: Vec<VersionRow>,
    r: usize,
) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let files: Vec<i64> = rows.iter().map(|v| v.file_id).collect();
    let numbers: Vec<i64> = rows.iter().map(|v| v.number as i64).collect();
    let found = c
        .query(
            "WITH page(file_id, number) AS (SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[])),
             distinct_chunks AS (
                 SELECT DISTINCT vc.file_id, vc.number, vc.chunk_id
                 FROM page p JOIN version_chunks vc ON vc.file_id = p.file_id AND vc.number = p.number)
             SELECT d.file_id, d.number,
                    (SELECT COUNT(*) FROM replicas r WHERE r.chunk_id = d.chunk_id AND r.state = 'ok')
             FROM distinct_chunks d",
            &[&files, &numbers],
        )
        .await?;
    let found = found
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get::<_, i64>(2) as usize));
    Ok(super::attach_health(rows, found, r))
}

async fn session<C: GenericClient>(
    c: &C,
    id: &str,
    owner: OwnerId,
) -> Result<Option<SessionRow>, MetaError> {
    let Some(head) = c
        .query_opt(
            "SELECT path, size, hash, expires_at, modified_at FROM upload_sessions
             WHERE id = $1 AND owner_id = $2 AND expires_at > now() AND NOT stream",
            &[&id, &owner],
        )
        .await?
    else {
        return Ok(None);
    };
    let chunks = c
        .query(
            "SELECT chunk_id, size FROM session_chunks WHERE session_id = $1 ORDER BY idx",
            &[&id],
        )
        .await?
        .iter()
        .map(chunk_ref)
        .collect();
    Ok(Some(SessionRow {
        id: id.to_string(),
        owner,
        path: head.get(0),
        size: head.get::<_, i64>(1) as u64,
        hash: head.get(2),
        expires_at: ts(head.get(3)),
        chunks,
        modified: head.get(4),
    }))
}

#[async_trait]
impl MetaStore for PgMeta {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn hold_chunk(
        &self,
        chunk: &ChunkRef,
        stream: Option<&StreamRef>,
    ) -> Result<ChunkHold, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, unsynced, |tx| {
            async {
            if let Some(s) = stream {
                let owner = tx
                    .query_opt("SELECT owner_id FROM upload_sessions WHERE id = $1", &[&s.stream])
                    .await?
                    .map(|r| r.get::<_, OwnerId>(0));
                if let Some(owner) = owner {
                    let quota = limits::lock_owner(&tx, owner).await?;
                    limits::check_quota(&tx, owner, quota, chunk.size as u64, None).await?;
                }
            }
            let row = tx
                .query_opt(
                    "INSERT INTO chunks (id, size, created_at, state, hold)
                     VALUES ($1, $2, now(), 'pending', $3)
                     ON CONFLICT (id) DO UPDATE SET created_at = now()
                       WHERE chunks.state <> 'deleting'
                     RETURNING state, hold",
                    &[&chunk.id, &(chunk.size as i32), &random_id()],
                )
                .await?;
            let hold = match row {
                None => return Ok(ChunkHold::Deleting),
                Some(r) if r.get::<_, &str>(0) == "ok" => ChunkHold::Stored,
                Some(r) => ChunkHold::Write(r.get::<_, Option<String>>(1).unwrap_or_default()),
            };
            if let Some(s) = stream {
                tx.execute(
                    "INSERT INTO session_chunks (session_id, idx, chunk_id, size) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (session_id, idx) DO UPDATE SET chunk_id = excluded.chunk_id, size = excluded.size",
                    &[&s.stream, &(s.index as i32), &chunk.id, &(chunk.size as i32)],
                )
                .await?;
            }
            Ok(hold)
        }
        .await
        })
    }

    async fn record_chunk(
        &self,
        chunk: &ChunkRef,
        hold: &str,
        nodes: &[String],
    ) -> Result<(), MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, unsynced, |tx| {
            async {
            let n = tx
                .execute(
                    "UPDATE chunks SET state = 'ok', hold = NULL, created_at = now()
                     WHERE id = $1 AND (state = 'ok' OR (state = 'pending' AND hold = $2))",
                    &[&chunk.id, &hold],
                )
                .await?;
            if n == 0 {
                return Err(MetaError::ChunkDeleting(chunk.id.clone()));
            }
            tx.execute(
                "INSERT INTO replicas (chunk_id, node, state, checked_at)
                 SELECT $1::TEXT, node, 'ok', now() FROM UNNEST($2::TEXT[]) AS t(node)
                 ON CONFLICT (chunk_id, node) DO UPDATE SET state = 'ok', checked_at = excluded.checked_at",
                &[&chunk.id, &nodes],
            )
            .await?;
            Ok(())
        }
        .await
        })
    }

    async fn record_replicas(&self, outcomes: &[ReplicaOutcome]) -> Result<(), MetaError> {
        // One row per (chunk, node): the last outcome wins, and a batch
        // never names a row twice (which an upsert refuses).
        let mut last = HashMap::new();
        for o in outcomes {
            last.insert((o.chunk_id.as_str(), o.node.as_str()), o.state.as_str());
        }
        let mut keys: Vec<_> = last.into_iter().collect();
        keys.sort_unstable();
        let chunks: Vec<&str> = keys.iter().map(|((c, _), _)| *c).collect();
        let nodes: Vec<&str> = keys.iter().map(|((_, n), _)| *n).collect();
        let states: Vec<&str> = keys.iter().map(|(_, s)| *s).collect();
        transaction!(self, IsolationLevel::ReadCommitted, unsynced, |tx| {
            async {
            tx.execute(
                "INSERT INTO replicas (chunk_id, node, state, checked_at)
                 SELECT c, n, s, now() FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS t(c, n, s)
                 ON CONFLICT (chunk_id, node) DO UPDATE SET state = excluded.state, checked_at = excluded.checked_at",
                &[&chunks, &nodes, &states],
            )
            .await?;
            Ok(())
        }
        .await
        })
    }

    async fn unknown_chunks(
        &self,
        owner: OwnerId,
        chunks: &[ChunkRef],
    ) -> Result<Vec<String>, MetaError> {
        let client = self.client().await?;
        owner_unknown(&client, owner, chunks, false).await
    }

    async fn chunks_page(&self, after: &str, limit: u32) -> Result<Vec<ChunkRef>, MetaError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, size FROM chunks WHERE state = 'ok' AND id > $1 ORDER BY id LIMIT $2",
                &[&after, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(chunk_ref).collect())
    }

    async fn replicas_needing_repair(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, String)>, MetaError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT r.chunk_id, r.node FROM replicas r JOIN chunks c ON c.id = r.chunk_id
                 WHERE r.state <> 'ok' AND c.state = 'ok' LIMIT $1",
                &[&(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn forget_replica(&self, chunk: &str, node: &str) -> Result<(), MetaError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM replicas WHERE chunk_id = $1 AND node = $2",
                &[&chunk, &node],
            )
            .await?;
        Ok(())
    }

    async fn version(
        &self,
        owner: OwnerId,
        path: &str,
        number: Option<u64>,
    ) -> Result<Option<VersionRow>, MetaError> {
        version(&self.client().await?, owner, path, number).await
    }

    async fn version_chunks(&self, file_id: i64, number: u64) -> Result<Vec<ChunkRef>, MetaError> {
        version_chunks(&self.client().await?, file_id, number).await
    }

    async fn version_health(
        &self,
        file_id: i64,
        number: u64,
        r: usize,
    ) -> Result<HealthCounts, MetaError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT (SELECT COUNT(*) FROM replicas r WHERE r.chunk_id = vc.chunk_id AND r.state = 'ok')
                 FROM (SELECT DISTINCT chunk_id FROM version_chunks WHERE file_id = $1 AND number = $2) vc",
                &[&file_id, &(number as i64)],
            )
            .await?;
        let mut h = HealthCounts::default();
        for row in &rows {
            h.add(row.get::<_, i64>(0) as usize, r);
        }
        Ok(h)
    }

    async fn list_files(
        &self,
        owner: OwnerId,
        prefix: &str,
        after: &str,
        limit: u32,
        r: usize,
    ) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "{SELECT_VERSION}
                     WHERE f.owner_id = $1 AND f.deleted_at IS NULL
                       AND substr(f.path, 1, length($2)) = $2 AND f.path > $3
                       AND v.number = (SELECT MAX(number) FROM versions WHERE file_id = f.id)
                     ORDER BY f.path LIMIT $4"
                ),
                &[&owner, &prefix, &after, &(limit as i64)],
            )
            .await?;
        let rows = rows.iter().map(version_row).collect();
        with_health(&client, rows, r).await
    }

    async fn list_versions(
        &self,
        owner: OwnerId,
        path: &str,
        before: Option<u64>,
        limit: u32,
        r: usize,
    ) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
        let client = self.client().await?;
        let before = before.map_or(i64::MAX, |b| b as i64);
        let rows = client
            .query(
                &format!(
                    "{SELECT_VERSION} WHERE f.owner_id = $1 AND f.path = $2 AND v.number < $3
                     ORDER BY v.number DESC LIMIT $4"
                ),
                &[&owner, &path, &before, &(limit as i64)],
            )
            .await?;
        let rows = rows.iter().map(version_row).collect();
        with_health(&client, rows, r).await
    }

    async fn commit_version(&self, v: &NewVersion) -> Result<VersionRow, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            let ids: Vec<&str> = v.chunks.iter().map(|c| c.id.as_str()).collect();
            grant(&tx, v.owner, &ids).await?;
            insert_version(&tx, v, None).await
        }
        .await)
    }

    async fn restore_version(
        &self,
        owner: OwnerId,
        path: &str,
        number: u64,
        uploader: &str,
    ) -> Result<Option<VersionRow>, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            let Some(old) = version(&tx, owner, path, Some(number)).await? else {
                return Ok(None);
            };
            let chunks = version_chunks(&tx, old.file_id, old.number).await?;
            let v = NewVersion::restoring(old, chunks, owner, uploader);
            // The owner committed these chunks once already.
            let ids: Vec<&str> = v.chunks.iter().map(|c| c.id.as_str()).collect();
            grant(&tx, owner, &ids).await?;
            insert_version(&tx, &v, Some(number)).await.map(Some)
        }
        .await)
    }

    async fn delete_file(
        &self,
        owner: OwnerId,
        path: &str,
        base: Option<u64>,
    ) -> Result<Option<u64>, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            delete_file(&tx, owner, path, base).await
        }
        .await)
    }

    async fn move_file(
        &self,
        owner: OwnerId,
        from: &str,
        to: &str,
        base: Option<u64>,
        uploader: &str,
    ) -> Result<Option<VersionRow>, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            // The owner's lock first, as every write of theirs takes it.
            limits::lock_owner(&tx, owner).await?;
            let Some(old) = version(&tx, owner, from, None)
                .await?
                .filter(|v| !v.deleted)
            else {
                return Ok(None);
            };
            changes::check_base(&tx, owner, from, base).await?;
            if version(&tx, owner, to, None)
                .await?
                .is_some_and(|v| !v.deleted)
            {
                return Err(MetaError::PathConflict(super::move_target_message(to)));
            }
            let chunks = version_chunks(&tx, old.file_id, old.number).await?;
            delete_file(&tx, owner, from, None).await?;
            let mut v = NewVersion::restoring(old, chunks, owner, uploader);
            v.path = to.to_string();
            insert_version(&tx, &v, None).await.map(Some)
        }
        .await)
    }

    async fn changes(
        &self,
        owner: OwnerId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<ChangeRow>, u64), MetaError> {
        let client = self.client().await?;
        changes::list(&client, owner, after, limit).await
    }

    async fn prune_changes(&self, older_than: Duration) -> Result<u64, MetaError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM changes WHERE at < now() - $1::BIGINT * INTERVAL '1 millisecond'",
                &[&ms(older_than)],
            )
            .await?)
    }

    async fn open_session(&self, s: &NewSession) -> Result<(SessionRow, Vec<String>), MetaError> {
        // Unsynced, as on SQLite: a lost session is started again.
        transaction!(self, IsolationLevel::ReadCommitted, unsynced, |tx| {
            async {
            let quota = limits::lock_owner(&tx, s.owner).await?;
            limits::check_open(&tx, s.owner, s.max_open).await?;
            limits::check_path_free(&tx, s.owner, &s.path).await?;
            limits::check_quota(&tx, s.owner, quota, s.size, None).await?;
            let missing = owner_unknown(&tx, s.owner, &s.chunks, true).await?;
            let id = random_id();
            let expires: time::OffsetDateTime = tx
                .query_one(
                    "INSERT INTO upload_sessions (id, owner_id, path, size, hash, created_at, expires_at, missing)
                     VALUES ($1, $2, $3, $4, $5, now(), now() + $6::BIGINT * INTERVAL '1 millisecond', $7)
                     RETURNING expires_at",
                    &[&id, &s.owner, &s.path, &(s.size as i64), &s.hash, &ms(s.ttl), &(missing.len() as i64)],
                )
                .await?
                .get(0);
            tx.execute(
                "INSERT INTO session_missing (session_id, chunk_id)
                 SELECT $1::TEXT, UNNEST($2::TEXT[]) ON CONFLICT DO NOTHING",
                &[&id, &missing],
            )
            .await?;
            let idx: Vec<i32> = (0..s.chunks.len() as i32).collect();
            let ids: Vec<&str> = s.chunks.iter().map(|c| c.id.as_str()).collect();
            let sizes: Vec<i32> = s.chunks.iter().map(|c| c.size as i32).collect();
            tx.execute(
                "INSERT INTO session_chunks (session_id, idx, chunk_id, size)
                 SELECT $1::TEXT, i, c, s FROM UNNEST($2::INTEGER[], $3::TEXT[], $4::INTEGER[]) AS t(i, c, s)",
                &[&id, &idx, &ids, &sizes],
            )
            .await?;
            if s.modified.is_some() {
                tx.execute(
                    "UPDATE upload_sessions SET modified_at = $2 WHERE id = $1",
                    &[&id, &s.modified],
                )
                .await?;
            }
            let row = SessionRow {
                id,
                owner: s.owner,
                path: s.path.clone(),
                size: s.size,
                hash: s.hash.clone(),
                expires_at: ts(expires),
                chunks: s.chunks.clone(),
                modified: s.modified.clone(),
            };
            Ok((row, missing))
        }
        .await
        })
    }

    async fn session(&self, id: &str, owner: OwnerId) -> Result<Option<SessionRow>, MetaError> {
        session(&self.client().await?, id, owner).await
    }

    async fn chunk_slot(
        &self,
        id: &str,
        owner: OwnerId,
        chunk: &str,
    ) -> Result<ChunkSlot, MetaError> {
        let client = self.client().await?;
        let open = client
            .query_opt(
                "SELECT 1 FROM upload_sessions
                 WHERE id = $1 AND owner_id = $2 AND expires_at > now() AND NOT stream",
                &[&id, &owner],
            )
            .await?
            .is_some();
        if !open {
            return Ok(ChunkSlot::NoSession);
        }
        let size = client
            .query_opt(
                "SELECT size FROM session_chunks WHERE session_id = $1 AND chunk_id = $2 LIMIT 1",
                &[&id, &chunk],
            )
            .await?
            .map(|r| r.get::<_, i32>(0) as u32);
        Ok(size.map_or(ChunkSlot::NotListed, ChunkSlot::Declared))
    }

    async fn chunk_sent(&self, id: &str, owner: OwnerId, chunk: &str) -> Result<u64, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, unsynced, |tx| {
            async {
                grant(&tx, owner, &[chunk]).await?;
                // What the session lacked when it opened, less what was sent since.
                let first = tx
                    .execute(
                        "DELETE FROM session_missing WHERE session_id = $1 AND chunk_id = $2",
                        &[&id, &chunk],
                    )
                    .await?;
                let n: i64 = tx
                .query_opt(
                    "UPDATE upload_sessions SET missing = GREATEST(missing - $2, 0) WHERE id = $1
                     RETURNING missing",
                    &[&id, &(first as i64)],
                )
                .await?
                .map_or(0, |r| r.get(0));
                Ok(n as u64)
            }
            .await
        })
    }

    async fn finish_session(
        &self,
        s: &SessionRow,
        uploader: &str,
        base: Option<u64>,
    ) -> Result<VersionRow, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            // Locks the session: two finishes of it commit one version.
            let committed: Option<i64> = tx
                .query_opt(
                    "SELECT committed_version FROM upload_sessions WHERE id = $1 FOR UPDATE",
                    &[&s.id],
                )
                .await?
                .and_then(|r| r.get(0));
            if let Some(number) = committed {
                let number = number as u64;
                let now_there = version(&tx, s.owner, &s.path, Some(number)).await?;
                return super::finished_again(s, number, now_there);
            }
            let mut v = NewVersion::of_session(s, uploader);
            v.base = base;
            let row = insert_version(&tx, &v, None).await?;
            tx.execute(
                "UPDATE upload_sessions SET committed_version = $2 WHERE id = $1",
                &[&s.id, &(row.number as i64)],
            )
            .await?;
            Ok(row)
        }
        .await)
    }

    async fn open_stream(
        &self,
        owner: OwnerId,
        ttl: Duration,
        max_open: u32,
    ) -> Result<String, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, unsynced, |tx| {
            async {
                limits::lock_owner(&tx, owner).await?;
                limits::check_open(&tx, owner, max_open).await?;
                let id = random_id();
                tx.execute(
                    "INSERT INTO upload_sessions (id, owner_id, path, size, hash, created_at, expires_at, stream)
                     VALUES ($1, $2, '', 0, '', now(), now() + $3::BIGINT * INTERVAL '1 millisecond', TRUE)",
                    &[&id, &owner, &ms(ttl)],
                )
                .await?;
                Ok(id)
            }
            .await
        })
    }

    async fn drop_session(&self, id: &str) -> Result<(), MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| drop_session(
            &tx, id
        )
        .await)
    }

    async fn apply_retention(&self, retention: &Retention) -> Result<u64, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| {
            async {
            let mut removed = 0;
            if let Some(after) = retention.purge_deleted_after {
                let doomed = "SELECT id FROM files
                    WHERE deleted_at < now() - $1::BIGINT * INTERVAL '1 millisecond'";
                tx.execute(
                    &format!(
                        "UPDATE owners o SET version_count = o.version_count - g.n
                         FROM (SELECT f.owner_id, COUNT(*) AS n FROM versions v
                               JOIN files f ON f.id = v.file_id
                               WHERE f.id IN ({doomed}) GROUP BY f.owner_id) g
                         WHERE o.id = g.owner_id"
                    ),
                    &[&ms(after)],
                )
                .await?;
                tx.execute(
                    &format!("DELETE FROM version_chunks WHERE file_id IN ({doomed})"),
                    &[&ms(after)],
                )
                .await?;
                removed += tx
                    .execute(
                        &format!("DELETE FROM versions WHERE file_id IN ({doomed})"),
                        &[&ms(after)],
                    )
                    .await?;
                tx.execute(&format!("DELETE FROM files WHERE id IN ({doomed})"), &[&ms(after)])
                    .await?;
            }
            if let Some(keep) = retention.keep_last {
                // Versions ranked past `keep` (newest first), never the
                // newest, and not protected by the age rule.
                let doomed = "SELECT file_id, number FROM (
                        SELECT file_id, number, created_at,
                               ROW_NUMBER() OVER (PARTITION BY file_id ORDER BY number DESC) AS rank
                        FROM versions) ranked
                     WHERE rank > GREATEST($1::BIGINT, 1)
                       AND ($2::BIGINT IS NULL OR created_at < now() - $2::BIGINT * INTERVAL '1 millisecond')";
                let young = retention.keep_younger_than.map(ms);
                let keep = keep as i64;
                tx.execute(
                    &format!(
                        "UPDATE owners o SET version_count = o.version_count - g.n
                         FROM (SELECT f.owner_id, COUNT(*) AS n FROM ({doomed}) d
                               JOIN files f ON f.id = d.file_id GROUP BY f.owner_id) g
                         WHERE o.id = g.owner_id"
                    ),
                    &[&keep, &young],
                )
                .await?;
                tx.execute(
                    &format!("DELETE FROM version_chunks WHERE (file_id, number) IN ({doomed})"),
                    &[&keep, &young],
                )
                .await?;
                removed += tx
                    .execute(
                        &format!("DELETE FROM versions WHERE (file_id, number) IN ({doomed})"),
                        &[&keep, &young],
                    )
                    .await?;
            }
            Ok(removed)
        }
        .await
        })
    }

    async fn delete_expired_sessions(&self) -> Result<u64, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            // session_chunks go with them (ON DELETE CASCADE).
            Ok(tx
                .execute("DELETE FROM upload_sessions WHERE expires_at <= now()", &[])
                .await?)
        }
        .await)
    }

    async fn claim_unreferenced(
        &self,
        grace: Duration,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        let pending = grace.max(PENDING_FLOOR);
        // REPEATABLE READ: a row touched by a reference since this
        // snapshot makes the claim fail (and retry), never succeed.
        transaction!(self, IsolationLevel::RepeatableRead, |tx| {
            async {
            tx.execute(
                "UPDATE chunks SET state = 'deleting', hold = NULL WHERE id IN (
                     SELECT id FROM chunks c
                     WHERE ((c.state = 'ok' AND c.created_at < now() - $1::BIGINT * INTERVAL '1 millisecond')
                         OR (c.state = 'pending' AND c.created_at < now() - $2::BIGINT * INTERVAL '1 millisecond'))
                       AND NOT EXISTS (SELECT 1 FROM version_chunks vc WHERE vc.chunk_id = c.id)
                       AND NOT EXISTS (SELECT 1 FROM session_chunks sc WHERE sc.chunk_id = c.id)
                     LIMIT $3)",
                &[&ms(grace), &ms(pending), &(limit as i64)],
            )
            .await?;
            let rows = tx
                .query(
                    "SELECT id FROM chunks WHERE state = 'deleting' LIMIT $1",
                    &[&(limit as i64)],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        }
        .await
        })
    }

    async fn forget_chunk(&self, id: &str) -> Result<(), MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            let n = tx
                .execute(
                    "DELETE FROM chunks WHERE id = $1 AND state = 'deleting'",
                    &[&id],
                )
                .await?;
            if n > 0 {
                tx.execute("DELETE FROM replicas WHERE chunk_id = $1", &[&id])
                    .await?;
                tx.execute("DELETE FROM owner_chunks WHERE chunk_id = $1", &[&id])
                    .await?;
                tx.execute("DELETE FROM gc_orphans WHERE chunk_id = $1", &[&id])
                    .await?;
            }
            Ok(())
        }
        .await)
    }

    async fn note_orphans(
        &self,
        node: &str,
        found: &[String],
        grace: Duration,
    ) -> Result<Vec<String>, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            // Forget notes about objects that are gone or are named now:
            // should one appear again, its grace period starts afresh.
            tx.execute(
                "DELETE FROM gc_orphans WHERE node = $1
                   AND (NOT (chunk_id = ANY($2)) OR chunk_id IN (SELECT id FROM chunks))",
                &[&node, &found],
            )
            .await?;
            tx.execute(
                "INSERT INTO gc_orphans (node, chunk_id, first_seen)
                 SELECT $1::TEXT, f.id, now() FROM UNNEST($2::TEXT[]) AS f(id)
                 WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = f.id)
                 ON CONFLICT (node, chunk_id) DO NOTHING",
                &[&node, &found],
            )
            .await?;
            let rows = tx
                .query(
                    "SELECT chunk_id FROM gc_orphans
                     WHERE node = $1 AND first_seen < now() - $2::BIGINT * INTERVAL '1 millisecond'
                     ORDER BY chunk_id",
                    &[&node, &ms(grace)],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        }
        .await)
    }

    async fn claim_orphan(&self, id: &str) -> Result<bool, MetaError> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "INSERT INTO chunks (id, size, created_at, state) VALUES ($1, 0, now(), 'deleting')
                 ON CONFLICT (id) DO NOTHING",
                &[&id],
            )
            .await?
            > 0)
    }

    async fn report(&self, r: usize) -> Result<MetaReport, MetaError> {
        let mut client = self.client().await?;
        // Every figure from one snapshot.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let usage = tx
            .query(
                "SELECT r.node, COUNT(*), COALESCE(SUM(c.size), 0)::BIGINT
                 FROM replicas r JOIN chunks c ON c.id = r.chunk_id
                 WHERE r.state = 'ok' AND c.state = 'ok' GROUP BY r.node",
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                (
                    row.get::<_, String>(0),
                    row.get::<_, i64>(1) as u64,
                    row.get::<_, i64>(2) as u64,
                )
            })
            .collect();
        let counts = tx
            .query_one(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE good < $1) FROM (
                     SELECT (SELECT COUNT(*) FROM replicas r WHERE r.chunk_id = c.id AND r.state = 'ok') AS good
                     FROM chunks c WHERE c.state = 'ok') g",
                &[&(r as i64)],
            )
            .await?;
        tx.commit().await?;
        Ok(MetaReport {
            usage,
            chunks: counts.get::<_, i64>(0) as u64,
            under_replicated: counts.get::<_, i64>(1) as u64,
        })
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, unsynced, |tx| async {
            Ok(tx
                .execute(
                    "INSERT INTO leases (name, holder, expires_at)
                     VALUES ($1, $2, now() + $3::BIGINT * INTERVAL '1 millisecond')
                     ON CONFLICT (name) DO UPDATE
                       SET holder = excluded.holder, expires_at = excluded.expires_at
                       WHERE leases.holder = excluded.holder OR leases.expires_at <= now()",
                    &[&name, &holder, &ms(ttl)],
                )
                .await?
                > 0)
        }
        .await)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), MetaError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM leases WHERE name = $1 AND holder = $2",
                &[&name, &holder],
            )
            .await?;
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<LeaseRow>, MetaError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, holder, expires_at FROM leases ORDER BY name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| LeaseRow {
                name: r.get(0),
                holder: r.get(1),
                expires_at: ts(r.get(2)),
            })
            .collect())
    }

    async fn cluster_id(&self) -> Result<Option<String>, MetaError> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT value FROM settings WHERE key = 'cluster_id'", &[])
            .await?
            .map(|r| r.get(0)))
    }

    async fn init_cluster_id(&self, id: &str) -> Result<String, MetaError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO settings (key, value) VALUES ('cluster_id', $1) ON CONFLICT (key) DO NOTHING",
                &[&id],
            )
            .await?;
        Ok(client
            .query_one("SELECT value FROM settings WHERE key = 'cluster_id'", &[])
            .await?
            .get(0))
    }

    async fn has_chunks(&self) -> Result<bool, MetaError> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT 1 FROM chunks LIMIT 1", &[])
            .await?
            .is_some())
    }

    async fn ping(&self) -> Result<(), MetaError> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<UserRow, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| {
            async {
            // One account change at a time: the first user is decided once.
            tx.execute("LOCK TABLE owners IN SHARE ROW EXCLUSIVE MODE", &[])
                .await?;
            if user_named(&tx, name).await?.is_some() {
                return Err(MetaError::Conflict(format!("user {name:?} exists")));
            }
            let first = tx
                .query_opt(
                    "SELECT 1 FROM owners WHERE password_hash IS NOT NULL OR removed LIMIT 1",
                    &[],
                )
                .await?
                .is_none();
            let adopted = first
                && tx
                    .execute(
                        "UPDATE owners SET name = $2, password_hash = $3, role = $4, created_at = now()
                         WHERE id = $1",
                        &[&DEFAULT_OWNER, &name, &password_hash, &role.as_str()],
                    )
                    .await?
                    > 0;
            if !adopted {
                tx.execute(
                    "INSERT INTO owners (name, password_hash, role, created_at)
                     VALUES ($1, $2, $3, now())",
                    &[&name, &password_hash, &role.as_str()],
                )
                .await?;
            }
            user_named(&tx, name)
                .await?
                .ok_or_else(|| MetaError::Backend("the new user vanished".into()))
        }
        .await
        })
    }

    async fn user(&self, name: &str) -> Result<Option<UserRow>, MetaError> {
        let client = self.client().await?;
        user_named(&client, name).await
    }

    async fn users(&self) -> Result<Vec<UserRow>, MetaError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "{SELECT_USER} WHERE password_hash IS NOT NULL AND NOT removed ORDER BY name"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(user_row).collect())
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            let Some(user) = user_named(&tx, name).await? else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE owners SET password_hash = $2 WHERE id = $1",
                &[&user.id, &password_hash],
            )
            .await?;
            tx.execute("DELETE FROM logins WHERE owner_id = $1", &[&user.id])
                .await?;
            Ok(true)
        }
        .await)
    }

    async fn remove_user(&self, name: &str) -> Result<bool, MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            let Some(user) = user_named(&tx, name).await? else {
                return Ok(false);
            };
            tx.execute("DELETE FROM logins WHERE owner_id = $1", &[&user.id])
                .await?;
            tx.execute(
                "UPDATE files SET deleted_at = now() WHERE owner_id = $1 AND deleted_at IS NULL",
                &[&user.id],
            )
            .await?;
            tx.execute(
                "UPDATE owners SET removed = TRUE, password_hash = NULL,
                        name = '#' || id || ' ' || name
                 WHERE id = $1",
                &[&user.id],
            )
            .await?;
            Ok(true)
        }
        .await)
    }

    async fn open_login(
        &self,
        user: OwnerId,
        token_hash: &str,
        ttl: Duration,
    ) -> Result<(String, String), MetaError> {
        transaction!(self, IsolationLevel::ReadCommitted, |tx| async {
            let id = random_id();
            let expires: time::OffsetDateTime = tx
                .query_one(
                    "INSERT INTO logins (id, owner_id, token_hash, created_at, expires_at)
                     VALUES ($1, $2, $3, now(), now() + $4::BIGINT * INTERVAL '1 millisecond')
                     RETURNING expires_at",
                    &[&id, &user, &token_hash, &ms(ttl)],
                )
                .await?
                .get(0);
            tx.execute("DELETE FROM logins WHERE expires_at <= now()", &[])
                .await?;
            Ok((id, ts(expires)))
        }
        .await)
    }

    async fn login(&self, id: &str) -> Result<Option<LoginRow>, MetaError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT l.id, l.token_hash, l.expires_at,
                        o.id, o.name, o.role, o.password_hash, o.created_at
                 FROM logins l JOIN owners o ON o.id = l.owner_id
                 WHERE l.id = $1 AND l.expires_at > now()
                   AND o.password_hash IS NOT NULL AND NOT o.removed",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| LoginRow {
            id: r.get(0),
            token_hash: r.get(1),
            expires_at: ts(r.get(2)),
            user: user_at(&r, 3),
        }))
    }

    async fn close_login(&self, id: &str) -> Result<bool, MetaError> {
        let client = self.client().await?;
        Ok(client
            .execute("DELETE FROM logins WHERE id = $1", &[&id])
            .await?
            > 0)
    }

    async fn usage(&self, owner: OwnerId) -> Result<Usage, MetaError> {
        limits::usage(&self.client().await?, owner).await
    }

    async fn set_quota(&self, name: &str, quota: Option<u64>) -> Result<bool, MetaError> {
        let quota = quota.map(|q| q.min(i64::MAX as u64) as i64);
        Ok(self
            .client()
            .await?
            .execute(
                "UPDATE owners SET quota_bytes = $2
                 WHERE name = $1 AND password_hash IS NOT NULL AND NOT removed",
                &[&name, &quota],
            )
            .await?
            > 0)
    }

    async fn create_share(&self, s: &NewShare) -> Result<Option<ShareRow>, MetaError> {
        shares::create(&self.client().await?, s).await
    }

    async fn shares(&self, owner: OwnerId) -> Result<Vec<ShareRow>, MetaError> {
        shares::list(&self.client().await?, owner).await
    }

    async fn share(&self, id: &str) -> Result<Option<ShareRow>, MetaError> {
        shares::get(&self.client().await?, id).await
    }

    async fn revoke_share(&self, owner: OwnerId, id: &str) -> Result<bool, MetaError> {
        shares::revoke(&self.client().await?, owner, id).await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), MetaError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await?;
        Ok(())
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String, MetaError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await?;
        Ok(client
            .query_one("SELECT value FROM settings WHERE key = $1", &[&key])
            .await?
            .get(0))
    }

    async fn snapshot_into(&self, _dest: &std::path::Path) -> Result<(), MetaError> {
        Err(MetaError::Unsupported(
            "Coffer takes no snapshots of PostgreSQL: back it up with its own tools \
             (continuous WAL archiving with pgBackRest or barman, or pg_basebackup and pg_dump)"
                .into(),
        ))
    }
}
