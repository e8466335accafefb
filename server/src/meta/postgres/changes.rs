//! The change feed on PostgreSQL, and the base-version check of
//! conditional writes. Every change is numbered from the owner's counter
//! row, whose lock the transaction then holds until it commits: one
//! owner's changes commit in number order, on every server, so a reader
//! never sees a later number before an earlier one.

use super::{ts, GenericClient};
use crate::meta::{check_cursor, stale_message, ChangeRow, MetaError, OwnerId};

/// Records a change in the caller's transaction; returns its number.
pub async fn record<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    path: &str,
    deleted: bool,
    (version, size, hash, modified): (u64, u64, &str, Option<&str>),
) -> Result<u64, MetaError> {
    let seq: i64 = c
        .query_one(
            "UPDATE owners SET change_seq = change_seq + 1 WHERE id = $1 RETURNING change_seq",
            &[&owner],
        )
        .await?
        .get(0);
    c.execute(
        "INSERT INTO changes (owner_id, seq, path, deleted, version, size, hash, at, modified_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8)",
        &[
            &owner,
            &seq,
            &path,
            &deleted,
            &(version as i64),
            &(size as i64),
            &hash,
            &modified,
        ],
    )
    .await?;
    Ok(seq as u64)
}

/// See [`crate::meta::sqlite::changes::check_base`]. Called with the
/// owner's row locked, so no other write of theirs can slip in between.
pub async fn check_base<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    path: &str,
    base: Option<u64>,
) -> Result<(), MetaError> {
    let Some(base) = base else {
        return Ok(());
    };
    let latest = c
        .query_opt(
            "SELECT (SELECT MAX(number) FROM versions v WHERE v.file_id = f.id)
             FROM files f WHERE f.owner_id = $1 AND f.path = $2 AND f.deleted_at IS NULL",
            &[&owner, &path],
        )
        .await?
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .unwrap_or(0) as u64;
    if latest != base {
        return Err(MetaError::Stale(stale_message(path, base, latest)));
    }
    Ok(())
}

/// See [`crate::meta::MetaStore::changes`].
pub async fn list<C: GenericClient>(
    c: &C,
    owner: OwnerId,
    after: u64,
    limit: u32,
) -> Result<(Vec<ChangeRow>, u64), MetaError> {
    let head = c
        .query_opt("SELECT change_seq FROM owners WHERE id = $1", &[&owner])
        .await?
        .map_or(0, |r| r.get::<_, i64>(0)) as u64;
    let rows: Vec<ChangeRow> = c
        .query(
            "SELECT seq, path, deleted, version, size, hash, at, modified_at FROM changes
             WHERE owner_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&owner, &(after as i64), &(limit as i64)],
        )
        .await?
        .iter()
        .map(|r| ChangeRow {
            seq: r.get::<_, i64>(0) as u64,
            path: r.get(1),
            deleted: r.get(2),
            version: r.get::<_, i64>(3) as u64,
            size: r.get::<_, i64>(4) as u64,
            hash: r.get(5),
            at: ts(r.get(6)),
            modified: r.get(7),
        })
        .collect();
    if limit > 0 {
        check_cursor(after, rows.first().map(|r| r.seq), head)?;
    }
    Ok((rows, head))
}
