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
    accounts, changes, chunks, files, folders, gc, limits, locks, ops, packs, props, sessions,
    shares, thumbs, Engine, Mode, Tx, Work,
};
use super::{
    After, AppPasswordRow, ChangeRow, ChunkHold, ChunkRef, ChunkSlot, DeadProp, FoundPack,
    HealthCounts, LeaseRow, LockRow, LoginRow, MetaError, MetaReport, NewLock, NewSession,
    NewShare, NewVersion, Opened, OwnerId, Packed, PackedAt, PerFile, ReplicaOutcome, Retention,
    Role, SessionRow, ShareRow, Sorted, StreamRef, Usage, UserRow, VersionRow,
};
use coffer_proto::put::PutMode;
use std::any::Any;
use std::collections::{HashMap, HashSet};
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

    /// Asks whether `chunk` is stored before writing it, and holds it either way (see
    /// [`ChunkHold`]). With `stream`, the streamed upload references the chunk from now on and
    /// is renewed, in the same transaction, unless that would take its owner past their quota
    /// ([`MetaError::Limit`]) or the stream expired ([`MetaError::StreamGone`]).
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

    /// Writes a consistent copy of the whole database to the new file
    /// `dest`, while other transactions go on.
    /// [`MetaError::Unsupported`] where the database's own tools do this
    /// (PostgreSQL).
    pub async fn snapshot_into(&self, dest: &std::path::Path) -> Result<(), MetaError> {
        self.engine.snapshot_into(dest).await
    }
}

