//! Queries on files and their versions.

use super::{ChunkRef, MetaError, OwnerId, VersionRow};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

const SELECT_VERSION: &str = "
    SELECT f.id, f.path, v.number, v.size, v.hash, v.created_at, f.deleted_at IS NOT NULL,
           (SELECT COUNT(*) FROM version_chunks vc WHERE vc.file_id = v.file_id AND vc.number = v.number)
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

/// Every version of a file, newest first.
pub fn list_versions(
    c: &Connection,
    owner: OwnerId,
    path: &str,
) -> Result<Vec<VersionRow>, MetaError> {
    let mut stmt = c.prepare_cached(&format!(
        "{SELECT_VERSION} WHERE f.owner_id = ?1 AND f.path = ?2 ORDER BY v.number DESC"
    ))?;
    let rows = stmt.query_map(params![owner, path], version_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What a new version is made of.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub owner: OwnerId,
    pub path: &'a str,
    pub size: u64,
    pub hash: &'a str,
    pub chunks: &'a [ChunkRef],
    pub uploader: &'a str,
    pub restored_from: Option<u64>,
    pub now: &'a str,
}

/// Commits a new version in its own transaction.
pub fn commit_version(c: &mut Connection, v: &NewVersion<'_>) -> Result<VersionRow, MetaError> {
    let tx = c.transaction()?;
    let row = insert_version(&tx, v)?;
    tx.commit()?;
    Ok(row)
}

/// Inserts a new version inside `tx`: the file is created or undeleted,
/// the version takes the next number. Fails with
/// [`MetaError::MissingChunks`] if a listed chunk is not stored.
pub fn insert_version(tx: &Transaction<'_>, v: &NewVersion<'_>) -> Result<VersionRow, MetaError> {
    let missing = super::chunks::unknown(tx, v.chunks)?.len();
    if missing > 0 {
        return Err(MetaError::MissingChunks(missing));
    }
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
        "INSERT INTO versions (file_id, number, size, hash, created_at, uploader, restored_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            file_id,
            number,
            v.size as i64,
            v.hash,
            v.now,
            v.uploader,
            v.restored_from.map(|n| n as i64)
        ],
    )?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO version_chunks (file_id, number, idx, chunk_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (idx, chunk) in v.chunks.iter().enumerate() {
        stmt.execute(params![file_id, number, idx as i64, chunk.id])?;
    }
    Ok(VersionRow {
        file_id,
        path: v.path.to_string(),
        number: number as u64,
        size: v.size,
        hash: v.hash.to_string(),
        created_at: v.now.to_string(),
        deleted: false,
        chunk_count: v.chunks.len() as u32,
    })
}

/// Makes version `number` the newest again as a new version (and undeletes
/// the file). `None` if there is no such version.
pub fn restore_version(
    c: &mut Connection,
    owner: OwnerId,
    path: &str,
    number: u64,
    uploader: &str,
    now: &str,
) -> Result<Option<VersionRow>, MetaError> {
    let tx = c.transaction()?;
    let Some(old) = version(&tx, owner, path, Some(number))? else {
        return Ok(None);
    };
    let chunks = version_chunks(&tx, old.file_id, old.number)?;
    let row = insert_version(
        &tx,
        &NewVersion {
            owner,
            path,
            size: old.size,
            hash: &old.hash,
            chunks: &chunks,
            uploader,
            restored_from: Some(number),
            now,
        },
    )?;
    tx.commit()?;
    Ok(Some(row))
}

