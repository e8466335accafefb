//! Garbage collection's metadata: version retention and purges, claims on
//! chunks nothing references, and the notes on orphan objects.

use super::chunks::ChunkEvent;
use super::chunks::ChunkState::{Deleting as DELETING, Pending as PENDING};
use super::tx::{list, Tx};
use super::{ms, ops};
use crate::meta::{MetaError, Retention, PENDING_FLOOR};
use std::time::Duration;

/// How long gc keeps orphan chunks after a restore from a snapshot, at
/// least: as long as daily snapshots are kept, so an operator who restored
/// the wrong one can still restore a newer one with all its chunks.
pub const RESTORE_HOLD: Duration = Duration::from_secs(7 * 24 * 3600);

/// Takes one owner's count of versions down by what `doomed` (a query of
/// `(file_id, number)` rows over `params`) is about to remove.
fn uncount(tx: &dyn Tx, doomed: &str, params: super::tx::Params) -> Result<(), MetaError> {
    tx.execute(
        &format!(
            "UPDATE owners AS o SET version_count = o.version_count - g.n
             FROM (SELECT f.owner_id, COUNT(*) AS n FROM ({doomed}) d
                   JOIN files f ON f.id = d.file_id GROUP BY f.owner_id) g
             WHERE o.id = g.owner_id"
        ),
        params,
    )?;
    Ok(())
}

/// See [`crate::meta::MetaStore::apply_retention`].
pub fn apply_retention(tx: &dyn Tx, retention: &Retention) -> Result<u64, MetaError> {
    let mut removed = 0;
    if let Some(after) = retention.purge_deleted_after {
        let doomed = "SELECT id FROM files WHERE deleted_at < now_ms() - $1";
        let after = ms(after);
        uncount(
            tx,
            &format!("SELECT v.file_id, v.number FROM versions v WHERE v.file_id IN ({doomed})"),
            &[&after],
        )?;
        tx.execute(
            &format!("DELETE FROM version_chunks WHERE file_id IN ({doomed})"),
            &[&after],
        )?;
        removed += tx.execute(
            &format!("DELETE FROM versions WHERE file_id IN ({doomed})"),
            &[&after],
        )?;
        // A purged file's links go with it: file ids may be reused.
        tx.execute(
            &format!("DELETE FROM share_links WHERE file_id IN ({doomed})"),
            &[&after],
        )?;
        tx.execute(
            &format!("DELETE FROM files WHERE id IN ({doomed})"),
            &[&after],
        )?;
    }
    if let Some(keep) = retention.keep_last {
        // Versions ranked past `keep` (newest first), never the newest, and
        // not protected by the age rule.
        let doomed = "SELECT file_id, number FROM (
                SELECT file_id, number, created_at,
                       ROW_NUMBER() OVER (PARTITION BY file_id ORDER BY number DESC) AS rank
                FROM versions) ranked
             WHERE rank > $1 AND (CAST($2 AS BIGINT) IS NULL OR created_at < now_ms() - $2)";
        let young = retention.keep_younger_than.map(ms);
        let keep = keep.max(1);
        uncount(tx, doomed, &[&keep, &young])?;
        tx.execute(
            &format!("DELETE FROM version_chunks WHERE (file_id, number) IN ({doomed})"),
            &[&keep, &young],
        )?;
        removed += tx.execute(
            &format!("DELETE FROM versions WHERE (file_id, number) IN ({doomed})"),
            &[&keep, &young],
        )?;
    }
    Ok(removed)
}

