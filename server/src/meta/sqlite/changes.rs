//! The change feed on SQLite: each owner's commits, restores, deletes and
//! moves, numbered without gaps; and the base-version check of
//! conditional writes.

use crate::meta::{check_cursor, stale_message, ChangeRow, MetaError, OwnerId};
use rusqlite::{params, Connection, OptionalExtension};

/// What a change records of its version: number, size, content hash and
/// modification time.
pub type Of<'a> = (u64, u64, &'a str, Option<&'a str>);

/// Records a change in the caller's transaction and returns its number.
/// The owner's counter row is written first, so the number is taken and
/// committed together with the change.
pub fn record(
    c: &Connection,
    owner: OwnerId,
    path: &str,
    deleted: bool,
    (version, size, hash, modified): Of<'_>,
    now: &str,
) -> Result<u64, MetaError> {
    let seq: i64 = c
        .prepare_cached(
            "UPDATE owners SET change_seq = change_seq + 1 WHERE id = ?1 RETURNING change_seq",
        )?
        .query_row([owner], |r| r.get(0))?;
    c.prepare_cached(
        "INSERT INTO changes (owner_id, seq, path, deleted, version, size, hash, at, modified_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        owner,
        seq,
        path,
        deleted,
        version as i64,
        size as i64,
        hash,
        now,
        modified
    ])?;
    Ok(seq as u64)
}

/// Fails with [`MetaError::Stale`] unless the latest version of the live
/// file at `path` is `base` (`0`: no live file there).
pub fn check_base(
    c: &Connection,
    owner: OwnerId,
    path: &str,
    base: Option<u64>,
) -> Result<(), MetaError> {
    let Some(base) = base else {
        return Ok(());
    };
    let latest: u64 = c
        .prepare_cached(
            "SELECT (SELECT MAX(number) FROM versions v WHERE v.file_id = f.id)
             FROM files f WHERE f.owner_id = ?1 AND f.path = ?2 AND f.deleted_at IS NULL",
        )?
        .query_row(params![owner, path], |r| r.get::<_, Option<i64>>(0))
        .optional()?
        .flatten()
        .unwrap_or(0) as u64;
    if latest != base {
        return Err(MetaError::Stale(stale_message(path, base, latest)));
    }
    Ok(())
}

/// The owner's changes after `after`, oldest first, at most `limit`, and
/// the owner's latest change number.
pub fn list(
    c: &Connection,
    owner: OwnerId,
    after: u64,
    limit: u32,
) -> Result<(Vec<ChangeRow>, u64), MetaError> {
    let head: i64 = c
        .prepare_cached("SELECT change_seq FROM owners WHERE id = ?1")?
        .query_row([owner], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let rows = c
        .prepare_cached(
            "SELECT seq, path, deleted, version, size, hash, at, modified_at FROM changes
             WHERE owner_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?
        .query_map(params![owner, after as i64, limit], |r| {
            Ok(ChangeRow {
                seq: r.get::<_, i64>(0)? as u64,
                path: r.get(1)?,
                deleted: r.get(2)?,
                version: r.get::<_, i64>(3)? as u64,
                size: r.get::<_, i64>(4)? as u64,
                hash: r.get(5)?,
                at: r.get(6)?,
                modified: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    if limit > 0 {
        check_cursor(after, rows.first().map(|r| r.seq), head as u64)?;
    }
    Ok((rows, head as u64))
}

/// Deletes changes recorded before `before` (RFC 3339); returns how many.
pub fn prune(c: &Connection, before: &str) -> Result<u64, MetaError> {
    Ok(c.execute("DELETE FROM changes WHERE at < ?1", [before])? as u64)
}
