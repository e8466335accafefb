//! Queries on files and their versions.

use crate::meta::{ChunkRef, MetaError, NewVersion, OwnerId, VersionRow};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

const SELECT_VERSION: &str = "
    SELECT f.id, f.path, v.number, v.size, v.hash, v.created_at, f.deleted_at IS NOT NULL,
           (SELECT COUNT(*) FROM version_chunks vc WHERE vc.file_id = v.file_id AND vc.number = v.number),
           v.modified_at
    FROM files f JOIN versions v ON v.file_id = f.id";

fn version_row(r: &Row<'_>) -> rusqlite::Result<VersionRow> {
    Ok(VersionRow {
        file_id: r.get(0)?,
        path: r.get(1)?,
        number: r.get::<_, i64>(2)? as u64,
        size: r.get::<_, i64>(3)? as u64,
        hash: r.get(4)?,
        created_at: r.get(5)?,
        deleted: r.get(6)?,
        chunk_count: r.get(7)?,
        modified: r.get(8)?,
    })
}

/// Version `number` of a file, or its latest when `number` is `None`.
/// Deleted files are returned too, flagged.
pub fn version(
    c: &Connection,
    owner: OwnerId,
    path: &str,
    number: Option<u64>,
) -> Result<Option<VersionRow>, MetaError> {
    let row = match number {
        Some(n) => c
            .query_row(
                &format!("{SELECT_VERSION} WHERE f.owner_id = ?1 AND f.path = ?2 AND v.number = ?3"),
                params![owner, path, n as i64],
                version_row,
            )
            .optional()?,
        None => c
            .query_row(
                &format!("{SELECT_VERSION} WHERE f.owner_id = ?1 AND f.path = ?2 ORDER BY v.number DESC LIMIT 1"),
                params![owner, path],
                version_row,
            )
            .optional()?,
    };
    Ok(row)
}

