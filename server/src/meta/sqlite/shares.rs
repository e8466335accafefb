//! Queries on share links.

use crate::meta::{MetaError, NewShare, OwnerId, ShareRow};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

const SELECT_SHARE: &str = "
    SELECT s.id, s.owner_id, o.name, f.path, s.number, s.password_hash, s.created_at,
           s.expires_at, s.revoked_at IS NOT NULL
    FROM share_links s JOIN files f ON f.id = s.file_id JOIN owners o ON o.id = s.owner_id";

fn share_row(r: &Row<'_>) -> rusqlite::Result<ShareRow> {
    Ok(ShareRow {
        id: r.get(0)?,
        owner: r.get(1)?,
        owner_name: r.get(2)?,
        path: r.get(3)?,
        number: r.get::<_, i64>(4)? as u64,
        password_hash: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        revoked: r.get(8)?,
    })
}

/// See [`crate::meta::MetaStore::create_share`].
pub fn create(
    tx: &Transaction,
    s: &NewShare,
    expires_at: &str,
    now: &str,
) -> Result<Option<ShareRow>, MetaError> {
    let Some(v) = super::files::version(tx, s.owner, &s.path, s.number)? else {
        return Ok(None);
    };
    if v.deleted {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO share_links (id, owner_id, file_id, number, password_hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            s.id,
            s.owner,
            v.file_id,
            v.number as i64,
            s.password_hash,
            now,
            expires_at
        ],
    )?;
    get(tx, &s.id)
}

/// See [`crate::meta::MetaStore::shares`].
pub fn list(c: &Connection, owner: OwnerId) -> Result<Vec<ShareRow>, MetaError> {
    let mut stmt = c.prepare_cached(&format!(
        "{SELECT_SHARE} WHERE s.owner_id = ?1 ORDER BY s.created_at DESC, s.id"
    ))?;
    let rows = stmt.query_map([owner], share_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// See [`crate::meta::MetaStore::share`]: only while its file is live and
/// its version retained.
pub fn get(c: &Connection, id: &str) -> Result<Option<ShareRow>, MetaError> {
    Ok(c.prepare_cached(&format!(
        "{SELECT_SHARE} WHERE s.id = ?1 AND f.deleted_at IS NULL
               AND EXISTS (SELECT 1 FROM versions v
                           WHERE v.file_id = s.file_id AND v.number = s.number)"
    ))?
    .query_row([id], share_row)
    .optional()?)
}

/// See [`crate::meta::MetaStore::revoke_share`].
pub fn revoke(tx: &Transaction, owner: OwnerId, id: &str, now: &str) -> Result<bool, MetaError> {
    let found = tx
        .prepare_cached("SELECT 1 FROM share_links WHERE id = ?1 AND owner_id = ?2")?
        .exists(params![id, owner])?;
    tx.execute(
        "UPDATE share_links SET revoked_at = ?3
         WHERE id = ?1 AND owner_id = ?2 AND revoked_at IS NULL",
        params![id, owner, now],
    )?;
    Ok(found)
}
