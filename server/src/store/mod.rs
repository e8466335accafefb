//! Storage nodes: the narrow [`BlobStore`] trait every node implements, and
//! its backends.
//!
//! - [`local::LocalStore`]: a directory on this machine.
//! - [`s3::S3Store`]: any S3-compatible server (MinIO, Garage, AWS S3, …).
//! - [`faults::FaultyStore`]: a decorator that injects failures, for tests.
//!
//! A store holds opaque objects by key. Coffer only ever writes immutable,
//! content-addressed chunks under [`chunk_key`], so every put is idempotent.

pub mod faults;
pub mod local;
pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use thiserror::Error;

type Source = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong talking to one store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("{store}: object {key} not found")]
    NotFound { store: String, key: String },
    /// The key is not one this store can hold.
    #[error("{store}: invalid object key {key:?}")]
    InvalidKey { store: String, key: String },
    /// The store could not be reached or did not answer in time; trying
    /// again later may succeed.
    #[error("{store} is unavailable: {source}")]
    Unavailable { store: String, source: Source },
    /// Any other failure (permissions, a malformed answer, a full disk…).
    #[error("{store}: {source}")]
    Other { store: String, source: Source },
}

impl StoreError {
    /// Whether retrying the same call later can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// Where [`BlobStore::get_into`] puts the pieces of an object.
pub trait Sink {
    fn take(&mut self, piece: &[u8]) -> std::io::Result<()>;
}

/// A storage node.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// A short name for logs and errors.
    fn name(&self) -> &str;
    /// Makes the store ready for use (creates the bucket or directory).
    async fn ensure_ready(&self) -> Result<(), StoreError>;
    /// Writes an object whole; once `Ok` it is durable and readable.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError>;
    /// Reads an object whole; [`StoreError::NotFound`] if absent.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;
    /// Hands an object to `out` piece by piece as it arrives, never
    /// holding it whole (stores that cannot stream read it whole); returns
    /// its size. `out` failing ends the read with its error.
    async fn get_into(&self, key: &str, out: &mut (dyn Sink + Send)) -> Result<u64, StoreError> {
        let data = self.get(key).await?;
        out.take(&data).map_err(|e| StoreError::Other {
            store: self.name().to_string(),
            source: e.into(),
        })?;
        Ok(data.len() as u64)
    }
    /// Bytes `range` of an object, exactly: an object that ends before
    /// `range.end` is an error ([`StoreError::Other`]), like one whose
    /// bytes are wrong, since callers read ranges an index names.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError>;
    /// Deletes an object; deleting an absent object succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Every object whose key starts with `prefix`, in no set order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
}

/// The error for an object shorter than the range asked of it.
pub fn short_object(store: &str, key: &str, range: &Range<u64>, got: u64) -> StoreError {
    StoreError::Other {
        store: store.to_string(),
        source: format!(
            "object {key} has {got} of the {} bytes asked from offset {}",
            range.end - range.start,
            range.start
        )
        .into(),
    }
}

/// Where the chunk with id `id` lives on every node: `chunks/ab/abcdef…`.
pub fn chunk_key(id: &str) -> String {
    format!("chunks/{}/{}", &id[..2.min(id.len())], id)
}

/// The chunk id in a key made by [`chunk_key`], if it is one.
pub fn chunk_id_of_key(key: &str) -> Option<&str> {
    let id = key.strip_prefix("chunks/")?.split_once('/')?.1;
    coffer_proto::chunking::is_chunk_id(id).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_round_trip() {
        let id = coffer_proto::chunking::chunk_id(b"x");
        let key = chunk_key(&id);
        assert_eq!(key, format!("chunks/{}/{}", &id[..2], id));
        assert_eq!(chunk_id_of_key(&key), Some(id.as_str()));
        assert_eq!(chunk_id_of_key("chunks/ab/nothex"), None);
        assert_eq!(chunk_id_of_key("other/x"), None);
    }
}
