//! Thumbnails of users' images. Made from a version's bytes on first
//! request ([`render`]), kept on the nodes where every server finds them
//! (`coffer/thumbs/…`, on the nodes the key places on), recorded in the
//! metadata, and deleted by gc once no version of that owner has the
//! content ([`sweep`]).
//!
//! Keyed by owner and content, not content alone: a cache shared across
//! owners would tell one user, by its speed, that another holds the same
//! picture, which per-owner dedup exists to prevent.

pub mod render;

use crate::cluster::Cluster;
use crate::meta::{Meta, MetaError, OwnerId};
use std::sync::Arc;

/// The edges thumbnails are made at: a list's and a preview's.
pub const EDGES: [u32; 2] = [256, 1080];

/// Caps on what is decoded.
#[derive(Debug, Clone)]
pub struct ThumbConfig {
    /// Larger files get no thumbnail (their bytes are held while decoded).
    pub max_source_bytes: u64,
    /// Images of more pixels get none (refused from the header).
    pub max_pixels: u64,
    /// Thumbnails made at once, server-wide.
    pub concurrent: usize,
}

impl Default for ThumbConfig {
    fn default() -> Self {
        Self {
            max_source_bytes: 64 * 1024 * 1024,
            max_pixels: 100_000_000,
            concurrent: 2,
        }
    }
}

/// The object holding `owner`'s thumbnail of content `hash` at `edge`.
pub fn object_key(owner: OwnerId, hash: &str, edge: u32) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&owner.to_le_bytes());
    h.update(hash.as_bytes());
    format!("coffer/thumbs/{}-{edge}.jpg", &h.finalize().to_hex()[..32])
}

/// The nodes a thumbnail is kept on.
pub fn nodes_for(cluster: &Cluster, key: &str) -> Vec<Arc<crate::cluster::Node>> {
    let r = cluster.config().replication;
    cluster.placement(key).into_iter().take(r).collect()
}

/// Deletes the thumbnails whose content no version of their owner has
/// (each from every node it may be on), then forgets them. Returns how
/// many; one that could not be deleted everywhere stays for next time.
pub async fn sweep(meta: &Meta, cluster: &Cluster) -> Result<u64, MetaError> {
    let mut gone = 0;
    loop {
        let batch = meta.unreferenced_thumbnails(500).await?;
        let full = batch.len() == 500;
        let mut progressed = false;
        for (owner, hash, edge) in batch {
            let key = object_key(owner, &hash, edge);
            let mut ok = true;
            for node in nodes_for(cluster, &key) {
                match cluster.delete_object(&node, &key).await {
                    Ok(()) | Err(crate::store::StoreError::NotFound { .. }) => {}
                    Err(e) => {
                        tracing::warn!(%key, node = %node.id, error = %e, "thumbnail not deleted");
                        ok = false;
                    }
                }
            }
            if ok {
                meta.forget_thumbnail(owner, &hash, edge).await?;
                gone += 1;
                progressed = true;
            }
        }
        if !full || !progressed {
            return Ok(gone);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_differ_by_owner_content_and_edge() {
        let a = super::object_key(1, "abc", 256);
        assert!(
            a.starts_with("coffer/thumbs/") && a.ends_with("-256.jpg"),
            "{a}"
        );
        assert_ne!(a, super::object_key(2, "abc", 256));
        assert_ne!(a, super::object_key(1, "abd", 256));
        assert_ne!(a, super::object_key(1, "abc", 1080));
    }
}
