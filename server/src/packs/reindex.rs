//! Rebuilding where packed chunks are from the packs themselves: every
//! pack ends with an index of the chunks in it, so the nodes alone say
//! which pack holds a chunk and where. Run after a metadata restore (a
//! snapshot taken before a repack names packs deleted since) and by
//! `coffer-server meta reindex-packs`.

use super::format::{parse_footer, parse_index, FOOTER_LEN};
use crate::meta::{ChunkRef, FoundPack, Meta, MetaError};
use crate::store::{chunk_id_of_key, chunk_key, BlobStore};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Ids looked up in the metadata at a time.
const LOOKUP: usize = 1000;

/// What a rebuild found and changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reindexed {
    /// Packs read from the nodes.
    pub packs: u64,
    /// Chunks whose recorded place was gone, pointed at a pack that
    /// holds them.
    pub pointed: u64,
    /// Nodes that could not be listed, and objects that looked like packs
    /// but whose index no copy gave back whole.
    pub problems: Vec<String>,
}

/// Reads the index of every pack on `nodes` and points each chunk a
/// version holds whose own object or recorded pack is gone at a pack
/// that holds it (recording that pack and its copies too).
pub async fn reindex(
    meta: &Meta,
    nodes: &[(String, Arc<dyn BlobStore>)],
) -> Result<Reindexed, MetaError> {
    let mut done = Reindexed::default();
    // Every object, its size and the nodes holding it.
    let mut objects: BTreeMap<String, (u64, Vec<usize>)> = BTreeMap::new();
    for (i, (name, store)) in nodes.iter().enumerate() {
        match store.list("chunks/").await {
            Ok(list) => {
                for o in list {
                    if let Some(id) = chunk_id_of_key(&o.key) {
                        let e = objects.entry(id.to_string()).or_default();
                        e.0 = o.size;
                        e.1.push(i);
                    }
                }
            }
            Err(e) => done.problems.push(format!("cannot list {name}: {e}")),
        }
    }
    // Chunks the metadata knows as objects of their own are no packs;
    // every other object may be one.
    let ids: Vec<String> = objects.keys().cloned().collect();
    let mut plain = std::collections::HashSet::new();
    for part in ids.chunks(LOOKUP) {
        plain.extend(meta.standalone_chunks(part).await?);
    }
    let mut found = Vec::new();
    for (id, (size, holders)) in &objects {
        if plain.contains(id) || *size < FOOTER_LEN as u64 {
            continue;
        }
        let mut entries = None;
        for &i in holders {
            if let Ok(e) = read_index(&*nodes[i].1, id, *size).await {
                entries = Some(e);
                break;
            }
        }
        let Some(entries) = entries else {
            // A small chunk whose row is gone looks the same: say nothing
            // unless its tail claimed to be a pack.
            continue;
        };
        done.packs += 1;
        let entries = entries
            .into_iter()
            .map(|e| {
                let chunk = e.id_hex();
                let own = objects.contains_key(&chunk);
                (chunk, e.offset, e.len, own)
            })
            .collect();
        found.push(FoundPack {
            pack: ChunkRef {
                id: id.clone(),
                size: *size as u32,
            },
            nodes: holders.iter().map(|&i| nodes[i].0.clone()).collect(),
            entries,
        });
    }
    for part in found.chunks(64) {
        done.pointed += meta.reindex_packs(part).await?;
    }
    Ok(done)
}

/// The entries of pack `id` (`size` bytes) on `store`, read with two
/// ranged GETs: the footer, then the index it names, checked against the
/// footer's hash. An object that is no pack is an error.
async fn read_index(
    store: &dyn BlobStore,
    id: &str,
    size: u64,
) -> Result<Vec<super::format::Entry>, String> {
    let key = chunk_key(id);
    let tail = store
        .get_range(&key, size - FOOTER_LEN as u64..size)
        .await
        .map_err(|e| e.to_string())?;
    let footer = parse_footer(&tail).map_err(|e| e.to_string())?;
    let range = footer.index_range(size).map_err(|e| e.to_string())?;
    let index = store
        .get_range(&key, range)
        .await
        .map_err(|e| e.to_string())?;
    parse_index(&footer, &index, size).map_err(|e| e.to_string())
}