/// Marks a live file deleted; its versions stay. Returns the latest version
/// number, or `None` if there is no live file at `path`.
pub fn delete_file(
    c: &Connection,
    owner: OwnerId,
    path: &str,
    now: &str,
) -> Result<Option<u64>, MetaError> {
    let changed = c.execute(
        "UPDATE files SET deleted_at = ?3 WHERE owner_id = ?1 AND path = ?2 AND deleted_at IS NULL",
        params![owner, path, now],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    Ok(version(c, owner, path, None)?.map(|v| v.number))
}

#[cfg(test)]
mod tests {
    use super::super::{chunks, Meta, DEFAULT_OWNER};
    use super::*;

    fn with_conn<R>(f: impl FnOnce(&mut Connection) -> R) -> R {
        let meta = Meta::open_in_memory().unwrap();
        let mut guard = meta.conn.lock().unwrap();
        f(&mut guard)
    }

    fn new_version<'a>(path: &'a str, chunks: &'a [ChunkRef]) -> NewVersion<'a> {
        NewVersion {
            owner: DEFAULT_OWNER,
            path,
            size: chunks.iter().map(|c| c.size as u64).sum(),
            hash: "h",
            chunks,
            uploader: "test",
            restored_from: None,
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn versions_number_up_and_restore_appends() {
        with_conn(|c| {
            let a = ChunkRef {
                id: "a".repeat(64),
                size: 3,
            };
            let b = ChunkRef {
                id: "b".repeat(64),
                size: 5,
            };
            chunks::record_chunk(c, &a.id, a.size, &[], "t").unwrap();
            chunks::record_chunk(c, &b.id, b.size, &[], "t").unwrap();
            let v1 = commit_version(c, &new_version("x", std::slice::from_ref(&a))).unwrap();
            let v2 = commit_version(c, &new_version("x", &[a.clone(), b.clone()])).unwrap();
            assert_eq!((v1.number, v2.number), (1, 2));
            let v3 = restore_version(c, DEFAULT_OWNER, "x", 1, "test", "t")
                .unwrap()
                .unwrap();
            assert_eq!((v3.number, v3.size), (3, 3));
            assert_eq!(version_chunks(c, v3.file_id, 3).unwrap(), vec![a.clone()]);
            assert_eq!(list_versions(c, DEFAULT_OWNER, "x").unwrap().len(), 3);
            assert!(restore_version(c, DEFAULT_OWNER, "x", 9, "test", "t")
                .unwrap()
                .is_none());
        })
    }

    #[test]
    fn a_version_with_unstored_chunks_is_refused_whole() {
        with_conn(|c| {
            let ghost = ChunkRef {
                id: "c".repeat(64),
                size: 1,
            };
            let err = commit_version(c, &new_version("y", &[ghost])).unwrap_err();
            assert!(matches!(err, MetaError::MissingChunks(1)));
            assert!(version(c, DEFAULT_OWNER, "y", None).unwrap().is_none());
        })
    }

    #[test]
    fn delete_hides_from_listing_and_a_new_version_undeletes() {
        with_conn(|c| {
            commit_version(c, &new_version("d/one", &[])).unwrap();
            commit_version(c, &new_version("d/two", &[])).unwrap();
            commit_version(c, &new_version("e", &[])).unwrap();
            assert_eq!(list_files(c, DEFAULT_OWNER, "d/", "", 10).unwrap().len(), 2);
            assert_eq!(
                delete_file(c, DEFAULT_OWNER, "d/one", "t").unwrap(),
                Some(1)
            );
            assert_eq!(delete_file(c, DEFAULT_OWNER, "d/one", "t").unwrap(), None);
            let live = list_files(c, DEFAULT_OWNER, "", "", 10).unwrap();
            assert_eq!(
                live.iter().map(|v| v.path.as_str()).collect::<Vec<_>>(),
                ["d/two", "e"]
            );
            assert!(
                version(c, DEFAULT_OWNER, "d/one", None)
                    .unwrap()
                    .unwrap()
                    .deleted
            );
            restore_version(c, DEFAULT_OWNER, "d/one", 1, "test", "t").unwrap();
            assert_eq!(list_files(c, DEFAULT_OWNER, "", "", 10).unwrap().len(), 3);
            // Paging.
            let page = list_files(c, DEFAULT_OWNER, "", "d/one", 1).unwrap();
            assert_eq!(page[0].path, "d/two");
        })
    }
}
