//! One open pack per server, filled by every upload's small chunks: it is
//! sealed once its chunks reach the target size, once no chunk has come
//! for a short idle, or at a maximum age; then written to the cluster
//! like a chunk and recorded with its chunks in one transaction. A
//! chunk's writer waits until then: its chunk is acknowledged only once
//! the pack is durable on W nodes and its row names the pack.

use super::format::{Builder, Entry};
use crate::cluster::Cluster;
use crate::meta::{ChunkRef, Meta, Packed};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// When a pack is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillerConfig {
    /// Bytes of chunks that seal a pack at once.
    pub target: u64,
    /// No new chunk for this long seals the pack: its writers are all
    /// waiting on it.
    pub idle: Duration,
    /// The longest a chunk waits for its pack to be sealed.
    pub max_age: Duration,
}

impl Default for FillerConfig {
    fn default() -> Self {
        Self {
            target: super::TARGET_PACK,
            idle: Duration::from_millis(20),
            max_age: Duration::from_millis(500),
        }
    }
}

/// What became of one chunk handed to the filler.
pub type Outcome = Result<Stored, String>;

/// A chunk's fate once its pack was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Recorded in its pack (or found stored some other way meanwhile).
    Recorded,
    /// Gc took the writer's hold before the pack was recorded: hold the
    /// chunk again and write it again.
    HoldLost,
}

struct Add {
    chunk: ChunkRef,
    hold: String,
    data: Bytes,
    done: oneshot::Sender<Outcome>,
}

/// The handle uploads hand small chunks to; cheap to clone.
#[derive(Clone)]
pub struct Filler {
    tx: mpsc::Sender<Add>,
}

/// A pack being filled, with the writers waiting on it.
struct Open {
    builder: Builder,
    waiting: Vec<(Packed, oneshot::Sender<Outcome>)>,
    since: Instant,
    last: Instant,
}

impl Filler {
    /// Starts the filler's task on the current runtime; it ends, sealing
    /// what it holds, once every handle is dropped.
    pub fn start(cluster: Arc<Cluster>, meta: Meta, cfg: FillerConfig) -> Filler {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(rx, cluster, meta, cfg));
        Filler { tx }
    }

    /// Stores `data` (chunk `chunk`, held under `hold`) in a pack and
    /// waits until the pack is durable and recorded.
    pub async fn store(&self, chunk: ChunkRef, hold: String, data: Bytes) -> Outcome {
        let (done, outcome) = oneshot::channel();
        let add = Add {
            chunk,
            hold,
            data,
            done,
        };
        self.tx
            .send(add)
            .await
            .map_err(|_| "the pack filler has stopped".to_string())?;
        outcome
            .await
            .map_err(|_| "the pack filler has stopped".to_string())?
    }
}

async fn run(mut rx: mpsc::Receiver<Add>, cluster: Arc<Cluster>, meta: Meta, cfg: FillerConfig) {
    let mut open: Option<Open> = None;
    loop {
        let deadline = open
            .as_ref()
            .map(|o| (o.last + cfg.idle).min(o.since + cfg.max_age));
        let add = match deadline {
            Some(at) => tokio::select! {
                add = rx.recv() => add,
                _ = tokio::time::sleep_until(at) => {
                    seal(open.take(), &cluster, &meta);
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(add) = add else {
            seal(open.take(), &cluster, &meta);
            return;
        };
        let now = Instant::now();
        let o = open.get_or_insert_with(|| Open {
            builder: Builder::new(),
            waiting: Vec::new(),
            since: now,
            last: now,
        });
        o.last = now;
        let id = match super::format::id_bytes(&add.chunk.id) {
            Some(id) => id,
            None => {
                let _ = add
                    .done
                    .send(Err(format!("{} is not a chunk id", add.chunk.id)));
                continue;
            }
        };
        let entry: Entry = match o.builder.push(id, &add.data) {
            Ok(e) => e,
            Err(e) => {
                let _ = add.done.send(Err(e.to_string()));
                continue;
            }
        };
        o.waiting.push((
            Packed {
                chunk: add.chunk,
                hold: add.hold,
                offset: entry.offset,
            },
            add.done,
        ));
        if o.builder.data_len() >= cfg.target {
            seal(open.take(), &cluster, &meta);
        }
    }
}

/// Writes and records `open` in a task of its own, so the next pack fills
/// meanwhile, then tells each writer what became of its chunk.
fn seal(open: Option<Open>, cluster: &Arc<Cluster>, meta: &Meta) {
    let Some(open) = open else { return };
    let (cluster, meta) = (cluster.clone(), meta.clone());
    tokio::spawn(async move {
        let sealed = open.builder.seal();
        let pack = ChunkRef {
            id: sealed.id.clone(),
            size: sealed.bytes.len() as u32,
        };
        let (packed, waiters): (Vec<Packed>, Vec<_>) = open.waiting.into_iter().unzip();
        let result = match cluster.write_chunk(&pack.id, sealed.bytes).await {
            Ok(acked) => meta
                .record_pack(&pack, &acked, &packed)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        tracing::debug!(pack = %pack.id, chunks = packed.len(), bytes = pack.size, ok = result.is_ok(), "pack sealed");
        for (p, done) in packed.iter().zip(waiters) {
            let outcome = match &result {
                Ok(refused) if refused.contains(&p.chunk.id) => Ok(Stored::HoldLost),
                Ok(_) => Ok(Stored::Recorded),
                Err(e) => Err(e.clone()),
            };
            let _ = done.send(outcome);
        }
    });
}
