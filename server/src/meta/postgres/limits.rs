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

/// Fails with [`MetaError::Limit`] if `owner` has `max_open` uploads open
/// (sessions and streams alike).
pub async fn check_open<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    max_open: u32,
) -> Result<(), MetaError> {
    let open: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM upload_sessions
             WHERE owner_id = $1 AND expires_at > now() AND committed_version IS NULL",
            &[&owner],
        )
        .await?
        .get(0);
    if open >= max_open as i64 {
        return Err(MetaError::Limit(crate::meta::sessions_message(max_open)));
    }
    Ok(())
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

/// See [`crate::meta::sqlite::files::check_versions`].
pub async fn check_versions<C: GenericClient>(c: &C, owner: OwnerId) -> Result<(), MetaError> {
    let row = c
        .query_opt(
            "SELECT version_count, (SELECT value FROM settings WHERE key = $2)
             FROM owners WHERE id = $1",
            &[&owner, &crate::meta::MAX_VERSIONS],
        )
        .await?;
    let Some(row) = row else { return Ok(()) };
    let (count, max): (i64, Option<String>) = (row.get(0), row.get(1));
    if let Some(max) = max.and_then(|m| m.parse::<u64>().ok()) {
        if count.max(0) as u64 >= max {
            return Err(MetaError::Limit(crate::meta::versions_message(max)));
        }
    }
    Ok(())
}

/// Bytes `owner`'s open uploads hold reserved (all but `except`); see
/// [`crate::meta::sqlite::accounts::reserved_bytes`].
pub async fn reserved_bytes<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    except: Option<&str>,
) -> Result<u64, MetaError> {
    let reserved: i64 = c
        .query_one(
            "SELECT COALESCE(SUM(sc.size), 0)::BIGINT FROM upload_sessions s
             JOIN session_chunks sc ON sc.session_id = s.id
             WHERE s.owner_id = $1 AND s.expires_at > now() AND s.committed_version IS NULL
               AND s.id <> $2",
            &[&owner, &except.unwrap_or("")],
        )
        .await?
        .get(0);
    Ok(reserved.max(0) as u64)
}

/// Fails with [`MetaError::Limit`] if `more` bytes would cross `quota`,
/// counting what `owner`'s open uploads hold reserved (all but `except`,
/// the upload this commit completes).
pub async fn check_quota<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    quota: Option<u64>,
    more: u64,
    except: Option<&str>,
) -> Result<(), MetaError> {
    let Some(quota) = quota else { return Ok(()) };
    let used = used_bytes(c, owner)
        .await?
        .saturating_add(reserved_bytes(c, owner, except).await?);
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
        reserved: reserved_bytes(c, owner, None).await?,
        quota: quota.map(|q| q.max(0) as u64),
    })
}
