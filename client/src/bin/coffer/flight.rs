//! How many files a tree's transfers keep in flight: many small ones, as
//! their calls share batches (`StartUploads`, `PutChunks`,
//! `FinishUploads`) and their chunks fill the server's packs together,
//! but only so many bytes of them; few larger ones, each of which holds a
//! few chunks in memory.

use tokio::sync::{Semaphore, SemaphorePermit};

/// Files in flight at most, whatever their size.
pub const FILES: usize = 4096;

/// A file this size or smaller is small: one chunk, sent in a batch.
const SMALL: u64 = coffer_client::upload::SMALL_CHUNK as u64;
/// Bytes of small files in flight at most (each file's bytes are read
/// when its chunk is sent).
const SMALL_BYTES: u64 = 64 * 1024 * 1024;
/// Larger files in flight at most: 32 measured no faster than 16
/// (BENCHMARKS.md).
const LARGER: usize = 16;
/// Files above this size in flight at most: each already sends several
/// chunks in parallel.
const LARGE: u64 = 8 * 1024 * 1024;
const LARGE_AT_ONCE: usize = 2;
/// Downloads in flight at most: each holds a file open until it is
/// whole, and the server lets an account have 32 open (half of them
/// leaves room for its other clients).
const DOWNLOADS: usize = 16;

const CLOSED: &str = "the semaphores are never closed";

/// Admits files into flight by their size. See the module's documentation.
pub struct Flight {
    small_kib: Semaphore,
    larger: Semaphore,
    large: Semaphore,
    downloads: Semaphore,
}

/// A file's place in flight, given back when dropped.
pub struct Admitted<'a> {
    _permits: Vec<SemaphorePermit<'a>>,
}

impl Flight {
    pub fn new() -> Self {
        Flight {
            small_kib: Semaphore::new((SMALL_BYTES / 1024) as usize),
            larger: Semaphore::new(LARGER),
            large: Semaphore::new(LARGE_AT_ONCE),
            downloads: Semaphore::new(DOWNLOADS),
        }
    }

    /// Waits until a download of a file of `size` bytes may go.
    pub async fn download(&self, size: u64) -> Admitted<'_> {
        let turn = self.downloads.acquire().await.expect(CLOSED);
        let mut admitted = self.admit(size).await;
        admitted._permits.push(turn);
        admitted
    }

    /// Waits until a file of `size` bytes may go up (or a step moving so
    /// many bytes that is no download).
    pub async fn admit(&self, size: u64) -> Admitted<'_> {
        let closed = CLOSED;
        let mut permits = Vec::new();
        if size <= SMALL {
            let kib = size.div_ceil(1024).max(1) as u32;
            permits.push(self.small_kib.acquire_many(kib).await.expect(closed));
        } else {
            permits.push(self.larger.acquire().await.expect(closed));
            if size > LARGE {
                permits.push(self.large.acquire().await.expect(closed));
            }
        }
        Admitted { _permits: permits }
    }
}
