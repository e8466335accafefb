//! A [`BlobStore`] decorator that injects failures, for testing failure
//! paths: unreachable nodes, lost objects, corrupt and slow reads. It also
//! counts how many reads overlap, for tests of read-ahead limits.

use super::{BlobStore, ObjectInfo, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Wraps any store; each fault can be switched on and off while in use.
pub struct FaultyStore {
    inner: Arc<dyn BlobStore>,
    /// Every call fails as [`StoreError::Unavailable`].
    pub down: AtomicBool,
    /// Reads return the object with its first byte flipped.
    pub corrupt_reads: AtomicBool,
    /// Milliseconds each read waits before it starts.
    pub read_delay_ms: AtomicU64,
    /// Milliseconds each write waits before it starts.
    pub write_delay_ms: AtomicU64,
    reads_in_flight: AtomicUsize,
    max_reads_in_flight: AtomicUsize,
    ranged_reads: AtomicUsize,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn BlobStore>) -> Self {
        Self {
            inner,
            down: AtomicBool::new(false),
            corrupt_reads: AtomicBool::new(false),
            read_delay_ms: AtomicU64::new(0),
            write_delay_ms: AtomicU64::new(0),
            reads_in_flight: AtomicUsize::new(0),
            max_reads_in_flight: AtomicUsize::new(0),
            ranged_reads: AtomicUsize::new(0),
        }
    }

    pub fn set_read_delay(&self, delay: std::time::Duration) {
        self.read_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_write_delay(&self, delay: std::time::Duration) {
        self.write_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// The most reads that were in progress at the same time so far.
    /// Ranged reads asked of this store so far.
    pub fn ranged_reads(&self) -> usize {
        self.ranged_reads.load(Ordering::SeqCst)
    }

    pub fn max_reads_in_flight(&self) -> usize {
        self.max_reads_in_flight.load(Ordering::SeqCst)
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
        let delay = self.write_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        self.inner.put(key, data).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.check()?;
        let now = self.reads_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_reads_in_flight.fetch_max(now, Ordering::SeqCst);
        let delay = self.read_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let data = self.inner.get(key).await;
        self.reads_in_flight.fetch_sub(1, Ordering::SeqCst);
        let data = data?;
        if self.corrupt_reads.load(Ordering::SeqCst) && !data.is_empty() {
            let mut v = data.to_vec();
            v[0] ^= 0xff;
            return Ok(Bytes::from(v));
        }
        Ok(data)
    }

    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes, StoreError> {
        self.check()?;
        self.ranged_reads.fetch_add(1, Ordering::SeqCst);
        let data = self.inner.get_range(key, range).await?;
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
