//! The domain: uploads, downloads, versions, restore and delete, on top of
//! the metadata store and the cluster. No tonic or S3 types here.
//!
//! Two ways in for uploads, one commit path:
//! - [`StreamUpload`]: the server cuts an incoming byte stream into chunks
//!   (the seed's `UploadFile`);
//! - upload sessions ([`Files::start_upload`], [`Files::put_chunk`],
//!   [`Files::finish_upload`]): the client cuts and hashes, and sends only
//!   the chunks the cluster lacks.
//!
//! Either way a version is committed in one metadata transaction after
//! every chunk is stored on at least W nodes; before that nothing of the
//! upload is visible.

use crate::budget::{DownloadBudget, UploadBudget, UploadRoom};
use crate::caller::Caller;
use crate::cluster::{Cluster, ClusterError};
use crate::feed::Feed;
use crate::meta::{
    ChunkHold, ChunkRef, ChunkSlot, HealthCounts, Meta, MetaError, NewSession, NewVersion,
    SessionRow, StreamRef, VersionRow,
};
use crate::per_key::PerKey;
use bytes::Bytes;
use coffer_proto::chunking::{
    chunk_id, content_hash, is_chunk_id, Chunker, CONTENT_HASH_CONTEXT, MAX_CHUNK, MIN_CHUNK,
};
use coffer_proto::paths::{self, PathError};
use coffer_proto::put::PutMode;
use futures::{Stream, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::task::JoinHandle;

/// Most chunks of one download in flight at once, however small.
const MAX_READ_AHEAD_CHUNKS: usize = 64;

/// How often a write waits for gc to finish deleting the same chunk
/// before giving up (with a back-off growing to a second: about a minute).
const CHUNK_DELETION_WAITS: u32 = 64;

/// Tuning of the domain layer.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Chunks of one streamed upload being stored at once.
    pub upload_parallelism: usize,
    /// Bytes of one download fetched ahead of the chunk being sent (at
    /// least one chunk is always fetched, whatever its size).
    pub read_ahead_bytes: usize,
    /// How long an upload session stays open.
    pub session_ttl: Duration,
    /// Open upload sessions one user may have at once.
    pub max_open_sessions: u32,
    /// Bytes all downloads together may hold, server-wide: read from the
    /// nodes ahead of their clients, and waiting in pipes and network
    /// buffers (see [`crate::budget`]).
    pub download_memory_bytes: usize,
    /// A download whose client takes nothing for this long is ended, and
    /// a streamed upload that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Downloads one caller may have open at once: per account, per share
    /// link and per client address alike.
    pub max_downloads_per_caller: usize,
    /// How long a download (or an upload) waits for room in the
    /// server-wide budget before it is refused (RESOURCE_EXHAUSTED, HTTP
    /// 503).
    pub download_queue_wait: Duration,
    /// Bytes all uploads together may hold, server-wide: received and not
    /// yet stored (see [`crate::budget::UploadBudget`]).
    pub upload_memory_bytes: usize,
    /// The slowest a client may read a download, in bytes per second,
    /// averaged over each idle time-out: a slower one is ended, so a
    /// reader that takes a piece now and then cannot hold its place.
    pub min_download_rate: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            upload_parallelism: 4,
            read_ahead_bytes: 32 * 1024 * 1024,
            session_ttl: Duration::from_secs(24 * 3600),
            max_open_sessions: 64,
            download_memory_bytes: 256 * 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            max_downloads_per_caller: 32,
            download_queue_wait: Duration::from_secs(30),
            upload_memory_bytes: 256 * 1024 * 1024,
            min_download_rate: 16 * 1024,
        }
    }
}

