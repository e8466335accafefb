//! Repacking: the live chunks of packs mostly emptied by deletions are
//! copied into new packs, their rows switched over, and the old packs
//! left for gc, which takes each once no chunk names it (a grace period
//! later, for reads that found the old place). Small chunks stored as
//! objects of their own before packs were on are packed the same way;
//! their old objects become orphans, which gc deletes a grace period
//! after noticing them. Run by gc.

use super::format::{id_bytes, Builder};
use crate::cluster::Cluster;
use crate::meta::{ChunkRef, Meta, MetaError};
use tokio_util::sync::CancellationToken;

/// Sparse packs looked at per pass.
const BATCH: u32 = 100;

/// Small chunks that are objects of their own, at most this many per pass.
const SMALL_BATCH: u32 = 10_000;

/// What one repacking pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repacked {
    /// Old places emptied into new packs (packs, or for small chunks of
    /// their own, each new pack's batch).
    pub packs: u64,
    /// Chunks moved.
    pub chunks: u64,
    /// Packs or chunks left as they were (unreadable now, or a copy that
    /// failed).
    pub errors: u64,
}

/// Packs whose live chunks fill less than `live_percent` of them are
/// merged into new packs of up to `target` bytes of chunks.
pub async fn repack(
    meta: &Meta,
    cluster: &Cluster,
    live_percent: u32,
    target: u64,
    cancel: &CancellationToken,
) -> Result<Repacked, MetaError> {
    let mut filling = Filling::new(meta, cluster, target);
    for old in meta.sparse_packs(live_percent, BATCH).await? {
        if cancel.is_cancelled() {
            break;
        }
        let members = meta.pack_members(&old.id).await?;
        let bytes = match cluster.read_chunk(&old.id).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(pack = %old.id, error = %e, "repack: cannot read the pack");
                filling.done.errors += 1;
                continue;
            }
        };
        // Every row checked against the verified pack before any moves.
        let mut chunks = Vec::with_capacity(members.len());
        for (c, offset) in members {
            let start = offset as usize;
            let data = bytes.get(start..start + c.size as usize);
            match (data, id_bytes(&c.id)) {
                (Some(data), Some(id)) if blake3::hash(data).as_bytes() == &id => {
                    chunks.push((c.id, id, data));
                }
                _ => {
                    tracing::error!(pack = %old.id, chunk = %c.id, "repack: a row names bytes the pack does not hold");
                    chunks.clear();
                    filling.done.errors += 1;
                    break;
                }
            }
        }
        for (chunk, id, data) in chunks {
            filling.add(&old.id, chunk, id, data);
        }
        filling.flush(false).await?;
    }
    filling.flush(true).await?;
    Ok(filling.done)
}

/// Packs small chunks stored as objects of their own into new packs of up
/// to `target` bytes.
pub async fn pack_small(
    meta: &Meta,
    cluster: &Cluster,
    target: u64,
    cancel: &CancellationToken,
) -> Result<Repacked, MetaError> {
    let mut filling = Filling::new(meta, cluster, target);
    let small = meta
        .unpacked_small(super::PACK_BELOW as u32, SMALL_BATCH)
        .await?;
    for c in small {
        if cancel.is_cancelled() {
            break;
        }
        let (Ok(data), Some(id)) = (cluster.read_chunk(&c.id).await, id_bytes(&c.id)) else {
            // Unreadable now: repair's business; packed on a later pass.
            filling.done.errors += 1;
            continue;
        };
        filling.add("", c.id, id, &data);
        filling.flush(false).await?;
    }
    filling.flush(true).await?;
    Ok(filling.done)
}

/// A new pack being filled from old places (a pack's id, or `""` for
/// chunks of their own), written once full.
struct Filling<'a> {
    meta: &'a Meta,
    cluster: &'a Cluster,
    target: u64,
    builder: Builder,
    /// Each old place with its moves (chunk id, offset in the new pack).
    from: Vec<(String, Vec<(String, u64)>)>,
    done: Repacked,
}

impl<'a> Filling<'a> {
    fn new(meta: &'a Meta, cluster: &'a Cluster, target: u64) -> Self {
        Filling {
            meta,
            cluster,
            target,
            builder: Builder::new(),
            from: Vec::new(),
            done: Repacked::default(),
        }
    }

    fn add(&mut self, old: &str, chunk: String, id: [u8; 32], data: &[u8]) {
        // A chunk is far below a pack's limit: `push` cannot refuse it.
        let Ok(entry) = self.builder.push(id, data) else {
            return;
        };
        match self.from.last_mut() {
            Some((place, moves)) if place == old => moves.push((chunk, entry.offset)),
            _ => self
                .from
                .push((old.to_string(), vec![(chunk, entry.offset)])),
        }
    }

    /// Writes the new pack (once full, or now with `force`), then
    /// switches each old place's chunks over.
    async fn flush(&mut self, force: bool) -> Result<(), MetaError> {
        if self.builder.is_empty() || (!force && self.builder.data_len() < self.target) {
            return Ok(());
        }
        let sealed = std::mem::take(&mut self.builder).seal();
        let new = ChunkRef {
            id: sealed.id.clone(),
            size: sealed.bytes.len() as u32,
        };
        let acked = match self.cluster.write_chunk(&new.id, sealed.bytes).await {
            Ok(acked) => acked,
            Err(e) => {
                tracing::warn!(error = %e, "repack: cannot write the new pack");
                self.done.errors += self.from.len() as u64;
                self.from.clear();
                return Ok(());
            }
        };
        for (old, moves) in self.from.drain(..) {
            self.done.chunks += self.meta.repack(&old, &new, &acked, &moves).await?;
            self.done.packs += 1;
        }
        Ok(())
    }
}
