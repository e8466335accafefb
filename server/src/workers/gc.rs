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
            // An upload holding the id is about to reference it: skip it.
            let Some(_deleting) = self.cluster.fence().try_delete(&id) else {
                continue;
            };
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
                // The listing is old by now: an upload may hold the id, or
                // may have stored and recorded it since.
                let Some(_deleting) = self.cluster.fence().try_delete(&id) else {
                    continue;
                };
                let i2 = id.clone();
                let claimed = self
                    .meta
                    .call(move |c| meta::chunks::is_stored(c, &i2))
                    .await
                    .map_err(|e| e.to_string())?;
                if claimed {
                    continue;
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::files::{Files, FilesConfig};
    use crate::meta::DEFAULT_OWNER;
    use crate::store::local::LocalStore;
    use crate::store::{chunk_key, BlobStore};
    use bytes::Bytes;
    use coffer_proto::chunking::chunk_id;
    use futures::StreamExt;

    struct Setup {
        files: Files,
        gc: Gc,
        node: Arc<LocalStore>,
        _dir: tempfile::TempDir,
    }

    /// One local node, and gc with no grace period at all.
    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let node = Arc::new(LocalStore::new("n0", dir.path().join("n0")));
        node.ensure_ready().await.unwrap();
        let nodes: Vec<(String, Arc<dyn BlobStore>)> = vec![("n0".into(), node.clone())];
        let (cluster, _events) = Cluster::new(nodes, ClusterConfig::for_nodes(1)).unwrap();
        let cluster = Arc::new(cluster);
        let meta = Meta::open_in_memory().unwrap();
        let files = Files::new(meta.clone(), cluster.clone(), FilesConfig::default());
        let cfg = GcConfig {
            grace: Duration::ZERO,
            ..GcConfig::default()
        };
        let gc = Gc {
            meta,
            cluster,
            cfg,
            pace: Pace::new(0),
        };
        Setup {
            files,
            gc,
            node,
            _dir: dir,
        }
    }

    fn content(len: usize, seed: u8) -> Vec<u8> {
        let mut data = vec![0; len];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut data);
        data
    }

    async fn stored(node: &LocalStore, id: &str) -> bool {
        node.get(&chunk_key(id)).await.is_ok()
    }

    /// A gc pass, once the millisecond stamps just written are in the past
    /// (so a grace period of zero has run out for them).
    async fn collect(gc: &mut Gc) -> String {
        tokio::time::sleep(Duration::from_millis(5)).await;
        gc.pass(&CancellationToken::new()).await.unwrap()
    }

    #[tokio::test]
    async fn a_chunk_an_upload_holds_is_spared_until_released() {
        let mut s = setup().await;
        let data = Bytes::from(content(100_000, 1));
        let (chunk, hold) = s.files.store_chunk(data).await.unwrap();
        collect(&mut s.gc).await;
        assert!(stored(&s.node, &chunk.id).await, "gc deleted a held chunk");
        drop(hold);
        let report = collect(&mut s.gc).await;
        assert!(!stored(&s.node, &chunk.id).await, "{report}");
    }

    #[tokio::test]
    async fn an_orphan_an_upload_holds_is_spared_until_released() {
        let mut s = setup().await;
        let data = Bytes::from(content(100_000, 2));
        let id = chunk_id(&data);
        // Objects with no chunk row, as an interrupted upload leaves them.
        s.gc.cluster.write_chunk(&id, data).await.unwrap();
        let hold = s.gc.cluster.fence().write(&id).await;
        collect(&mut s.gc).await;
        collect(&mut s.gc).await;
        assert!(stored(&s.node, &id).await, "gc deleted a held orphan");
        drop(hold);
        let report = collect(&mut s.gc).await;
        assert!(!stored(&s.node, &id).await, "{report}");
    }

    #[tokio::test]
    async fn a_stream_outlasting_the_grace_period_still_commits() {
        let mut s = setup().await;
        let data = content(12 * 1024 * 1024, 3);
        let mut upload = s.files.begin_stream(DEFAULT_OWNER);
        // Several chunks are stored, and gc runs, before the stream ends.
        upload.push(&data[..8 * 1024 * 1024]).await.unwrap();
        collect(&mut s.gc).await;
        upload.push(&data[8 * 1024 * 1024..]).await.unwrap();
        collect(&mut s.gc).await;
        upload.finish("long.bin").await.unwrap();

        let (_, chunks) = s.files.open(DEFAULT_OWNER, "long.bin", None).await.unwrap();
        let mut back = Vec::new();
        let mut pieces = Box::pin(s.files.read_chunks(chunks));
        while let Some(piece) = pieces.next().await {
            back.extend_from_slice(&piece.unwrap());
        }
        assert!(back == data, "read back differs");
        assert_eq!(s.gc.cluster.fence().held(), 0, "holds outlived the commit");
    }
}
