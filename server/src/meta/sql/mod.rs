//! The metadata layer, written once: [`SqlMeta`] implements every
//! [`MetaStore`] operation as policy over the narrow [`Engine`] / [`Tx`]
//! seam, and an engine adapter ([`crate::meta::sqlite`],
//! [`crate::meta::postgres`]) only runs statements.
//!
//! Each concern keeps its SQL beside its logic: [`chunks`], [`files`],
//! [`sessions`], [`changes`], [`limits`], [`gc`], [`accounts`],
//! [`shares`], [`ops`]. Retries are decided here, once: an operation that
//! meets contention ([`MetaError::Busy`]: serialization failures,
//! deadlocks, lost races) runs again with growing back-off.

pub mod accounts;
pub mod changes;
pub mod chunks;
pub mod files;
pub mod gc;
pub mod limits;
pub mod ops;
pub mod sessions;
pub mod shares;
pub mod tx;

use super::{
    ChangeRow, ChunkHold, ChunkRef, ChunkSlot, HealthCounts, LeaseRow, LoginRow, MetaError,
    MetaReport, MetaStore, NewSession, NewShare, NewVersion, OwnerId, ReplicaOutcome, Retention,
    Role, SessionRow, ShareRow, StreamRef, Usage, UserRow, VersionRow,
};
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
pub use tx::{Mode, Tx};

/// Attempts of an operation that meets contention.
const ATTEMPTS: u32 = 8;

/// Every time column, `(table, column, NOT NULL)`: integer milliseconds
/// since the Unix epoch on every engine (each engine's migrations turned
/// its old ones into these).
pub const TIME_COLUMNS: &[(&str, &str, bool)] = &[
    ("files", "deleted_at", false),
    ("chunks", "created_at", true),
    ("versions", "created_at", true),
    ("replicas", "checked_at", true),
    ("upload_sessions", "created_at", true),
    ("upload_sessions", "expires_at", true),
    ("gc_orphans", "first_seen", true),
    ("leases", "expires_at", true),
    ("owners", "created_at", false),
    ("logins", "created_at", true),
    ("logins", "expires_at", true),
    ("share_links", "created_at", true),
    ("share_links", "expires_at", true),
    ("share_links", "revoked_at", false),
    ("changes", "at", true),
];

/// Milliseconds, as statements take durations and times.
pub fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// A SQL engine: runs one operation's statements, in the way `mode` asks.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// The engine's name, for logs and status.
    fn name(&self) -> &'static str;

    /// Runs `f` once, off the async threads, in a transaction (or on a
    /// connection) as `mode` asks; commits if `f` succeeds, rolls back if
    /// it fails.
    async fn run<R, F>(&self, mode: Mode, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Tx) -> Result<R, MetaError> + Send + 'static;

    /// Writes a consistent copy of the whole database to the new file
    /// `dest`, while other transactions go on; see
    /// [`MetaStore::snapshot_into`].
    async fn snapshot_into(&self, dest: &Path) -> Result<(), MetaError>;
}

/// The metadata store over an engine; cheap to clone.
pub struct SqlMeta<E: Engine> {
    pub(crate) engine: Arc<E>,
}

impl<E: Engine> Clone for SqlMeta<E> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
        }
    }
}

impl<E: Engine> SqlMeta<E> {
    pub fn new(engine: E) -> Self {
        Self {
            engine: Arc::new(engine),
        }
    }

