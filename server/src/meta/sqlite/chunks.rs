//! Queries on chunks, their holds and their replicas.

use crate::meta::{
    random_id, ChunkHold, ChunkRef, HealthCounts, MetaError, OwnerId, ReplicaOutcome, StreamRef,
    VersionRow,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;

/// See [`crate::meta::MetaStore::hold_chunk`].
pub fn hold(
    c: &Connection,
    chunk: &ChunkRef,
    stream: Option<&StreamRef>,
    now: &str,
) -> Result<ChunkHold, MetaError> {
    if let Some(s) = stream {
        let owner: Option<OwnerId> = c
            .prepare_cached("SELECT owner_id FROM upload_sessions WHERE id = ?1")?
            .query_row([&s.stream], |r| r.get(0))
            .optional()?;
        if let Some(owner) = owner {
            super::files::check_quota(c, owner, chunk.size as u64, None, now)?;
        }
    }
    let row: Option<(String, Option<String>)> = c
        .prepare_cached(
            "INSERT INTO chunks (id, size, created_at, state, hold) VALUES (?1, ?2, ?3, 'pending', ?4)
             ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at
               WHERE chunks.state <> 'deleting'
             RETURNING state, hold",
        )?
        .query_row(params![chunk.id, chunk.size, now, random_id()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let hold = match row {
        None => return Ok(ChunkHold::Deleting),
        Some((state, _)) if state == "ok" => ChunkHold::Stored,
        Some((_, hold)) => ChunkHold::Write(hold.unwrap_or_default()),
    };
    if let Some(s) = stream {
        c.prepare_cached(
            "INSERT INTO session_chunks (session_id, idx, chunk_id, size) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (session_id, idx) DO UPDATE SET chunk_id = excluded.chunk_id, size = excluded.size",
        )?
        .execute(params![s.stream, s.index, chunk.id, chunk.size])?;
    }
    Ok(hold)
}

/// See [`crate::meta::MetaStore::record_chunk`].
pub fn record(
    c: &Connection,
    chunk: &ChunkRef,
    hold: &str,
    nodes: &[String],
    now: &str,
) -> Result<(), MetaError> {
    let n = c
        .prepare_cached(
            "UPDATE chunks SET state = 'ok', hold = NULL, created_at = ?3
             WHERE id = ?1 AND (state = 'ok' OR (state = 'pending' AND hold = ?2))",
        )?
        .execute(params![chunk.id, hold, now])?;
    if n == 0 {
        return Err(MetaError::ChunkDeleting(chunk.id.clone()));
    }
    let mut stmt = c.prepare_cached(
        "INSERT INTO replicas (chunk_id, node, state, checked_at) VALUES (?1, ?2, 'ok', ?3)
         ON CONFLICT (chunk_id, node) DO UPDATE SET state = 'ok', checked_at = excluded.checked_at",
    )?;
    for node in nodes {
        stmt.execute(params![chunk.id, node, now])?;
    }
    Ok(())
}

/// Records replica outcomes.
pub fn record_replicas(
    c: &Connection,
    outcomes: &[ReplicaOutcome],
    now: &str,
) -> Result<(), MetaError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO replicas (chunk_id, node, state, checked_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (chunk_id, node) DO UPDATE SET state = excluded.state, checked_at = excluded.checked_at",
    )?;
    for e in outcomes {
        stmt.execute(params![e.chunk_id, e.node, e.state.as_str(), now])?;
    }
    Ok(())
}

/// Which of `chunks` `owner` must send (each once, in first-seen order):
/// those not stored, and those stored that `owner` never sent or
/// committed, so that dedup answers no question about other owners'
/// content. Fails with [`MetaError::ChunkSize`] if a chunk of the owner's
/// has another size than the one given: an id fixes the content, so one
/// of the two is wrong and no version may list it so. Another owner's
/// chunk is just missing, whatever its size. With `touch`, every stored
/// one's age is refreshed, which is how a new reference keeps gc away.
pub fn unknown_touching(
    c: &Connection,
    owner: OwnerId,
    chunks: &[ChunkRef],
    touch: Option<&str>,
) -> Result<Vec<String>, MetaError> {
    let mut get = c.prepare_cached(
        "SELECT c.size, EXISTS (SELECT 1 FROM owner_chunks o
                                WHERE o.owner_id = ?2 AND o.chunk_id = c.id)
         FROM chunks c WHERE c.id = ?1 AND c.state = 'ok'",
    )?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for ch in chunks {
        if !seen.insert(ch.id.as_str()) {
            continue;
        }
        match get
            .query_row(params![&ch.id, owner], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, bool>(1)?))
            })
            .optional()?
        {
            None | Some((_, false)) => out.push(ch.id.clone()),
            Some((stored, true)) if stored != ch.size => {
                return Err(MetaError::ChunkSize {
                    id: ch.id.clone(),
                    stored,
                    declared: ch.size,
                })
            }
            Some(_) => {
                if let Some(now) = touch {
                    c.prepare_cached("UPDATE chunks SET created_at = ?2 WHERE id = ?1")?
                        .execute(params![ch.id, now])?;
                }
            }
        }
    }
    Ok(out)
}

