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
//!
//! By concern: `read` (metadata, and downloads read ahead within the
//! budgets), `tree` (listings, versions, restore, delete and move),
//! `folders` (empty folders, and deleting, moving or copying whole ones),
//! `session` (upload sessions, the client-cut way in), `stream` (the
//! server-cut way in) and [`error`] ([`FileError`]).

pub mod archive;
pub mod error;
pub mod feed;
mod folders;
mod read;
mod session;
mod stream;
mod thumbs;
mod tree;

pub use error::FileError;
pub use folders::folder_path;
pub use read::{download_keys, Admitted, HeldChunk};
pub use session::{modified_time, Answer, SessionStatus, UploadPlan, MAX_BATCH};
pub use stream::StreamUpload;
pub use thumbs::Thumb;

use crate::budget::{DownloadBudget, UploadBudget, UploadRoom};
use crate::caller::Caller;
use crate::cluster::Cluster;
use crate::meta::{
    ChunkHold, ChunkRef, ChunkSlot, HealthCounts, Meta, MetaError, NewSession, NewVersion,
    SessionRow, StreamRef, VersionRow,
};
use crate::packs::filler::Stored;
use crate::per_key::PerKey;
use bytes::Bytes;
use coffer_proto::chunking::{
    chunk_id, content_hash, is_chunk_id, Chunker, CONTENT_HASH_CONTEXT, MAX_CHUNK, MIN_CHUNK,
};
use coffer_proto::paths;
use coffer_proto::put::PutMode;
use feed::Feed;
use futures::{Stream, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

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
    /// Caps on the thumbnails of images.
    pub thumbs: crate::thumbs::ThumbConfig,
    /// Small chunks go into shared packs, sealed as this says; `None`:
    /// every chunk is an object of its own.
    pub packs: Option<crate::packs::filler::FillerConfig>,
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
            thumbs: crate::thumbs::ThumbConfig::default(),
            packs: None,
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
    /// See [`crate::meta::VersionRow::checksums`].
    pub checksums: Option<String>,
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
    /// Caps on thumbnails, and the slots for making them.
    thumbs: crate::thumbs::ThumbConfig,
    thumb_slots: Arc<tokio::sync::Semaphore>,
    /// Where small chunks go, when packs are on.
    filler: Option<crate::packs::filler::Filler>,
}

impl Files {
    pub fn new(meta: Meta, cluster: Arc<Cluster>, cfg: FilesConfig) -> Self {
        let cfg_thumbs = cfg.thumbs.clone();
        let budget = DownloadBudget::new(cfg.download_memory_bytes);
        let uploads = UploadBudget::new(cfg.upload_memory_bytes);
        let filler = cfg
            .packs
            .map(|p| crate::packs::filler::Filler::start(cluster.clone(), meta.clone(), p));
        Self {
            filler,
            downloads: PerKey::new(cfg.max_downloads_per_caller),
            feed: Feed::new(meta.clone()),
            meta,
            cluster,
            cfg,
            budget,
            uploads,
            upload_held: Arc::default(),
            thumb_slots: Arc::new(tokio::sync::Semaphore::new(cfg_thumbs.concurrent)),
            thumbs: cfg_thumbs,
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
                    // Gc may take the hold (the write outlasting its
                    // patience): the objects may be gone; write again.
                    let filler = self
                        .filler
                        .as_ref()
                        .filter(|_| data.len() < crate::packs::PACK_BELOW);
                    if let Some(filler) = filler {
                        match filler.store(chunk.clone(), hold, data.clone()).await {
                            Ok(Stored::Recorded) => return Ok(chunk),
                            Ok(Stored::HoldLost) => {}
                            Err(e) => return Err(FileError::Unavailable(e)),
                        }
                    } else {
                        let acked = self.cluster.write_chunk(&chunk.id, data.clone()).await?;
                        match self.meta.record_chunk(&chunk, &hold, &acked).await {
                            Ok(()) => return Ok(chunk),
                            Err(MetaError::ChunkDeleting(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
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
            checksums: row.checksums,
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

    /// The caller's change feed.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// What the caller's retained versions take, and their quota.
    pub async fn usage(&self, caller: &Caller) -> Result<crate::meta::Usage, FileError> {
        Ok(self.meta.usage(caller.owner).await?)
    }
}

#[cfg(test)]
mod tests;