/// Why a file operation failed. Mapped to gRPC statuses in `api::status`.
#[derive(Debug, Error)]
pub enum FileError {
    #[error("invalid file name: {0}")]
    InvalidPath(#[from] PathError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("file {0:?} not found")]
    NotFound(String),
    #[error("file {path:?} has no version {version}")]
    VersionNotFound { path: String, version: u64 },
    #[error("upload session {0:?} not found or expired")]
    SessionNotFound(String),
    #[error("{missing} chunk(s) of the upload are not stored yet; send them with PutChunk")]
    ChunksMissing { missing: usize },
    /// The request is well formed but the system is not in a state to do
    /// it.
    #[error("{0}")]
    Precondition(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The server ran out of room (the metadata disk is full).
    #[error("out of space: {0}")]
    Exhausted(String),
    /// A limit on one user (quota, open uploads, versions).
    #[error("{0}")]
    Limit(crate::meta::Limit),
    /// A conditional write's base version is not the file's latest.
    #[error("{0}")]
    Stale(crate::meta::Stale),
    /// A change-feed cursor the feed cannot serve any more.
    #[error("{0}")]
    CursorGone(crate::meta::CursorGone),
    /// One caller (an account, a share link, an address) has as many
    /// downloads open as it may (HTTP 429).
    #[error("{0}")]
    TooMany(String),
    /// The server is at its capacity and stayed there for longer than a
    /// request may wait (HTTP 503).
    #[error("{0}")]
    Busy(String),
    /// A file and a folder would share a name, or a move's target is taken.
    #[error("{0}")]
    AlreadyExists(crate::meta::PathConflict),
    /// The client went quiet for longer than the idle time-out.
    #[error("idle time-out: {0}")]
    Timeout(String),
    /// Stored content can no longer be read from any node.
    #[error("data loss: {0}")]
    DataLoss(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<MetaError> for FileError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::MissingChunks(missing) => FileError::ChunksMissing { missing },
            e @ MetaError::ChunkSize { .. } => FileError::InvalidArgument(e.to_string()),
            e @ MetaError::CommittedVersionGone { .. } => FileError::Precondition(e.to_string()),
            e @ MetaError::Full(_) => FileError::Exhausted(e.to_string()),
            e @ (MetaError::Busy(_) | MetaError::Unreachable(_) | MetaError::ChunkDeleting(_)) => {
                FileError::Unavailable(e.to_string())
            }
            MetaError::Conflict(c) => FileError::Precondition(c.to_string()),
            MetaError::PathConflict(p) => FileError::AlreadyExists(p),
            MetaError::Limit(l) => FileError::Limit(l),
            MetaError::Stale(s) => FileError::Stale(s),
            MetaError::CursorGone(c) => FileError::CursorGone(c),
            e @ (MetaError::Backend(_) | MetaError::Unsupported(_)) => {
                FileError::Internal(e.to_string())
            }
        }
    }
}

impl From<ClusterError> for FileError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Config(msg) => FileError::Internal(msg),
            e @ ClusterError::ChunkLost { .. } => FileError::DataLoss(e.to_string()),
            other => FileError::Unavailable(other.to_string()),
        }
    }
}

/// One version of one file, with how well it is replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    pub path: String,
    pub number: u64,
    pub size: u64,
    /// The content hash (over the chunk ids), hex.
    pub hash: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The file is deleted (this version remains restorable).
    pub deleted: bool,
    pub chunk_count: u32,
    pub health: HealthCounts,
    pub replication: u32,
    /// The content's modification time as its client gave it (RFC 3339).
    pub modified: Option<String>,
}

/// What a client declares when it opens an upload session.
#[derive(Debug, Clone)]
pub struct UploadPlan {
    pub path: String,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
    pub hash: String,
    /// The content's modification time (RFC 3339), if the client gives
    /// one; see [`modified_time`].
    pub modified: Option<String>,
}

/// A client's modification time, checked and written the one way the
/// server stores it: RFC 3339 in UTC, with as many fractional digits as
/// the client gave (up to nanoseconds). Empty means none.
pub fn modified_time(t: &str) -> Result<Option<String>, FileError> {
    use time::format_description::well_known::Rfc3339;
    if t.is_empty() {
        return Ok(None);
    }
    let parsed = time::OffsetDateTime::parse(t, &Rfc3339).map_err(|_| {
        FileError::InvalidArgument(format!(
            "modification time {t:?} is not RFC 3339 (e.g. 2026-11-27T10:15:00.123456789Z)"
        ))
    })?;
    parsed
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map(Some)
        .map_err(|e| FileError::InvalidArgument(format!("modification time {t:?}: {e}")))
}

/// An open upload session, as returned to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    pub id: String,
    /// Chunk ids the cluster still lacks, each once, in file order.
    pub missing: Vec<String>,
    pub expires_at: String,
    /// The content the session uploads (BLAKE3, hex).
    pub hash: String,
}

/// Download budgets are never closed.
const OPEN: &str = "the download budget is open";

/// A chunk read for a download, verified. It counts against the download
/// budget (its stream's read-ahead and the server's) until dropped.
pub struct HeldChunk {
    pub data: Bytes,
    _room: (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    ),
}

/// The file service. Cheap to clone.
#[derive(Clone)]
pub struct Files {
    meta: Meta,
    cluster: Arc<Cluster>,
    cfg: FilesConfig,
    /// The server-wide download budget (see
    /// [`FilesConfig::download_memory_bytes`]).
    budget: DownloadBudget,
    uploads: UploadBudget,
    /// Bytes streamed uploads have received and not yet stored.
    upload_held: Arc<std::sync::atomic::AtomicU64>,
    feed: Feed,
    /// Open downloads per caller key (see [`Files::admit_download`]).
    downloads: PerKey<String>,
}

/// A download's places under its caller's keys, held while it is open.
pub type Admitted = crate::per_key::Held<String>;

/// The keys a download is counted under: who asks (`account NAME`,
/// `share link ID`) and from where.
pub fn download_keys(who: String, addr: Option<std::net::IpAddr>) -> Vec<String> {
    let mut keys = vec![who];
    if let Some(a) = addr {
        keys.push(format!("address {a}"));
    }
    keys
}

impl Files {
    pub fn new(meta: Meta, cluster: Arc<Cluster>, cfg: FilesConfig) -> Self {
        let budget = DownloadBudget::new(cfg.download_memory_bytes);
        let uploads = UploadBudget::new(cfg.upload_memory_bytes);
        Self {
            downloads: PerKey::new(cfg.max_downloads_per_caller),
            feed: Feed::new(meta.clone()),
            meta,
            cluster,
            cfg,
            budget,
            uploads,
            upload_held: Arc::default(),
        }
    }