    /// Runs `f` as `mode` asks, again on contention.
    async fn run<R, F>(&self, mode: Mode, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: Fn(&dyn Tx) -> Result<R, MetaError> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let mut attempt = 0u32;
        loop {
            let once = f.clone();
            match self.engine.run(mode, move |tx| once(tx)).await {
                Err(MetaError::Busy(msg)) if attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(attempt, %msg, "metadata transaction retried");
                    let jitter = rand::random::<u64>() % 20;
                    let wait = Duration::from_millis((10u64 << attempt.min(7)) + jitter);
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl<E: Engine> MetaStore for SqlMeta<E> {
    fn backend(&self) -> &'static str {
        self.engine.name()
    }

    async fn hold_chunk(
        &self,
        chunk: &ChunkRef,
        stream: Option<&StreamRef>,
    ) -> Result<ChunkHold, MetaError> {
        let (chunk, stream) = (chunk.clone(), stream.cloned());
        self.run(Mode::Unsynced, move |tx| {
            chunks::hold(tx, &chunk, stream.as_ref())
        })
        .await
    }

    async fn record_chunk(
        &self,
        chunk: &ChunkRef,
        hold: &str,
        nodes: &[String],
    ) -> Result<(), MetaError> {
        let (chunk, hold, nodes) = (chunk.clone(), hold.to_string(), nodes.to_vec());
        self.run(Mode::Unsynced, move |tx| {
            chunks::record(tx, &chunk, &hold, &nodes)
        })
        .await
    }

    async fn record_replicas(&self, outcomes: &[ReplicaOutcome]) -> Result<(), MetaError> {
        let outcomes = outcomes.to_vec();
        self.run(Mode::Unsynced, move |tx| {
            chunks::record_replicas(tx, &outcomes)
        })
        .await
    }

    async fn unknown_chunks(
        &self,
        owner: OwnerId,
        chunks: &[ChunkRef],
    ) -> Result<Vec<String>, MetaError> {
        let chunks = chunks.to_vec();
        self.run(Mode::Read, move |tx| {
            chunks::owner_unknown(tx, owner, &chunks, false)
        })
        .await
    }

    async fn chunks_page(&self, after: &str, limit: u32) -> Result<Vec<ChunkRef>, MetaError> {
        let after = after.to_string();
        self.run(Mode::Read, move |tx| chunks::page(tx, &after, limit))
            .await
    }

    async fn replicas_needing_repair(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, String)>, MetaError> {
        self.run(Mode::Read, move |tx| chunks::needing_repair(tx, limit))
            .await
    }

    async fn forget_replica(&self, chunk: &str, node: &str) -> Result<(), MetaError> {
        let (chunk, node) = (chunk.to_string(), node.to_string());
        self.run(Mode::Write, move |tx| {
            chunks::forget_replica(tx, &chunk, &node)
        })
        .await
    }

    async fn version(
        &self,
        owner: OwnerId,
        path: &str,
        number: Option<u64>,
    ) -> Result<Option<VersionRow>, MetaError> {
        let path = path.to_string();
        self.run(Mode::Read, move |tx| {
            files::version(tx, owner, &path, number)
        })
        .await
    }

    async fn version_chunks(&self, file_id: i64, number: u64) -> Result<Vec<ChunkRef>, MetaError> {
        self.run(Mode::Read, move |tx| {
            files::version_chunks(tx, file_id, number)
        })
        .await
    }

    async fn version_health(
        &self,
        file_id: i64,
        number: u64,
        r: usize,
    ) -> Result<HealthCounts, MetaError> {
        self.run(Mode::Read, move |tx| {
            files::version_health(tx, file_id, number, r)
        })
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
        self.run(Mode::Read, move |tx| {
            files::list_files(tx, owner, &prefix, &after, limit, r)
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
        self.run(Mode::Read, move |tx| {
            files::list_versions(tx, owner, &path, before, limit, r)
        })
        .await
    }

    async fn commit_version(&self, v: &NewVersion) -> Result<VersionRow, MetaError> {
        let v = v.clone();
        self.run(Mode::Write, move |tx| files::commit(tx, &v)).await
    }

    async fn restore_version(
        &self,
        owner: OwnerId,
        path: &str,
        number: u64,
        uploader: &str,
    ) -> Result<Option<VersionRow>, MetaError> {
        let (path, uploader) = (path.to_string(), uploader.to_string());
        self.run(Mode::Write, move |tx| {
            files::restore(tx, owner, &path, number, &uploader)
        })
        .await
    }

    async fn delete_file(
        &self,
        owner: OwnerId,
        path: &str,
        base: Option<u64>,
    ) -> Result<Option<u64>, MetaError> {
        let path = path.to_string();
        self.run(Mode::Write, move |tx| files::delete(tx, owner, &path, base))
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
        self.run(Mode::Write, move |tx| {
            files::move_file(tx, owner, &from, &to, base, &uploader)
        })
        .await
    }

    async fn changes(
        &self,
        owner: OwnerId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<ChangeRow>, u64), MetaError> {
        self.run(Mode::Read, move |tx| changes::list(tx, owner, after, limit))
            .await
    }

    async fn prune_changes(&self, older_than: Duration) -> Result<u64, MetaError> {
        self.run(Mode::Write, move |tx| changes::prune(tx, older_than))
            .await
    }

    async fn open_session(&self, s: &NewSession) -> Result<(SessionRow, Vec<String>), MetaError> {
        let s = s.clone();
        // Unsynced: a session lost to a crash is started again.
        self.run(Mode::Unsynced, move |tx| sessions::open(tx, &s))
            .await
    }

    async fn session(&self, id: &str, owner: OwnerId) -> Result<Option<SessionRow>, MetaError> {
        let id = id.to_string();
        self.run(Mode::Read, move |tx| sessions::get(tx, &id, owner))
            .await
    }

    async fn chunk_slot(
        &self,
        id: &str,
        owner: OwnerId,
        chunk: &str,
    ) -> Result<ChunkSlot, MetaError> {
        let (id, chunk) = (id.to_string(), chunk.to_string());
        self.run(Mode::Read, move |tx| {
            sessions::chunk_slot(tx, &id, owner, &chunk)
        })
        .await
    }

    async fn chunk_sent(&self, id: &str, owner: OwnerId, chunk: &str) -> Result<u64, MetaError> {
        let (id, chunk) = (id.to_string(), chunk.to_string());
        self.run(Mode::Unsynced, move |tx| {
            sessions::chunk_sent(tx, &id, owner, &chunk)
        })
        .await
    }

    async fn finish_session(
        &self,
        s: &SessionRow,
        uploader: &str,
        base: Option<u64>,
    ) -> Result<VersionRow, MetaError> {
        let (s, uploader) = (s.clone(), uploader.to_string());
        self.run(Mode::Write, move |tx| {
            sessions::finish(tx, &s, &uploader, base)
        })
        .await
    }

    async fn open_stream(
        &self,
        owner: OwnerId,
        ttl: Duration,
        max_open: u32,
    ) -> Result<String, MetaError> {
        self.run(Mode::Unsynced, move |tx| {
            sessions::open_stream(tx, owner, ttl, max_open)
        })
        .await
    }

    async fn drop_session(&self, id: &str) -> Result<(), MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| sessions::drop(tx, &id))
            .await
    }

    async fn apply_retention(&self, retention: &Retention) -> Result<u64, MetaError> {
        let retention = retention.clone();
        self.run(Mode::Write, move |tx| gc::apply_retention(tx, &retention))
            .await
    }

    async fn delete_expired_sessions(&self) -> Result<u64, MetaError> {
        self.run(Mode::Write, sessions::delete_expired).await
    }

    async fn claim_unreferenced(
        &self,
        grace: Duration,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        self.run(Mode::Claim, move |tx| {
            gc::claim_unreferenced(tx, grace, limit)
        })
        .await
    }

    async fn forget_chunk(&self, id: &str) -> Result<(), MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| gc::forget_chunk(tx, &id))
            .await
    }

    async fn note_orphans(
        &self,
        node: &str,
        found: &[String],
        grace: Duration,
    ) -> Result<Vec<String>, MetaError> {
        let (node, found) = (node.to_string(), found.to_vec());
        self.run(Mode::Write, move |tx| {
            gc::note_orphans(tx, &node, &found, grace)
        })
        .await
    }

    async fn claim_orphan(&self, id: &str) -> Result<bool, MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| gc::claim_orphan(tx, &id))
            .await
    }

    async fn report(&self, r: usize) -> Result<MetaReport, MetaError> {
        self.run(Mode::Report, move |tx| chunks::report(tx, r))
            .await
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, MetaError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.run(Mode::Unsynced, move |tx| {
            ops::try_lease(tx, &name, &holder, ttl)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), MetaError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.run(Mode::Write, move |tx| {
            ops::release_lease(tx, &name, &holder)
        })
        .await
    }

    async fn leases(&self) -> Result<Vec<LeaseRow>, MetaError> {
        self.run(Mode::Read, ops::leases).await
    }

    async fn cluster_id(&self) -> Result<Option<String>, MetaError> {
        self.run(Mode::Read, |tx| ops::setting(tx, ops::CLUSTER_ID))
            .await
    }

    async fn init_cluster_id(&self, id: &str) -> Result<String, MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| {
            ops::init_setting(tx, ops::CLUSTER_ID, &id)
        })
        .await
    }

    async fn has_chunks(&self) -> Result<bool, MetaError> {
        self.run(Mode::Read, ops::has_chunks).await
    }

    async fn ping(&self) -> Result<(), MetaError> {
        self.run(Mode::Lookup, ops::ping).await
    }

    async fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<UserRow, MetaError> {
        let (name, hash) = (name.to_string(), password_hash.to_string());
        self.run(Mode::Write, move |tx| accounts::add(tx, &name, &hash, role))
            .await
    }

    async fn user(&self, name: &str) -> Result<Option<UserRow>, MetaError> {
        let name = name.to_string();
        self.run(Mode::Read, move |tx| accounts::by_name(tx, &name))
            .await
    }

    async fn users(&self) -> Result<Vec<UserRow>, MetaError> {
        self.run(Mode::Read, accounts::list).await
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, MetaError> {
        let (name, hash) = (name.to_string(), password_hash.to_string());
        self.run(Mode::Write, move |tx| {
            accounts::set_password(tx, &name, &hash)
        })
        .await
    }

    async fn remove_user(&self, name: &str) -> Result<bool, MetaError> {
        let name = name.to_string();
        self.run(Mode::Write, move |tx| accounts::remove(tx, &name))
            .await
    }

    async fn open_login(
        &self,
        user: OwnerId,
        token_hash: &str,
        ttl: Duration,
    ) -> Result<(String, String), MetaError> {
        let hash = token_hash.to_string();
        self.run(Mode::Write, move |tx| {
            accounts::open_login(tx, user, &hash, ttl)
        })
        .await
    }

    async fn login(&self, id: &str) -> Result<Option<LoginRow>, MetaError> {
        let id = id.to_string();
        self.run(Mode::Lookup, move |tx| accounts::login(tx, &id))
            .await
    }

    async fn close_login(&self, id: &str) -> Result<bool, MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| accounts::close_login(tx, &id))
            .await
    }

    async fn usage(&self, owner: OwnerId) -> Result<Usage, MetaError> {
        self.run(Mode::Read, move |tx| limits::usage(tx, owner))
            .await
    }

    async fn set_quota(&self, name: &str, quota: Option<u64>) -> Result<bool, MetaError> {
        let name = name.to_string();
        self.run(Mode::Write, move |tx| accounts::set_quota(tx, &name, quota))
            .await
    }

    async fn create_share(&self, s: &NewShare) -> Result<Option<ShareRow>, MetaError> {
        let s = s.clone();
        self.run(Mode::Write, move |tx| shares::create(tx, &s))
            .await
    }

    async fn shares(&self, owner: OwnerId) -> Result<Vec<ShareRow>, MetaError> {
        self.run(Mode::Read, move |tx| shares::list(tx, owner))
            .await
    }

    async fn share(&self, id: &str) -> Result<Option<ShareRow>, MetaError> {
        let id = id.to_string();
        self.run(Mode::Lookup, move |tx| shares::get(tx, &id)).await
    }

    async fn revoke_share(&self, owner: OwnerId, id: &str) -> Result<bool, MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| shares::revoke(tx, owner, &id))
            .await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<(), MetaError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.run(Mode::Write, move |tx| ops::set_setting(tx, &key, &value))
            .await
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String, MetaError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.run(Mode::Write, move |tx| ops::init_setting(tx, &key, &value))
            .await
    }

    async fn snapshot_into(&self, dest: &Path) -> Result<(), MetaError> {
        self.engine.snapshot_into(dest).await
    }
}
