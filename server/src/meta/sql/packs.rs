//! Packs in the metadata: a pack is a chunk row like any other (its
//! objects are replicated, repaired and scrubbed as chunks are); a chunk
//! inside one names it and its offset. Recording a sealed pack with its
//! chunks, finding where packed chunks are, and repacking the sparse.

use super::chunks::replicas_ok;
use super::chunks::ChunkState::{self, Ok as OK};
use super::chunks::{ChunkEvent, Next};
use super::tx::{list, rows, Tx};
use crate::meta::{ChunkRef, FoundPack, MetaError, Packed, PackedAt};
use std::collections::{HashMap, HashSet};

/// Makes the row of pack `pack`: new, or (the same bytes packed again)
/// touched. False if it is being deleted, so its objects may go at any
/// moment.
fn new_pack(tx: &dyn Tx, pack: &ChunkRef) -> Result<bool, MetaError> {
    Ok(tx
        .query_opt(
            &format!(
                "INSERT INTO chunks (id, size, created_at, state) VALUES ($1, $2, now_ms(), {})
                 ON CONFLICT (id) DO UPDATE SET created_at = now_ms() WHERE {}
                 RETURNING id",
                ChunkEvent::Found.new_row(),
                ChunkEvent::Found.guard("chunks"),
            ),
            &[&pack.id, &pack.size],
        )?
        .is_some())
}

