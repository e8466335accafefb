//! The checks every new version passes on PostgreSQL: the name is free of
//! file/folder clashes and the owner's quota holds; and usage reports.

use super::GenericClient;
use crate::meta::{MetaError, OwnerId, Usage};

/// Takes the owner's row lock: version commits and session openings of
/// one owner then run one at a time, on every server, so two racing
/// commits cannot both pass the quota or create `a` and `a/b`.
pub async fn lock_owner<C: GenericClient>(c: &C, owner: OwnerId) -> Result<Option<u64>, MetaError> {
    let row = c
        .query_opt(
            "SELECT quota_bytes FROM owners WHERE id = $1 FOR UPDATE",
            &[&owner],
        )
        .await?;
    Ok(row
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .map(|q| q.max(0) as u64))
}

/// See [`crate::meta::sqlite::files::check_path_free`].
pub async fn check_path_free<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    path: &str,
) -> Result<(), MetaError> {
    let folders: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
    if !folders.is_empty() {
        let clash = c
            .query_opt(
                "SELECT path FROM files WHERE owner_id = $1 AND path = ANY($2::TEXT[])
                   AND deleted_at IS NULL LIMIT 1",
                &[&owner, &folders],
            )
            .await?;
        if let Some(r) = clash {
            let folder: String = r.get(0);
            return Err(MetaError::PathConflict(format!(
                "{path:?} cannot be created: {folder:?} is a file, not a folder"
            )));
        }
    }
    let inside = c
        .query_opt(
            "SELECT path FROM files WHERE owner_id = $1 AND path > $2 AND path < $3
               AND deleted_at IS NULL LIMIT 1",
            &[&owner, &format!("{path}/"), &format!("{path}0")],
        )
        .await?;
    if let Some(r) = inside {
        let inside: String = r.get(0);
        return Err(MetaError::PathConflict(format!(
            "{path:?} cannot be a file: it is a folder holding {inside:?}"
        )));
    }
    Ok(())
}

/// Logical bytes of every retained version of `owner`'s files.
pub async fn used_bytes<C: GenericClient>(c: &C, owner: OwnerId) -> Result<u64, MetaError> {
    let used: i64 = c
        .query_one(
            "SELECT COALESCE(SUM(v.size), 0)::BIGINT FROM files f
             JOIN versions v ON v.file_id = f.id WHERE f.owner_id = $1",
            &[&owner],
        )
        .await?
        .get(0);
    Ok(used.max(0) as u64)
}

/// Fails with [`MetaError::Limit`] if `more` bytes would cross `quota`.
pub async fn check_quota<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    quota: Option<u64>,
    more: u64,
) -> Result<(), MetaError> {
    let Some(quota) = quota else { return Ok(()) };
    let used = used_bytes(c, owner).await?;
    if used.saturating_add(more) > quota {
        return Err(MetaError::Limit(crate::meta::quota_message(
            used, more, quota,
        )));
    }
    Ok(())
}

/// See [`crate::meta::MetaStore::usage`].
pub async fn usage<C: GenericClient>(c: &C, owner: OwnerId) -> Result<Usage, MetaError> {
    let quota: Option<i64> = c
        .query_opt("SELECT quota_bytes FROM owners WHERE id = $1", &[&owner])
        .await?
        .and_then(|r| r.get(0));
    Ok(Usage {
        used: used_bytes(c, owner).await?,
        quota: quota.map(|q| q.max(0) as u64),
    })
}
