//! The metadata store: every operation the server asks of its metadata
//! (commit a version, open a session, hold a chunk, claim chunks for
//! deletion, take a worker lease…), each one transaction, written once
//! over an [`Engine`] (see [`super::sql`]).
//!
//! Architecture Invariant: a version row, its chunk list and its file's
//! "not deleted" state are written in one transaction, and only after every
//! chunk it lists is recorded `ok` in `chunks`, i.e. stored on at least W
//! nodes.
//!
//! Architecture Invariant: whatever must hold across servers lives here,
//! never in one process: chunk holds against gc, version numbers, worker
//! leases, and time (expiry and grace periods are measured on the
//! engine's clock).

use super::sql::{
    accounts, changes, chunks, files, gc, limits, ops, sessions, shares, Engine, Mode, Tx, Work,
};
use super::{
    ChangeRow, ChunkHold, ChunkRef, ChunkSlot, HealthCounts, LeaseRow, LoginRow, MetaError,
    MetaReport, NewSession, NewShare, NewVersion, OwnerId, ReplicaOutcome, Retention, Role,
    SessionRow, ShareRow, StreamRef, Usage, UserRow, VersionRow,
};
use coffer_proto::put::PutMode;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// Attempts of an operation that meets contention.
const ATTEMPTS: u32 = 8;

/// The metadata store every part of the server shares; cheap to clone.
/// Every method is one transaction on the engine (or, for reads, one
/// connection), run again with growing back-off when it meets contention
/// ([`MetaError::Busy`]: serialization failures, deadlocks, lost races),
/// and every time it compares or stamps is the engine's own clock.
#[derive(Clone)]
pub struct MetaStore {
    engine: Arc<dyn Engine>,
}

impl MetaStore {
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Self { engine }
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
            let work: Work =
                Box::new(move |tx| once(tx).map(|r| Box::new(r) as Box<dyn Any + Send>));
            match self.engine.run(mode, work).await {
                Ok(out) => {
                    return out
                        .downcast::<R>()
                        .map(|r| *r)
                        .map_err(|_| MetaError::Backend("the engine returned another type".into()))
                }
                Err(MetaError::Busy(msg)) if attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(attempt, %msg, "metadata transaction retried");
                    let jitter = rand::random::<u64>() % 20;
                    let wait = Duration::from_millis((10u64 << attempt.min(7)) + jitter);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The engine's name ("sqlite", "postgres"), for logs and status.
    pub fn backend(&self) -> &'static str {
        self.engine.name()
    }

