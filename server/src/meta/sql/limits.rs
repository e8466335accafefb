//! The checks every new version and upload passes: the name is free of
//! file/folder clashes, and the owner's quota, open uploads and versions
//! stay within their limits; and usage reports.

use super::tx::{list, Tx};
use crate::meta::{Limit, MetaError, OwnerId, PathConflict, Usage};

/// Takes the owner's row lock and returns their quota: version commits
/// and upload openings of one owner then run one at a time, on every
/// server, so two racing commits cannot both pass the quota or create `a`
/// and `a/b`.
pub fn lock_owner(tx: &dyn Tx, owner: OwnerId) -> Result<Option<u64>, MetaError> {
    let row = tx.query_opt(
        "SELECT quota_bytes FROM owners WHERE id = $1 FOR UPDATE",
        &[&owner],
    )?;
    Ok(row.and_then(|r| r.get::<Option<u64>>(0)))
}

/// Fails with [`MetaError::Limit`] if `owner` has `max_open` uploads open
/// (sessions and streams alike).
pub fn check_open(tx: &dyn Tx, owner: OwnerId, max_open: u32) -> Result<(), MetaError> {
    let open: i64 = tx
        .query_one(
            "SELECT COUNT(DISTINCT COALESCE(batch_id, id)) FROM upload_sessions
             WHERE owner_id = $1 AND expires_at > now_ms() AND committed_version IS NULL",
            &[&owner],
        )?
        .get(0);
    if open >= max_open as i64 {
        return Err(MetaError::Limit(Limit::Uploads { max: max_open }));
    }
    Ok(())
}

/// Fails with [`MetaError::PathConflict`] if a live file of `owner` is a
/// folder of `path` (`a` for `a/b`), or `path` a folder of one (`a/b` for
/// `a`) or a folder made on its own: a name is a file or a folder, never
/// both.
pub fn check_path_free(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<(), MetaError> {
    let folders: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
    if !folders.is_empty() {
        let clash = tx.query_opt(
            "SELECT path FROM files WHERE owner_id = $1
               AND path IN (SELECT value FROM list_of($2)) AND deleted_at IS NULL LIMIT 1",
            &[&owner, &list(&folders)],
        )?;
        if let Some(r) = clash {
            return Err(MetaError::PathConflict(PathConflict::NotAFolder {
                path: path.to_string(),
                file: r.get(0),
            }));
        }
    }
    let (lo, hi) = super::inside(path);
    let inside = tx.query_opt(
        "SELECT path FROM files WHERE owner_id = $1 AND path > $2 AND path < $3
           AND deleted_at IS NULL LIMIT 1",
        &[&owner, &lo, &hi],
    )?;
    if let Some(r) = inside {
        return Err(MetaError::PathConflict(PathConflict::IsAFolder {
            path: path.to_string(),
            inside: r.get(0),
        }));
    }
    if super::folders::made(tx, owner, path)? {
        return Err(MetaError::PathConflict(PathConflict::IsAFolder {
            path: path.to_string(),
            inside: String::new(),
        }));
    }
    Ok(())
}

/// Logical bytes of every retained version of `owner`'s files.
pub fn used_bytes(tx: &dyn Tx, owner: OwnerId) -> Result<u64, MetaError> {
    Ok(tx
        .query_one(
            "SELECT CAST(COALESCE(SUM(v.size), 0) AS BIGINT) FROM files f
             JOIN versions v ON v.file_id = f.id WHERE f.owner_id = $1",
            &[&owner],
        )?
        .get(0))
}

/// Bytes `owner`'s open uploads hold reserved, all but `except`'s: each
/// open session's declared chunks, each stream's chunks stored so far.
pub fn reserved_bytes(tx: &dyn Tx, owner: OwnerId, except: Option<&str>) -> Result<u64, MetaError> {
    Ok(tx
        .query_one(
            "SELECT CAST(COALESCE(SUM(sc.size), 0) AS BIGINT) FROM upload_sessions s
             JOIN session_chunks sc ON sc.session_id = s.id
             WHERE s.owner_id = $1 AND s.expires_at > now_ms() AND s.committed_version IS NULL
               AND s.id <> $2",
            &[&owner, &except.unwrap_or("")],
        )?
        .get(0))
}

/// Fails with [`MetaError::Limit`] if `more` bytes would cross `quota`,
/// counting what `owner`'s open uploads hold reserved (all but `except`,
/// the upload this commit completes).
pub fn check_quota(
    tx: &dyn Tx,
    owner: OwnerId,
    quota: Option<u64>,
    more: u64,
    except: Option<&str>,
) -> Result<(), MetaError> {
    let Some(quota) = quota else { return Ok(()) };
    let used = used_bytes(tx, owner)?.saturating_add(reserved_bytes(tx, owner, except)?);
    if used.saturating_add(more) > quota {
        return Err(MetaError::Limit(Limit::Quota { used, more, quota }));
    }
    Ok(())
}

/// Fails with [`MetaError::Limit`] if `owner` keeps as many versions as
/// the [`crate::meta::MAX_VERSIONS`] setting allows.
pub fn check_versions(tx: &dyn Tx, owner: OwnerId) -> Result<(), MetaError> {
    let row = tx.query_opt(
        "SELECT version_count, (SELECT value FROM settings WHERE key = $2)
         FROM owners WHERE id = $1",
        &[&owner, &crate::meta::MAX_VERSIONS],
    )?;
    let Some(row) = row else { return Ok(()) };
    let (count, max): (u64, Option<String>) = (row.get(0), row.get(1));
    if let Some(max) = max.and_then(|m| m.parse::<u64>().ok()) {
        if count >= max {
            return Err(MetaError::Limit(Limit::Versions { max }));
        }
    }
    Ok(())
}

/// See [`crate::meta::MetaStore::usage`].
pub fn usage(tx: &dyn Tx, owner: OwnerId) -> Result<Usage, MetaError> {
    let quota = tx
        .query_opt("SELECT quota_bytes FROM owners WHERE id = $1", &[&owner])?
        .and_then(|r| r.get::<Option<u64>>(0));
    Ok(Usage {
        used: used_bytes(tx, owner)?,
        reserved: reserved_bytes(tx, owner, None)?,
        quota,
    })
}
