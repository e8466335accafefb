//! Garbage collection: applies the version retention policy, purges files
//! deleted longer ago than their retention, and deletes chunk objects that
//! no live or retained version and no open upload session references,
//! once they are older than the grace period. Objects on a node that no
//! chunk row names (left by uploads that never committed) are deleted once
//! they have been seen unclaimed for the grace period.

use super::pace::Pace;
use super::runner::Worker;
use crate::cluster::Cluster;
use crate::meta::{self, gc::Retention, Meta};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Garbage collection policy.
#[derive(Debug, Clone)]
pub struct GcConfig {
    /// Unreferenced chunks younger than this are kept (protects uploads in
    /// flight).
    pub grace: Duration,
    /// Keep at most this many versions per file (`None`: all).
    pub keep_versions: Option<u32>,
    /// Keep versions younger than this even beyond `keep_versions`.
    pub keep_younger_than: Option<Duration>,
    /// Deleted files are purged after this long (`None`: never).
    pub deleted_retention: Option<Duration>,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3600),
            keep_versions: None,
            keep_younger_than: None,
            deleted_retention: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

pub struct Gc {
    pub meta: Meta,
    pub cluster: Arc<Cluster>,
    pub cfg: GcConfig,
    /// Object deletions per second at most.
    pub pace: Pace,
}

fn ago(d: Duration) -> String {
    meta::rfc3339(time::OffsetDateTime::now_utc() - d)
}

impl Worker for Gc {
    fn name(&self) -> &'static str {
        "gc"
    }

    async fn pass(&mut self, cancel: &CancellationToken) -> Result<String, String> {
        let retention = Retention {
            keep_last: self.cfg.keep_versions,
            keep_newer_than: self.cfg.keep_younger_than.map(ago),
            purge_deleted_before: self.cfg.deleted_retention.map(ago),
        };
        let cutoff = ago(self.cfg.grace);
        let (versions, _) = self
            .meta
            .call(move |c| {
                let v = meta::gc::apply_retention(c, &retention)?;
                let s = meta::sessions::delete_expired(c, &meta::now_rfc3339())?;
                Ok((v, s))
            })
            .await
            .map_err(|e| e.to_string())?;

        let mut chunks = 0u64;
        let mut errors = 0u64;
        let c2 = cutoff.clone();
        let candidates = self
            .meta
            .call(move |c| meta::gc::unreferenced_chunks(c, &c2, 100_000))
            .await
            .map_err(|e| e.to_string())?;
        for id in candidates {
            if cancel.is_cancelled() {
                break;
            }
            let (i2, c2) = (id.clone(), cutoff.clone());
            let forgotten = self
                .meta
                .call(move |c| meta::gc::forget_chunk_if_unreferenced(c, &i2, &c2))
                .await
                .map_err(|e| e.to_string())?;
            if !forgotten {
                continue;
            }
            chunks += 1;
            for node in self.cluster.nodes() {
                // A copy that cannot be deleted now is an orphan; the sweep
                // below deletes it later.
                self.pace.spend(1).await;
                if self.cluster.delete_from(node, &id).await.is_err() {
                    errors += 1;
                }
            }
        }

        let mut orphans = 0u64;
        for node in self.cluster.nodes() {
            if cancel.is_cancelled() || node.health.is_down() {
                continue;
            }
            let Ok(found) = self.cluster.list_chunks(node).await else {
                errors += 1;
                continue;
            };
            let found: Vec<String> = found.into_iter().collect();
            let (n2, c2) = (node.id.clone(), cutoff.clone());
            let ripe = self
                .meta
                .call(move |c| meta::gc::note_orphans(c, &n2, &found, &meta::now_rfc3339(), &c2))
                .await
                .map_err(|e| e.to_string())?;
            for id in ripe {
                self.pace.spend(1).await;
                if self.cluster.delete_from(node, &id).await.is_ok() {
                    orphans += 1;
                    let (n2, i2) = (node.id.clone(), id.clone());
                    self.meta
                        .call(move |c| meta::gc::forget_orphan(c, &n2, &i2))
                        .await
                        .map_err(|e| e.to_string())?;
                } else {
                    errors += 1;
                }
            }
        }
        Ok(format!(
            "removed {versions} versions and {chunks} unreferenced chunks, deleted {orphans} orphan objects, {errors} errors"
        ))
    }
}
