//! The cluster identity: a marker object on every node (`coffer/cluster-id`,
//! outside the `chunks/` prefix that gc, repair and scrub walk) that names
//! the database the node's chunks belong to.
//!
//! [`check`] compares the markers with the identity recorded in the
//! metadata store. A server whose database does not match a node's marker,
//! or that is empty while the nodes hold chunks, must not sweep "orphans":
//! to it every chunk of the real cluster looks like one. The identity is
//! created on the first start of a new cluster and written to every node
//! that lacks it (a new or wiped node).

use crate::cluster::Cluster;
use crate::meta::{random_id, Meta};
use crate::store::StoreError;
use bytes::Bytes;

/// The marker's key on every node.
pub const MARKER_KEY: &str = "coffer/cluster-id";

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The database and every reachable node agree on this identity.
    Agreed(String),
    /// Orphan sweeping is unsafe, for this reason.
    Mismatch(String),
}

async fn marker(cluster: &Cluster, i: usize) -> Result<Option<String>, StoreError> {
    let node = &cluster.nodes()[i];
    match node.store.get(MARKER_KEY).await {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_string())),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Compares the nodes' markers with the database's identity, creating the
/// identity for a new cluster and writing it to reachable nodes that lack
/// it. Unreachable nodes are skipped (the next check sees them).
pub async fn check(meta: &Meta, cluster: &Cluster) -> Result<Identity, String> {
    let mut found = Vec::new();
    for i in 0..cluster.nodes().len() {
        if let Ok(m) = marker(cluster, i).await {
            found.push((i, m));
        }
    }
    let recorded = meta.cluster_id().await.map_err(|e| e.to_string())?;
    let id = match recorded {
        Some(id) => id,
        None => {
            if let Some((i, Some(other))) = found.iter().find(|(_, m)| m.is_some()) {
                return Ok(Identity::Mismatch(format!(
                    "node {} belongs to cluster {other}, but this database is new: \
                     is COFFER_DATABASE_URL or the data dir the right one?",
                    cluster.nodes()[*i].id
                )));
            }
            if !meta.has_chunks().await.map_err(|e| e.to_string())? {
                for (i, _) in &found {
                    let node = &cluster.nodes()[*i];
                    if matches!(cluster.list_chunks(node).await, Ok(set) if !set.is_empty()) {
                        return Ok(Identity::Mismatch(format!(
                            "node {} holds chunks, but this database knows none: \
                             is COFFER_DATABASE_URL or the data dir the right one?",
                            node.id
                        )));
                    }
                }
            }
            // A new cluster, or one from before markers existed.
            meta.init_cluster_id(&random_id())
                .await
                .map_err(|e| e.to_string())?
        }
    };
    for (i, m) in &found {
        let node = &cluster.nodes()[*i];
        match m {
            Some(m) if *m == id => {}
            Some(other) => {
                return Ok(Identity::Mismatch(format!(
                    "node {} belongs to cluster {other}, this database to cluster {id}",
                    node.id
                )))
            }
            None => {
                if let Err(e) = node.store.put(MARKER_KEY, Bytes::from(id.clone())).await {
                    tracing::warn!(node = %node.id, error = %e, "cannot write the cluster marker");
                }
            }
        }
    }
    Ok(Identity::Agreed(id))
}
