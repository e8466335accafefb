//! WebDAV dead properties: what clients store on a file or folder with
//! PROPPATCH (Finder's tags, Windows' attributes, a client's own), kept by
//! path. They move and copy with their file or folder, and go with it
//! when it is deleted.

use super::tx::Tx;
use super::ByPath;
use crate::meta::{DeadProp, MetaError, OwnerId};

/// See [`crate::meta::MetaStore::props`].
pub fn list(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<Vec<DeadProp>, MetaError> {
    Ok(tx
        .query(
            "SELECT ns, name, prefix, xml FROM dead_props WHERE owner_id = $1 AND path = $2
             ORDER BY ns, name",
            &[&owner, &path],
        )?
        .iter()
        .map(|r| DeadProp {
            ns: r.get(0),
            name: r.get(1),
            prefix: r.get(2),
            xml: r.get(3),
        })
        .collect())
}

/// See [`crate::meta::MetaStore::patch_props`]: sets each of `set`
/// (`xml` `None` removes it), all or none.
pub fn patch(tx: &dyn Tx, owner: OwnerId, path: &str, set: &[DeadProp]) -> Result<(), MetaError> {
    for p in set {
        match &p.xml {
            Some(xml) => tx.execute(
                "INSERT INTO dead_props (owner_id, path, ns, name, prefix, xml)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (owner_id, path, ns, name)
                 DO UPDATE SET prefix = excluded.prefix, xml = excluded.xml",
                &[&owner, &path, &p.ns, &p.name, &p.prefix, xml],
            )?,
            None => tx.execute(
                "DELETE FROM dead_props WHERE owner_id = $1 AND path = $2 AND ns = $3 AND name = $4",
                &[&owner, &path, &p.ns, &p.name],
            )?,
        };
    }
    Ok(())
}

/// Drops the properties of `path` and of everything inside it.
pub fn drop_under(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<(), MetaError> {
    ByPath::DeadProps.delete_under(tx, owner, path)
}

/// Moves the properties of `from` and of everything inside it to `to`,
/// a free name (whatever was deleted there took its properties along).
pub fn move_under(tx: &dyn Tx, owner: OwnerId, from: &str, to: &str) -> Result<(), MetaError> {
    ByPath::DeadProps.move_under(tx, owner, from, to)
}

/// Copies the properties of `from` (only) to `to`, replacing `to`'s.
pub fn copy(tx: &dyn Tx, owner: OwnerId, from: &str, to: &str) -> Result<(), MetaError> {
    tx.execute(
        "DELETE FROM dead_props WHERE owner_id = $1 AND path = $2",
        &[&owner, &to],
    )?;
    tx.execute(
        "INSERT INTO dead_props (owner_id, path, ns, name, prefix, xml)
         SELECT owner_id, CAST($3 AS TEXT), ns, name, prefix, xml FROM dead_props
         WHERE owner_id = $1 AND path = $2",
        &[&owner, &from, &to],
    )?;
    Ok(())
}