/// [`unknown_touching`] without touching.
pub fn unknown(
    c: &Connection,
    owner: OwnerId,
    chunks: &[ChunkRef],
) -> Result<Vec<String>, MetaError> {
    unknown_touching(c, owner, chunks, None)
}

/// Records that `owner` sent (or committed) the chunks `ids`.
pub fn grant<'a>(
    c: &Connection,
    owner: OwnerId,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<(), MetaError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO owner_chunks (owner_id, chunk_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    for id in ids {
        stmt.execute(params![owner, id])?;
    }
    Ok(())
}

/// Stored chunks after `after`, in id order.
pub fn page(c: &Connection, after: &str, limit: u32) -> Result<Vec<ChunkRef>, MetaError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, size FROM chunks WHERE state = 'ok' AND id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit], |r| {
        Ok(ChunkRef {
            id: r.get(0)?,
            size: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replicas recorded as missing or corrupt, of chunks that are stored.
pub fn needing_repair(c: &Connection, limit: u32) -> Result<Vec<(String, String)>, MetaError> {
    let mut stmt = c.prepare_cached(
        "SELECT r.chunk_id, r.node FROM replicas r JOIN chunks c ON c.id = r.chunk_id
         WHERE r.state <> 'ok' AND c.state = 'ok' LIMIT ?1",
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
         WHERE r.state = 'ok' AND c.state = 'ok' GROUP BY r.node",
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
             FROM chunks c WHERE c.state = 'ok')",
        [r as i64],
        |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
    )?)
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
        h.add(good? as usize, r);
    }
    Ok(h)
}

/// `rows` with their health, in one query for all of them.
pub fn with_health(
    c: &Connection,
    rows: Vec<VersionRow>,
    r: usize,
) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // The page's (file, version) pairs as a JSON array, unpacked by
    // json_each: one statement whatever the page size.
    let keys = format!(
        "[{}]",
        rows.iter()
            .map(|v| format!("[{},{}]", v.file_id, v.number))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut stmt = c.prepare_cached(
        "WITH page(file_id, number) AS (
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1)),
         distinct_chunks AS (
             SELECT DISTINCT vc.file_id, vc.number, vc.chunk_id
             FROM page p JOIN version_chunks vc ON vc.file_id = p.file_id AND vc.number = p.number)
         SELECT d.file_id, d.number,
                (SELECT COUNT(*) FROM replicas r WHERE r.chunk_id = d.chunk_id AND r.state = 'ok')
         FROM distinct_chunks d",
    )?;
    let found = stmt
        .query_map([keys], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)? as usize,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::meta::attach_health(rows, found, r))
}
