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

/// What one repacking pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repacked {
    /// Packs emptied into new ones.
    pub packs: u64,
    /// Chunks moved.
    pub chunks: u64,
    /// Packs left as they were (unreadable now, or a copy that failed).
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
    let mut done = Repacked::default();
    let sparse = meta.sparse_packs(live_percent, BATCH).await?;
    let mut builder = Builder::new();
    // The old packs whose live chunks the builder holds, each with its
    // moves (chunk id, offset in the new pack).
    let mut from: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    for old in sparse {
        if cancel.is_cancelled() {
            break;
        }
        let members = meta.pack_members(&old.id).await?;
        let bytes = match cluster.read_chunk(&old.id).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(pack = %old.id, error = %e, "repack: cannot read the pack");
                done.errors += 1;
                continue;
            }
        };
        let mut moves = Vec::new();
        for (c, offset) in members {
            let start = offset as usize;
            let data = bytes.get(start..start + c.size as usize);
            let id = id_bytes(&c.id);
            match (data, id) {
                (Some(data), Some(id)) if blake3::hash(data).as_bytes() == &id => {
                    // A chunk is far below a pack's limit: `push` cannot
                    // refuse it.
                    if let Ok(entry) = builder.push(id, data) {
                        moves.push((c.id, entry.offset));
                    }
                }
                _ => {
                    // The row and the verified pack disagree: leave this
                    // pack alone for an operator to look at.
                    tracing::error!(pack = %old.id, chunk = %c.id, "repack: a row names bytes the pack does not hold");
                    done.errors += 1;
                    moves.clear();
                    break;
                }
            }
        }
        if !moves.is_empty() {
            from.push((old.id, moves));
        }
        if builder.data_len() >= target {
            write(
                meta,
                cluster,
                std::mem::take(&mut builder),
                &mut from,
                &mut done,
            )
            .await?;
        }
    }
    if !builder.is_empty() {
        write(meta, cluster, builder, &mut from, &mut done).await?;
    }
    Ok(done)
}

/// Small chunks that are objects of their own, at most this many per pass.
const SMALL_BATCH: u32 = 10_000;

/// Packs small chunks stored as objects of their own into new packs of up
/// to `target` bytes; `packs` counts the new packs.
pub async fn pack_small(
    meta: &Meta,
    cluster: &Cluster,
    target: u64,
    cancel: &CancellationToken,
) -> Result<Repacked, MetaError> {
    let mut done = Repacked::default();
    let small = meta
        .unpacked_small(super::PACK_BELOW as u32, SMALL_BATCH)
        .await?;
    let mut builder = Builder::new();
    let mut moves = Vec::new();
    for c in small {
        if cancel.is_cancelled() {
            break;
        }
        let (Ok(data), Some(id)) = (cluster.read_chunk(&c.id).await, id_bytes(&c.id)) else {
            // Unreadable now: repair's business; packed on a later pass.
            done.errors += 1;
            continue;
        };
        if let Ok(entry) = builder.push(id, &data) {
            moves.push((c.id, entry.offset));
        }
        if builder.data_len() >= target {
            let mut from = vec![(String::new(), std::mem::take(&mut moves))];
            write(
                meta,
                cluster,
                std::mem::take(&mut builder),
                &mut from,
                &mut done,
            )
            .await?;
        }
    }
    if !builder.is_empty() {
        let mut from = vec![(String::new(), moves)];
        write(meta, cluster, builder, &mut from, &mut done).await?;
    }
    Ok(done)
}

/// Writes the new pack, then switches each old pack's chunks over.
async fn write(
    meta: &Meta,
    cluster: &Cluster,
    builder: Builder,
    from: &mut Vec<(String, Vec<(String, u64)>)>,
    done: &mut Repacked,
) -> Result<(), MetaError> {
    let sealed = builder.seal();
    let new = ChunkRef {
        id: sealed.id.clone(),
        size: sealed.bytes.len() as u32,
    };
    let acked = match cluster.write_chunk(&new.id, sealed.bytes).await {
        Ok(acked) => acked,
        Err(e) => {
            tracing::warn!(error = %e, "repack: cannot write the new pack");
            done.errors += from.len() as u64;
            from.clear();
            return Ok(());
        }
    };
    for (old, moves) in from.drain(..) {
        done.chunks += meta.repack(&old, &new, &acked, &moves).await?;
        done.packs += 1;
    }
    Ok(())
}
