//! Files and their versions: reads, listings with health, and every way
//! of making a version (commit, restore, move) or deleting a file.

use super::changes::{self, Change};
use super::tx::{rows, Row, Tx};
use super::{chunks, limits, props, sessions};
use crate::meta::ReplicaHealth::Ok as GOOD;
use crate::meta::{
    attach_health, After, ChunkRef, HealthCounts, MetaError, NewVersion, OwnerId, PathConflict,
    SortKey, Sorted, VersionRow,
};
use coffer_proto::put::PutMode;

const SELECT_VERSION: &str = "
    SELECT f.id, f.path, v.number, v.size, v.hash, v.created_at,
           CASE WHEN f.deleted_at IS NULL THEN 0 ELSE 1 END,
           (SELECT COUNT(*) FROM version_chunks vc WHERE vc.file_id = v.file_id AND vc.number = v.number),
           v.modified_at, v.checksums
    FROM files f JOIN versions v ON v.file_id = f.id";

fn version_row(r: &Row) -> VersionRow {
    VersionRow {
        file_id: r.get(0),
        path: r.get(1),
        number: r.get(2),
        size: r.get(3),
        hash: r.get(4),
        created_at: r.time(5),
        deleted: r.get(6),
        chunk_count: r.get(7),
        modified: r.get(8),
        checksums: r.get(9),
    }
}

/// See [`crate::meta::MetaStore::version`].
pub fn version(
    tx: &dyn Tx,
    owner: OwnerId,
    path: &str,
    number: Option<u64>,
) -> Result<Option<VersionRow>, MetaError> {
    let row = match number {
        Some(n) => tx.query_opt(
            &format!("{SELECT_VERSION} WHERE f.owner_id = $1 AND f.path = $2 AND v.number = $3"),
            &[&owner, &path, &n],
        )?,
        None => tx.query_opt(
            &format!(
                "{SELECT_VERSION} WHERE f.owner_id = $1 AND f.path = $2 ORDER BY v.number DESC LIMIT 1"
            ),
            &[&owner, &path],
        )?,
    };
    Ok(row.as_ref().map(version_row))
}

/// See [`crate::meta::MetaStore::version_chunks`].
pub fn version_chunks(tx: &dyn Tx, file_id: i64, number: u64) -> Result<Vec<ChunkRef>, MetaError> {
    Ok(tx
        .query(
            "SELECT vc.chunk_id, c.size FROM version_chunks vc JOIN chunks c ON c.id = vc.chunk_id
             WHERE vc.file_id = $1 AND vc.number = $2 ORDER BY vc.idx",
            &[&file_id, &number],
        )?
        .iter()
        .map(chunks::chunk_ref)
        .collect())
}

/// See [`crate::meta::MetaStore::version_health`].
pub fn version_health(
    tx: &dyn Tx,
    file_id: i64,
    number: u64,
    r: usize,
) -> Result<HealthCounts, MetaError> {
    let rows = tx.query(
        &format!(
            "SELECT (SELECT COUNT(*) FROM replicas r
                     WHERE r.chunk_id = COALESCE(c.pack_id, c.id) AND r.state = {GOOD})
             FROM (SELECT DISTINCT chunk_id FROM version_chunks WHERE file_id = $1 AND number = $2) vc
             JOIN chunks c ON c.id = vc.chunk_id"
        ),
        &[&file_id, &number],
    )?;
    let mut h = HealthCounts::default();
    for row in &rows {
        h.add(row.get(0), r);
    }
    Ok(h)
}

/// `rows` with their health against `r`, in one query for all of them.
pub fn with_health(
    tx: &dyn Tx,
    versions: Vec<VersionRow>,
    r: usize,
) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
    if versions.is_empty() {
        return Ok(Vec::new());
    }
    let page = rows(
        versions
            .iter()
            .map(|v| vec![v.file_id.into(), v.number.into()]),
    );
    let found = tx.query(
        &format!(
            "WITH page AS (
                 SELECT CAST(p.value ->> 0 AS BIGINT) AS file_id, CAST(p.value ->> 1 AS BIGINT) AS number
                 FROM rows_of($1) AS p),
             distinct_chunks AS (
                 SELECT DISTINCT vc.file_id, vc.number, vc.chunk_id
                 FROM page p JOIN version_chunks vc ON vc.file_id = p.file_id AND vc.number = p.number)
             SELECT d.file_id, d.number,
                    (SELECT COUNT(*) FROM replicas r
                     WHERE r.chunk_id = COALESCE(c.pack_id, c.id) AND r.state = {GOOD})
             FROM distinct_chunks d JOIN chunks c ON c.id = d.chunk_id"
        ),
        &[&page],
    )?;
    let found = found
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get::<usize>(2)));
    Ok(attach_health(versions, found, r))
}

