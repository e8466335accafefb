//! Queries on chunks and their replicas.

use super::{ChunkRef, MetaError};
use crate::cluster::ReplicaEvent;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;

/// Records a chunk stored on (at least) `nodes`.
pub fn record_chunk(
    c: &Connection,
    id: &str,
    size: u32,
    nodes: &[String],
    now: &str,
) -> Result<(), MetaError> {
    c.execute(
        "INSERT INTO chunks (id, size, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
        params![id, size, now],
    )?;
    let mut stmt = c.prepare_cached(
        "INSERT INTO replicas (chunk_id, node, state, checked_at) VALUES (?1, ?2, 'ok', ?3)
         ON CONFLICT (chunk_id, node) DO UPDATE SET state = 'ok', checked_at = excluded.checked_at",
    )?;
    for node in nodes {
        stmt.execute(params![id, node, now])?;
    }
    Ok(())
}

/// Records replica outcomes. Run it inside a transaction
/// ([`super::unsynced`] suits: a lost outcome is found again by
/// anti-entropy).
pub fn record_replicas(
    c: &Connection,
    events: &[ReplicaEvent],
    now: &str,
) -> Result<(), MetaError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO replicas (chunk_id, node, state, checked_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (chunk_id, node) DO UPDATE SET state = excluded.state, checked_at = excluded.checked_at",
    )?;
    for e in events {
        stmt.execute(params![e.chunk_id, e.node, e.state.as_str(), now])?;
    }
    Ok(())
}

/// Which of `chunks` are not recorded as stored (each once, in first-seen
/// order). Fails with [`MetaError::ChunkSize`] if a stored chunk has
/// another size than the one given: an id fixes the content, so one of the
/// two is wrong and no version may list it so.
pub fn unknown(c: &Connection, chunks: &[ChunkRef]) -> Result<Vec<String>, MetaError> {
    let mut stmt = c.prepare_cached("SELECT size FROM chunks WHERE id = ?1")?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for ch in chunks {
        if !seen.insert(ch.id.as_str()) {
            continue;
        }
        match stmt
            .query_row([&ch.id], |r| r.get::<_, u32>(0))
            .optional()?
        {
            None => out.push(ch.id.clone()),
            Some(stored) if stored != ch.size => {
                return Err(MetaError::ChunkSize {
                    id: ch.id.clone(),
                    stored,
                    declared: ch.size,
                })
            }
            Some(_) => {}
        }
    }
    Ok(out)
}

/// Whether chunk `id` is recorded as stored.
pub fn is_stored(c: &Connection, id: &str) -> Result<bool, MetaError> {
    Ok(c.prepare_cached("SELECT 1 FROM chunks WHERE id = ?1")?
        .exists([id])?)
}

/// Whether chunk `id` is recorded as stored. A hit refreshes the chunk's
/// age, so gc's grace period protects a chunk that an upload is about to
/// reference again.
pub fn touch_if_stored(c: &Connection, id: &str, now: &str) -> Result<bool, MetaError> {
    Ok(
        c.prepare_cached("UPDATE chunks SET created_at = ?2 WHERE id = ?1")?
            .execute(params![id, now])?
            > 0,
    )
}

/// Every stored chunk with its size, in id order.
pub fn all(c: &mut Connection) -> Result<Vec<(String, u32)>, MetaError> {
    let mut stmt = c.prepare_cached("SELECT id, size FROM chunks ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replicas recorded as missing or corrupt, of chunks that are stored.
pub fn needing_repair(c: &Connection, limit: u32) -> Result<Vec<(String, String)>, MetaError> {
    let mut stmt = c.prepare_cached(
        "SELECT r.chunk_id, r.node FROM replicas r JOIN chunks c ON c.id = r.chunk_id
         WHERE r.state <> 'ok' LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Forgets that `node` holds `chunk` (its copy was removed on purpose).
pub fn forget_replica(c: &Connection, chunk: &str, node: &str) -> Result<(), MetaError> {
    c.execute(
        "DELETE FROM replicas WHERE chunk_id = ?1 AND node = ?2",
        params![chunk, node],
    )?;
    Ok(())
}

/// Good copies and their bytes, per node.
pub fn node_usage(c: &Connection) -> Result<Vec<(String, u64, u64)>, MetaError> {
    let mut stmt = c.prepare_cached(
        "SELECT r.node, COUNT(*), COALESCE(SUM(c.size), 0) FROM replicas r JOIN chunks c ON c.id = r.chunk_id
         WHERE r.state = 'ok' GROUP BY r.node",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get::<_, i64>(1)? as u64,
            r.get::<_, i64>(2)? as u64,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// (stored chunks, chunks with fewer than `r` good copies).
pub fn replication_counts(c: &Connection, r: usize) -> Result<(u64, u64), MetaError> {
    Ok(c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(good < ?1), 0) FROM (
             SELECT (SELECT COUNT(*) FROM replicas r WHERE r.chunk_id = c.id AND r.state = 'ok') AS good
             FROM chunks c)",
        [r as i64],
        |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
    )?)
}

/// Replica counts of a version's distinct chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    pub chunks: u32,
    pub fully_replicated: u32,
    pub under_replicated: u32,
    pub unavailable: u32,
}

/// How well version `number` of file `file_id` is replicated, against a
/// target of `r` good copies per chunk.
pub fn version_health(
    c: &Connection,
    file_id: i64,
    number: u64,
    r: usize,
) -> Result<HealthCounts, MetaError> {
    let mut stmt = c.prepare_cached(
        "SELECT (SELECT COUNT(*) FROM replicas r WHERE r.chunk_id = vc.chunk_id AND r.state = 'ok')
         FROM (SELECT DISTINCT chunk_id FROM version_chunks WHERE file_id = ?1 AND number = ?2) vc",
    )?;
    let mut h = HealthCounts::default();
    for good in stmt.query_map(params![file_id, number as i64], |r| r.get::<_, i64>(0))? {
        let good = good? as usize;
        h.chunks += 1;
        match good {
            0 => h.unavailable += 1,
            g if g >= r => h.fully_replicated += 1,
            _ => h.under_replicated += 1,
        }
    }
    Ok(h)
}
