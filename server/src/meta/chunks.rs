//! Queries on chunks and their replicas.

use super::MetaError;
use crate::cluster::ReplicaEvent;
use rusqlite::{params, Connection};
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

/// Records replica outcomes, in one transaction.
pub fn record_replicas(
    c: &mut Connection,
    events: &[ReplicaEvent],
    now: &str,
) -> Result<(), MetaError> {
    let tx = c.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO replicas (chunk_id, node, state, checked_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (chunk_id, node) DO UPDATE SET state = excluded.state, checked_at = excluded.checked_at",
        )?;
        for e in events {
            stmt.execute(params![e.chunk_id, e.node, e.state.as_str(), now])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Which of `ids` are not recorded as stored (each once, in first-seen order).
pub fn unknown<'a>(
    c: &Connection,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, MetaError> {
    let mut stmt = c.prepare_cached("SELECT 1 FROM chunks WHERE id = ?1")?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if seen.insert(id) && !stmt.exists([id])? {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

/// Whether chunk `id` is recorded as stored.
pub fn is_stored(c: &Connection, id: &str) -> Result<bool, MetaError> {
    Ok(c.prepare_cached("SELECT 1 FROM chunks WHERE id = ?1")?
        .exists([id])?)
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
