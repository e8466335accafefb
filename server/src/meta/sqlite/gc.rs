//! Queries for garbage collection: version retention, purging deleted
//! files, and claiming chunks nothing references any more.

use crate::meta::MetaError;
use rusqlite::{params, Transaction};
use std::collections::HashSet;

/// Applies a retention policy; returns how many versions were removed.
/// Cut-offs are RFC 3339 times.
pub fn apply_retention(
    tx: &Transaction,
    keep_last: Option<u32>,
    keep_newer_than: Option<String>,
    purge_deleted_before: Option<String>,
) -> Result<u64, MetaError> {
    let mut removed = 0;
    if let Some(cutoff) = &purge_deleted_before {
        tx.execute(
            "WITH gone AS (
                 SELECT f.owner_id, COUNT(*) AS n FROM versions v JOIN files f ON f.id = v.file_id
                 WHERE f.deleted_at < ?1 GROUP BY f.owner_id)
             UPDATE owners SET version_count = version_count -
                 (SELECT n FROM gone WHERE gone.owner_id = owners.id)
             WHERE id IN (SELECT owner_id FROM gone)",
            [cutoff],
        )?;
        tx.execute(
            "DELETE FROM version_chunks WHERE file_id IN (SELECT id FROM files WHERE deleted_at < ?1)",
            [cutoff],
        )?;
        removed += tx.execute(
            "DELETE FROM versions WHERE file_id IN (SELECT id FROM files WHERE deleted_at < ?1)",
            [cutoff],
        )?;
        // A purged file's links go with it: file ids may be reused.
        tx.execute(
            "DELETE FROM share_links WHERE file_id IN (SELECT id FROM files WHERE deleted_at < ?1)",
            [cutoff],
        )?;
        tx.execute("DELETE FROM files WHERE deleted_at < ?1", [cutoff])?;
    }
    if let Some(keep) = keep_last {
        // Versions ranked past `keep` (newest first), never the newest,
        // and not protected by the age rule.
        let doomed = "SELECT file_id, number FROM (
                SELECT file_id, number, created_at,
                       ROW_NUMBER() OVER (PARTITION BY file_id ORDER BY number DESC) AS rank
                FROM versions)
             WHERE rank > MAX(?1, 1) AND (?2 IS NULL OR created_at < ?2)";
        tx.execute(
            &format!(
                "WITH gone AS (
                     SELECT f.owner_id, COUNT(*) AS n FROM ({doomed}) d
                     JOIN files f ON f.id = d.file_id GROUP BY f.owner_id)
                 UPDATE owners SET version_count = version_count -
                     (SELECT n FROM gone WHERE gone.owner_id = owners.id)
                 WHERE id IN (SELECT owner_id FROM gone)"
            ),
            params![keep, keep_newer_than],
        )?;
        tx.execute(
            &format!("DELETE FROM version_chunks WHERE (file_id, number) IN ({doomed})"),
            params![keep, keep_newer_than],
        )?;
        removed += tx.execute(
            &format!("DELETE FROM versions WHERE (file_id, number) IN ({doomed})"),
            params![keep, keep_newer_than],
        )?;
    }
    Ok(removed as u64)
}

/// Marks unreferenced chunks older than `cutoff` (pending ones: older than
/// `pending_cutoff`) as being deleted; returns every chunk so marked.
pub fn claim_unreferenced(
    tx: &Transaction,
    cutoff: &str,
    pending_cutoff: &str,
    limit: u32,
) -> Result<Vec<String>, MetaError> {
    tx.execute(
        "UPDATE chunks SET state = 'deleting', hold = NULL WHERE id IN (
             SELECT id FROM chunks c
             WHERE ((c.state = 'ok' AND c.created_at < ?1) OR (c.state = 'pending' AND c.created_at < ?2))
               AND NOT EXISTS (SELECT 1 FROM version_chunks vc WHERE vc.chunk_id = c.id)
               AND NOT EXISTS (SELECT 1 FROM session_chunks sc WHERE sc.chunk_id = c.id)
             LIMIT ?3)",
        params![cutoff, pending_cutoff, limit],
    )?;
    let mut stmt = tx.prepare_cached("SELECT id FROM chunks WHERE state = 'deleting' LIMIT ?1")?;
    let rows = stmt.query_map([limit], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Forgets a chunk marked for deletion, its replicas and orphan notes.
pub fn forget_chunk(tx: &Transaction, id: &str) -> Result<(), MetaError> {
    let n = tx.execute(
        "DELETE FROM chunks WHERE id = ?1 AND state = 'deleting'",
        [id],
    )?;
    if n > 0 {
        tx.execute("DELETE FROM replicas WHERE chunk_id = ?1", [id])?;
        tx.execute("DELETE FROM gc_orphans WHERE chunk_id = ?1", [id])?;
        tx.execute("DELETE FROM owner_chunks WHERE chunk_id = ?1", [id])?;
    }
    Ok(())
}

/// Marks an orphan's id as being deleted, if no chunk row names it.
pub fn claim_orphan(tx: &Transaction, id: &str, now: &str) -> Result<bool, MetaError> {
    Ok(tx.execute(
        "INSERT INTO chunks (id, size, created_at, state) VALUES (?1, 0, ?2, 'deleting')
         ON CONFLICT (id) DO NOTHING",
        params![id, now],
    )? > 0)
}

/// Notes objects on `node` that no chunk row names; returns those first
/// seen before `cutoff` (safe to delete), and forgets notes about objects
/// that are no longer orphans or are gone.
pub fn note_orphans(
    tx: &Transaction,
    node: &str,
    found: &[String],
    now: &str,
    cutoff: &str,
) -> Result<Vec<String>, MetaError> {
    let mut ripe = Vec::new();
    {
        let mut named = tx.prepare_cached("SELECT 1 FROM chunks WHERE id = ?1")?;
        let mut note = tx.prepare_cached(
            "INSERT INTO gc_orphans (node, chunk_id, first_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT (node, chunk_id) DO UPDATE SET first_seen = first_seen RETURNING first_seen",
        )?;
        for id in found {
            if named.exists([id])? {
                continue;
            }
            let first_seen: String = note.query_row(params![node, id, now], |r| r.get(0))?;
            if first_seen.as_str() < cutoff {
                ripe.push(id.clone());
            }
        }
    }
    tx.execute(
        "DELETE FROM gc_orphans WHERE node = ?1 AND chunk_id IN (SELECT id FROM chunks)",
        [node],
    )?;
    // Notes about objects that are gone: should one appear again, its
    // grace period starts afresh.
    let found: HashSet<&str> = found.iter().map(String::as_str).collect();
    let noted: Vec<String> = tx
        .prepare_cached("SELECT chunk_id FROM gc_orphans WHERE node = ?1")?
        .query_map([node], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in noted.iter().filter(|id| !found.contains(id.as_str())) {
        tx.execute(
            "DELETE FROM gc_orphans WHERE node = ?1 AND chunk_id = ?2",
            params![node, id],
        )?;
    }
    Ok(ripe)
}