/// See [`crate::meta::MetaStore::claim_unreferenced`]; run as a
/// [`super::tx::Mode::Claim`], so a row touched by a reference since it
/// began makes the claim fail (and retry), never succeed.
pub fn claim_unreferenced(
    tx: &dyn Tx,
    grace: Duration,
    limit: u32,
) -> Result<Vec<String>, MetaError> {
    let pending = grace.max(PENDING_FLOOR);
    tx.execute(
        &format!(
            "UPDATE chunks SET state = {}, hold = NULL WHERE id IN (
                 SELECT id FROM chunks c
                 WHERE {} AND c.created_at < now_ms()
                     - CASE WHEN c.state = {PENDING} THEN CAST($2 AS BIGINT) ELSE CAST($1 AS BIGINT) END
                   AND NOT EXISTS (SELECT 1 FROM version_chunks vc WHERE vc.chunk_id = c.id)
                   AND NOT EXISTS (SELECT 1 FROM session_chunks sc WHERE sc.chunk_id = c.id)
                   AND NOT EXISTS (SELECT 1 FROM chunks p WHERE p.pack_id = c.id)
                 LIMIT $3)",
            ChunkEvent::Claim.to(),
            ChunkEvent::Claim.guard("c"),
        ),
        &[&ms(grace), &ms(pending), &limit],
    )?;
    Ok(tx
        .query(
            &format!("SELECT id FROM chunks WHERE state = {DELETING} LIMIT $1"),
            &[&limit],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// See [`crate::meta::MetaStore::forget_chunk`].
pub fn forget_chunk(tx: &dyn Tx, id: &str) -> Result<(), MetaError> {
    let n = tx.execute(
        &format!(
            "DELETE FROM chunks WHERE id = $1 AND {}",
            ChunkEvent::Forget.guard("chunks")
        ),
        &[&id],
    )?;
    if n > 0 {
        tx.execute("DELETE FROM replicas WHERE chunk_id = $1", &[&id])?;
        tx.execute("DELETE FROM owner_chunks WHERE chunk_id = $1", &[&id])?;
        tx.execute("DELETE FROM gc_orphans WHERE chunk_id = $1", &[&id])?;
    }
    Ok(())
}

/// See [`crate::meta::MetaStore::note_orphans`]. Nothing is ripe while a
/// restore from a snapshot is younger than [`RESTORE_HOLD`].
pub fn note_orphans(
    tx: &dyn Tx,
    node: &str,
    found: &[String],
    grace: Duration,
) -> Result<Vec<String>, MetaError> {
    let found = list(found);
    // A chunk moved into a pack leaves its own object behind: an orphan,
    // like one no row names.
    // Forget notes about objects that are gone or are named now: should
    // one appear again, its grace period starts afresh.
    tx.execute(
        "DELETE FROM gc_orphans WHERE node = $1
           AND (chunk_id NOT IN (SELECT value FROM list_of($2))
                OR chunk_id IN (SELECT id FROM chunks WHERE pack_id IS NULL))",
        &[&node, &found],
    )?;
    tx.execute(
        "INSERT INTO gc_orphans (node, chunk_id, first_seen)
         SELECT CAST($1 AS TEXT), f.value, now_ms() FROM list_of($2) AS f
         WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = f.value AND c.pack_id IS NULL)
         ON CONFLICT (node, chunk_id) DO NOTHING",
        &[&node, &found],
    )?;
    if let Some(at) = ops::setting(tx, ops::RESTORED_AT)?.and_then(|t| crate::meta::parse_ms(&t)) {
        let now: i64 = tx.query_one("SELECT now_ms()", &[])?.get(0);
        if at > now - ms(RESTORE_HOLD) {
            return Ok(Vec::new());
        }
    }
    Ok(tx
        .query(
            "SELECT chunk_id FROM gc_orphans
             WHERE node = $1 AND first_seen < now_ms() - $2 ORDER BY chunk_id",
            &[&node, &ms(grace)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// See [`crate::meta::MetaStore::claim_orphan`].
pub fn claim_orphan(tx: &dyn Tx, id: &str) -> Result<bool, MetaError> {
    Ok(tx.execute(
        &format!(
            "INSERT INTO chunks (id, size, created_at, state) VALUES ($1, 0, now_ms(), {})
             ON CONFLICT (id) DO NOTHING",
            ChunkEvent::ClaimOrphan.new_row()
        ),
        &[&id],
    )? > 0)
}