/// See [`crate::meta::MetaStore::record_pack`].
pub fn record_pack(
    tx: &dyn Tx,
    pack: &ChunkRef,
    nodes: &[String],
    packed: &[Packed],
) -> Result<Vec<String>, MetaError> {
    let refused = || packed.iter().map(|p| p.chunk.id.clone()).collect();
    if !new_pack(tx, pack)? {
        return Ok(refused());
    }
    replicas_ok(tx, &pack.id, nodes)?;
    if packed.is_empty() {
        return Ok(Vec::new());
    }
    let batch = rows(packed.iter().map(|p| {
        vec![
            p.chunk.id.as_str().into(),
            p.hold.as_str().into(),
            p.offset.into(),
        ]
    }));
    let ids: Vec<&str> = packed.iter().map(|p| p.chunk.id.as_str()).collect();
    tx.execute(
        &format!(
            "UPDATE chunks SET state = {}, hold = NULL, created_at = now_ms(),
                    pack_id = $1, pack_offset = CAST(t.value ->> 2 AS BIGINT)
             FROM rows_of($2) AS t
             WHERE chunks.id = t.value ->> 0 AND {} AND chunks.hold = t.value ->> 1",
            ChunkEvent::Record.to(),
            ChunkEvent::Record.guard("chunks"),
        ),
        &[&pack.id, &batch],
    )?;
    // Recorded now, or stored already: every other one lost its hold.
    let stored: HashSet<String> = tx
        .query(
            &format!("SELECT id FROM chunks WHERE id IN (SELECT value FROM list_of($1)) AND state = {OK}"),
            &[&list(&ids)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(ids
        .into_iter()
        .filter(|id| !stored.contains(*id))
        .map(str::to_string)
        .collect())
}

/// See [`crate::meta::MetaStore::pack_locations`].
pub fn pack_locations(tx: &dyn Tx, ids: &[String]) -> Result<HashMap<String, PackedAt>, MetaError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(tx
        .query(
            "SELECT id, pack_id, pack_offset FROM chunks
             WHERE id IN (SELECT value FROM list_of($1)) AND pack_id IS NOT NULL",
            &[&list(ids)],
        )?
        .iter()
        .map(|r| {
            (
                r.get(0),
                PackedAt {
                    pack: r.get(1),
                    offset: r.get(2),
                },
            )
        })
        .collect())
}

/// See [`crate::meta::MetaStore::sparse_packs`].
pub fn sparse_packs(
    tx: &dyn Tx,
    live_percent: u32,
    limit: u32,
) -> Result<Vec<ChunkRef>, MetaError> {
    Ok(tx
        .query(
            &format!(
                "SELECT p.id, p.size FROM chunks p JOIN chunks c ON c.pack_id = p.id
                 WHERE p.state = {OK} AND c.state = {OK}
                 GROUP BY p.id, p.size HAVING SUM(c.size) * 100 < p.size * $1
                 ORDER BY p.id LIMIT $2"
            ),
            &[&live_percent, &limit],
        )?
        .iter()
        .map(super::chunks::chunk_ref)
        .collect())
}

/// See [`crate::meta::MetaStore::pack_members`].
pub fn pack_members(tx: &dyn Tx, pack: &str) -> Result<Vec<(ChunkRef, u64)>, MetaError> {
    Ok(tx
        .query(
            &format!(
                "SELECT id, size, pack_offset FROM chunks WHERE pack_id = $1 AND state = {OK}
                 ORDER BY pack_offset"
            ),
            &[&pack],
        )?
        .iter()
        .map(|r| (super::chunks::chunk_ref(r), r.get(2)))
        .collect())
}

/// See [`crate::meta::MetaStore::unpacked_small`]. Only chunks a version
/// holds: a pack whose chunks all went looks like a small chunk of its
/// own, and is gc's to delete, not to pack.
pub fn unpacked_small(tx: &dyn Tx, below: u32, limit: u32) -> Result<Vec<ChunkRef>, MetaError> {
    Ok(tx
        .query(
            &format!(
                "SELECT id, size FROM chunks c
                 WHERE c.state = {OK} AND c.pack_id IS NULL AND c.size < $1
                   AND NOT EXISTS (SELECT 1 FROM chunks p WHERE p.pack_id = c.id)
                   AND EXISTS (SELECT 1 FROM version_chunks vc WHERE vc.chunk_id = c.id)
                 ORDER BY c.id LIMIT $2"
            ),
            &[&below, &limit],
        )?
        .iter()
        .map(super::chunks::chunk_ref)
        .collect())
}

/// See [`crate::meta::MetaStore::repack`].
pub fn repack(
    tx: &dyn Tx,
    old: &str,
    new: &ChunkRef,
    nodes: &[String],
    moved: &[(String, u64)],
) -> Result<u64, MetaError> {
    if !new_pack(tx, new)? {
        return Ok(0);
    }
    replicas_ok(tx, &new.id, nodes)?;
    let batch = rows(
        moved
            .iter()
            .map(|(id, offset)| vec![id.as_str().into(), (*offset).into()]),
    );
    // `old` empty: chunks that are objects of their own.
    let n = tx.execute(
        &format!(
            "UPDATE chunks SET pack_id = $1, pack_offset = CAST(t.value ->> 1 AS BIGINT)
             FROM rows_of($2) AS t
             WHERE chunks.id = t.value ->> 0 AND COALESCE(chunks.pack_id, '') = $3
               AND chunks.state = {OK}"
        ),
        &[&new.id, &batch, &old],
    )?;
    // Reads that found the old place just now may still come: it stays
    // a whole grace period from now.
    tx.execute(
        &format!("UPDATE chunks SET created_at = now_ms() WHERE id = $1 AND state = {OK}"),
        &[&old],
    )?;
    Ok(n)
}

/// See [`crate::meta::MetaStore::standalone_chunks`].
pub fn standalone(tx: &dyn Tx, ids: &[String]) -> Result<HashSet<String>, MetaError> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(tx
        .query(
            "SELECT id FROM chunks c WHERE id IN (SELECT value FROM list_of($1))
               AND c.pack_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM chunks p WHERE p.pack_id = c.id)",
            &[&list(ids)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// See [`crate::meta::MetaStore::reindex_packs`].
pub fn reindex(tx: &dyn Tx, found: &[FoundPack]) -> Result<u64, MetaError> {
    let packs: HashSet<&str> = found.iter().map(|f| f.pack.id.as_str()).collect();
    let mut pointed = 0;
    for f in found {
        let ids: Vec<&str> = f.entries.iter().map(|e| e.0.as_str()).collect();
        // Each chunk's row (if any), and whether a version holds it.
        let known: HashMap<String, (Option<String>, String)> = tx
            .query(
                "SELECT id, pack_id, state FROM chunks WHERE id IN (SELECT value FROM list_of($1))",
                &[&list(&ids)],
            )?
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let held: HashSet<String> = tx
            .query(
                "SELECT DISTINCT chunk_id FROM version_chunks
                 WHERE chunk_id IN (SELECT value FROM list_of($1))",
                &[&list(&ids)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut lost = Vec::new();
        for (id, offset, len, own) in &f.entries {
            if !held.contains(id) {
                continue;
            }
            let gone = match known.get(id) {
                None => true,
                Some((_, state))
                    if ChunkState::parse(state)
                        .is_none_or(|s| ChunkEvent::Found.next(Some(s)) == Next::Refused) =>
                {
                    false
                }
                Some((Some(pack), _)) => !packs.contains(pack.as_str()),
                Some((None, _)) => !own,
            };
            if gone {
                lost.push((id.as_str(), *offset, *len));
            }
        }
        if lost.is_empty() {
            continue;
        }
        if !new_pack(tx, &f.pack)? {
            continue;
        }
        replicas_ok(tx, &f.pack.id, &f.nodes)?;
        let batch = rows(
            lost.iter()
                .map(|(id, offset, len)| vec![(*id).into(), (*offset).into(), (*len).into()]),
        );
        tx.execute(
            &format!(
                "INSERT INTO chunks (id, size, created_at, state, pack_id, pack_offset)
                 SELECT t.value ->> 0, CAST(t.value ->> 2 AS INTEGER), now_ms(), {to}, $1,
                        CAST(t.value ->> 1 AS BIGINT)
                 FROM rows_of($2) AS t WHERE true
                 ON CONFLICT (id) DO UPDATE SET pack_id = excluded.pack_id,
                     pack_offset = excluded.pack_offset, state = {to}, hold = NULL
                   WHERE {guard}",
                to = ChunkEvent::Found.to(),
                guard = ChunkEvent::Found.guard("chunks"),
            ),
            &[&f.pack.id, &batch],
        )?;
        pointed += lost.len() as u64;
    }
    Ok(pointed)
}