/// See [`crate::meta::MetaStore::list_files`].
pub fn list_files(
    tx: &dyn Tx,
    owner: OwnerId,
    prefix: &str,
    after: &str,
    limit: u32,
    r: usize,
) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
    latest_under(tx, owner, prefix, None, after, limit, r)
}

/// The latest versions of the live files under `prefix` after `after`, by
/// path; with `pattern`, only those whose lowercased path is `LIKE` it.
fn latest_under(
    tx: &dyn Tx,
    owner: OwnerId,
    prefix: &str,
    pattern: Option<&str>,
    after: &str,
    limit: u32,
    r: usize,
) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
    let like = match pattern {
        Some(_) => "AND lower(f.path) LIKE $5 ESCAPE '\\'",
        None => "",
    };
    let params: [&dyn super::tx::ToValue; 5] = [&owner, &prefix, &after, &limit, &pattern];
    let rows = tx.query(
        &format!(
            "{SELECT_VERSION}
             WHERE f.owner_id = $1 AND f.deleted_at IS NULL
               AND substr(f.path, 1, length($2)) = $2 AND f.path > $3 {like}
               AND v.number = (SELECT MAX(number) FROM versions WHERE file_id = f.id)
             ORDER BY f.path LIMIT $4"
        ),
        &params[..4 + usize::from(pattern.is_some())],
    )?;
    with_health(tx, rows.iter().map(version_row).collect(), r)
}

/// A `LIKE` pattern (escaped with `\\`) that every path whose lowercase
/// holds `needle` matches: ASCII letters lowercased, any other character
/// left to `_`, since engines lowercase beyond ASCII differently (SQLite
/// not at all). The caller checks the exact rule on what comes back.
pub fn contains_pattern(needle: &str) -> String {
    let mut p = String::from("%");
    for c in needle.chars() {
        match c {
            '%' | '_' | '\\' => p.push_str(&like_escape(&c.to_string())),
            c if c.is_ascii() => p.push(c.to_ascii_lowercase()),
            _ => p.push('_'),
        }
    }
    p.push('%');
    p
}

/// See [`crate::meta::MetaStore::search_files`].
pub fn search(
    tx: &dyn Tx,
    owner: OwnerId,
    prefix: &str,
    pattern: &str,
    after: &str,
    limit: u32,
    r: usize,
) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
    latest_under(tx, owner, prefix, Some(pattern), after, limit, r)
}

/// See [`crate::meta::MetaStore::list_sorted`]. The key and direction
/// come from [`Sorted`], never from the caller's text, so the statement
/// is one of six fixed ones.
pub fn list_sorted(
    tx: &dyn Tx,
    owner: OwnerId,
    folder: &str,
    order: Sorted,
    after: &After,
    limit: u32,
    r: usize,
) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
    let (lo, hi) = super::inside(folder);
    // Directly inside: nothing after the folder's prefix holds a `/`.
    let deeper = format!("{}%/%", like_escape(&lo));
    let (cmp, dir) = if order.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let inside = format!(
        "{SELECT_VERSION}
         WHERE f.owner_id = $1 AND f.deleted_at IS NULL
           AND f.path > $2 AND f.path < $3 AND f.path NOT LIKE $4 ESCAPE '\\'
           AND v.number = (SELECT MAX(number) FROM versions WHERE file_id = f.id)"
    );
    // By name the path alone orders, in the index's order; by size or
    // time the path breaks ties.
    let key = match order.by {
        SortKey::Name => None,
        SortKey::Size => Some("v.size"),
        SortKey::Time => Some("v.created_at"),
    };
    let rows = match key {
        None => tx.query(
            &format!(
                "{inside} AND ($5 = '' OR f.path {cmp} $5)
                 ORDER BY f.path {dir} LIMIT $6"
            ),
            &[&owner, &lo, &hi, &deeper, &after.path, &limit],
        )?,
        Some(key) => tx.query(
            &format!(
                "{inside} AND ($6 = '' OR {key} {cmp} $5 OR ({key} = $5 AND f.path {cmp} $6))
                 ORDER BY {key} {dir}, f.path {dir} LIMIT $7"
            ),
            &[&owner, &lo, &hi, &deeper, &after.key, &after.path, &limit],
        )?,
    };
    with_health(tx, rows.iter().map(version_row).collect(), r)
}