    /// The server-wide upload budget.
    pub fn upload_budget(&self) -> &UploadBudget {
        &self.uploads
    }

    /// Grows `room` to cover `bytes`, or fails Busy after the queue wait.
    async fn cover(&self, room: &mut UploadRoom, bytes: u64) -> Result<(), FileError> {
        let wait = self.cfg.download_queue_wait;
        if room.cover(bytes, wait).await {
            Ok(())
        } else {
            Err(FileError::Busy(format!(
                "the server is receiving as many uploads as its memory allows \
                 (COFFER_UPLOAD_MEMORY_MIB) and none made room in {} s; try again",
                wait.as_secs()
            )))
        }
    }

    /// Bytes streamed uploads hold now: received, not yet stored.
    pub fn upload_held_bytes(&self) -> u64 {
        self.upload_held.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn config(&self) -> &FilesConfig {
        &self.cfg
    }

    /// The server-wide download budget.
    pub fn download_budget(&self) -> &DownloadBudget {
        &self.budget
    }

    /// A place for one more open download under each of `keys` (the
    /// account or share link, and the client address), or TooMany if one
    /// of them has [`FilesConfig::max_downloads_per_caller`] open.
    pub fn admit_download(&self, keys: &[String]) -> Result<Admitted, FileError> {
        self.downloads.enter(keys).map_err(|full| {
            FileError::TooMany(format!(
                "{full} has {} downloads open, as many as it may; finish one first",
                self.downloads.max()
            ))
        })
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Starts a streamed upload; the name is given at the end.
    pub fn begin_stream(&self, caller: &Caller) -> StreamUpload {
        StreamUpload {
            files: self.clone(),
            caller: caller.clone(),
            stream: None,
            chunker: Chunker::new(),
            room: None,
            memory: self.uploads.room(),
            held: 0,
            size: 0,
            chunks: Vec::new(),
            inflight: VecDeque::new(),
        }
    }

    /// Stores one chunk unless it is stored already (dedup). On return the
    /// chunk is stored and recently touched, or (with `stream`) referenced
    /// by that streamed upload, so gc spares it.
    pub(crate) async fn store_chunk(
        &self,
        data: Bytes,
        stream: Option<StreamRef>,
    ) -> Result<ChunkRef, FileError> {
        let chunk = ChunkRef {
            id: chunk_id(&data),
            size: data.len() as u32,
        };
        // Gc may be deleting this very chunk (it became unreferenced just
        // before); its deletion is short, so wait for it to end.
        let mut backoff = Duration::from_millis(20);
        for _ in 0..CHUNK_DELETION_WAITS {
            match self.meta.hold_chunk(&chunk, stream.as_ref()).await? {
                ChunkHold::Stored => return Ok(chunk),
                ChunkHold::Deleting => {}
                ChunkHold::Write(hold) => {
                    let acked = self.cluster.write_chunk(&chunk.id, data.clone()).await?;
                    match self.meta.record_chunk(&chunk, &hold, &acked).await {
                        Ok(()) => return Ok(chunk),
                        // Gc took the hold (the write outlasted its
                        // patience): the objects may be gone; write again.
                        Err(MetaError::ChunkDeleting(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        Err(FileError::Unavailable(format!(
            "chunk {} is still being deleted by gc; try again",
            chunk.id
        )))
    }

    fn with_health_counts(&self, row: VersionRow, health: HealthCounts) -> FileVersion {
        FileVersion {
            path: row.path,
            number: row.number,
            size: row.size,
            hash: row.hash,
            created_at: row.created_at,
            deleted: row.deleted,
            chunk_count: row.chunk_count,
            health,
            replication: self.cluster.config().replication as u32,
            modified: row.modified,
        }
    }

    async fn with_health(&self, row: VersionRow) -> Result<FileVersion, FileError> {
        let r = self.cluster.config().replication;
        let health = self.meta.version_health(row.file_id, row.number, r).await?;
        Ok(self.with_health_counts(row, health))
    }

    async fn find(
        &self,
        caller: &Caller,
        path: &str,
        version: Option<u64>,
    ) -> Result<VersionRow, FileError> {
        let path = paths::normalize(path)?;
        let row = self.meta.version(caller.owner, &path, version).await?;
        match (row, version) {
            (Some(row), Some(_)) => Ok(row),
            (Some(row), None) if !row.deleted => Ok(row),
            (Some(_), None) => Err(FileError::NotFound(path)),
            (None, Some(v)) => {
                let exists = self
                    .meta
                    .version(caller.owner, &path, None)
                    .await?
                    .is_some();
                Err(if exists {
                    FileError::VersionNotFound { path, version: v }
                } else {
                    FileError::NotFound(path)
                })
            }
            (None, None) => Err(FileError::NotFound(path)),
        }
    }

    /// Metadata of version `version` (latest live one if `None`).
    pub async fn metadata(
        &self,
        caller: &Caller,
        path: &str,
        version: Option<u64>,
    ) -> Result<FileVersion, FileError> {
        let row = self.find(caller, path, version).await?;
        self.with_health(row).await
    }

    /// Opens a version for reading: its metadata and ordered chunk list.
    pub async fn open(
        &self,
        caller: &Caller,
        path: &str,
        version: Option<u64>,
    ) -> Result<(FileVersion, Vec<ChunkRef>), FileError> {
        let row = self.find(caller, path, version).await?;
        let chunks = self.meta.version_chunks(row.file_id, row.number).await?;
        Ok((self.with_health(row).await?, chunks))
    }

    /// The contents of `chunks`, in order, verified, up to
    /// [`FilesConfig::read_ahead_bytes`] fetched ahead. Each chunk counts
    /// against the server-wide budget until the [`HeldChunk`] is dropped.
    pub fn read_chunks(
        &self,
        chunks: Vec<ChunkRef>,
    ) -> impl Stream<Item = Result<HeldChunk, FileError>> + Send + 'static {
        let cluster = self.cluster.clone();
        let global = self.budget.read_ahead().clone();
        // Budget in KiB: semaphore permits are u32, chunks up to MAX_CHUNK.
        let budget_kib = (self.cfg.read_ahead_bytes / 1024).max(MAX_CHUNK / 1024);
        // Read-ahead starts at one chunk and doubles with every chunk the
        // reader takes, up to the budget: a reader that stalls at once
        // holds one chunk, not the whole read-ahead.
        let first = MAX_CHUNK / 1024;
        let budget = Arc::new(tokio::sync::Semaphore::new(first));
        let granted = Arc::new(std::sync::atomic::AtomicUsize::new(first));
        let grow = budget.clone();
        futures::stream::iter(chunks)
            // In order, one at a time: a chunk waits for room in the budget,
            // so the earliest chunk is never starved by later ones.
            .then(move |c| {
                let budget = budget.clone();
                let global = global.clone();
                let cluster = cluster.clone();
                // Yields the read's handle on purpose: `buffered` below
                // awaits it, so reads overlap.
                #[allow(clippy::async_yields_async)]
                async move {
                    let kib = (c.size as usize).div_ceil(1024).clamp(1, first) as u32;
                    // This stream's read-ahead first, then the server's
                    // (a fair queue: the earliest waiter is served first).
                    let room = (
                        budget.acquire_many_owned(kib).await.expect(OPEN),
                        global.acquire_many_owned(kib).await.expect(OPEN),
                    );
                    // A task per chunk: fetches and BLAKE3 checks run on
                    // every core, not on the response's task. The task owns
                    // the room, so a read that outlives a dropped download
                    // still counts until it ends.
                    tokio::spawn(async move { (cluster.read_chunk(&c.id).await, room) })
                }
            })
            .map(|read| async move {
                match read.await {
                    Ok((r, room)) => r
                        .map_err(FileError::from)
                        .map(|data| HeldChunk { data, _room: room }),
                    Err(e) => Err(FileError::Internal(e.to_string())),
                }
            })
            .buffered(MAX_READ_AHEAD_CHUNKS)
            // The reader's progress earns more read-ahead; the room itself
            // goes with the chunk, given back when the reader drops it.
            .map(move |chunk| {
                let had = granted.load(std::sync::atomic::Ordering::Relaxed);
                if had < budget_kib {
                    let more = had.min(budget_kib - had);
                    granted.store(had + more, std::sync::atomic::Ordering::Relaxed);
                    grow.add_permits(more);
                }
                chunk
            })
    }

    /// A page of live files under `prefix`, and the token of the next page
    /// (empty on the last one).
    pub async fn list(
        &self,
        caller: &Caller,
        prefix: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<FileVersion>, String), FileError> {
        let prefix = paths::normalize_prefix(prefix)?;
        let limit = match page_size {
            0 => 100,
            n => n.min(1000),
        };
        let r = self.cluster.config().replication;
        let rows = self
            .meta
            .list_files(caller.owner, &prefix, page_token, limit + 1, r)
            .await?;
        let more = rows.len() > limit as usize;
        let out: Vec<FileVersion> = rows
            .into_iter()
            .take(limit as usize)
            .map(|(row, h)| self.with_health_counts(row, h))
            .collect();
        let next = if more {
            out.last().map(|v| v.path.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok((out, next))
    }

    /// A page of what is directly in `folder` (its files, and its
    /// sub-folders as prefixes ending in `/`), in path order, and the token
    /// of the next page (empty on the last one). Files and folders count
    /// alike against the page size. A sub-folder holding many files costs
    /// one query to step over, not a read of its files.
    pub async fn list_folder(
        &self,
        caller: &Caller,
        folder: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<FileVersion>, Vec<String>, String), FileError> {
        let mut prefix = paths::normalize_prefix(folder)?;
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let limit = match page_size {
            0 => 100,
            n => n.min(1000),
        } as usize;
        let r = self.cluster.config().replication;
        let (mut files, mut folders) = (Vec::new(), Vec::<String>::new());
        // Sorts after every path inside a folder `f/` (as the next page's
        // token, and to step over the folder's files).
        let past = |f: &str| format!("{f}\u{10FFFF}");
        let mut after = page_token.to_string();
        let mut last = String::new();
        let mut skip: Option<String> = None;
        loop {
            let rows = self
                .meta
                .list_files(caller.owner, &prefix, &after, limit as u32 + 1, r)
                .await?;
            let exhausted = rows.len() <= limit;
            for (row, h) in rows {
                after = row.path.clone();
                if skip.as_deref().is_some_and(|f| row.path.starts_with(f)) {
                    continue;
                }
                if files.len() + folders.len() == limit {
                    // Full, and something follows.
                    return Ok((files, folders, last));
                }
                match row.path[prefix.len()..].find('/') {
                    None => {
                        last = row.path.clone();
                        files.push(self.with_health_counts(row, h));
                    }
                    Some(i) => {
                        let f = row.path[..prefix.len() + i + 1].to_string();
                        last = past(&f);
                        folders.push(f.clone());
                        skip = Some(f);
                    }
                }
            }
            if exhausted {
                return Ok((files, folders, String::new()));
            }
            // Step over the rest of a folder the batch ended in.
            if let Some(f) = skip.as_deref().filter(|f| after.starts_with(f)) {
                after = past(f);
            }
        }
    }

    /// A page of a file's versions, newest first, and the token of the
    /// next page (empty on the last one).
    pub async fn versions(
        &self,
        caller: &Caller,
        path: &str,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<FileVersion>, String), FileError> {
        let path = paths::normalize(path)?;
        let limit = match page_size {
            0 => 100,
            n => n.min(1000),
        };
        let before = match page_token {
            "" => None,
            t => Some(t.parse::<u64>().map_err(|_| {
                FileError::InvalidArgument(format!("pageToken {t:?} is not one this server gave"))
            })?),
        };
        let r = self.cluster.config().replication;
        let rows = self
            .meta
            .list_versions(caller.owner, &path, before, limit + 1, r)
            .await?;
        if rows.is_empty() && before.is_none() {
            return Err(FileError::NotFound(path));
        }
        let more = rows.len() > limit as usize;
        let out: Vec<FileVersion> = rows
            .into_iter()
            .take(limit as usize)
            .map(|(row, h)| self.with_health_counts(row, h))
            .collect();
        let next = match out.last() {
            Some(v) if more => v.number.to_string(),
            _ => String::new(),
        };
        Ok((out, next))
    }

    /// Makes version `number` the newest again, as a new version.
    pub async fn restore(
        &self,
        caller: &Caller,
        path: &str,
        number: u64,
    ) -> Result<FileVersion, FileError> {
        let row = self.find(caller, path, Some(number)).await?;
        let restored = self
            .meta
            .restore_version(caller.owner, &row.path, number, &caller.name)
            .await?
            .ok_or_else(|| FileError::VersionNotFound {
                path: row.path.clone(),
                version: number,
            })?;
        self.feed.changed(caller.owner);
        self.with_health(restored).await
    }

    /// Deletes a file (its versions stay restorable), if `mode` holds;
    /// returns its latest version number.
    pub async fn delete(
        &self,
        caller: &Caller,
        path: &str,
        mode: PutMode,
    ) -> Result<u64, FileError> {
        let path = paths::normalize(path)?;
        let latest = self
            .meta
            .delete_file(caller.owner, &path, mode)
            .await?
            .ok_or(FileError::NotFound(path))?;
        self.feed.changed(caller.owner);
        Ok(latest)
    }

    /// Moves a live file to another name (if `mode` holds for it): the old
    /// name is deleted, restorable, and the new one gets a version with
    /// the same content.
    pub async fn move_file(
        &self,
        caller: &Caller,
        from: &str,
        to: &str,
        mode: PutMode,
    ) -> Result<FileVersion, FileError> {
        let (from, to) = (paths::normalize(from)?, paths::normalize(to)?);
        if from == to {
            return Err(FileError::InvalidArgument(format!(
                "{from:?} cannot be moved onto itself"
            )));
        }
        let row = self
            .meta
            .move_file(caller.owner, &from, &to, mode, &caller.name)
            .await?
            .ok_or(FileError::NotFound(from))?;
        self.feed.changed(caller.owner);
        self.with_health(row).await
    }

    /// The caller's change feed.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// What the caller's retained versions take, and their quota.
    pub async fn usage(&self, caller: &Caller) -> Result<crate::meta::Usage, FileError> {
        Ok(self.meta.usage(caller.owner).await?)
    }

    /// Opens an upload session for `plan` and says which chunks to send.
    pub async fn start_upload(
        &self,
        caller: &Caller,
        plan: UploadPlan,
    ) -> Result<SessionStatus, FileError> {
        let path = paths::normalize(&plan.path)?;
        validate_plan(&plan)?;
        let (session, missing) = self
            .meta
            .open_session(&NewSession {
                owner: caller.owner,
                path,
                size: plan.size,
                hash: plan.hash,
                chunks: plan.chunks,
                ttl: self.cfg.session_ttl,
                max_open: self.cfg.max_open_sessions,
                modified: plan.modified,
            })
            .await?;
        Ok(SessionStatus {
            id: session.id,
            missing,
            expires_at: session.expires_at,
            hash: session.hash,
        })
    }

    async fn session(&self, caller: &Caller, id: &str) -> Result<SessionRow, FileError> {
        self.meta
            .session(id, caller.owner)
            .await?
            .ok_or_else(|| FileError::SessionNotFound(id.to_string()))
    }

    /// What an open session still lacks (resume after a dropped connection).
    pub async fn resume_upload(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<SessionStatus, FileError> {
        let s = self.session(caller, id).await?;
        let missing = self.meta.unknown_chunks(caller.owner, &s.chunks).await?;
        Ok(SessionStatus {
            id: s.id,
            missing,
            expires_at: s.expires_at,
            hash: s.hash,
        })
    }

    /// Stores one chunk of a session after checking it is one of the
    /// session's and that its bytes hash to its id. Returns how many of the
    /// session's chunks are still missing.
    pub async fn put_chunk(
        &self,
        caller: &Caller,
        id: &str,
        chunk: &str,
        data: Bytes,
    ) -> Result<usize, FileError> {
        let slot = self.meta.chunk_slot(id, caller.owner, chunk).await?;
        let declared = match slot {
            ChunkSlot::NoSession => return Err(FileError::SessionNotFound(id.to_string())),
            ChunkSlot::NotListed => {
                return Err(FileError::InvalidArgument(format!(
                    "chunk {chunk:?} is not part of upload {id}"
                )))
            }
            ChunkSlot::Declared(size) => size,
        };
        if data.len() != declared as usize {
            return Err(FileError::InvalidArgument(format!(
                "chunk {chunk} has {} bytes; the upload declared {declared}",
                data.len(),
            )));
        }
        if chunk_id(&data) != chunk {
            return Err(FileError::InvalidArgument(format!(
                "chunk data does not match its id {chunk} (BLAKE3 mismatch)"
            )));
        }
        // The session references the chunk already. Stored before or not,
        // the caller has shown they have it.
        let mut memory = self.uploads.room();
        self.cover(&mut memory, data.len() as u64).await?;
        self.store_chunk(data, None).await?;
        drop(memory);
        let left = self.meta.chunk_sent(id, caller.owner, chunk).await?;
        Ok(left as usize)
    }

    /// Abandons the caller's session `id`: it no longer counts against
    /// their open sessions, and chunks only it held become garbage.
    pub async fn abort_upload(&self, caller: &Caller, id: &str) -> Result<(), FileError> {
        let s = self.session(caller, id).await?;
        self.meta.drop_session(&s.id).await?;
        Ok(())
    }

    /// Commits a session whose chunks are all stored as a new version, if
    /// `mode` holds.
    pub async fn finish_upload(
        &self,
        caller: &Caller,
        id: &str,
        mode: PutMode,
    ) -> Result<FileVersion, FileError> {
        let s = self.session(caller, id).await?;
        let row = self.meta.finish_session(&s, &caller.name, mode).await?;
        self.feed.changed(caller.owner);
        self.with_health(row).await
    }
}

fn validate_plan(plan: &UploadPlan) -> Result<(), FileError> {
    let bad = |m: String| Err(FileError::InvalidArgument(m));
    if !is_chunk_id(&plan.hash) {
        return bad(
            "contentHash must be the content hash (over the chunk ids): 64 lowercase hex digits"
                .into(),
        );
    }
    let last = plan.chunks.len().saturating_sub(1);
    let mut total = 0u64;
    let mut sizes = std::collections::HashMap::new();
    for (i, c) in plan.chunks.iter().enumerate() {
        if !is_chunk_id(&c.id) {
            return bad(format!(
                "chunk {i}: id must be 64 lowercase hex digits (BLAKE3)"
            ));
        }
        if c.size == 0 || c.size as usize > MAX_CHUNK {
            return bad(format!(
                "chunk {i}: size {} is outside 1..={MAX_CHUNK}",
                c.size
            ));
        }
        // FastCDC cuts no chunk shorter than the minimum but the last, so
        // the number of chunks (and the session's bookkeeping) is bounded
        // by the size.
        if i < last && (c.size as usize) < MIN_CHUNK {
            return bad(format!(
                "chunk {i}: size {} is below the chunking minimum of {MIN_CHUNK} bytes \
                 (only the last chunk may be shorter)",
                c.size
            ));
        }
        if let Some(earlier) = sizes.insert(c.id.as_str(), c.size) {
            if earlier != c.size {
                return bad(format!(
                    "chunk {i}: id {} was listed before with size {earlier}, now {}",
                    c.id, c.size
                ));
            }
        }
        total += c.size as u64;
    }
    if total != plan.size {
        return bad(format!(
            "chunk sizes add up to {total} bytes, but the file size is {}",
            plan.size
        ));
    }
    // The server computes the content hash itself; a claim that differs
    // is refused rather than served as the version's hash.
    let hash = content_hash(plan.chunks.iter().map(|c| c.id.as_str()))
        .map_err(|e| FileError::InvalidArgument(e.to_string()))?;
    if hash != plan.hash {
        return bad(format!(
            "contentHash {} is not the hash of the listed chunks ({hash}): it is \
             BLAKE3 (derive-key \"{CONTENT_HASH_CONTEXT}\") over the chunk ids in order",
            plan.hash
        ));
    }
    Ok(())
}

/// A streamed upload: bytes in, chunks stored as they are cut (a few at a
/// time), one version committed by [`StreamUpload::finish`]. Its chunks
/// are referenced from the metadata as they are stored, so gc spares them
/// however long the stream takes. Dropping it commits nothing.
pub struct StreamUpload {
    files: Files,
    caller: Caller,
    /// The metadata's handle on this upload's chunk references, opened
    /// with the first chunk.
    stream: Option<String>,
    chunker: Chunker,
    /// What the caller's quota leaves (`Some(None)`: no quota), read at
    /// the first bytes: an upload that will not fit stops early, before it
    /// stores much. Each chunk's reference is checked against the quota as
    /// it is stored, and the commit checks again.
    room: Option<Option<(u64, u64)>>,
    /// The upload's room in the server-wide upload budget, covering
    /// `held`.
    memory: UploadRoom,
    /// Bytes received and not yet stored (counted in the server's gauge).
    held: u64,
    size: u64,
    chunks: Vec<ChunkRef>,
    inflight: VecDeque<JoinHandle<Result<ChunkRef, FileError>>>,
}

impl StreamUpload {
    /// Adds the next bytes of the file.
    pub async fn push(&mut self, data: &[u8]) -> Result<(), FileError> {
        if self.room.is_none() {
            // The upload counts against the caller's open uploads from its
            // first bytes.
            self.stream().await?;
            let u = self.files.meta.usage(self.caller.owner).await?;
            self.room = Some(u.quota.map(|q| (u.used.saturating_add(u.reserved), q)));
        }
        self.size += data.len() as u64;
        self.hold(data.len() as u64).await?;
        if let Some(Some((used, quota))) = self.room {
            if used.saturating_add(self.size) > quota {
                return Err(FileError::Limit(crate::meta::Limit::Quota {
                    used,
                    more: self.size,
                    quota,
                }));
            }
        }
        for chunk in self.chunker.push(data) {
            self.submit(chunk).await?;
        }
        Ok(())
    }

    async fn submit(&mut self, chunk: Bytes) -> Result<(), FileError> {
        while self.inflight.len() >= self.files.cfg.upload_parallelism.max(1) {
            self.collect_one().await?;
        }
        let stream = self.stream().await?;
        let index = (self.chunks.len() + self.inflight.len()) as u32;
        let files = self.files.clone();
        self.inflight.push_back(tokio::spawn(async move {
            files
                .store_chunk(chunk, Some(StreamRef { stream, index }))
                .await
        }));
        Ok(())
    }

    /// The metadata's handle on this upload, opened on first use.
    async fn stream(&mut self) -> Result<String, FileError> {
        if let Some(s) = &self.stream {
            return Ok(s.clone());
        }
        let cfg = &self.files.cfg;
        let s = (self.files.meta)
            .open_stream(self.caller.owner, cfg.session_ttl, cfg.max_open_sessions)
            .await?;
        self.stream = Some(s.clone());
        Ok(s)
    }

    async fn collect_one(&mut self) -> Result<(), FileError> {
        if let Some(handle) = self.inflight.pop_front() {
            let chunk = handle
                .await
                .map_err(|e| FileError::Internal(e.to_string()))??;
            self.release(chunk.size as u64);
            self.chunks.push(chunk);
        }
        Ok(())
    }

    /// Counts `n` more bytes held, once the upload budget has room for
    /// them.
    async fn hold(&mut self, n: u64) -> Result<(), FileError> {
        let files = self.files.clone();
        files.cover(&mut self.memory, self.held + n).await?;
        self.held += n;
        self.files
            .upload_held
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn release(&mut self, n: u64) {
        let n = n.min(self.held);
        self.held -= n;
        self.memory.shrink(self.held);
        self.files
            .upload_held
            .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Stores the rest and commits the file as a new version of `path`, if
    /// `mode` holds, carrying the client's
    /// modification time (checked with [`modified_time`]).
    pub async fn finish(
        mut self,
        path: &str,
        mode: PutMode,
        modified: Option<String>,
    ) -> Result<FileVersion, FileError> {
        let path = paths::normalize(path)?;
        let chunker = std::mem::take(&mut self.chunker);
        for chunk in chunker.finish() {
            self.submit(chunk).await?;
        }
        while !self.inflight.is_empty() {
            self.collect_one().await?;
        }
        let v = NewVersion {
            owner: self.caller.owner,
            path,
            size: self.size,
            hash: content_hash(self.chunks.iter().map(|c| c.id.as_str()))
                .map_err(|e| FileError::Internal(e.to_string()))?,
            chunks: std::mem::take(&mut self.chunks),
            uploader: self.caller.name.clone(),
            // The commit replaces the stream's references.
            stream: self.stream.take(),
            session: None,
            mode,
            modified,
        };
        let row = self.files.meta.commit_version(&v).await?;
        self.files.feed.changed(self.caller.owner);
        self.files.with_health(row).await
    }
}

impl Drop for StreamUpload {
    fn drop(&mut self) {
        // An abandoned upload stops storing; what it stored is left
        // unreferenced, to garbage collection.
        for h in &self.inflight {
            h.abort();
        }
        let held = self.held;
        self.release(held);
        if let (Some(stream), Ok(rt)) = (self.stream.take(), tokio::runtime::Handle::try_current())
        {
            let meta = self.files.meta.clone();
            rt.spawn(async move {
                if let Err(e) = meta.drop_session(&stream).await {
                    // It expires on its own.
                    tracing::debug!(error = %e, "cannot drop an abandoned stream's references");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::store::faults::FaultyStore;
    use crate::store::local::LocalStore;
    use crate::store::BlobStore;
    use std::path::Path;

    /// One slow local node holding `sizes.len()` chunks; returns the
    /// domain with `read_ahead_bytes`, the node, and the chunks in order.
    async fn slow_node(
        dir: &Path,
        sizes: &[usize],
        read_ahead_bytes: usize,
    ) -> (Files, Arc<FaultyStore>, Vec<(ChunkRef, Bytes)>) {
        let local = Arc::new(LocalStore::new("n0".to_string(), dir.join("n0")));
        local.ensure_ready().await.unwrap();
        let node = Arc::new(FaultyStore::new(local));
        let nodes: Vec<(String, Arc<dyn BlobStore>)> = vec![("n0".into(), node.clone())];
        let (cluster, _events) = Cluster::new(nodes, ClusterConfig::for_nodes(1)).unwrap();
        let mut chunks = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let data = Bytes::from(vec![i as u8; size]);
            let id = chunk_id(&data);
            cluster.write_chunk(&id, data.clone()).await.unwrap();
            let size = size as u32;
            chunks.push((ChunkRef { id, size }, data));
        }
        node.set_read_delay(Duration::from_millis(20));
        let cfg = FilesConfig {
            read_ahead_bytes,
            ..FilesConfig::default()
        };
        let meta: Meta = Arc::new(crate::meta::sqlite::open_in_memory().unwrap());
        (Files::new(meta, Arc::new(cluster), cfg), node, chunks)
    }

    async fn read_all(files: &Files, chunks: &[(ChunkRef, Bytes)]) -> Vec<Bytes> {
        let refs = chunks.iter().map(|(r, _)| r.clone()).collect();
        let stream = files.read_chunks(refs);
        futures::pin_mut!(stream);
        let mut out = Vec::new();
        while let Some(piece) = stream.next().await {
            out.push(piece.unwrap().data);
        }
        out
    }

    #[tokio::test]
    async fn read_ahead_is_bounded_by_bytes_and_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        const MIB: usize = 1024 * 1024;
        // 4 MiB of budget, 1 MiB chunks: at most 4 reads at once.
        let (files, node, chunks) = slow_node(dir.path(), &[MIB; 12], 4 * MIB).await;
        let got = read_all(&files, &chunks).await;
        let want: Vec<Bytes> = chunks.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(got, want);
        let max = node.max_reads_in_flight();
        assert!(max > 1, "nothing was read ahead");
        assert!(max <= 4, "{max} reads at once with room for 4");
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_budget_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        // A budget of one byte still lets one whole chunk through at a time.
        let sizes = [3 * 1024 * 1024, 10, MAX_CHUNK, 1];
        let (files, _node, chunks) = slow_node(dir.path(), &sizes, 1).await;
        let got = read_all(&files, &chunks).await;
        let want: Vec<Bytes> = chunks.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn uploads_wait_for_room_in_the_server_wide_budget_then_give_up() {
        let dir = tempfile::tempdir().unwrap();
        let (mut files, node, _) = slow_node(dir.path(), &[], 0).await;
        // The smallest budget (8 chunks of 4 MiB), a short wait, and
        // writes slow enough that nothing is stored while a second upload
        // waits.
        files.cfg.download_queue_wait = Duration::from_millis(300);
        files.uploads = UploadBudget::new(1);
        let total = files.upload_budget().used_kib().1 as u64 * 1024;
        node.set_write_delay(Duration::from_secs(2));
        // Bytes that do not repeat (so they chunk like real content).
        let big = |seed: u8, n: u64| {
            let mut out = vec![0u8; n as usize];
            blake3::Hasher::new()
                .update(&[seed])
                .finalize_xof()
                .fill(&mut out);
            out
        };
        let first = big(1, total - 8 * 1024 * 1024);
        let second = big(2, 9 * 1024 * 1024);
        let anyone = Caller::anyone();
        let mut a = files.begin_stream(&anyone);
        let f = files.clone();
        let holder = tokio::spawn(async move {
            a.push(&first).await.unwrap();
            a.finish("a", PutMode::Overwrite, None).await.unwrap()
        });
        // Wait until the first upload holds its bytes.
        while f.upload_budget().used_kib().0 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut b = f.begin_stream(&anyone);
        let err = b.push(&second).await.unwrap_err();
        assert!(matches!(err, FileError::Busy(_)), "{err}");
        assert!(
            err.to_string().contains("COFFER_UPLOAD_MEMORY_MIB"),
            "{err}"
        );
        drop(b);
        // The first is unharmed, and everything is given back.
        let v = holder.await.unwrap();
        assert_eq!(v.size, total - 8 * 1024 * 1024);
        assert_eq!(f.upload_budget().used_kib().0, 0);
        assert_eq!(f.upload_held_bytes(), 0);
        let mut c = f.begin_stream(&anyone);
        node.set_write_delay(Duration::ZERO);
        c.push(&big(3, 9 * 1024 * 1024)).await.unwrap();
        c.finish("c", PutMode::Overwrite, None).await.unwrap();
    }
}
