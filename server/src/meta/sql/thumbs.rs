//! Which thumbnails exist on the nodes, per owner and content, so that gc
//! removes each once no version of that owner has the content.

use super::tx::Tx;
use crate::meta::{MetaError, OwnerId};

/// See [`crate::meta::MetaStore::record_thumbnail`].
pub fn record(tx: &dyn Tx, owner: OwnerId, hash: &str, edge: u32) -> Result<(), MetaError> {
    tx.execute(
        "INSERT INTO thumbnails (owner_id, hash, edge, created_at) VALUES ($1, $2, $3, now_ms())
         ON CONFLICT (owner_id, hash, edge) DO NOTHING",
        &[&owner, &hash, &edge],
    )?;
    Ok(())
}

/// See [`crate::meta::MetaStore::unreferenced_thumbnails`].
pub fn unreferenced(tx: &dyn Tx, limit: u32) -> Result<Vec<(OwnerId, String, u32)>, MetaError> {
    Ok(tx
        .query(
            "SELECT t.owner_id, t.hash, t.edge FROM thumbnails t
             WHERE NOT EXISTS (
                 SELECT 1 FROM versions v JOIN files f ON f.id = v.file_id
                 WHERE v.hash = t.hash AND f.owner_id = t.owner_id)
             ORDER BY t.owner_id, t.hash, t.edge LIMIT $1",
            &[&limit],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<i64>(2) as u32))
        .collect())
}

/// See [`crate::meta::MetaStore::forget_thumbnail`].
pub fn forget(tx: &dyn Tx, owner: OwnerId, hash: &str, edge: u32) -> Result<(), MetaError> {
    tx.execute(
        "DELETE FROM thumbnails WHERE owner_id = $1 AND hash = $2 AND edge = $3",
        &[&owner, &hash, &edge],
    )?;
    Ok(())
}
