//! Folders: a folder exists while a live file is inside it, and also when
//! it was made on its own (empty, by WebDAV's MKCOL or a "new folder"), as
//! a row in `folders`. Deleting or moving a folder does so to every live
//! file inside it, each change in the feed, in one transaction.

use super::tx::Tx;
use super::{files, inside, limits, props, ByPath};
use crate::meta::{MetaError, OwnerId, PathConflict};
use coffer_proto::put::PutMode;

/// The parent folder of `path` (`""` for the root).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Whether `path` was made as a folder (it has a row).
pub fn made(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<bool, MetaError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM folders WHERE owner_id = $1 AND path = $2",
            &[&owner, &path],
        )?
        .is_some())
}

/// See [`crate::meta::MetaStore::folder_exists`].
pub fn exists(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<bool, MetaError> {
    if path.is_empty() || made(tx, owner, path)? {
        return Ok(true);
    }
    let (lo, hi) = inside(path);
    Ok(tx
        .query_opt(
            "SELECT 1 FROM files WHERE owner_id = $1 AND path > $2 AND path < $3
               AND deleted_at IS NULL LIMIT 1",
            &[&owner, &lo, &hi],
        )?
        .is_some())
}

/// Fails unless `path` can become a new folder or file: nothing is at it,
/// and its parent folder exists.
fn check_new(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<(), MetaError> {
    if exists(tx, owner, path)?
        || files::version(tx, owner, path, None)?.is_some_and(|v| !v.deleted)
    {
        return Err(MetaError::PathConflict(PathConflict::Taken {
            path: path.to_string(),
        }));
    }
    let up = parent(path);
    if !exists(tx, owner, up)? {
        // A file where the parent should be says more than "missing".
        limits::check_path_free(tx, owner, path)?;
        return Err(MetaError::PathConflict(PathConflict::NoParent {
            path: path.to_string(),
            parent: up.to_string(),
        }));
    }
    Ok(())
}

/// See [`crate::meta::MetaStore::make_folder`].
pub fn make(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<(), MetaError> {
    limits::lock_owner(tx, owner)?;
    check_new(tx, owner, path)?;
    tx.execute(
        "INSERT INTO folders (owner_id, path, created_at) VALUES ($1, $2, now_ms())",
        &[&owner, &path],
    )?;
    Ok(())
}

/// The folders made on their own directly inside `folder` (`""`: the
/// root), by path.
pub fn children(tx: &dyn Tx, owner: OwnerId, folder: &str) -> Result<Vec<String>, MetaError> {
    let depth = inside(folder).0.len();
    let mut all = under(tx, owner, folder)?;
    all.retain(|p| !p[depth..].contains('/'));
    Ok(all)
}

/// Every folder directly in `folder` (`""`: the top): those live files
/// are in and those made on their own, by path. One query per folder
/// found, each stepping over that folder's files.
pub fn child_folders(tx: &dyn Tx, owner: OwnerId, folder: &str) -> Result<Vec<String>, MetaError> {
    let (lo, hi) = inside(folder);
    let deeper = format!("{}%/%", super::like_escape(&lo));
    let mut found = children(tx, owner, folder)?;
    let mut after = lo.clone();
    while let Some(row) = tx.query_opt(
        "SELECT path FROM files WHERE owner_id = $1 AND path > $2 AND path < $3
           AND path LIKE $4 ESCAPE '\\' AND deleted_at IS NULL ORDER BY path LIMIT 1",
        &[&owner, &after, &hi, &deeper],
    )? {
        let path: String = row.get(0);
        let Some(end) = path[lo.len()..].find('/') else {
            break;
        };
        let child = path[..lo.len() + end].to_string();
        // Past everything inside this child.
        after = format!("{child}0");
        found.push(child);
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The folders made on their own inside `folder` at any depth, by path.
pub fn under(tx: &dyn Tx, owner: OwnerId, folder: &str) -> Result<Vec<String>, MetaError> {
    let (lo, hi) = inside(folder);
    Ok(tx
        .query(
            "SELECT path FROM folders WHERE owner_id = $1 AND path > $2 AND path < $3
             ORDER BY path",
            &[&owner, &lo, &hi],
        )?
        .iter()
        .map(|r| r.get::<String>(0))
        .collect())
}

/// The live files inside folder `path`, at any depth, by path.
fn files_inside(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<Vec<String>, MetaError> {
    let (lo, hi) = inside(path);
    Ok(tx
        .query(
            "SELECT path FROM files WHERE owner_id = $1 AND path > $2 AND path < $3
               AND deleted_at IS NULL ORDER BY path",
            &[&owner, &lo, &hi],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// See [`crate::meta::MetaStore::delete_folder`].
pub fn delete(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<Option<u64>, MetaError> {
    limits::lock_owner(tx, owner)?;
    if path.is_empty() || !exists(tx, owner, path)? {
        return Ok(None);
    }
    let inner = files_inside(tx, owner, path)?;
    for f in &inner {
        files::delete(tx, owner, f, PutMode::Overwrite)?;
    }
    ByPath::Folders.delete_under(tx, owner, path)?;
    props::drop_under(tx, owner, path)?;
    Ok(Some(inner.len() as u64))
}

/// See [`crate::meta::MetaStore::move_folder`].
pub fn move_to(
    tx: &dyn Tx,
    owner: OwnerId,
    from: &str,
    to: &str,
    uploader: &str,
) -> Result<Option<u64>, MetaError> {
    limits::lock_owner(tx, owner)?;
    if from.is_empty() || !exists(tx, owner, from)? {
        return Ok(None);
    }
    if to == from || to.starts_with(&format!("{from}/")) || to.is_empty() {
        return Err(MetaError::PathConflict(PathConflict::Taken {
            path: to.to_string(),
        }));
    }
    check_new(tx, owner, to)?;
    let inner = files_inside(tx, owner, from)?;
    for f in &inner {
        let dest = format!("{to}{}", &f[from.len()..]);
        files::move_file(tx, owner, f, &dest, PutMode::Overwrite, uploader)?;
    }
    // Every folder row at or under `from` takes `to` in place of `from`.
    ByPath::Folders.move_under(tx, owner, from, to)?;
    props::move_under(tx, owner, from, to)?;
    Ok(Some(inner.len() as u64))
}

/// See [`crate::meta::MetaStore::copy_file`].
pub fn copy_file(
    tx: &dyn Tx,
    owner: OwnerId,
    from: &str,
    to: &str,
    uploader: &str,
) -> Result<Option<crate::meta::VersionRow>, MetaError> {
    limits::lock_owner(tx, owner)?;
    let Some(old) = files::version(tx, owner, from, None)?.filter(|v| !v.deleted) else {
        return Ok(None);
    };
    if files::version(tx, owner, to, None)?.is_some_and(|v| !v.deleted) {
        return Err(MetaError::PathConflict(PathConflict::Taken {
            path: to.to_string(),
        }));
    }
    let chunks = files::version_chunks(tx, old.file_id, old.number)?;
    let v = crate::meta::NewVersion::restoring(old, chunks, owner, uploader);
    let v = crate::meta::NewVersion {
        path: to.to_string(),
        ..v
    };
    let row = files::insert_version(tx, &v, None)?;
    props::copy(tx, owner, from, to)?;
    Ok(Some(row))
}
