//! The SQLite backend of [`MetaStore`]: the embedded default, one file
//! under the data dir.
//!
//! [`SqliteMeta`] owns one writing connection behind a mutex and runs every
//! query on tokio's blocking pool, so the async server never blocks on
//! disk; whole-table reports use a second, read-only connection. Queries
//! live in [`files`], [`chunks`], [`sessions`], [`gc`] and [`ops`];
//! [`schema`] holds the migrations. The database's clock is this process's
//! clock: only one server process may use the file (the data dir lock).

pub mod accounts;
pub mod changes;
pub mod chunks;
pub mod files;
pub mod gc;
pub mod ops;
pub mod schema;
pub mod sessions;
pub mod shares;

use super::{
    ChangeRow, ChunkHold, ChunkRef, ChunkSlot, HealthCounts, LeaseRow, LoginRow, MetaError,
    MetaReport, MetaStore, NewSession, NewShare, NewVersion, OwnerId, ReplicaOutcome, Retention,
    Role, SessionRow, ShareRow, StreamRef, Usage, UserRow, VersionRow,
};
use async_trait::async_trait;
use rusqlite::{Connection, Transaction};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, msg) => {
                let msg = msg.clone().unwrap_or_else(|| f.to_string());
                match f.code {
                    rusqlite::ErrorCode::DiskFull => MetaError::Full(msg),
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                        MetaError::Busy(msg)
                    }
                    rusqlite::ErrorCode::CannotOpen => MetaError::Unreachable(msg),
                    _ => MetaError::Backend(msg),
                }
            }
            _ => MetaError::Backend(e.to_string()),
        }
    }
}

/// Handle to the SQLite database; cheap to clone.
#[derive(Clone)]
pub struct SqliteMeta {
    // A std mutex: it is only ever taken on the blocking pool, never held
    // across an await.
    conn: Arc<Mutex<Connection>>,
    /// A second, read-only connection for reports that scan whole tables
    /// (cluster status, metrics): under WAL it reads a snapshot and holds
    /// up no writer. An in-memory database has only the one connection.
    reader: Arc<Mutex<Connection>>,
    /// A third, read-only connection for the short lookup every request
    /// makes (is its login live?), so neither a long report nor a busy
    /// writer ever holds up authentication.
    lookups: Arc<Mutex<Connection>>,
}

