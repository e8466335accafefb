//! Operations: worker leases, the database's settings (its cluster
//! identity, secrets every server shares) and liveness.

use super::ms;
use super::tx::Tx;
use crate::meta::{LeaseRow, MetaError};
use std::time::Duration;

/// The settings key of the cluster identity.
pub const CLUSTER_ID: &str = "cluster_id";
/// When the database was last restored from a snapshot (milliseconds
/// since the Unix epoch; RFC 3339 before).
pub const RESTORED_AT: &str = "restored_at";

/// See [`crate::meta::MetaStore::try_lease`].
pub fn try_lease(tx: &dyn Tx, name: &str, holder: &str, ttl: Duration) -> Result<bool, MetaError> {
    Ok(tx.execute(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now_ms() + $3)
         ON CONFLICT (name) DO UPDATE
           SET holder = excluded.holder, expires_at = excluded.expires_at
           WHERE leases.holder = excluded.holder OR leases.expires_at <= now_ms()",
        &[&name, &holder, &ms(ttl)],
    )? > 0)
}

/// See [`crate::meta::MetaStore::release_lease`].
pub fn release_lease(tx: &dyn Tx, name: &str, holder: &str) -> Result<(), MetaError> {
    tx.execute(
        "DELETE FROM leases WHERE name = $1 AND holder = $2",
        &[&name, &holder],
    )?;
    Ok(())
}

/// See [`crate::meta::MetaStore::leases`].
pub fn leases(tx: &dyn Tx) -> Result<Vec<LeaseRow>, MetaError> {
    Ok(tx
        .query(
            "SELECT name, holder, expires_at FROM leases ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| LeaseRow {
            name: r.get(0),
            holder: r.get(1),
            expires_at: r.time(2),
        })
        .collect())
}

/// The setting `key`, if set.
pub fn setting(tx: &dyn Tx, key: &str) -> Result<Option<String>, MetaError> {
    Ok(tx
        .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])?
        .map(|r| r.get(0)))
}

/// See [`crate::meta::MetaStore::set_setting`].
pub fn set_setting(tx: &dyn Tx, key: &str, value: &str) -> Result<(), MetaError> {
    tx.execute(
        "INSERT INTO settings (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )?;
    Ok(())
}

/// See [`crate::meta::MetaStore::init_setting`].
pub fn init_setting(tx: &dyn Tx, key: &str, value: &str) -> Result<String, MetaError> {
    tx.execute(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        &[&key, &value],
    )?;
    Ok(tx
        .query_one("SELECT value FROM settings WHERE key = $1", &[&key])?
        .get(0))
}

/// See [`crate::meta::MetaStore::has_chunks`].
pub fn has_chunks(tx: &dyn Tx) -> Result<bool, MetaError> {
    Ok(tx.query_opt("SELECT 1 FROM chunks LIMIT 1", &[])?.is_some())
}

/// See [`crate::meta::MetaStore::ping`].
pub fn ping(tx: &dyn Tx) -> Result<(), MetaError> {
    tx.query_one("SELECT 1", &[])?;
    Ok(())
}
