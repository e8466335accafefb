//! A [`BlobStore`] decorator that injects failures, for testing failure
//! paths: unreachable nodes, lost objects and corrupt reads.

use super::{BlobStore, ObjectInfo, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Wraps any store; each fault can be switched on and off while in use.
pub struct FaultyStore {
    inner: Arc<dyn BlobStore>,
    /// Every call fails as [`StoreError::Unavailable`].
    pub down: AtomicBool,
    /// Reads return the object with its first byte flipped.
    pub corrupt_reads: AtomicBool,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn BlobStore>) -> Self {
        Self {
            inner,
            down: AtomicBool::new(false),
            corrupt_reads: AtomicBool::new(false),
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn set_corrupt_reads(&self, on: bool) {
        self.corrupt_reads.store(on, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                store: self.inner.name().to_string(),
                source: "injected fault: node down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl BlobStore for FaultyStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn ensure_ready(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ensure_ready().await
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put(key, data).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.check()?;
        let data = self.inner.get(key).await?;
        if self.corrupt_reads.load(Ordering::SeqCst) && !data.is_empty() {
            let mut v = data.to_vec();
            v[0] ^= 0xff;
            return Ok(Bytes::from(v));
        }
        Ok(data)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.check()?;
        self.inner.list(prefix).await
    }
}
