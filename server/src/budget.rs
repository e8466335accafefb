//! The server-wide memory budgets for transfers.
//!
//! Uploads: every byte a streamed upload or a `PutChunk` holds, received
//! and not yet stored, is counted against `COFFER_UPLOAD_MEMORY_MIB`
//! ([`UploadBudget`]). An upload that finds no room waits, reading nothing
//! more from its client (HTTP/2 flow control then stops the sender).
//!
//! Downloads: every byte a download holds,
//! read ahead from the nodes or waiting in its pipe and network buffers,
//! is counted against one number, `COFFER_DOWNLOAD_MEMORY_MIB`.
//!
//! The budget is split in two halves so that neither can starve the
//! other:
//! - **pipes**: each open download reserves [`PIPE_BYTES`] for as long as
//!   it is open, what its pipe and the network layer may hold while its
//!   client reads slowly or not at all. Downloads beyond what fits wait
//!   for one to end, in order;
//! - **read-ahead**: chunks fetched ahead of the client, shared by all
//!   downloads in a fair queue, and given back by stalled ones under
//!   pressure (see [`crate::download`]).

use coffer_proto::chunking::MAX_CHUNK;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes one download hands on at a time (a gRPC message, an HTTP body
/// frame), copied out of its chunk so a piece waiting for a stalled client
/// pins only itself.
pub const PIECE: usize = 64 * 1024;

/// Bytes HTTP/2 buffers per stream ahead of the peer's flow control.
pub const SEND_BUFFER: usize = 128 * 1024;

/// What one open download may hold outside its read-ahead: a piece queued
/// in its pipe, one waiting to be queued, one in the gRPC encoder, the
/// HTTP/2 send buffer, and room for the frames and the call's own state.
pub const PIPE_BYTES: usize = 3 * PIECE + SEND_BUFFER + 128 * 1024;

const KIB: usize = 1024;

/// The budget. Cheap to clone.
#[derive(Clone)]
pub struct DownloadBudget {
    total_kib: usize,
    read_ahead: Arc<Semaphore>,
    read_ahead_kib: usize,
    pipes: Arc<Semaphore>,
    pipes_kib: usize,
}

/// An open download's share of the pipes half, held until it ends.
pub type PipeRoom = OwnedSemaphorePermit;

impl DownloadBudget {
    /// A budget of `bytes`, raised to what the smallest useful server
    /// needs: two of the largest chunks read ahead, and one pipe.
    pub fn new(bytes: usize) -> Self {
        let read_ahead_kib = (bytes / 2 / KIB).max(2 * MAX_CHUNK / KIB);
        let pipes_kib = (bytes / 2 / KIB).max(PIPE_BYTES / KIB);
        Self {
            total_kib: read_ahead_kib + pipes_kib,
            read_ahead: Arc::new(Semaphore::new(read_ahead_kib)),
            read_ahead_kib,
            pipes: Arc::new(Semaphore::new(pipes_kib)),
            pipes_kib,
        }
    }

    /// The read-ahead half, in KiB permits (a fair queue).
    pub fn read_ahead(&self) -> &Arc<Semaphore> {
        &self.read_ahead
    }

    /// Waits for room for one more open download.
    pub async fn pipe_room(&self) -> PipeRoom {
        self.pipes
            .clone()
            .acquire_many_owned((PIPE_BYTES / KIB) as u32)
            .await
            .expect("the budget is never closed")
    }

    /// Whether read-ahead is short of room: less than two of the largest
    /// chunks left. Stalled downloads then give theirs back.
    pub fn pressed(&self) -> bool {
        self.read_ahead.available_permits() < 2 * MAX_CHUNK / KIB
    }

    /// Open downloads that fit at once.
    pub fn max_pipes(&self) -> usize {
        self.pipes_kib / (PIPE_BYTES / KIB)
    }

    /// KiB in use now: read ahead, and reserved by open downloads.
    pub fn used_kib(&self) -> (usize, usize) {
        (
            self.read_ahead_kib
                .saturating_sub(self.read_ahead.available_permits()),
            self.pipes_kib
                .saturating_sub(self.pipes.available_permits()),
        )
    }

    /// The whole budget, in KiB.
    pub fn total_kib(&self) -> usize {
        self.total_kib
    }
}

/// The server-wide upload budget, in KiB permits (a fair queue). Cheap to
/// clone.
#[derive(Clone)]
pub struct UploadBudget {
    kib: Arc<Semaphore>,
    total_kib: usize,
}

/// Room an upload holds in the [`UploadBudget`]; it grows and shrinks with
/// what the upload holds, and is given back whole when dropped.
pub struct UploadRoom {
    kib: Arc<Semaphore>,
    held: u32,
}

fn kib_of(bytes: u64) -> u32 {
    bytes.div_ceil(KIB as u64).min(u32::MAX as u64) as u32
}

impl UploadBudget {
    /// A budget of `bytes`, raised to what one upload needs at most: its
    /// largest message, a chunk being cut and the chunks being stored.
    pub fn new(bytes: usize) -> Self {
        let total_kib = (bytes / KIB).max(8 * MAX_CHUNK / KIB);
        Self {
            kib: Arc::new(Semaphore::new(total_kib)),
            total_kib,
        }
    }

    /// An empty room, to grow with [`UploadRoom::cover`].
    pub fn room(&self) -> UploadRoom {
        UploadRoom {
            kib: self.kib.clone(),
            held: 0,
        }
    }

    /// KiB held now, and the whole budget.
    pub fn used_kib(&self) -> (usize, usize) {
        (
            self.total_kib.saturating_sub(self.kib.available_permits()),
            self.total_kib,
        )
    }
}

impl UploadRoom {
    /// Grows the room to cover `bytes`, waiting in line up to `wait`;
    /// `false` (and the room unchanged) if the budget had no room by then.
    pub async fn cover(&mut self, bytes: u64, wait: std::time::Duration) -> bool {
        let need = kib_of(bytes);
        if need <= self.held {
            return true;
        }
        match tokio::time::timeout(wait, self.kib.clone().acquire_many_owned(need - self.held))
            .await
        {
            Ok(Ok(p)) => {
                p.forget();
                self.held = need;
                true
            }
            _ => false,
        }
    }

    /// Shrinks the room to what `bytes` need, giving the rest back.
    pub fn shrink(&mut self, bytes: u64) {
        let keep = kib_of(bytes);
        if keep < self.held {
            self.kib.add_permits((self.held - keep) as usize);
            self.held = keep;
        }
    }
}

impl Drop for UploadRoom {
    fn drop(&mut self) {
        self.shrink(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn uploads_past_the_budget_wait_then_give_up_and_rooms_give_back() {
        let budget = UploadBudget::new(1);
        let total = budget.used_kib().1 as u64 * 1024;
        assert_eq!(total, 8 * MAX_CHUNK as u64, "the floor fits one upload");
        let wait = std::time::Duration::from_millis(50);
        let mut a = budget.room();
        assert!(a.cover(total - 1024, wait).await);
        let mut b = budget.room();
        assert!(b.cover(1024, wait).await, "the last KiB is there");
        assert!(!b.cover(2048, wait).await, "a room grew past the budget");
        assert_eq!(budget.used_kib().0 as u64 * 1024, total);
        a.shrink(10 * 1024);
        assert!(b.cover(2048, wait).await, "shrinking gave room back");
        drop(a);
        drop(b);
        assert_eq!(budget.used_kib().0, 0, "dropped rooms give everything back");
        assert!(budget.room().cover(total, wait).now_or_never().is_some());
    }

    #[tokio::test]
    async fn open_downloads_beyond_the_pipes_half_wait_for_one_to_end() {
        let budget = DownloadBudget::new(64 * 1024 * 1024);
        assert_eq!(budget.max_pipes(), 32 * 1024 * 1024 / PIPE_BYTES);
        let mut rooms = Vec::new();
        for _ in 0..budget.max_pipes() {
            rooms.push(budget.pipe_room().await);
        }
        let (_, pipes) = budget.used_kib();
        assert_eq!(pipes, budget.max_pipes() * PIPE_BYTES / KIB);
        // Full: the next one waits...
        assert!(
            budget.pipe_room().now_or_never().is_none(),
            "a download got room past the budget"
        );
        // ...until one ends.
        rooms.pop();
        assert!(budget.pipe_room().now_or_never().is_some());
        // The read-ahead half is untouched by open downloads.
        assert!(!budget.pressed());
        assert_eq!(budget.used_kib().0, 0);
    }

    #[test]
    fn a_tiny_budget_still_serves_one_download() {
        let budget = DownloadBudget::new(1);
        assert_eq!(budget.max_pipes(), 1);
        assert_eq!(
            budget.total_kib(),
            (2 * MAX_CHUNK + PIPE_BYTES) / KIB,
            "two chunks of read-ahead and one pipe"
        );
    }
}
