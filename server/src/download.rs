//! One download's pipe, for gRPC and HTTP alike: a task reads the
//! version's chunks (read-ahead within the server-wide budget, see
//! [`Files::read_chunks`]) and hands a byte range on in small pieces
//! through a one-piece channel.
//!
//! Each open download holds its pipe's share of the server-wide budget
//! ([`crate::budget::PIPE_BYTES`]) from before its first read until both
//! ends of the pipe are gone, so what the pipe and the network layer
//! buffer for it is counted too. A stalled client, one that stops taking
//! pieces, pins no more than that share; never its read-ahead: when
//! other downloads are short of room, a download stalled for
//! [`STALL_GRACE`] gives its chunks back and reads them again once its
//! client resumes. One that takes nothing for the idle time-out is ended
//! with an error, never cut short silently.

use crate::budget::PipeRoom;
use crate::files::{FileError, Files};
use crate::meta::ChunkRef;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use crate::budget::PIECE;

/// How long a download may hold read-ahead while its client takes nothing
/// and others wait for room.
pub const STALL_GRACE: Duration = Duration::from_millis(500);

/// Bytes `start..end` of the content made of `chunks`, in pieces.
pub fn pipe(
    files: &Files,
    chunks: Vec<ChunkRef>,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Bytes, FileError>> + Send + 'static {
    let (tx, rx) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        // What the reader sees once the pieces run out: set to `None` only
        // by a producer that sent everything, so a task that dies (or is
        // ended) never looks like a complete download.
        outcome: Mutex::new(Some(FileError::Internal("the download ended early".into()))),
        room: OnceLock::new(),
    });
    let producer = Producer {
        files: files.clone(),
        chunks,
        tx,
        idle: files.config().idle_timeout,
    };
    let ours = shared.clone();
    tokio::spawn(async move {
        // Room for the pipe first: at the budget, downloads wait in order.
        let _ = ours
            .room
            .set(producer.files.download_budget().pipe_room().await);
        let r = producer.run(start, end).await;
        // The outcome first: the reader looks at it once the channel
        // closes, which dropping the producer (its sender) does.
        *ours.outcome.lock().unwrap() = r.err();
        drop(producer);
    });
    futures::stream::unfold((rx, shared, false), |(mut rx, shared, ended)| async move {
        if ended {
            return None;
        }
        match rx.recv().await {
            Some(piece) => Some((Ok(piece), (rx, shared, false))),
            None => {
                let failed = shared.outcome.lock().unwrap().take();
                failed.map(|e| (Err(e), (rx, shared, true)))
            }
        }
    })
}

/// What both ends of a pipe hold: the room it takes in the budget, given
/// back when the last end is dropped, and how it ended.
struct Shared {
    outcome: Mutex<Option<FileError>>,
    room: OnceLock<PipeRoom>,
}

struct Producer {
    files: Files,
    chunks: Vec<ChunkRef>,
    tx: mpsc::Sender<Bytes>,
    idle: Duration,
}

/// What became of handing one piece on.
enum Sent {
    Yes,
    /// The reader is gone: nothing more to do.
    ReaderGone,
    /// The reader stalled while others need room: let go of the chunks.
    Stalled,
}

impl Producer {
    /// Sends bytes `start..end`; `Ok` once all are handed on (or the reader
    /// left).
    async fn run(&self, start: u64, end: u64) -> Result<(), FileError> {
        let mut pos = start;
        let mut idle_since = Instant::now();
        'read: while pos < end {
            // The chunks from the one holding `pos` to the one holding `end`.
            let mut chunk_start = 0u64;
            let mut first = None;
            let mut wanted = Vec::new();
            for c in &self.chunks {
                let chunk_end = chunk_start + c.size as u64;
                if chunk_end > pos && chunk_start < end {
                    first.get_or_insert(chunk_start);
                    wanted.push(c.clone());
                }
                chunk_start = chunk_end;
            }
            let mut at = first.unwrap_or(pos);
            let mut reads = Box::pin(self.files.read_chunks(wanted));
            while let Some(chunk) = reads.next().await {
                let chunk = chunk?;
                let chunk_end = at + chunk.data.len() as u64;
                let stop = chunk_end.min(end);
                let mut chunk = Some(chunk);
                while let Some(held) = chunk.as_ref().filter(|_| pos < stop) {
                    let from = (pos - at) as usize;
                    let to = (from + PIECE).min((stop - at) as usize);
                    let piece = Bytes::copy_from_slice(&held.data[from..to]);
                    if at + to as u64 == stop {
                        // The last piece is copied out: the chunk and its
                        // room in the budget go back before the wait.
                        chunk = None;
                    }
                    match self.send(piece, &mut idle_since).await? {
                        Sent::Yes => pos += (to - from) as u64,
                        Sent::ReaderGone => return Ok(()),
                        Sent::Stalled => {
                            // Give every chunk back, wait for the reader,
                            // then read again from where it stopped.
                            drop(chunk);
                            drop(reads);
                            self.wait_for_reader(&mut idle_since).await?;
                            continue 'read;
                        }
                    }
                }
                at = chunk_end;
            }
            break;
        }
        Ok(())
    }

    /// Hands `piece` on, waiting for the reader; says when it stalled
    /// under pressure, and fails once it was idle too long.
    async fn send(&self, piece: Bytes, idle_since: &mut Instant) -> Result<Sent, FileError> {
        loop {
            match tokio::time::timeout(STALL_GRACE, self.tx.reserve()).await {
                Ok(Ok(slot)) => {
                    slot.send(piece);
                    *idle_since = Instant::now();
                    return Ok(Sent::Yes);
                }
                Ok(Err(_)) => return Ok(Sent::ReaderGone),
                Err(_) => {
                    self.check_idle(*idle_since)?;
                    if self.files.download_budget().pressed() {
                        return Ok(Sent::Stalled);
                    }
                }
            }
        }
    }

    /// Waits, holding nothing, until the reader takes the pending piece.
    async fn wait_for_reader(&self, idle_since: &mut Instant) -> Result<(), FileError> {
        let left = self.idle.saturating_sub(idle_since.elapsed());
        match tokio::time::timeout(left, self.tx.reserve()).await {
            // The slot is free again; the next send takes it.
            Ok(Ok(_slot)) => {
                *idle_since = Instant::now();
                Ok(())
            }
            Ok(Err(_)) => Ok(()),
            Err(_) => self.check_idle(*idle_since),
        }
    }

    fn check_idle(&self, idle_since: Instant) -> Result<(), FileError> {
        if idle_since.elapsed() >= self.idle {
            Err(FileError::Timeout(format!(
                "the client took nothing for {} s; the download was ended",
                self.idle.as_secs()
            )))
        } else {
            Ok(())
        }
    }
}
