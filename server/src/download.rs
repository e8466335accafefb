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
//! client resumes. One that takes nothing for the idle time-out, or less
//! than the minimum rate over one, is ended with an error, never cut
//! short silently.
//!
//! A pipe opens only with a place under its caller's keys
//! ([`Files::admit_download`]) and room in the budget; a download that
//! waits for room longer than the queue wait is refused as busy.

use crate::budget::PipeRoom;
use crate::files::{Admitted, FileError, Files};
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

/// Bytes `start..end` of the content made of `chunks`, in pieces, once
/// there is room for the pipe in the budget (Busy if none comes within
/// the queue wait). `admitted` is the caller's place, held until the
/// download ends (`None`: a larger download, such as a zip, holds it).
pub async fn pipe(
    files: &Files,
    chunks: Vec<ChunkRef>,
    start: u64,
    end: u64,
    admitted: Option<Admitted>,
) -> Result<impl Stream<Item = Result<Bytes, FileError>> + Send + 'static, FileError> {
    // Room for the pipe first: at the budget, downloads wait in order.
    let wait = files.config().download_queue_wait;
    let room = tokio::time::timeout(wait, files.download_budget().pipe_room())
        .await
        .map_err(|_| {
            FileError::Busy(format!(
                "the server is serving as many downloads as it has memory for, and none \
                 ended within {} s; try again shortly",
                wait.as_secs()
            ))
        })?;
    let (tx, rx) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        // What the reader sees once the pieces run out: set to `None` only
        // by a producer that sent everything, so a task that dies (or is
        // ended) never looks like a complete download.
        outcome: Mutex::new(Some(FileError::Internal("the download ended early".into()))),
        room: OnceLock::new(),
        admitted: OnceLock::new(),
    });
    let _ = shared.room.set(room);
    if let Some(a) = admitted {
        let _ = shared.admitted.set(a);
    }
    let producer = Producer {
        files: files.clone(),
        chunks,
        tx,
        idle: files.config().idle_timeout,
        min_rate: files.config().min_download_rate,
    };
    let ours = shared.clone();
    tokio::spawn(async move {
        let r = producer.run(start, end).await;
        // The outcome first: the reader looks at it once the channel
        // closes, which dropping the producer (its sender) does.
        *ours.outcome.lock().unwrap() = r.err();
        drop(producer);
    });
    Ok(futures::stream::unfold(
        (rx, shared, false),
        |(mut rx, shared, ended)| async move {
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
        },
    ))
}

/// What both ends of a pipe hold: the room it takes in the budget and its
/// caller's place, given back when the last end is dropped, and how it
/// ended.
struct Shared {
    outcome: Mutex<Option<FileError>>,
    room: OnceLock<PipeRoom>,
    admitted: OnceLock<Admitted>,
}

struct Producer {
    files: Files,
    chunks: Vec<ChunkRef>,
    tx: mpsc::Sender<Bytes>,
    idle: Duration,
    /// Bytes per second the reader must take, over each idle time-out.
    min_rate: u64,
}

/// How the reader keeps up: what it took, and how long the pipe waited
/// for it to take it, since the last check (see [`Producer::min_rate`]).
/// Only the time spent waiting on the reader counts, so slow nodes never
/// make a reader look slow.
struct Pace {
    /// When the reader last took a piece.
    idle_since: Instant,
    waited: Duration,
    taken: u64,
}

impl Pace {
    fn new() -> Self {
        Pace {
            idle_since: Instant::now(),
            waited: Duration::ZERO,
            taken: 0,
        }
    }
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
        let mut pace = Pace::new();
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
                    match self.send(piece, &mut pace).await? {
                        Sent::Yes => pos += (to - from) as u64,
                        Sent::ReaderGone => return Ok(()),
                        Sent::Stalled => {
                            // Give every chunk back, wait for the reader,
                            // then read again from where it stopped.
                            drop(chunk);
                            drop(reads);
                            self.wait_for_reader(&mut pace).await?;
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
    async fn send(&self, piece: Bytes, pace: &mut Pace) -> Result<Sent, FileError> {
        let began = Instant::now();
        loop {
            match tokio::time::timeout(STALL_GRACE, self.tx.reserve()).await {
                Ok(Ok(slot)) => {
                    let n = piece.len() as u64;
                    slot.send(piece);
                    pace.idle_since = Instant::now();
                    pace.waited += began.elapsed();
                    self.check_rate(pace, n)?;
                    return Ok(Sent::Yes);
                }
                Ok(Err(_)) => return Ok(Sent::ReaderGone),
                Err(_) => {
                    self.check_idle(pace.idle_since)?;
                    if self.files.download_budget().pressed() {
                        return Ok(Sent::Stalled);
                    }
                }
            }
        }
    }

    /// Waits, holding nothing, until the reader takes the pending piece.
    async fn wait_for_reader(&self, pace: &mut Pace) -> Result<(), FileError> {
        let left = self.idle.saturating_sub(pace.idle_since.elapsed());
        let began = Instant::now();
        match tokio::time::timeout(left, self.tx.reserve()).await {
            // The slot is free again; the next send takes it.
            Ok(Ok(_slot)) => {
                pace.idle_since = Instant::now();
                pace.waited += began.elapsed();
                Ok(())
            }
            Ok(Err(_)) => Ok(()),
            Err(_) => self.check_idle(pace.idle_since),
        }
    }

    /// Counts `n` bytes taken; once the pipe has waited on the reader for
    /// an idle time-out in all, fails if the reader took less than the
    /// minimum rate over that wait, else counts afresh.
    fn check_rate(&self, pace: &mut Pace, n: u64) -> Result<(), FileError> {
        pace.taken += n;
        if pace.waited < self.idle {
            return Ok(());
        }
        let floor = (self.min_rate as f64 * pace.waited.as_secs_f64()) as u64;
        if pace.taken < floor {
            return Err(FileError::Timeout(format!(
                "the client took {} bytes in {} s, under the minimum of {} bytes/s; \
                 the download was ended",
                pace.taken,
                pace.waited.as_secs(),
                self.min_rate
            )));
        }
        pace.waited = Duration::ZERO;
        pace.taken = 0;
        Ok(())
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
