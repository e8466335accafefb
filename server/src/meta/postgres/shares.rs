//! Share links on PostgreSQL.

use super::{ts, GenericClient};
use crate::meta::{MetaError, NewShare, OwnerId, ShareRow};
use tokio_postgres::Row;

const SELECT_SHARE: &str = "
    SELECT s.id, s.owner_id, o.name, f.path, s.number, s.password_hash, s.created_at,
           s.expires_at, s.revoked_at IS NOT NULL
    FROM share_links s JOIN files f ON f.id = s.file_id JOIN owners o ON o.id = s.owner_id";

fn share_row(r: &Row) -> ShareRow {
    ShareRow {
        id: r.get(0),
        owner: r.get(1),
        owner_name: r.get(2),
        path: r.get(3),
        number: r.get::<_, i64>(4) as u64,
        password_hash: r.get(5),
        created_at: ts(r.get(6)),
        expires_at: ts(r.get(7)),
        revoked: r.get(8),
    }
}

/// See [`crate::meta::MetaStore::create_share`].
pub async fn create<C: GenericClient>(c: &C, s: &NewShare) -> Result<Option<ShareRow>, MetaError> {
    let Some(v) = super::version(c, s.owner, &s.path, s.number).await? else {
        return Ok(None);
    };
    if v.deleted {
        return Ok(None);
    }
    c.execute(
        "INSERT INTO share_links (id, owner_id, file_id, number, password_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, now(), now() + $6::BIGINT * INTERVAL '1 millisecond')",
        &[
            &s.id,
            &s.owner,
            &v.file_id,
            &(v.number as i64),
            &s.password_hash,
            &super::ms(s.ttl),
        ],
    )
    .await?;
    get(c, &s.id).await
}

/// See [`crate::meta::MetaStore::shares`].
pub async fn list<C: GenericClient>(c: &C, owner: OwnerId) -> Result<Vec<ShareRow>, MetaError> {
    let rows = c
        .query(
            &format!("{SELECT_SHARE} WHERE s.owner_id = $1 ORDER BY s.created_at DESC, s.id"),
            &[&owner],
        )
        .await?;
    Ok(rows.iter().map(share_row).collect())
}

/// See [`crate::meta::MetaStore::share`].
pub async fn get<C: GenericClient>(c: &C, id: &str) -> Result<Option<ShareRow>, MetaError> {
    Ok(c.query_opt(
        &format!(
            "{SELECT_SHARE} WHERE s.id = $1 AND f.deleted_at IS NULL
                   AND EXISTS (SELECT 1 FROM versions v
                               WHERE v.file_id = s.file_id AND v.number = s.number)"
        ),
        &[&id],
    )
    .await?
    .as_ref()
    .map(share_row))
}

/// See [`crate::meta::MetaStore::revoke_share`].
pub async fn revoke<C: GenericClient>(c: &C, owner: OwnerId, id: &str) -> Result<bool, MetaError> {
    let found = c
        .query_opt(
            "SELECT 1 FROM share_links WHERE id = $1 AND owner_id = $2",
            &[&id, &owner],
        )
        .await?
        .is_some();
    c.execute(
        "UPDATE share_links SET revoked_at = now()
         WHERE id = $1 AND owner_id = $2 AND revoked_at IS NULL",
        &[&id, &owner],
    )
    .await?;
    Ok(found)
}