/// The ordered chunk list of a version.
pub fn version_chunks(
    c: &Connection,
    file_id: i64,
    number: u64,
) -> Result<Vec<ChunkRef>, MetaError> {
    let mut stmt = c.prepare_cached(
        "SELECT vc.chunk_id, c.size FROM version_chunks vc JOIN chunks c ON c.id = vc.chunk_id
         WHERE vc.file_id = ?1 AND vc.number = ?2 ORDER BY vc.idx",
    )?;
    let rows = stmt.query_map(params![file_id, number as i64], |r| {
        Ok(ChunkRef {
            id: r.get(0)?,
            size: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The latest versions of live files whose path starts with `prefix` and
/// sorts after `after`, in path order, at most `limit`.
pub fn list_files(
    c: &Connection,
    owner: OwnerId,
    prefix: &str,
    after: &str,
    limit: u32,
) -> Result<Vec<VersionRow>, MetaError> {
    let mut stmt = c.prepare_cached(&format!(
        "{SELECT_VERSION}
         WHERE f.owner_id = ?1 AND f.deleted_at IS NULL
           AND substr(f.path, 1, length(?2)) = ?2 AND f.path > ?3
           AND v.number = (SELECT MAX(number) FROM versions WHERE file_id = f.id)
         ORDER BY f.path LIMIT ?4"
    ))?;
    let rows = stmt.query_map(params![owner, prefix, after, limit], version_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Versions of a file numbered below `before`, newest first, at most
/// `limit`.
pub fn list_versions(
    c: &Connection,
    owner: OwnerId,
    path: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<VersionRow>, MetaError> {
    let mut stmt = c.prepare_cached(&format!(
        "{SELECT_VERSION} WHERE f.owner_id = ?1 AND f.path = ?2 AND v.number < ?3
         ORDER BY v.number DESC LIMIT ?4"
    ))?;
    let before = before.map_or(i64::MAX, |b| b as i64);
    let rows = stmt.query_map(params![owner, path, before, limit], version_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Fails with [`MetaError::PathConflict`] if a live file of `owner` is a
/// folder of `path` (`a` for `a/b`) or lies inside `path` as a folder
/// (`a/b` for `a`). Index lookups: one per folder level and one range.
pub fn check_path_free(c: &Connection, owner: OwnerId, path: &str) -> Result<(), MetaError> {
    let mut live = c.prepare_cached(
        "SELECT 1 FROM files WHERE owner_id = ?1 AND path = ?2 AND deleted_at IS NULL",
    )?;
    for (i, _) in path.match_indices('/') {
        let folder = &path[..i];
        if live.exists(params![owner, folder])? {
            return Err(MetaError::PathConflict(format!(
                "{path:?} cannot be created: {folder:?} is a file, not a folder"
            )));
        }
    }
    // Paths inside the folder `path/` sort from "path/" up to "path0".
    let inside: Option<String> = c
        .prepare_cached(
            "SELECT path FROM files WHERE owner_id = ?1 AND path > ?2 AND path < ?3
               AND deleted_at IS NULL LIMIT 1",
        )?
        .query_row(
            params![owner, format!("{path}/"), format!("{path}0")],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(inside) = inside {
        return Err(MetaError::PathConflict(format!(
            "{path:?} cannot be a file: it is a folder holding {inside:?}"
        )));
    }
    Ok(())
}

/// Fails with [`MetaError::Limit`] if `owner` has a quota and `more`
/// bytes would cross it, counting what their open uploads hold reserved
/// (all but `except`, the upload this commit completes). Owners without a
/// quota pay nothing.
pub fn check_quota(
    c: &Connection,
    owner: OwnerId,
    more: u64,
    except: Option<&str>,
    now: &str,
) -> Result<(), MetaError> {
    let quota: Option<i64> = c
        .prepare_cached("SELECT quota_bytes FROM owners WHERE id = ?1")?
        .query_row([owner], |r| r.get(0))
        .optional()?
        .flatten();
    let Some(quota) = quota else { return Ok(()) };
    let used = super::accounts::used_bytes(c, owner)?
        .saturating_add(super::accounts::reserved_bytes(c, owner, except, now)?);
    let quota = quota.max(0) as u64;
    if used.saturating_add(more) > quota {
        return Err(MetaError::Limit(crate::meta::quota_message(
            used, more, quota,
        )));
    }
    Ok(())
}

/// Fails with [`MetaError::Limit`] if `owner` keeps as many versions as
/// the per-owner limit allows (the setting [`crate::meta::MAX_VERSIONS`]).
pub fn check_versions(c: &Connection, owner: OwnerId) -> Result<(), MetaError> {
    let (count, max): (i64, Option<String>) = c
        .prepare_cached(
            "SELECT version_count, (SELECT value FROM settings WHERE key = ?2)
             FROM owners WHERE id = ?1",
        )?
        .query_row(params![owner, crate::meta::MAX_VERSIONS], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .unwrap_or((0, None));
    if let Some(max) = max.and_then(|m| m.parse::<u64>().ok()) {
        if count.max(0) as u64 >= max {
            return Err(MetaError::Limit(crate::meta::versions_message(max)));
        }
    }
    Ok(())
}

/// Inserts a new version inside `tx`: the file is created or undeleted,
/// the version takes the next number. Fails with
/// [`MetaError::MissingChunks`] if a listed chunk is not stored, or was
/// never sent or committed by the version's owner.
pub fn insert_version(
    tx: &Transaction<'_>,
    v: &NewVersion,
    restored_from: Option<u64>,
    now: &str,
) -> Result<VersionRow, MetaError> {
    let missing = super::chunks::unknown_touching(tx, v.owner, &v.chunks, Some(now))?.len();
    if missing > 0 {
        return Err(MetaError::MissingChunks(missing));
    }
    super::changes::check_base(tx, v.owner, &v.path, v.base)?;
    check_path_free(tx, v.owner, &v.path)?;
    check_quota(tx, v.owner, v.size, v.completes(), now)?;
    check_versions(tx, v.owner)?;
    let file_id: i64 = tx.query_row(
        "INSERT INTO files (owner_id, path) VALUES (?1, ?2)
         ON CONFLICT (owner_id, path) DO UPDATE SET deleted_at = NULL RETURNING id",
        params![v.owner, v.path],
        |r| r.get(0),
    )?;
    let number: i64 = tx.query_row(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE file_id = ?1",
        [file_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO versions
             (file_id, number, size, hash, created_at, uploader, restored_from, modified_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            file_id,
            number,
            v.size as i64,
            v.hash,
            now,
            v.uploader,
            restored_from.map(|n| n as i64),
            v.modified
        ],
    )?;
    tx.prepare_cached("UPDATE owners SET version_count = version_count + 1 WHERE id = ?1")?
        .execute([v.owner])?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO version_chunks (file_id, number, idx, chunk_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (idx, chunk) in v.chunks.iter().enumerate() {
        stmt.execute(params![file_id, number, idx as i64, chunk.id])?;
    }
    super::changes::record(
        tx,
        v.owner,
        &v.path,
        false,
        (number as u64, v.size, &v.hash, v.modified.as_deref()),
        now,
    )?;
    Ok(VersionRow {
        file_id,
        path: v.path.to_string(),
        number: number as u64,
        size: v.size,
        hash: v.hash.to_string(),
        created_at: now.to_string(),
        deleted: false,
        chunk_count: v.chunks.len() as u32,
        modified: v.modified.clone(),
    })
}

/// Makes version `number` the newest again as a new version (and undeletes
/// the file). `None` if there is no such version.
pub fn restore_version(
    tx: &Transaction<'_>,
    owner: OwnerId,
    path: &str,
    number: u64,
    uploader: &str,
    now: &str,
) -> Result<Option<VersionRow>, MetaError> {
    let Some(old) = version(tx, owner, path, Some(number))? else {
        return Ok(None);
    };
    let chunks = version_chunks(tx, old.file_id, old.number)?;
    let v = NewVersion::restoring(old, chunks, owner, uploader);
    // The owner committed these chunks once already.
    super::chunks::grant(tx, owner, v.chunks.iter().map(|c| c.id.as_str()))?;
    insert_version(tx, &v, Some(number), now).map(Some)
}

/// Marks a live file deleted, if its latest version is `base` (when
/// given); its versions stay. Returns the latest version number, or `None`
/// if there is no live file at `path`.
pub fn delete_file(
    c: &Connection,
    owner: OwnerId,
    path: &str,
    base: Option<u64>,
    now: &str,
) -> Result<Option<u64>, MetaError> {
    let Some(latest) = version(c, owner, path, None)?.filter(|v| !v.deleted) else {
        return Ok(None);
    };
    super::changes::check_base(c, owner, path, base)?;
    c.execute(
        "UPDATE files SET deleted_at = ?3 WHERE owner_id = ?1 AND path = ?2 AND deleted_at IS NULL",
        params![owner, path, now],
    )?;
    // A deleted file's links end for good: re-creating the path (an
    // upload, a restore, a move back) must not bring them back.
    c.execute(
        "UPDATE share_links SET revoked_at = ?3
         WHERE revoked_at IS NULL
           AND file_id = (SELECT id FROM files WHERE owner_id = ?1 AND path = ?2)",
        params![owner, path, now],
    )?;
    super::changes::record(
        c,
        owner,
        path,
        true,
        (
            latest.number,
            latest.size,
            &latest.hash,
            latest.modified.as_deref(),
        ),
        now,
    )?;
    Ok(Some(latest.number))
}

/// Moves the live file at `from` to `to`, if its latest version is `base`
/// (when given): `from` is deleted (its versions stay) and `to` gets a new
/// version with the same content. `None` if there is no live file at
/// `from`; [`MetaError::PathConflict`] if a live file is at `to`.
pub fn move_file(
    tx: &Transaction<'_>,
    owner: OwnerId,
    from: &str,
    to: &str,
    base: Option<u64>,
    uploader: &str,
    now: &str,
) -> Result<Option<VersionRow>, MetaError> {
    let Some(old) = version(tx, owner, from, None)?.filter(|v| !v.deleted) else {
        return Ok(None);
    };
    super::changes::check_base(tx, owner, from, base)?;
    if version(tx, owner, to, None)?.is_some_and(|v| !v.deleted) {
        return Err(MetaError::PathConflict(crate::meta::move_target_message(
            to,
        )));
    }
    let chunks = version_chunks(tx, old.file_id, old.number)?;
    delete_file(tx, owner, from, None, now)?;
    let mut v = NewVersion::restoring(old, chunks, owner, uploader);
    v.path = to.to_string();
    insert_version(tx, &v, None, now).map(Some)
}
