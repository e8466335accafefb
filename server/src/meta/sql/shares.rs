//! Share links: one version of one file, for anyone with the URL.

use super::tx::{Row, Tx};
use super::{files, ms};
use crate::meta::{MetaError, NewShare, OwnerId, ShareRow};

const SELECT_SHARE: &str = "
    SELECT s.id, s.owner_id, o.name, f.path, s.number, s.password_hash, s.created_at,
           s.expires_at, CASE WHEN s.revoked_at IS NULL THEN 0 ELSE 1 END
    FROM share_links s JOIN files f ON f.id = s.file_id JOIN owners o ON o.id = s.owner_id";

fn share_row(r: &Row) -> ShareRow {
    ShareRow {
        id: r.get(0),
        owner: r.get(1),
        owner_name: r.get(2),
        path: r.get(3),
        number: r.get(4),
        password_hash: r.get(5),
        created_at: r.time(6),
        expires_at: r.time(7),
        revoked: r.get(8),
    }
}

/// See [`crate::meta::MetaStore::create_share`].
pub fn create(tx: &dyn Tx, s: &NewShare) -> Result<Option<ShareRow>, MetaError> {
    let Some(v) = files::version(tx, s.owner, &s.path, s.number)? else {
        return Ok(None);
    };
    if v.deleted {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO share_links (id, owner_id, file_id, number, password_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, now_ms(), now_ms() + $6)",
        &[
            &s.id,
            &s.owner,
            &v.file_id,
            &v.number,
            &s.password_hash,
            &ms(s.ttl),
        ],
    )?;
    get(tx, &s.id)
}

/// See [`crate::meta::MetaStore::shares`].
pub fn list(tx: &dyn Tx, owner: OwnerId) -> Result<Vec<ShareRow>, MetaError> {
    Ok(tx
        .query(
            &format!("{SELECT_SHARE} WHERE s.owner_id = $1 ORDER BY s.created_at DESC, s.id"),
            &[&owner],
        )?
        .iter()
        .map(share_row)
        .collect())
}

/// See [`crate::meta::MetaStore::share`].
pub fn get(tx: &dyn Tx, id: &str) -> Result<Option<ShareRow>, MetaError> {
    Ok(tx
        .query_opt(
            &format!(
                "{SELECT_SHARE} WHERE s.id = $1 AND f.deleted_at IS NULL
                   AND EXISTS (SELECT 1 FROM versions v
                               WHERE v.file_id = s.file_id AND v.number = s.number)"
            ),
            &[&id],
        )?
        .as_ref()
        .map(share_row))
}

/// See [`crate::meta::MetaStore::revoke_share`].
pub fn revoke(tx: &dyn Tx, owner: OwnerId, id: &str) -> Result<bool, MetaError> {
    let found = tx
        .query_opt(
            "SELECT 1 FROM share_links WHERE id = $1 AND owner_id = $2",
            &[&id, &owner],
        )?
        .is_some();
    tx.execute(
        "UPDATE share_links SET revoked_at = now_ms()
         WHERE id = $1 AND owner_id = $2 AND revoked_at IS NULL",
        &[&id, &owner],
    )?;
    Ok(found)
}