/// `s` with `LIKE`'s wildcards (and the escape) escaped by `\`.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// See [`crate::meta::MetaStore::list_versions`].
pub fn list_versions(
    tx: &dyn Tx,
    owner: OwnerId,
    path: &str,
    before: Option<u64>,
    limit: u32,
    r: usize,
) -> Result<Vec<(VersionRow, HealthCounts)>, MetaError> {
    let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
    let rows = tx.query(
        &format!(
            "{SELECT_VERSION} WHERE f.owner_id = $1 AND f.path = $2 AND v.number < $3
             ORDER BY v.number DESC LIMIT $4"
        ),
        &[&owner, &path, &before, &limit],
    )?;
    with_health(tx, rows.iter().map(version_row).collect(), r)
}

/// Commits a new version in the caller's transaction (see
/// [`crate::meta::MetaStore::commit_version`]); `restored_from` records
/// which version it brings back.
pub fn insert_version(
    tx: &dyn Tx,
    v: &NewVersion,
    restored_from: Option<u64>,
) -> Result<VersionRow, MetaError> {
    let missing = chunks::owner_unknown(tx, v.owner, &v.chunks, true)?.len();
    if missing > 0 {
        return Err(MetaError::MissingChunks(missing));
    }
    let quota = limits::lock_owner(tx, v.owner)?;
    changes::check_base(tx, v.owner, &v.path, v.mode)?;
    limits::check_path_free(tx, v.owner, &v.path)?;
    limits::check_quota(tx, v.owner, quota, v.size, v.completes())?;
    limits::check_versions(tx, v.owner)?;
    let file_id: i64 = tx
        .query_one(
            "INSERT INTO files (owner_id, path) VALUES ($1, $2)
             ON CONFLICT (owner_id, path) DO UPDATE SET deleted_at = NULL RETURNING id",
            &[&v.owner, &v.path],
        )?
        .get(0);
    // The file's row is locked until commit, so versions of one file are
    // numbered one commit at a time, on every server.
    let number: u64 = tx
        .query_one(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE file_id = $1",
            &[&file_id],
        )?
        .get(0);
    let created = tx
        .query_one(
            "INSERT INTO versions
                 (file_id, number, size, hash, created_at, uploader, restored_from, modified_at,
                  checksums)
             VALUES ($1, $2, $3, $4, now_ms(), $5, $6, $7, $8) RETURNING created_at",
            &[
                &file_id,
                &number,
                &v.size,
                &v.hash,
                &v.uploader,
                &restored_from,
                &v.modified,
                &v.checksums,
            ],
        )?
        .time(0);
    tx.execute(
        "UPDATE owners SET version_count = version_count + 1 WHERE id = $1",
        &[&v.owner],
    )?;
    if !v.chunks.is_empty() {
        let list = rows(
            v.chunks
                .iter()
                .enumerate()
                .map(|(i, c)| vec![i.into(), c.id.as_str().into()]),
        );
        tx.execute(
            "INSERT INTO version_chunks (file_id, number, idx, chunk_id)
             SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT), CAST(t.value ->> 0 AS INTEGER), t.value ->> 1
             FROM rows_of($3) AS t",
            &[&file_id, &number, &list],
        )?;
    }
    if let Some(stream) = &v.stream {
        sessions::drop(tx, stream)?;
    }
    changes::record(
        tx,
        v.owner,
        Change {
            path: &v.path,
            deleted: false,
            version: number,
            size: v.size,
            hash: &v.hash,
            modified: v.modified.as_deref(),
        },
    )?;
    Ok(VersionRow {
        file_id,
        path: v.path.clone(),
        number,
        size: v.size,
        hash: v.hash.clone(),
        created_at: created,
        deleted: false,
        chunk_count: v.chunks.len() as u32,
        modified: v.modified.clone(),
        checksums: v.checksums.clone(),
    })
}

