//! [`FileError`]: why a file operation failed, and how the layers below
//! turn into it. Mapped to gRPC statuses and HTTP codes in `api::status`.

use crate::cluster::ClusterError;
use crate::meta::MetaError;
use coffer_proto::paths::PathError;
use thiserror::Error;

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
            e @ MetaError::StreamGone(_) => FileError::Timeout(e.to_string()),
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

impl From<crate::zip::ZipError> for FileError {
    fn from(e: crate::zip::ZipError) -> Self {
        // Sizes and names come from the metadata, so a refusal is ours.
        FileError::Internal(e.to_string())
    }
}
