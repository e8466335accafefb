//! Queries for operations: worker leases and the database's settings
//! (its cluster identity).

use crate::meta::{LeaseRow, MetaError};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// The settings key of the cluster identity.
pub const CLUSTER_ID: &str = "cluster_id";
/// When the database was last restored from a snapshot (RFC 3339).
pub const RESTORED_AT: &str = "restored_at";

/// Takes or renews lease `name` for `holder` until `until`, unless another
/// holder's lease is still running at `now`.
pub fn try_lease(
    tx: &Transaction,
    name: &str,
    holder: &str,
    now: &str,
    until: &str,
) -> Result<bool, MetaError> {
    let n = tx.execute(
        "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?4)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
           WHERE leases.holder = excluded.holder OR leases.expires_at <= ?3",
        params![name, holder, now, until],
    )?;
    Ok(n > 0)
}

/// Gives lease `name` up if `holder` holds it.
pub fn release_lease(tx: &Transaction, name: &str, holder: &str) -> Result<(), MetaError> {
    tx.execute(
        "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
        params![name, holder],
    )?;
    Ok(())
}

/// Every lease, by name.
pub fn leases(c: &Connection) -> Result<Vec<LeaseRow>, MetaError> {
    let mut stmt = c.prepare_cached("SELECT name, holder, expires_at FROM leases ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(LeaseRow {
            name: r.get(0)?,
            holder: r.get(1)?,
            expires_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A setting's value.
pub fn setting(c: &Connection, key: &str) -> Result<Option<String>, MetaError> {
    Ok(
        c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?,
    )
}

/// Sets `key` to `value`.
pub fn set_setting(tx: &Transaction, key: &str, value: &str) -> Result<(), MetaError> {
    tx.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Sets `key` to `value` unless it is set; returns the value it has.
pub fn init_setting(tx: &Transaction, key: &str, value: &str) -> Result<String, MetaError> {
    tx.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        params![key, value],
    )?;
    Ok(setting(tx, key)?.unwrap_or_default())
}