/// See [`crate::meta::MetaStore::commit_version`].
pub fn commit(tx: &dyn Tx, v: &NewVersion) -> Result<VersionRow, MetaError> {
    let ids: Vec<&str> = v.chunks.iter().map(|c| c.id.as_str()).collect();
    chunks::grant(tx, v.owner, &ids)?;
    insert_version(tx, v, None)
}

/// See [`crate::meta::MetaStore::restore_version`].
pub fn restore(
    tx: &dyn Tx,
    owner: OwnerId,
    path: &str,
    number: u64,
    uploader: &str,
) -> Result<Option<VersionRow>, MetaError> {
    let Some(old) = version(tx, owner, path, Some(number))? else {
        return Ok(None);
    };
    let chunks = version_chunks(tx, old.file_id, old.number)?;
    // Retention may have removed the version between the two reads (on PostgreSQL, each
    // statement sees the latest commit): then its chunks do not add up, and a retry finds it gone.
    if chunks.iter().map(|c| u64::from(c.size)).sum::<u64>() != old.size {
        return Err(MetaError::Busy("the version was just removed".into()));
    }
    let v = NewVersion::restoring(old, chunks, owner, uploader);
    // The owner committed these chunks once already.
    let ids: Vec<&str> = v.chunks.iter().map(|c| c.id.as_str()).collect();
    chunks::grant(tx, owner, &ids)?;
    insert_version(tx, &v, Some(number)).map(Some)
}

/// See [`crate::meta::MetaStore::delete_file`].
pub fn delete(
    tx: &dyn Tx,
    owner: OwnerId,
    path: &str,
    mode: PutMode,
) -> Result<Option<u64>, MetaError> {
    // The owner's lock before the file's, as every write of theirs.
    limits::lock_owner(tx, owner)?;
    let Some(latest) = version(tx, owner, path, None)?.filter(|v| !v.deleted) else {
        return Ok(None);
    };
    changes::check_base(tx, owner, path, mode)?;
    tx.execute(
        "UPDATE files SET deleted_at = now_ms()
         WHERE owner_id = $1 AND path = $2 AND deleted_at IS NULL",
        &[&owner, &path],
    )?;
    // A deleted file's links end for good: re-creating the path (an
    // upload, a restore, a move back) must not bring them back.
    tx.execute(
        "UPDATE share_links SET revoked_at = now_ms()
         WHERE revoked_at IS NULL
           AND file_id = (SELECT id FROM files WHERE owner_id = $1 AND path = $2)",
        &[&owner, &path],
    )?;
    props::drop_under(tx, owner, path)?;
    changes::record(
        tx,
        owner,
        Change {
            path,
            deleted: true,
            version: latest.number,
            size: latest.size,
            hash: &latest.hash,
            modified: latest.modified.as_deref(),
        },
    )?;
    Ok(Some(latest.number))
}

/// See [`crate::meta::MetaStore::move_file`].
pub fn move_file(
    tx: &dyn Tx,
    owner: OwnerId,
    from: &str,
    to: &str,
    mode: PutMode,
    uploader: &str,
) -> Result<Option<VersionRow>, MetaError> {
    // The owner's lock first, as every write of theirs takes it.
    limits::lock_owner(tx, owner)?;
    let Some(old) = version(tx, owner, from, None)?.filter(|v| !v.deleted) else {
        return Ok(None);
    };
    changes::check_base(tx, owner, from, mode)?;
    if version(tx, owner, to, None)?.is_some_and(|v| !v.deleted) {
        return Err(MetaError::PathConflict(PathConflict::Taken {
            path: to.to_string(),
        }));
    }
    let chunks = version_chunks(tx, old.file_id, old.number)?;
    props::move_under(tx, owner, from, to)?;
    delete(tx, owner, from, PutMode::Overwrite)?;
    let mut v = NewVersion::restoring(old, chunks, owner, uploader);
    v.path = to.to_string();
    insert_version(tx, &v, None).map(Some)
}