impl SqliteMeta {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        let conn = Arc::new(Mutex::new(Self::setup(Connection::open(path)?)?));
        let read_only = || -> Result<Arc<Mutex<Connection>>, MetaError> {
            let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            c.busy_timeout(Duration::from_secs(10))?;
            Ok(Arc::new(Mutex::new(c)))
        };
        Ok(Self {
            conn,
            reader: read_only()?,
            lookups: read_only()?,
        })
    }

    /// Checks a database file unpacked from a snapshot and readies it to
    /// be the server's: SQLite finds it intact and it belongs to
    /// `cluster`. Orphan sightings are forgotten, so every chunk stored
    /// after the snapshot gets a full grace period from the restart, and
    /// worker leases are dropped.
    pub fn prepare_restored(path: &Path, cluster: &str) -> Result<(), MetaError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(MetaError::Backend(format!("damaged database: {check}")));
        }
        match ops::setting(&conn, ops::CLUSTER_ID)? {
            Some(id) if id == cluster => {}
            other => {
                return Err(MetaError::Backend(format!(
                    "the database belongs to cluster {}, not {cluster}",
                    other.unwrap_or_else(|| "(none)".into())
                )))
            }
        }
        // Every login ends: the snapshot cannot know which were ended
        // after it was taken.
        conn.execute_batch("DELETE FROM gc_orphans; DELETE FROM leases; DELETE FROM logins;")?;
        // Chunks stored after the snapshot are orphans now; gc leaves them
        // for RESTORE_HOLD so a restore of the wrong snapshot can be undone.
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            rusqlite::params![ops::RESTORED_AT, super::now_rfc3339()],
        )?;
        Ok(())
    }

    /// An in-memory database, for tests of pure logic.
    pub fn open_in_memory() -> Result<Self, MetaError> {
        let conn = Arc::new(Mutex::new(Self::setup(Connection::open_in_memory()?)?));
        Ok(Self {
            reader: conn.clone(),
            lookups: conn.clone(),
            conn,
        })
    }

    fn setup(mut conn: Connection) -> Result<Connection, MetaError> {
        // WAL keeps readers off the writer's back; FULL syncs every commit so
        // an acknowledged version survives power loss, not just a crash.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(10))?;
        schema::migrate(&mut conn)?;
        Ok(conn)
    }

    /// Runs `f` with the writing connection on the blocking pool.
    async fn call<R, F>(&self, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, MetaError> + Send + 'static,
    {
        Self::on(self.conn.clone(), f).await
    }

    /// Runs `f` in one transaction on the writing connection.
    async fn tx<R, F>(&self, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&Transaction, &str) -> Result<R, MetaError> + Send + 'static,
    {
        self.call(move |c| {
            let tx = c.transaction()?;
            let r = f(&tx, &super::now_rfc3339())?;
            tx.commit()?;
            Ok(r)
        })
        .await
    }

    /// Runs `f` in one unsynced transaction (see [`unsynced`]).
    async fn tx_unsynced<R, F>(&self, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&Transaction, &str) -> Result<R, MetaError> + Send + 'static,
    {
        self.call(move |c| unsynced(c, |tx| f(tx, &super::now_rfc3339())))
            .await
    }

    /// Runs the read-only `f` on the reader connection, beside whatever
    /// the writer is doing. For long reports; anything that must see its
    /// own writes uses the writer.
    async fn read<R, F>(&self, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, MetaError> + Send + 'static,
    {
        Self::on(self.reader.clone(), |c| f(c)).await
    }

    async fn on<R, F>(conn: Arc<Mutex<Connection>>, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, MetaError> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|e| MetaError::Backend(e.to_string()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| MetaError::Backend(e.to_string()))?
    }
}

/// Runs `f` in one transaction whose commit is not synced to disk.
///
/// For rows that only matter once a later, synced commit refers to them:
/// chunk records written before the version that lists them. WAL frames
/// reach the disk in order, so that version's synced commit makes them
/// durable with it; a power loss before it may forget them (their objects
/// are then orphans that gc collects), never tear them. Saves an fsync per
/// stored chunk, which otherwise bounds upload throughput.
pub fn unsynced<R>(
    c: &mut Connection,
    f: impl FnOnce(&Transaction) -> Result<R, MetaError>,
) -> Result<R, MetaError> {
    c.pragma_update(None, "synchronous", "NORMAL")?;
    let out = c.transaction().map_err(MetaError::from).and_then(|tx| {
        let r = f(&tx)?;
        tx.commit()?;
        Ok(r)
    });
    // Restored even when `f` failed: every other commit stays synced.
    let restored = c.pragma_update(None, "synchronous", "FULL");
    let r = out?;
    restored?;
    Ok(r)
}

/// `now` minus `d`, as the text timestamps compare.
/// How long gc keeps orphan chunks after a restore from a snapshot, at
/// least: as long as daily snapshots are kept, so an operator who restored
/// the wrong one can still restore a newer one with all its chunks.
pub const RESTORE_HOLD: Duration = Duration::from_secs(7 * 24 * 3600);

fn ago(now: &str, d: Duration) -> String {
    let now = time::OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    super::rfc3339(now - d)
}

fn later(now: &str, d: Duration) -> String {
    let now = time::OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    super::rfc3339(now + d)
}

#[async_trait]
impl MetaStore for SqliteMeta {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn hold_chunk(
        &self,
        chunk: &ChunkRef,
        stream: Option<&StreamRef>,
    ) -> Result<ChunkHold, MetaError> {
        let (chunk, stream) = (chunk.clone(), stream.cloned());
        self.tx_unsynced(move |tx, now| chunks::hold(tx, &chunk, stream.as_ref(), now))
            .await
    }

    async fn record_chunk(
        &self,
        chunk: &ChunkRef,
        hold: &str,
        nodes: &[String],
    ) -> Result<(), MetaError> {
        let (chunk, hold, nodes) = (chunk.clone(), hold.to_string(), nodes.to_vec());
        self.tx_unsynced(move |tx, now| chunks::record(tx, &chunk, &hold, &nodes, now))
            .await
    }

    async fn record_replicas(&self, outcomes: &[ReplicaOutcome]) -> Result<(), MetaError> {
        let outcomes = outcomes.to_vec();
        self.tx_unsynced(move |tx, now| chunks::record_replicas(tx, &outcomes, now))
            .await
    }

    async fn unknown_chunks(
        &self,
        owner: OwnerId,
        list: &[ChunkRef],
    ) -> Result<Vec<String>, MetaError> {
        let list = list.to_vec();
        self.call(move |c| chunks::unknown(c, owner, &list)).await
    }

    async fn chunks_page(&self, after: &str, limit: u32) -> Result<Vec<ChunkRef>, MetaError> {
        let after = after.to_string();
        self.read(move |c| chunks::page(c, &after, limit)).await
    }

    async fn replicas_needing_repair(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, String)>, MetaError> {
        self.call(move |c| chunks::needing_repair(c, limit)).await
    }

    async fn forget_replica(&self, chunk: &str, node: &str) -> Result<(), MetaError> {
        let (chunk, node) = (chunk.to_string(), node.to_string());
        self.call(move |c| chunks::forget_replica(c, &chunk, &node))
            .await
    }

    async fn version(
        &self,
        owner: OwnerId,
        path: &str,
        number: Option<u64>,
    ) -> Result<Option<VersionRow>, MetaError> {
        let path = path.to_string();
        self.call(move |c| files::version(c, owner, &path, number))
            .await
    }

    async fn version_chunks(&self, file_id: i64, number: u64) -> Result<Vec<ChunkRef>, MetaError> {
        self.call(move |c| files::version_chunks(c, file_id, number))
            .await
    }

    async fn version_health(
        &self,
        file_id: i64,
        number: u64,
        r: usize,
    ) -> Result<HealthCounts, MetaError> {
        self.call(move |c| chunks::version_health(c, file_id, number, r))
            .await
    }

    async fn list_files(
        &self,
        owner: OwnerId,
        prefix: &str,
        after: &str,
        limit: u32,
        r: usize,
    ) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
        let (prefix, after) = (prefix.to_string(), after.to_string());
        self.call(move |c| {
            let rows = files::list_files(c, owner, &prefix, &after, limit)?;
            chunks::with_health(c, rows, r)
        })
        .await
    }

    async fn list_versions(
        &self,
        owner: OwnerId,
        path: &str,
        before: Option<u64>,
        limit: u32,
        r: usize,
    ) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
        let path = path.to_string();
        self.call(move |c| {
            let rows = files::list_versions(c, owner, &path, before, limit)?;
            chunks::with_health(c, rows, r)
        })
        .await
    }

    async fn commit_version(&self, v: &NewVersion) -> Result<VersionRow, MetaError> {
        let v = v.clone();
        self.tx(move |tx, now| {
            chunks::grant(tx, v.owner, v.chunks.iter().map(|c| c.id.as_str()))?;
            let row = files::insert_version(tx, &v, None, now)?;
            if let Some(stream) = &v.stream {
                sessions::drop(tx, stream)?;
            }
            Ok(row)
        })
        .await
    }

    async fn restore_version(
        &self,
        owner: OwnerId,
        path: &str,
        number: u64,
        uploader: &str,
    ) -> Result<Option<VersionRow>, MetaError> {
        let (path, uploader) = (path.to_string(), uploader.to_string());
        self.tx(move |tx, now| files::restore_version(tx, owner, &path, number, &uploader, now))
            .await
    }

    async fn delete_file(
        &self,
        owner: OwnerId,
        path: &str,
        base: Option<u64>,
    ) -> Result<Option<u64>, MetaError> {
        let path = path.to_string();
        self.tx(move |tx, now| files::delete_file(tx, owner, &path, base, now))
            .await
    }

    async fn move_file(
        &self,
        owner: OwnerId,
        from: &str,
        to: &str,
        base: Option<u64>,
        uploader: &str,
    ) -> Result<Option<VersionRow>, MetaError> {
        let (from, to, uploader) = (from.to_string(), to.to_string(), uploader.to_string());
        self.tx(move |tx, now| files::move_file(tx, owner, &from, &to, base, &uploader, now))
            .await
    }

    async fn changes(
        &self,
        owner: OwnerId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<ChangeRow>, u64), MetaError> {
        self.read(move |c| changes::list(c, owner, after, limit))
            .await
    }

    async fn prune_changes(&self, older_than: Duration) -> Result<u64, MetaError> {
        let before = super::rfc3339(time::OffsetDateTime::now_utc() - older_than);
        self.tx_unsynced(move |tx, _| changes::prune(tx, &before))
            .await
    }

    async fn open_session(&self, s: &NewSession) -> Result<(SessionRow, Vec<String>), MetaError> {
        let s = s.clone();
        // Unsynced: a session lost to a power cut is answered NOT_FOUND
        // and its client starts another; only FinishUpload's version must
        // survive once acknowledged. Saves one of a small file's two fsyncs.
        self.tx_unsynced(move |tx, now| sessions::create(tx, &s, &later(now, s.ttl), now))
            .await
    }

    async fn session(&self, id: &str, owner: OwnerId) -> Result<Option<SessionRow>, MetaError> {
        let id = id.to_string();
        self.call(move |c| sessions::get(c, &id, owner, &super::now_rfc3339()))
            .await
    }

    async fn chunk_slot(
        &self,
        id: &str,
        owner: OwnerId,
        chunk: &str,
    ) -> Result<ChunkSlot, MetaError> {
        let (id, chunk) = (id.to_string(), chunk.to_string());
        self.call(move |c| sessions::chunk_slot(c, &id, owner, &chunk, &super::now_rfc3339()))
            .await
    }

    async fn chunk_sent(&self, id: &str, owner: OwnerId, chunk: &str) -> Result<u64, MetaError> {
        let (id, chunk) = (id.to_string(), chunk.to_string());
        self.tx_unsynced(move |tx, _| sessions::chunk_sent(tx, &id, owner, &chunk))
            .await
    }

    async fn finish_session(
        &self,
        s: &SessionRow,
        uploader: &str,
        base: Option<u64>,
    ) -> Result<VersionRow, MetaError> {
        let (s, uploader) = (s.clone(), uploader.to_string());
        self.tx(move |tx, now| sessions::finish(tx, &s, &uploader, base, now))
            .await
    }

    async fn open_stream(
        &self,
        owner: OwnerId,
        ttl: Duration,
        max_open: u32,
    ) -> Result<String, MetaError> {
        self.tx_unsynced(move |tx, now| {
            sessions::open_stream(tx, owner, max_open, &later(now, ttl), now)
        })
        .await
    }

    async fn drop_session(&self, id: &str) -> Result<(), MetaError> {
        let id = id.to_string();
        self.tx_unsynced(move |tx, _| sessions::drop(tx, &id)).await
    }

    async fn apply_retention(&self, retention: &Retention) -> Result<u64, MetaError> {
        let retention = retention.clone();
        self.tx(move |tx, now| {
            gc::apply_retention(
                tx,
                retention.keep_last,
                retention.keep_younger_than.map(|d| ago(now, d)),
                retention.purge_deleted_after.map(|d| ago(now, d)),
            )
        })
        .await
    }

    async fn delete_expired_sessions(&self) -> Result<u64, MetaError> {
        self.tx(sessions::delete_expired).await
    }

    async fn claim_unreferenced(
        &self,
        grace: Duration,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        self.tx(move |tx, now| {
            let pending = ago(now, grace.max(super::PENDING_FLOOR));
            gc::claim_unreferenced(tx, &ago(now, grace), &pending, limit)
        })
        .await
    }

    async fn forget_chunk(&self, id: &str) -> Result<(), MetaError> {
        let id = id.to_string();
        self.tx(move |tx, _| gc::forget_chunk(tx, &id)).await
    }

    async fn note_orphans(
        &self,
        node: &str,
        found: &[String],
        grace: Duration,
    ) -> Result<Vec<String>, MetaError> {
        let (node, found) = (node.to_string(), found.to_vec());
        self.tx(move |tx, now| {
            let mut cutoff = ago(now, grace);
            if let Some(at) = ops::setting(tx, ops::RESTORED_AT)? {
                // Nothing is ripe before the restore hold has run out.
                let hold = ago(now, RESTORE_HOLD);
                if at > hold {
                    cutoff = String::new();
                }
            }
            gc::note_orphans(tx, &node, &found, now, &cutoff)
        })
        .await
    }

    async fn claim_orphan(&self, id: &str) -> Result<bool, MetaError> {
        let id = id.to_string();
        self.tx(move |tx, now| gc::claim_orphan(tx, &id, now)).await
    }

    async fn report(&self, r: usize) -> Result<MetaReport, MetaError> {
        self.read(move |c| {
            // Every figure from one snapshot; scans that hold up no writer.
            let snapshot = c.unchecked_transaction()?;
            let (chunks, under_replicated) = chunks::replication_counts(&snapshot, r)?;
            Ok(MetaReport {
                usage: chunks::node_usage(&snapshot)?,
                chunks,
                under_replicated,
            })
        })
        .await
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, MetaError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.tx_unsynced(move |tx, now| ops::try_lease(tx, &name, &holder, now, &later(now, ttl)))
            .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), MetaError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.tx(move |tx, _| ops::release_lease(tx, &name, &holder))
            .await
    }

    async fn leases(&self) -> Result<Vec<LeaseRow>, MetaError> {
        self.read(ops::leases).await
    }

    async fn cluster_id(&self) -> Result<Option<String>, MetaError> {
        self.call(|c| ops::setting(c, ops::CLUSTER_ID)).await
    }

    async fn init_cluster_id(&self, id: &str) -> Result<String, MetaError> {
        let id = id.to_string();
        self.tx(move |tx, _| ops::init_setting(tx, ops::CLUSTER_ID, &id))
            .await
    }

    async fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<UserRow, MetaError> {
        let (name, hash) = (name.to_string(), password_hash.to_string());
        self.tx(move |tx, now| accounts::add(tx, &name, &hash, role, now))
            .await
    }

    async fn user(&self, name: &str) -> Result<Option<UserRow>, MetaError> {
        let name = name.to_string();
        self.call(move |c| accounts::by_name(c, &name)).await
    }

    async fn users(&self) -> Result<Vec<UserRow>, MetaError> {
        self.call(|c| accounts::list(c)).await
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, MetaError> {
        let (name, hash) = (name.to_string(), password_hash.to_string());
        self.tx(move |tx, _| accounts::set_password(tx, &name, &hash))
            .await
    }

    async fn remove_user(&self, name: &str) -> Result<bool, MetaError> {
        let name = name.to_string();
        self.tx(move |tx, now| accounts::remove(tx, &name, now))
            .await
    }

    async fn open_login(
        &self,
        user: OwnerId,
        token_hash: &str,
        ttl: Duration,
    ) -> Result<(String, String), MetaError> {
        let hash = token_hash.to_string();
        self.tx(move |tx, now| {
            let expires = later(now, ttl);
            let id = accounts::open_login(tx, user, &hash, now, &expires)?;
            Ok((id, expires))
        })
        .await
    }

    async fn login(&self, id: &str) -> Result<Option<LoginRow>, MetaError> {
        let id = id.to_string();
        Self::on(self.lookups.clone(), move |c| {
            accounts::login(c, &id, &super::now_rfc3339())
        })
        .await
    }

    async fn close_login(&self, id: &str) -> Result<bool, MetaError> {
        let id = id.to_string();
        self.call(move |c| accounts::close_login(c, &id)).await
    }

    async fn usage(&self, owner: OwnerId) -> Result<Usage, MetaError> {
        self.call(move |c| accounts::usage(c, owner, &super::now_rfc3339()))
            .await
    }

    async fn set_quota(&self, name: &str, quota: Option<u64>) -> Result<bool, MetaError> {
        let name = name.to_string();
        self.tx(move |tx, _| accounts::set_quota(tx, &name, quota))
            .await
    }

    async fn create_share(&self, s: &NewShare) -> Result<Option<ShareRow>, MetaError> {
        let s = s.clone();
        self.tx(move |tx, now| shares::create(tx, &s, &later(now, s.ttl), now))
            .await
    }

    async fn shares(&self, owner: OwnerId) -> Result<Vec<ShareRow>, MetaError> {
        self.call(move |c| shares::list(c, owner)).await
    }

    async fn share(&self, id: &str) -> Result<Option<ShareRow>, MetaError> {
        let id = id.to_string();
        Self::on(self.lookups.clone(), move |c| shares::get(c, &id)).await
    }

    async fn revoke_share(&self, owner: OwnerId, id: &str) -> Result<bool, MetaError> {
        let id = id.to_string();
        self.tx(move |tx, now| shares::revoke(tx, owner, &id, now))
            .await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), MetaError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.tx(move |tx, _| ops::set_setting(tx, &key, &value))
            .await
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String, MetaError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.tx(move |tx, _| ops::init_setting(tx, &key, &value))
            .await
    }

    async fn snapshot_into(&self, dest: &Path) -> Result<(), MetaError> {
        let dest = dest
            .to_str()
            .ok_or_else(|| MetaError::Backend(format!("not a UTF-8 path: {}", dest.display())))?
            .to_string();
        // On the reader: a read transaction under WAL, so writers go on.
        self.read(move |c| {
            c.execute("VACUUM INTO ?1", [dest])?;
            Ok(())
        })
        .await
    }

    async fn has_chunks(&self) -> Result<bool, MetaError> {
        self.call(|c| {
            Ok(c.prepare_cached("SELECT 1 FROM chunks LIMIT 1")?
                .exists([])?)
        })
        .await
    }

    async fn ping(&self) -> Result<(), MetaError> {
        self.read(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_failures_become_kinds() {
        let failure = |code| {
            MetaError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        assert!(matches!(
            failure(rusqlite::ffi::SQLITE_FULL),
            MetaError::Full(_)
        ));
        assert!(matches!(
            failure(rusqlite::ffi::SQLITE_BUSY),
            MetaError::Busy(_)
        ));
        assert!(matches!(
            failure(rusqlite::ffi::SQLITE_LOCKED),
            MetaError::Busy(_)
        ));
        assert!(matches!(
            failure(rusqlite::ffi::SQLITE_CORRUPT),
            MetaError::Backend(_)
        ));
    }

    #[tokio::test]
    async fn a_restored_database_keeps_its_orphans_for_the_restore_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.db");
        let found = vec!["a".repeat(64)];
        // Noted once, then ripe on the next pass under a zero grace period.
        let ripe = |meta: SqliteMeta| {
            let found = found.clone();
            async move {
                meta.note_orphans("n1", &found, Duration::ZERO)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                meta.note_orphans("n1", &found, Duration::ZERO)
                    .await
                    .unwrap()
            }
        };
        let meta = SqliteMeta::open(&path).unwrap();
        meta.init_cluster_id("c1").await.unwrap();
        assert_eq!(ripe(meta.clone()).await, found, "no restore: ripe at once");
        drop(meta);

        assert!(SqliteMeta::prepare_restored(&path, "c2").is_err());
        SqliteMeta::prepare_restored(&path, "c1").unwrap();
        let meta = SqliteMeta::open(&path).unwrap();
        assert!(
            ripe(meta.clone()).await.is_empty(),
            "orphans wait out the restore hold"
        );
        let long_ago = super::super::rfc3339(
            time::OffsetDateTime::now_utc() - RESTORE_HOLD - Duration::from_secs(60),
        );
        meta.conn
            .lock()
            .unwrap()
            .execute(
                "UPDATE settings SET value = ?1 WHERE key = ?2",
                rusqlite::params![long_ago, ops::RESTORED_AT],
            )
            .unwrap();
        assert_eq!(ripe(meta).await, found, "after the hold, the grace period");
    }

    #[test]
    fn a_damaged_database_is_not_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.db");
        std::fs::write(&path, b"not a database at all").unwrap();
        assert!(SqliteMeta::prepare_restored(&path, "c1").is_err());
    }

    fn synchronous(c: &Connection) -> i64 {
        c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn unsynced_commits_and_restores_full_sync_even_on_error() {
        let meta = SqliteMeta::open_in_memory().unwrap();
        let mut c = meta.conn.lock().unwrap();
        assert_eq!(synchronous(&c), 2, "FULL by default");
        let failed: Result<(), MetaError> = unsynced(&mut c, |tx| {
            tx.execute("INSERT INTO settings (key, value) VALUES ('a', '1')", [])?;
            Err(MetaError::MissingChunks(1))
        });
        assert!(failed.is_err());
        assert_eq!(synchronous(&c), 2);
        assert_eq!(ops::setting(&c, "a").unwrap(), None, "rolled back");
        unsynced(&mut c, |tx| {
            tx.execute("INSERT INTO settings (key, value) VALUES ('b', '1')", [])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(synchronous(&c), 2);
        assert_eq!(ops::setting(&c, "b").unwrap().as_deref(), Some("1"));
    }

    #[tokio::test]
    async fn reports_read_beside_writes_and_see_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteMeta::open(&dir.path().join("coffer.db")).unwrap();
        // A report that keeps the reader busy until told to finish.
        let (entered, wait_entered) = std::sync::mpsc::channel();
        let (release, wait_release) = std::sync::mpsc::channel::<()>();
        let report = tokio::spawn({
            let meta = meta.clone();
            async move {
                meta.read(move |c| {
                    entered.send(()).unwrap();
                    wait_release.recv().unwrap();
                    Ok(c.query_row("SELECT COUNT(*) FROM settings", [], |r| r.get::<_, i64>(0))?)
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || wait_entered.recv().unwrap())
            .await
            .unwrap();
        // A write goes through meanwhile (a deadlock here fails the test).
        let write = meta.init_cluster_id("c1");
        tokio::time::timeout(Duration::from_secs(60), write)
            .await
            .expect("the write waited for the report")
            .unwrap();
        release.send(()).unwrap();
        report.await.unwrap().unwrap();
        let seen = meta
            .read(|c| ops::setting(c, ops::CLUSTER_ID))
            .await
            .unwrap();
        assert_eq!(seen.as_deref(), Some("c1"), "a new report sees it");
    }

    #[tokio::test]
    async fn login_lookups_go_on_while_a_report_and_a_write_hold_their_connections() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteMeta::open(&dir.path().join("coffer.db")).unwrap();
        let user = meta.add_user("u", "h", Role::User).await.unwrap();
        let (id, _) = meta
            .open_login(user.id, "t", Duration::from_secs(60))
            .await
            .unwrap();
        // Both other connections busy until released.
        let (entered, wait_entered) = std::sync::mpsc::channel();
        let (release, wait_release) = std::sync::mpsc::channel::<()>();
        let (release_w, wait_release_w) = std::sync::mpsc::channel::<()>();
        let entered_w = entered.clone();
        let report = tokio::spawn({
            let meta = meta.clone();
            async move {
                meta.read(move |_| {
                    entered.send(()).unwrap();
                    wait_release.recv().unwrap();
                    Ok(())
                })
                .await
            }
        });
        let write = tokio::spawn({
            let meta = meta.clone();
            async move {
                meta.call(move |_| {
                    entered_w.send(()).unwrap();
                    wait_release_w.recv().unwrap();
                    Ok(())
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || {
            wait_entered.recv().unwrap();
            wait_entered.recv().unwrap();
        })
        .await
        .unwrap();
        let login = tokio::time::timeout(Duration::from_secs(60), meta.login(&id))
            .await
            .expect("the lookup waited for another connection")
            .unwrap();
        assert_eq!(login.unwrap().user.name, "u");
        release.send(()).unwrap();
        release_w.send(()).unwrap();
        report.await.unwrap().unwrap();
        write.await.unwrap().unwrap();
    }
}