    // ---- chunks ----
    /// Asks whether `chunk` is stored before writing it, and holds it
    /// either way (see [`ChunkHold`]). With `stream`, the streamed upload
    /// references the chunk from now on, in the same transaction, unless
    /// that would take its owner past their quota ([`MetaError::Limit`]).
    pub async fn hold_chunk(
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

    /// Records a written chunk as stored on `nodes`, under the hold
    /// [`MetaStore::hold_chunk`] gave. Fails with
    /// [`MetaError::ChunkDeleting`] if the hold was lost to gc, in which
    /// case the objects may be gone: hold and write again.
    pub async fn record_chunk(
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

    /// Records replica outcomes. Without an fsync of its own where the
    /// backend allows: a lost outcome is found again by anti-entropy.
    pub async fn record_replicas(&self, outcomes: &[ReplicaOutcome]) -> Result<(), MetaError> {
        let outcomes = outcomes.to_vec();
        self.run(Mode::Unsynced, move |tx| {
            chunks::record_replicas(tx, &outcomes)
        })
        .await
    }

    /// Which of `chunks` `owner` must send (each once, in first-seen
    /// order): those not stored, and those `owner` never sent or
    /// committed, so dedup reveals nothing of other owners' content.
    /// Fails with [`MetaError::ChunkSize`] if one of the owner's chunks has
    /// another size than the one given.
    pub async fn unknown_chunks(
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

    /// Stored chunks with ids after `after`, in id order, at most `limit`.
    pub async fn chunks_page(&self, after: &str, limit: u32) -> Result<Vec<ChunkRef>, MetaError> {
        let after = after.to_string();
        self.run(Mode::Read, move |tx| chunks::page(tx, &after, limit))
            .await
    }

    /// Replicas recorded missing or corrupt, of stored chunks.
    pub async fn replicas_needing_repair(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, String)>, MetaError> {
        self.run(Mode::Read, move |tx| chunks::needing_repair(tx, limit))
            .await
    }

    /// Forgets that `node` holds `chunk` (its copy was removed on purpose).
    pub async fn forget_replica(&self, chunk: &str, node: &str) -> Result<(), MetaError> {
        let (chunk, node) = (chunk.to_string(), node.to_string());
        self.run(Mode::Write, move |tx| {
            chunks::forget_replica(tx, &chunk, &node)
        })
        .await
    }

    // ---- files and versions ----
    /// Version `number` of a file, or its latest when `None`. Deleted
    /// files are returned too, flagged.
    pub async fn version(
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

    /// The ordered chunk list of a version.
    pub async fn version_chunks(
        &self,
        file_id: i64,
        number: u64,
    ) -> Result<Vec<ChunkRef>, MetaError> {
        self.run(Mode::Read, move |tx| {
            files::version_chunks(tx, file_id, number)
        })
        .await
    }

    /// How well a version is replicated against `r` good copies a chunk.
    pub async fn version_health(
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

    /// The latest versions of live files under `prefix` sorting after
    /// `after`, in path order, at most `limit`, each with its health
    /// against `r` (one query for the page, not one a row).
    pub async fn list_files(
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

    /// Versions of a file numbered below `before` (all when `None`),
    /// newest first, at most `limit`, with health against `r`.
    pub async fn list_versions(
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

    /// Commits a new version whose content the owner sent (a streamed
    /// upload, cut by the server): the file is created or undeleted, the
    /// version takes the next number, and the owner owns its chunks. Fails
    /// with [`MetaError::MissingChunks`] if a listed chunk is not stored,
    /// [`MetaError::Limit`] if it would cross the owner's quota, and
    /// [`MetaError::PathConflict`] if a live file is a folder of the path
    /// or the path a folder of a live file. Every way of making a version
    /// (finishing a session, restoring) checks the same.
    pub async fn commit_version(&self, v: &NewVersion) -> Result<VersionRow, MetaError> {
        let v = v.clone();
        self.run(Mode::Write, move |tx| files::commit(tx, &v)).await
    }

    /// Makes version `number` the newest again, as a new version (and
    /// undeletes the file). `None` if there is no such version.
    pub async fn restore_version(
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

    /// Marks a live file deleted; its versions stay. Returns the latest
    /// version number, or `None` if there is no live file at `path`; fails
    /// with [`MetaError::Stale`] unless `mode` holds.
    pub async fn delete_file(
        &self,
        owner: OwnerId,
        path: &str,
        mode: PutMode,
    ) -> Result<Option<u64>, MetaError> {
        let path = path.to_string();
        self.run(Mode::Write, move |tx| files::delete(tx, owner, &path, mode))
            .await
    }

    /// Moves the live file at `from` to `to` in one transaction: `from` is
    /// deleted (its versions stay, restorable) and `to` gets a new version
    /// with the same content. `None` if there is no live file at `from`;
    /// [`MetaError::PathConflict`] if there is one at `to`;
    /// [`MetaError::Stale`] unless `mode` holds for `from`.
    pub async fn move_file(
        &self,
        owner: OwnerId,
        from: &str,
        to: &str,
        mode: PutMode,
        uploader: &str,
    ) -> Result<Option<VersionRow>, MetaError> {
        let (from, to, uploader) = (from.to_string(), to.to_string(), uploader.to_string());
        self.run(Mode::Write, move |tx| {
            files::move_file(tx, owner, &from, &to, mode, &uploader)
        })
        .await
    }

    // ---- change feed ----
    /// The owner's changes numbered after `after`, oldest first, at most
    /// `limit`, and the owner's latest change number. Fails with
    /// [`MetaError::CursorGone`] if changes after `after` were pruned, or
    /// `after` is ahead of the latest; a `limit` of 0 only asks for the
    /// latest number.
    pub async fn changes(
        &self,
        owner: OwnerId,
        after: u64,
        limit: u32,
    ) -> Result<(Vec<ChangeRow>, u64), MetaError> {
        self.run(Mode::Read, move |tx| changes::list(tx, owner, after, limit))
            .await
    }

    /// Deletes changes recorded more than `older_than` ago; returns how
    /// many.
    pub async fn prune_changes(&self, older_than: Duration) -> Result<u64, MetaError> {
        self.run(Mode::Write, move |tx| changes::prune(tx, older_than))
            .await
    }

    // ---- upload sessions ----
    /// Opens a session for `s` and says which of its chunks are not
    /// stored. The session references every chunk it lists, so gc spares
    /// them until it expires.
    pub async fn open_session(
        &self,
        s: &NewSession,
    ) -> Result<(SessionRow, Vec<String>), MetaError> {
        let s = s.clone();
        // Unsynced: a session lost to a crash is started again.
        self.run(Mode::Unsynced, move |tx| sessions::open(tx, &s))
            .await
    }

    /// The open session `id` of `owner`.
    pub async fn session(&self, id: &str, owner: OwnerId) -> Result<Option<SessionRow>, MetaError> {
        let id = id.to_string();
        self.run(Mode::Read, move |tx| sessions::get(tx, &id, owner))
            .await
    }

    /// Whether `chunk` belongs to the open session `id` of `owner`, and its
    /// declared size. Index lookups, whatever the session's length.
    pub async fn chunk_slot(
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

    /// Records that `owner` sent `chunk` of their session `id` (its bytes
    /// were checked and stored), and returns how many distinct chunks of
    /// the session they still must send.
    pub async fn chunk_sent(
        &self,
        id: &str,
        owner: OwnerId,
        chunk: &str,
    ) -> Result<u64, MetaError> {
        let (id, chunk) = (id.to_string(), chunk.to_string());
        self.run(Mode::Unsynced, move |tx| {
            sessions::chunk_sent(tx, &id, owner, &chunk)
        })
        .await
    }

    /// Commits the session as a new version and marks it committed. Fails
    /// with [`MetaError::MissingChunks`] if a chunk is not stored or was
    /// never sent by the session's owner, and [`MetaError::Stale`] if
    /// `mode` does not hold.
    /// Finishing a committed session again returns the version it
    /// committed, so a client whose answer was lost can retry.
    pub async fn finish_session(
        &self,
        s: &SessionRow,
        uploader: &str,
        mode: PutMode,
    ) -> Result<VersionRow, MetaError> {
        let (s, uploader) = (s.clone(), uploader.to_string());
        self.run(Mode::Write, move |tx| {
            sessions::finish(tx, &s, &uploader, mode)
        })
        .await
    }

    /// Opens a streamed upload: a session with no plan whose chunk
    /// references [`MetaStore::hold_chunk`] adds as they are stored. It
    /// counts against the owner's `max_open` uploads like a session.
    pub async fn open_stream(
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

    /// Drops a session or stream and its references (an abandoned upload).
    pub async fn drop_session(&self, id: &str) -> Result<(), MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| sessions::drop(tx, &id))
            .await
    }

    // ---- garbage collection ----
    /// Applies `retention`; returns how many versions were removed.
    pub async fn apply_retention(&self, retention: &Retention) -> Result<u64, MetaError> {
        let retention = retention.clone();
        self.run(Mode::Write, move |tx| gc::apply_retention(tx, &retention))
            .await
    }

    /// Deletes expired sessions; returns how many.
    pub async fn delete_expired_sessions(&self) -> Result<u64, MetaError> {
        self.run(Mode::Write, sessions::delete_expired).await
    }

    /// Marks chunks that nothing references and that are older than
    /// `grace` (a `pending` one: older than `max(grace, PENDING_FLOOR)`)
    /// as being deleted, at most `limit`, and returns every chunk so
    /// marked (also those a gc pass that died left marked). A marked chunk
    /// is not stored for anyone: uploads of it wait, then write it again.
    pub async fn claim_unreferenced(
        &self,
        grace: Duration,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        self.run(Mode::Claim, move |tx| {
            gc::claim_unreferenced(tx, grace, limit)
        })
        .await
    }

    /// Forgets a chunk marked for deletion, once its objects are deleted.
    pub async fn forget_chunk(&self, id: &str) -> Result<(), MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| gc::forget_chunk(tx, &id))
            .await
    }

    /// Notes objects on `node` that no chunk row names; returns those seen
    /// unclaimed for longer than `grace`, and forgets notes about objects
    /// that are gone or no longer orphans.
    pub async fn note_orphans(
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

    /// Marks an orphan's id as being deleted, if no row names it (an
    /// upload may have claimed it since the listing). Release it with
    /// [`MetaStore::forget_chunk`].
    pub async fn claim_orphan(&self, id: &str) -> Result<bool, MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| gc::claim_orphan(tx, &id))
            .await
    }

    // ---- operations ----
    /// Whole-table figures, read without holding up writers.
    pub async fn report(&self, r: usize) -> Result<MetaReport, MetaError> {
        self.run(Mode::Report, move |tx| chunks::report(tx, r))
            .await
    }

    /// Takes or renews the lease `name` for `holder` for `ttl`; returns
    /// whether `holder` holds it now. A lease held by another and not yet
    /// expired is left alone.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, MetaError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.run(Mode::Unsynced, move |tx| {
            ops::try_lease(tx, &name, &holder, ttl)
        })
        .await
    }

    /// Gives a lease up, if `holder` holds it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), MetaError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.run(Mode::Write, move |tx| {
            ops::release_lease(tx, &name, &holder)
        })
        .await
    }

    /// Every lease and its holder.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, MetaError> {
        self.run(Mode::Read, ops::leases).await
    }

    /// The cluster identity recorded in this database, if any.
    pub async fn cluster_id(&self) -> Result<Option<String>, MetaError> {
        self.run(Mode::Read, |tx| ops::setting(tx, ops::CLUSTER_ID))
            .await
    }

    /// Records `id` as this database's cluster identity unless one is
    /// recorded already; returns the recorded one.
    pub async fn init_cluster_id(&self, id: &str) -> Result<String, MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| {
            ops::init_setting(tx, ops::CLUSTER_ID, &id)
        })
        .await
    }

    /// Whether the database holds any chunk row.
    pub async fn has_chunks(&self) -> Result<bool, MetaError> {
        self.run(Mode::Read, ops::has_chunks).await
    }

    /// Answers if the database is reachable (readiness).
    pub async fn ping(&self) -> Result<(), MetaError> {
        self.run(Mode::Lookup, ops::ping).await
    }

    // ---- accounts ----
    /// Creates a user. The first user ever created takes over the
    /// [`crate::meta::DEFAULT_OWNER`]'s files. [`MetaError::Conflict`] if the name is
    /// taken.
    pub async fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<UserRow, MetaError> {
        let (name, hash) = (name.to_string(), password_hash.to_string());
        self.run(Mode::Write, move |tx| accounts::add(tx, &name, &hash, role))
            .await
    }

    /// The user called `name`.
    pub async fn user(&self, name: &str) -> Result<Option<UserRow>, MetaError> {
        let name = name.to_string();
        self.run(Mode::Read, move |tx| accounts::by_name(tx, &name))
            .await
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>, MetaError> {
        self.run(Mode::Read, accounts::list).await
    }

    /// Sets a user's password hash and ends every login of theirs; `false`
    /// if there is no such user.
    pub async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, MetaError> {
        let (name, hash) = (name.to_string(), password_hash.to_string());
        self.run(Mode::Write, move |tx| {
            accounts::set_password(tx, &name, &hash)
        })
        .await
    }

    /// Removes a user: their logins end and their files are deleted;
    /// `false` if there is no such user.
    pub async fn remove_user(&self, name: &str) -> Result<bool, MetaError> {
        let name = name.to_string();
        self.run(Mode::Write, move |tx| accounts::remove(tx, &name))
            .await
    }

    /// Opens a login for `user`, whose refresh token hashes to
    /// `token_hash`, for `ttl`; returns its id and expiry (RFC 3339).
    pub async fn open_login(
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

    /// The login `id` if it is live (not ended, not expired, its user not
    /// removed), with its user as they are now.
    pub async fn login(&self, id: &str) -> Result<Option<LoginRow>, MetaError> {
        let id = id.to_string();
        self.run(Mode::Lookup, move |tx| accounts::login(tx, &id))
            .await
    }

    /// Ends login `id`; `false` if it was not live.
    pub async fn close_login(&self, id: &str) -> Result<bool, MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| accounts::close_login(tx, &id))
            .await
    }

    /// What `owner`'s retained versions take and their open uploads
    /// reserve, and their quota.
    pub async fn usage(&self, owner: OwnerId) -> Result<Usage, MetaError> {
        self.run(Mode::Read, move |tx| limits::usage(tx, owner))
            .await
    }

    /// Sets (or with `None` lifts) a user's quota; `false` if there is no
    /// such user.
    pub async fn set_quota(&self, name: &str, quota: Option<u64>) -> Result<bool, MetaError> {
        let name = name.to_string();
        self.run(Mode::Write, move |tx| accounts::set_quota(tx, &name, quota))
            .await
    }

    // ---- share links ----
    /// Creates a share link to a version of one of the owner's live files;
    /// `None` if there is no such file or version.
    pub async fn create_share(&self, s: &NewShare) -> Result<Option<ShareRow>, MetaError> {
        let s = s.clone();
        self.run(Mode::Write, move |tx| shares::create(tx, &s))
            .await
    }

    /// The owner's links, newest first, live and dead.
    pub async fn shares(&self, owner: OwnerId) -> Result<Vec<ShareRow>, MetaError> {
        self.run(Mode::Read, move |tx| shares::list(tx, owner))
            .await
    }

    /// The link `id` (expired and revoked ones too), if its file is live
    /// and its version still retained.
    pub async fn share(&self, id: &str) -> Result<Option<ShareRow>, MetaError> {
        let id = id.to_string();
        self.run(Mode::Lookup, move |tx| shares::get(tx, &id)).await
    }

    /// Ends the owner's link `id`; `false` if they have no such link.
    pub async fn revoke_share(&self, owner: OwnerId, id: &str) -> Result<bool, MetaError> {
        let id = id.to_string();
        self.run(Mode::Write, move |tx| shares::revoke(tx, owner, &id))
            .await
    }

    /// Sets the setting `key` to `value`, whatever it was.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), MetaError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.run(Mode::Write, move |tx| ops::set_setting(tx, &key, &value))
            .await
    }

    /// The setting `key`; sets it to `value` first unless it is set (a
    /// secret every server of one database must share).
    pub async fn init_setting(&self, key: &str, value: &str) -> Result<String, MetaError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.run(Mode::Write, move |tx| ops::init_setting(tx, &key, &value))
            .await
    }

    // ---- disaster recovery ----
    /// Writes a consistent copy of the whole database to the new file
    /// `dest`, while other transactions go on.
    /// [`MetaError::Unsupported`] where the database's own tools do this
    /// (PostgreSQL).
    pub async fn snapshot_into(&self, dest: &std::path::Path) -> Result<(), MetaError> {
        self.engine.snapshot_into(dest).await
    }
}