/// The store's operations that are one call of a concern function: each
/// line names the [`Mode`] it runs in, its signature, and the function
/// that does the work. Borrowed arguments are owned once, so that every
/// attempt of a retried transaction lends them out again.
macro_rules! operations {
    ($($(#[$doc:meta])* $mode:ident fn $name:ident($($arg:ident: $ty:ty),*)
        -> $out:ty = $f:path;)*) => {
        impl MetaStore {$(
            $(#[$doc])*
            pub async fn $name(&self, $($arg: $ty),*) -> Result<$out, MetaError> {
                $(let $arg = $arg.to_owned();)*
                self.run(Mode::$mode, move |tx| $f(tx, $($arg.lend()),*)).await
            }
        )*}
    };
}

operations! {
    /// Records a written chunk as stored on `nodes`, under the hold
    /// [`MetaStore::hold_chunk`] gave. Fails with
    /// [`MetaError::ChunkDeleting`] if the hold was lost to gc, in which
    /// case the objects may be gone: hold and write again.
    Unsynced fn record_chunk(chunk: &ChunkRef, hold: &str, nodes: &[String]) -> () = chunks::record;
    /// Records a written pack, itself a chunk stored on `nodes`, and the
    /// chunks in it, each under the hold its writer took, in one
    /// transaction. Returns the ids of those not recorded because gc
    /// took their hold (their writers hold and write again); a chunk
    /// stored meanwhile some other way keeps where it is.
    Unsynced fn record_pack(pack: &ChunkRef, nodes: &[String], packed: &[Packed])
        -> Vec<String> = packs::record_pack;
    /// Those of `ids` that are chunks stored as objects of their own (a
    /// row not in a pack, and no pack by any row's account).
    Read fn standalone_chunks(ids: &[String]) -> HashSet<String> = packs::standalone;
    /// Points each chunk of `found` packs that a version holds, and whose
    /// recorded place is gone (its pack is none of `found`, or its own
    /// object is on no node, or it has no row), at the pack that holds
    /// it, recording the pack and its copies. Returns how many chunks were
    /// pointed.
    Write fn reindex_packs(found: &[FoundPack]) -> u64 = packs::reindex;
    /// Where the packed ones among chunks `ids` are.
    Read fn pack_locations(ids: &[String]) -> HashMap<String, PackedAt> = packs::pack_locations;
    /// Packs whose live chunks fill less than `live_percent` of them.
    Read fn sparse_packs(live_percent: u32, limit: u32) -> Vec<ChunkRef> = packs::sparse_packs;
    /// The stored chunks that name pack `pack`, with their offsets, in
    /// offset order.
    Read fn pack_members(pack: &str) -> Vec<(ChunkRef, u64)> = packs::pack_members;
    /// Stored chunks under `below` bytes that a version holds and that are
    /// objects of their own (written before packs were on), at most
    /// `limit`.
    Read fn unpacked_small(below: u32, limit: u32) -> Vec<ChunkRef> = packs::unpacked_small;
    /// Moves the chunks `moved` (id, offset in `new`) that still name
    /// pack `old` (`""`: that are still objects of their own) into pack
    /// `new`, written on `nodes`, in one transaction; `old` stays a grace
    /// period more for reads under way (an object of its own becomes an
    /// orphan, which gc deletes a grace period after noticing it).
    /// Returns how many moved.
    Unsynced fn repack(old: &str, new: &ChunkRef, nodes: &[String], moved: &[(String, u64)])
        -> u64 = packs::repack;
    /// Records replica outcomes. Without an fsync of its own where the
    /// backend allows: a lost outcome is found again by anti-entropy.
    Unsynced fn record_replicas(outcomes: &[ReplicaOutcome]) -> () = chunks::record_replicas;
    /// Which of `chunks` `owner` must send (each once, in first-seen
    /// order): those not stored, and those `owner` never sent or
    /// committed, so dedup reveals nothing of other owners' content.
    /// Fails with [`MetaError::ChunkSize`] if one of the owner's chunks has
    /// another size than the one given.
    Read fn unknown_chunks(owner: OwnerId, chunks: &[ChunkRef]) -> Vec<String> = chunks::unknown;
    /// Stored chunks with ids after `after`, in id order, at most `limit`:
    /// those that are objects of their own (packs included), not the
    /// chunks inside packs.
    Read fn chunks_page(after: &str, limit: u32) -> Vec<ChunkRef> = chunks::page;
    /// Replicas recorded missing or corrupt, of stored chunks.
    Read fn replicas_needing_repair(limit: u32) -> Vec<(String, String)> = chunks::needing_repair;
    /// Stored chunks with fewer than `r` good copies recorded, each with
    /// the nodes any copy of it is recorded on (good or not).
    Report fn short_of_copies(r: usize)
        -> HashMap<String, HashSet<String>> = chunks::short_of_copies;
    /// Forgets that `node` holds `chunk` (its copy was removed on purpose).
    Write fn forget_replica(chunk: &str, node: &str) -> () = chunks::forget_replica;

    // ---- files and versions ----
    /// Version `number` of a file, or its latest when `None`. Deleted
    /// files are returned too, flagged.
    Read fn version(owner: OwnerId, path: &str, number: Option<u64>)
        -> Option<VersionRow> = files::version;
    /// The ordered chunk list of a version.
    Read fn version_chunks(file_id: i64, number: u64) -> Vec<ChunkRef> = files::version_chunks;
    /// How well a version is replicated against `r` good copies a chunk.
    Read fn version_health(file_id: i64, number: u64, r: usize)
        -> HealthCounts = files::version_health;
    /// The latest versions of live files under `prefix` sorting after
    /// `after`, in path order, at most `limit`, each with its health
    /// against `r` (one query for the page, not one a row).
    Read fn list_files(owner: OwnerId, prefix: &str, after: &str, limit: u32, r: usize)
        -> Vec<(VersionRow, HealthCounts)> = files::list_files;
    /// The latest versions of the live files directly in `folder` (`""`:
    /// the top), in `order`, after `after`, at most `limit`, with health
    /// against `r`.
    Read fn list_sorted(owner: OwnerId, folder: &str, order: Sorted, after: &After, limit: u32,
        r: usize) -> Vec<(VersionRow, HealthCounts)> = files::list_sorted;
    /// [`MetaStore::list_files`] of the paths matching `pattern` (a `LIKE`
    /// pattern over the lowercased path, from
    /// [`super::sql::files::contains_pattern`]).
    Read fn search_files(owner: OwnerId, prefix: &str, pattern: &str, after: &str, limit: u32,
        r: usize) -> Vec<(VersionRow, HealthCounts)> = files::search;
    /// Versions of a file numbered below `before` (all when `None`),
    /// newest first, at most `limit`, with health against `r`.
    Read fn list_versions(owner: OwnerId, path: &str, before: Option<u64>, limit: u32, r: usize)
        -> Vec<(VersionRow, HealthCounts)> = files::list_versions;
    /// Commits a new version whose content the owner sent (a streamed
    /// upload, cut by the server): the file is created or undeleted, the
    /// version takes the next number, and the owner owns its chunks. Fails
    /// with [`MetaError::MissingChunks`] if a listed chunk is not stored,
    /// [`MetaError::Limit`] if it would cross the owner's quota, and
    /// [`MetaError::PathConflict`] if a live file is a folder of the path
    /// or the path a folder of a live file. Every way of making a version
    /// (finishing a session, restoring) checks the same.
    Write fn commit_version(v: &NewVersion) -> VersionRow = files::commit;
    /// Makes version `number` the newest again, as a new version (and
    /// undeletes the file). `None` if there is no such version.
    Write fn restore_version(owner: OwnerId, path: &str, number: u64, uploader: &str)
        -> Option<VersionRow> = files::restore;
    /// Marks a live file deleted; its versions stay. Returns the latest
    /// version number, or `None` if there is no live file at `path`; fails
    /// with [`MetaError::Stale`] unless `mode` holds.
    Write fn delete_file(owner: OwnerId, path: &str, mode: PutMode) -> Option<u64> = files::delete;
    /// Moves the live file at `from` to `to` in one transaction: `from` is
    /// deleted (its versions stay, restorable) and `to` gets a new version
    /// with the same content. `None` if there is no live file at `from`;
    /// [`MetaError::PathConflict`] if there is one at `to`;
    /// [`MetaError::Stale`] unless `mode` holds for `from`.
    Write fn move_file(owner: OwnerId, from: &str, to: &str, mode: PutMode, uploader: &str)
        -> Option<VersionRow> = files::move_file;

    // ---- folders ----
    /// Whether folder `path` exists: the root, one made on its own, or one
    /// a live file is in.
    Read fn folder_exists(owner: OwnerId, path: &str) -> bool = folders::exists;
    /// Makes an empty folder. [`MetaError::PathConflict`]: `Taken` if a
    /// file or folder is at `path`, `NoParent` if its folder does not
    /// exist, `NotAFolder` if a file is in the way.
    Write fn make_folder(owner: OwnerId, path: &str) -> () = folders::make;
    /// The folders made on their own directly inside `folder`.
    Read fn made_folders(owner: OwnerId, folder: &str) -> Vec<String> = folders::children;
    /// Every folder directly in `folder`: those live files are in and
    /// those made on their own, by path.
    Read fn child_folders(owner: OwnerId, folder: &str) -> Vec<String> = folders::child_folders;
    /// The folders made on their own inside `folder`, at any depth.
    Read fn made_folders_under(owner: OwnerId, folder: &str) -> Vec<String> = folders::under;
    /// Deletes folder `path` and every live file inside it (each
    /// restorable, each in the feed); returns how many files, or `None` if
    /// there is no such folder.
    Write fn delete_folder(owner: OwnerId, path: &str) -> Option<u64> = folders::delete;
    /// Moves folder `from` with everything inside it to `to`, which must
    /// be free and whose folder must exist; returns how many files moved,
    /// or `None` if there is no such folder.
    Write fn move_folder(owner: OwnerId, from: &str, to: &str, uploader: &str)
        -> Option<u64> = folders::move_to;
    /// Copies the live file `from` to the free name `to`, as a new file
    /// with the same content (no bytes move). `None` if there is no live
    /// file at `from`.
    Write fn copy_file(owner: OwnerId, from: &str, to: &str, uploader: &str)
        -> Option<VersionRow> = folders::copy_file;

    // ---- thumbnails ----
    /// Notes that a thumbnail of `owner`'s content `hash`, `edge` pixels,
    /// is (about to be) on the nodes.
    Write fn record_thumbnail(owner: OwnerId, hash: &str, edge: u32) -> () = thumbs::record;
    /// Thumbnails whose content no version of their owner has, at most
    /// `limit`.
    Read fn unreferenced_thumbnails(limit: u32) -> Vec<(OwnerId, String, u32)> = thumbs::unreferenced;
    /// Forgets a thumbnail whose objects are deleted.
    Write fn forget_thumbnail(owner: OwnerId, hash: &str, edge: u32) -> () = thumbs::forget;

    // ---- WebDAV properties and locks ----
    /// The dead properties of `path`.
    Read fn props(owner: OwnerId, path: &str) -> Vec<DeadProp> = props::list;
    /// Sets and removes dead properties of `path`, all in one transaction.
    Write fn patch_props(owner: OwnerId, path: &str, set: &[DeadProp]) -> () = props::patch;
    /// Takes a lock, or returns the lock in its way.
    Write fn lock(l: &NewLock) -> Result<LockRow, LockRow> = locks::lock;
    /// Releases lock `token` if it is on `path` or above it; `false` if
    /// there is no such live lock.
    Write fn unlock(owner: OwnerId, path: &str, token: &str) -> bool = locks::unlock;
    /// Gives lock `token` (on `path` or above it) a new time-out.
    Write fn refresh_lock(owner: OwnerId, path: &str, token: &str, timeout: Option<Duration>)
        -> Option<LockRow> = locks::refresh;
    /// The lock that stops `principal` (`None`: whoever holds the
    /// tokens), holding `tokens`, from writing `path` (with `deep`,
    /// anything inside it too), if any.
    Read fn check_locks(owner: OwnerId, path: &str, principal: &Option<String>, deep: bool,
        tokens: &[String]) -> Option<LockRow> = locks::check;
    /// The live locks on `path`: its own and the deep ones above it.
    Read fn discover_locks(owner: OwnerId, path: &str) -> Vec<LockRow> = locks::discover;
    /// Drops every lock on `path` and inside it.
    Write fn drop_locks(owner: OwnerId, path: &str) -> () = locks::drop_under;

    // ---- change feed ----
    /// The owner's changes numbered after `after`, oldest first, at most
    /// `limit`, and the owner's latest change number. Fails with
    /// [`MetaError::CursorGone`] if changes after `after` were pruned, or
    /// `after` is ahead of the latest; a `limit` of 0 only asks for the
    /// latest number.
    Read fn changes(owner: OwnerId, after: u64, limit: u32)
        -> (Vec<ChangeRow>, u64) = changes::list;
    /// Deletes changes recorded more than `older_than` ago; returns how
    /// many.
    Write fn prune_changes(older_than: Duration) -> u64 = changes::prune;

    // ---- upload sessions ----
    /// Opens a session for `s` and says which of its chunks are not
    /// stored. The session references every chunk it lists, so gc spares
    /// them until it expires.
    Unsynced fn open_session(s: &NewSession) -> (SessionRow, Vec<String>) = sessions::open;
    /// Opens the sessions of a batch (one owner) in one transaction; they
    /// count as one open upload against the owner's `max_open`. A file
    /// whose name or size is refused gets its own error; the others open.
    Unsynced fn open_sessions(batch: &[NewSession])
        -> Vec<PerFile<Opened>> = sessions::open_many;
    /// The open session `id` of `owner`.
    Read fn session(id: &str, owner: OwnerId) -> Option<SessionRow> = sessions::get;
    /// [`MetaStore::session`] of each of `ids`, in one read.
    Read fn sessions(ids: &[String], owner: OwnerId) -> Vec<Option<SessionRow>> = sessions::get_many;
    /// Whether `chunk` belongs to the open session `id` of `owner`, and its
    /// declared size. Index lookups, whatever the session's length.
    Read fn chunk_slot(id: &str, owner: OwnerId, chunk: &str) -> ChunkSlot = sessions::chunk_slot;
    /// Records that `owner` sent `chunk` of their session `id` (its bytes
    /// were checked and stored), and returns how many distinct chunks of
    /// the session they still must send.
    Unsynced fn chunk_sent(id: &str, owner: OwnerId, chunk: &str) -> u64 = sessions::chunk_sent;
    /// [`MetaStore::chunk_slot`] of each (session, chunk) in one read.
    Read fn chunk_slots(owner: OwnerId, wanted: &[(String, String)])
        -> Vec<ChunkSlot> = sessions::chunk_slots;
    /// [`MetaStore::chunk_sent`] of each (session, chunk) in one
    /// transaction.
    Unsynced fn chunks_sent(owner: OwnerId, sent: &[(String, String)])
        -> Vec<u64> = sessions::chunks_sent;
    /// [`MetaStore::finish_session`] of each session in one transaction:
    /// each is its own version and change, conditional on its own mode,
    /// and a file refused (stale, missing chunks, a name taken, a limit)
    /// gets its own error while the others commit.
    /// Each committed version comes with its health against `r`.
    Write fn finish_sessions(batch: &[(SessionRow, PutMode)], uploader: &str, r: usize)
        -> Vec<PerFile<(VersionRow, HealthCounts)>> = sessions::finish_many;
    /// Commits the session as a new version and marks it committed. Fails
    /// with [`MetaError::MissingChunks`] if a chunk is not stored or was
    /// never sent by the session's owner, and [`MetaError::Stale`] if
    /// `mode` does not hold.
    /// Finishing a committed session again returns the version it
    /// committed, so a client whose answer was lost can retry.
    Write fn finish_session(s: &SessionRow, uploader: &str, mode: PutMode)
        -> VersionRow = sessions::finish;
    /// Opens a streamed upload: a session with no plan whose chunk
    /// references [`MetaStore::hold_chunk`] adds (expiring `ttl` after the
    /// last); it counts against the owner's `max_open` uploads like a session.
    Unsynced fn open_stream(owner: OwnerId, ttl: Duration, max_open: u32)
        -> String = sessions::open_stream;
    /// Drops a session or stream and its references (an abandoned upload).
    Write fn drop_session(id: &str) -> () = sessions::drop;

    // ---- garbage collection ----
    /// Applies `retention`; returns how many versions were removed.
    Write fn apply_retention(retention: &Retention) -> u64 = gc::apply_retention;
    /// Deletes expired sessions; returns how many.
    Write fn delete_expired_sessions() -> u64 = sessions::delete_expired;
    /// Marks chunks that nothing references and that are older than
    /// `grace` (a `pending` one: older than `max(grace, PENDING_FLOOR)`)
    /// as being deleted, at most `limit`, and returns every chunk so
    /// marked (also those a gc pass that died left marked). A marked chunk
    /// is not stored for anyone: uploads of it wait, then write it again.
    Claim fn claim_unreferenced(grace: Duration, limit: u32)
        -> Vec<String> = gc::claim_unreferenced;
    /// Forgets a chunk marked for deletion, once its objects are deleted.
    Write fn forget_chunk(id: &str) -> () = gc::forget_chunk;
    /// Notes objects on `node` that no chunk row names; returns those seen
    /// unclaimed for longer than `grace`, and forgets notes about objects
    /// that are gone or no longer orphans.
    Write fn note_orphans(node: &str, found: &[String], grace: Duration)
        -> Vec<String> = gc::note_orphans;
    /// Marks an orphan's id as being deleted, if no row names it (an
    /// upload may have claimed it since the listing). Release it with
    /// [`MetaStore::forget_chunk`].
    Write fn claim_orphan(id: &str) -> bool = gc::claim_orphan;

    // ---- operations ----
    /// Whole-table figures, read without holding up writers.
    Report fn report(r: usize) -> MetaReport = chunks::report;
    /// Takes or renews the lease `name` for `holder` for `ttl`; returns
    /// whether `holder` holds it now. A lease held by another and not yet
    /// expired is left alone.
    Unsynced fn try_lease(name: &str, holder: &str, ttl: Duration) -> bool = ops::try_lease;
    /// Gives a lease up, if `holder` holds it.
    Write fn release_lease(name: &str, holder: &str) -> () = ops::release_lease;
    /// Every lease and its holder.
    Read fn leases() -> Vec<LeaseRow> = ops::leases;
    /// Whether the database holds any chunk row.
    Read fn has_chunks() -> bool = ops::has_chunks;
    /// Answers if the database is reachable (readiness).
    Lookup fn ping() -> () = ops::ping;

    // ---- accounts ----
    /// Creates a user. The first user ever created takes over the
    /// [`crate::meta::DEFAULT_OWNER`]'s files. [`MetaError::Conflict`] if the name is
    /// taken.
    Write fn add_user(name: &str, password_hash: &str, role: Role) -> UserRow = accounts::add;
    /// The user called `name`.
    Read fn user(name: &str) -> Option<UserRow> = accounts::by_name;
    /// Every user, by name.
    Read fn users() -> Vec<UserRow> = accounts::list;
    /// Sets a user's password hash and ends every login of theirs; `false`
    /// if there is no such user.
    Write fn set_password(name: &str, password_hash: &str) -> bool = accounts::set_password;
    /// Removes a user: their logins end and their files are deleted;
    /// `false` if there is no such user.
    Write fn remove_user(name: &str) -> bool = accounts::remove;
    /// Opens a login for `user`, whose refresh token hashes to
    /// `token_hash`, for `ttl`; returns its id and expiry (RFC 3339).
    Write fn open_login(user: OwnerId, token_hash: &str, ttl: Duration)
        -> (String, String) = accounts::open_login;
    /// The login `id` if it is live (not ended, not expired, its user not
    /// removed), with its user as they are now.
    Lookup fn login(id: &str) -> Option<LoginRow> = accounts::login;
    /// Ends login `id`; `false` if it was not live.
    Write fn close_login(id: &str) -> bool = accounts::close_login;
    /// What `owner`'s retained versions take and their open uploads
    /// reserve, and their quota.
    Read fn usage(owner: OwnerId) -> Usage = limits::usage;
    /// Sets (or with `None` lifts) a user's quota; `false` if there is no
    /// such user.
    Write fn set_quota(name: &str, quota: Option<u64>) -> bool = accounts::set_quota;
    /// Records an app password `id` named `name` for `owner`, its secret
    /// hashed; [`MetaError::Conflict`] if the name is taken.
    Write fn add_app_password(owner: OwnerId, id: &str, name: &str, secret_hash: &str)
        -> AppPasswordRow = accounts::add_app_password;
    /// The owner's app passwords, by name.
    Read fn app_passwords(owner: OwnerId) -> Vec<AppPasswordRow> = accounts::app_passwords;
    /// Deletes the owner's app password `name`; `false` if there is none.
    Write fn revoke_app_password(owner: OwnerId, name: &str) -> bool
        = accounts::revoke_app_password;
    /// App password `id` and its user, if both are live.
    Lookup fn app_password(id: &str) -> Option<(AppPasswordRow, UserRow)>
        = accounts::app_password;

    // ---- share links ----
    /// Creates a share link to a version of one of the owner's live files;
    /// `None` if there is no such file or version.
    Write fn create_share(s: &NewShare) -> Option<ShareRow> = shares::create;
    /// The owner's links, newest first, live and dead.
    Read fn shares(owner: OwnerId) -> Vec<ShareRow> = shares::list;
    /// The link `id` (expired and revoked ones too), if its file is live
    /// and its version still retained.
    Lookup fn share(id: &str) -> Option<ShareRow> = shares::get;
    /// Ends the owner's link `id`; `false` if they have no such link.
    Write fn revoke_share(owner: OwnerId, id: &str) -> bool = shares::revoke;
    /// Sets the setting `key` to `value`, whatever it was.
    Write fn set_setting(key: &str, value: &str) -> () = ops::set_setting;
    /// The setting `key`; sets it to `value` first unless it is set (a
    /// secret every server of one database must share).
    Write fn init_setting(key: &str, value: &str) -> String = ops::init_setting;
}

/// How an argument an operation owns is lent to each attempt: as the
/// borrowed form the concern function takes.
trait Lend {
    type Out<'a>
    where
        Self: 'a;
    fn lend(&self) -> Self::Out<'_>;
}

impl Lend for String {
    type Out<'a> = &'a str;
    fn lend(&self) -> &str {
        self
    }
}

impl<T> Lend for Vec<T> {
    type Out<'a>
        = &'a [T]
    where
        T: 'a;
    fn lend(&self) -> &[T] {
        self
    }
}

/// Values the concern functions take by value.
macro_rules! lend_copy {
    ($($t:ty),*) => {$(
        impl Lend for $t {
            type Out<'a> = $t;
            fn lend(&self) -> $t {
                *self
            }
        }
    )*};
}
lend_copy!(
    i64,
    u32,
    u64,
    usize,
    bool,
    Option<u64>,
    Duration,
    Option<Duration>,
    Role,
    PutMode,
    Sorted
);

/// Values the concern functions take by reference.
macro_rules! lend_ref {
    ($($t:ty),*) => {$(
        impl Lend for $t {
            type Out<'a> = &'a $t;
            fn lend(&self) -> &$t {
                self
            }
        }
    )*};
}
lend_ref!(After, ChunkRef, NewVersion, NewSession, SessionRow, Retention, NewShare, NewLock);

impl Lend for Option<String> {
    type Out<'a> = Option<&'a str>;
    fn lend(&self) -> Option<&str> {
        self.as_deref()
    }
}
