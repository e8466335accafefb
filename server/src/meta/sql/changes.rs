//! The change feed, and the base-version check of conditional writes.
//! Every change is numbered from the owner's counter row, whose lock the
//! transaction then holds until it commits: one owner's changes commit in
//! number order, on every server, so a reader never sees a later number
//! before an earlier one.

use super::tx::Tx;
use crate::meta::{check_cursor, ChangeRow, MetaError, OwnerId, Stale};
use coffer_proto::put::PutMode;
use std::time::Duration;

/// What a change says of the version it is about.
pub struct Change<'a> {
    pub path: &'a str,
    pub deleted: bool,
    pub version: u64,
    pub size: u64,
    pub hash: &'a str,
    pub modified: Option<&'a str>,
}

/// Records a change in the caller's transaction; returns its number.
pub fn record(tx: &dyn Tx, owner: OwnerId, c: Change) -> Result<u64, MetaError> {
    let seq: u64 = tx
        .query_one(
            "UPDATE owners SET change_seq = change_seq + 1 WHERE id = $1 RETURNING change_seq",
            &[&owner],
        )?
        .get(0);
    tx.execute(
        "INSERT INTO changes (owner_id, seq, path, deleted, version, size, hash, at, modified_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now_ms(), $8)",
        &[
            &owner,
            &seq,
            &c.path,
            &c.deleted,
            &c.version,
            &c.size,
            &c.hash,
            &c.modified,
        ],
    )?;
    Ok(seq)
}

/// Fails with [`MetaError::Stale`] unless `mode` holds for the live file
/// at `path`. Called with the owner's row locked, so no other write of
/// theirs slips in between.
pub fn check_base(tx: &dyn Tx, owner: OwnerId, path: &str, mode: PutMode) -> Result<(), MetaError> {
    let base = match mode {
        PutMode::Overwrite => return Ok(()),
        PutMode::Create => 0,
        PutMode::Update(n) => n,
    };
    let latest = tx
        .query_opt(
            "SELECT (SELECT MAX(number) FROM versions v WHERE v.file_id = f.id)
             FROM files f WHERE f.owner_id = $1 AND f.path = $2 AND f.deleted_at IS NULL",
            &[&owner, &path],
        )?
        .and_then(|r| r.get::<Option<u64>>(0))
        .unwrap_or(0);
    if latest != base {
        return Err(MetaError::Stale(Stale {
            path: path.to_string(),
            base,
            latest,
        }));
    }
    Ok(())
}

/// See [`crate::meta::MetaStore::changes`].
pub fn list(
    tx: &dyn Tx,
    owner: OwnerId,
    after: u64,
    limit: u32,
) -> Result<(Vec<ChangeRow>, u64), MetaError> {
    let head = tx
        .query_opt("SELECT change_seq FROM owners WHERE id = $1", &[&owner])?
        .map_or(0, |r| r.get::<u64>(0));
    let rows: Vec<ChangeRow> = tx
        .query(
            "SELECT seq, path, deleted, version, size, hash, at, modified_at FROM changes
             WHERE owner_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&owner, &after, &limit],
        )?
        .iter()
        .map(|r| ChangeRow {
            seq: r.get(0),
            path: r.get(1),
            deleted: r.get(2),
            version: r.get(3),
            size: r.get(4),
            hash: r.get(5),
            at: r.time(6),
            modified: r.get(7),
        })
        .collect();
    if limit > 0 {
        check_cursor(after, rows.first().map(|r| r.seq), head)?;
    }
    Ok((rows, head))
}

/// See [`crate::meta::MetaStore::prune_changes`].
pub fn prune(tx: &dyn Tx, older_than: Duration) -> Result<u64, MetaError> {
    tx.execute(
        "DELETE FROM changes WHERE at < now_ms() - $1",
        &[&super::ms(older_than)],
    )
}
