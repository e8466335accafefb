//! Garbage collection: applies the version retention policy, purges files
//! deleted longer ago than their retention, and deletes chunk objects that
//! no live or retained version and no open upload session references,
//! once they are older than the grace period. Objects on a node that no
//! chunk row names (left by uploads that never committed) are deleted once
//! they have been seen unclaimed for the grace period.

use super::pace::Pace;
use super::runner::{Pass, Worker, WorkerError};
use crate::cluster::Cluster;
use crate::identity::{self, Identity};
use crate::meta::{Meta, Retention};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Chunks claimed per metadata transaction.
const CLAIM_BATCH: u32 = 1000;

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
    /// Packs whose live chunks fill less than this percentage of them
    /// are repacked (0: never).
    pub repack_below_percent: u32,
    /// Packs are on: small chunks stored as objects of their own are
    /// packed too.
    pub pack_existing: bool,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3600),
            keep_versions: None,
            keep_younger_than: None,
            deleted_retention: Some(Duration::from_secs(30 * 24 * 3600)),
            repack_below_percent: 60,
            pack_existing: false,
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

impl Gc {
    /// Deletes chunks nothing references: claims them in the metadata
    /// (from then on uploads of them wait and write them again), deletes
    /// their objects, then forgets them. Returns (chunks, errors).
    async fn collect_chunks(&self, cancel: &CancellationToken) -> Result<(u64, u64), WorkerError> {
        let (mut chunks, mut errors) = (0u64, 0u64);
        loop {
            let claimed = self
                .meta
                .claim_unreferenced(self.cfg.grace, CLAIM_BATCH)
                .await?;
            let full = claimed.len() as u32 >= CLAIM_BATCH;
            // A chunk inside a pack has no object of its own: its row
            // goes, and the pack once no chunk names it.
            let packed = self.meta.pack_locations(&claimed).await?;
            for id in claimed {
                if cancel.is_cancelled() {
                    // Still claimed: the next pass, here or on another
                    // server, finishes the deletion.
                    return Ok((chunks, errors));
                }
                for node in self
                    .cluster
                    .nodes()
                    .iter()
                    .filter(|_| !packed.contains_key(&id))
                {
                    // A copy that cannot be deleted now is an orphan; the
                    // sweep deletes it later.
                    self.pace.spend(1).await;
                    if self.cluster.delete_from(node, &id).await.is_err() {
                        errors += 1;
                    }
                }
                self.meta.forget_chunk(&id).await?;
                chunks += 1;
            }
            if !full {
                return Ok((chunks, errors));
            }
        }
    }

    /// Deletes objects no chunk row names once they stayed unclaimed for
    /// the grace period. Returns (objects, errors).
    async fn sweep_orphans(&self, cancel: &CancellationToken) -> Result<(u64, u64), WorkerError> {
        let (mut orphans, mut errors) = (0u64, 0u64);
        for node in self.cluster.nodes() {
            if cancel.is_cancelled() || node.health.is_down() {
                continue;
            }
            let Ok(found) = self.cluster.list_chunks(node).await else {
                errors += 1;
                continue;
            };
            let found: Vec<String> = found.into_iter().collect();
            let ripe = self
                .meta
                .note_orphans(&node.id, &found, self.cfg.grace)
                .await?;
            for id in ripe {
                self.pace.spend(1).await;
                // The listing is old by now: an upload may have claimed
                // the id since. The claim makes uploads of it wait.
                if !self.meta.claim_orphan(&id).await? {
                    // Or its chunk moved into a pack: the row stays, the
                    // object of its own goes.
                    let packed = self.meta.pack_locations(std::slice::from_ref(&id)).await?;
                    if packed.contains_key(&id) {
                        match self.cluster.delete_from(node, &id).await {
                            Ok(()) => orphans += 1,
                            Err(_) => errors += 1,
                        }
                    }
                    continue;
                }
                match self.cluster.delete_from(node, &id).await {
                    Ok(()) => orphans += 1,
                    Err(_) => errors += 1,
                }
                self.meta.forget_chunk(&id).await?;
            }
        }
        Ok((orphans, errors))
    }
}

impl Worker for Gc {
    fn name(&self) -> &'static str {
        "gc"
    }

    async fn pass(&mut self, cancel: &CancellationToken) -> Result<Pass, WorkerError> {
        let retention = Retention {
            keep_last: self.cfg.keep_versions,
            keep_younger_than: self.cfg.keep_younger_than,
            purge_deleted_after: self.cfg.deleted_retention,
        };
        let versions = self.meta.apply_retention(&retention).await?;
        self.meta.delete_expired_sessions().await?;
        // Feed entries older than this are gone; a cursor before them
        // makes its client list everything again.
        self.meta.prune_changes(crate::meta::CHANGES_KEPT).await?;
        let (chunks, mut errors) = self.collect_chunks(cancel).await?;
        // Packs emptied by those deletions: their live chunks move to new
        // packs, and the old ones go on a later pass.
        let repacked = if self.cfg.repack_below_percent > 0 {
            crate::packs::repack::repack(
                &self.meta,
                &self.cluster,
                self.cfg.repack_below_percent,
                crate::packs::TARGET_PACK,
                cancel,
            )
            .await?
        } else {
            Default::default()
        };
        errors += repacked.errors;
        let migrated = if self.cfg.pack_existing {
            crate::packs::repack::pack_small(
                &self.meta,
                &self.cluster,
                crate::packs::TARGET_PACK,
                cancel,
            )
            .await?
        } else {
            Default::default()
        };
        errors += migrated.errors;
        // Thumbnails of content their owner no longer has.
        let thumbs = crate::thumbs::sweep(&self.meta, &self.cluster).await?;
        // Objects no row names are orphans only if the nodes belong to
        // this database: checked every pass, as a node may have come back.
        let mut orphans = 0;
        let sweep = match identity::check(&self.meta, &self.cluster).await? {
            Identity::Mismatch(why) => {
                tracing::warn!(%why, "gc: orphan sweep off");
                format!("orphan sweep off: {why}")
            }
            Identity::Agreed(_) => {
                let (n, e) = self.sweep_orphans(cancel).await?;
                (orphans, errors) = (n, errors + e);
                format!("deleted {orphans} orphan objects")
            }
        };
        let report = format!(
            "removed {versions} versions, {chunks} unreferenced chunks and {thumbs} thumbnails, \
             repacked {} packs ({} chunks), packed {} small chunks, {sweep}, {errors} errors",
            repacked.packs, repacked.chunks, migrated.chunks
        );
        Ok(if cancel.is_cancelled() {
            Pass::cancelled(report)
        } else if versions + chunks + thumbs + orphans + errors + repacked.packs + migrated.chunks
            == 0
        {
            Pass::idle(report)
        } else {
            Pass::done(report)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::files::{Files, FilesConfig};
    use crate::meta::{ChunkHold, ChunkRef};
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
        let meta: Meta = Arc::new(crate::meta::sqlite::open_in_memory().unwrap());
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
        // As at a new cluster's first start: the identity is made and
        // marked on the node.
        let id = identity::check(&gc.meta, &gc.cluster).await.unwrap();
        assert!(matches!(id, Identity::Agreed(_)), "{id:?}");
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
        gc.pass(&CancellationToken::new()).await.unwrap().report
    }

    #[tokio::test]
    async fn a_chunk_an_upload_is_writing_is_neither_collected_nor_swept() {
        let mut s = setup().await;
        let data = Bytes::from(content(100_000, 1));
        let chunk = ChunkRef {
            id: chunk_id(&data),
            size: data.len() as u32,
        };
        // An upload between its "is it stored?" and its record: the
        // objects are on the node, the row is a pending hold.
        let ChunkHold::Write(hold) = s.gc.meta.hold_chunk(&chunk, None).await.unwrap() else {
            panic!("a new chunk must be written");
        };
        s.gc.cluster
            .write_chunk(&chunk.id, data.clone())
            .await
            .unwrap();
        collect(&mut s.gc).await;
        collect(&mut s.gc).await;
        assert!(stored(&s.node, &chunk.id).await, "gc deleted a held chunk");
        s.gc.meta
            .record_chunk(&chunk, &hold, &["n0".into()])
            .await
            .unwrap();
        // Recorded and referenced by nothing: collected now.
        let report = collect(&mut s.gc).await;
        assert!(!stored(&s.node, &chunk.id).await, "{report}");
    }

    #[tokio::test]
    async fn an_orphan_is_swept_only_after_two_passes() {
        let mut s = setup().await;
        let data = Bytes::from(content(100_000, 2));
        let id = chunk_id(&data);
        // Objects with no chunk row, as an interrupted upload leaves them.
        s.gc.cluster.write_chunk(&id, data).await.unwrap();
        collect(&mut s.gc).await;
        assert!(stored(&s.node, &id).await, "an orphan went on first sight");
        let report = collect(&mut s.gc).await;
        assert!(!stored(&s.node, &id).await, "{report}");
    }

    #[tokio::test]
    async fn a_node_of_another_cluster_is_never_swept_and_status_says_why() {
        let mut s = setup().await;
        let data = Bytes::from(content(100_000, 4));
        let id = chunk_id(&data);
        s.gc.cluster.write_chunk(&id, data).await.unwrap();
        // The node says it belongs to another database.
        s.node
            .put(identity::MARKER_KEY, Bytes::from_static(b"another"))
            .await
            .unwrap();
        collect(&mut s.gc).await;
        let report = collect(&mut s.gc).await;
        assert!(stored(&s.node, &id).await, "{report}");
        assert!(report.contains("belongs to cluster another"), "{report}");
    }

    #[tokio::test]
    async fn an_empty_database_never_sweeps_nodes_that_hold_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let node = Arc::new(LocalStore::new("n0", dir.path().join("n0")));
        node.ensure_ready().await.unwrap();
        let nodes: Vec<(String, Arc<dyn BlobStore>)> = vec![("n0".into(), node.clone())];
        let (cluster, _events) = Cluster::new(nodes, ClusterConfig::for_nodes(1)).unwrap();
        let cluster = Arc::new(cluster);
        // Chunks from before markers existed, and a database that knows
        // none of them.
        let data = Bytes::from(content(100_000, 6));
        let id = chunk_id(&data);
        cluster.write_chunk(&id, data).await.unwrap();
        let mut gc = Gc {
            meta: Arc::new(crate::meta::sqlite::open_in_memory().unwrap()),
            cluster,
            cfg: GcConfig {
                grace: Duration::ZERO,
                ..GcConfig::default()
            },
            pace: Pace::new(0),
        };
        collect(&mut gc).await;
        let report = collect(&mut gc).await;
        assert!(stored(&node, &id).await, "{report}");
        assert!(report.contains("knows none"), "{report}");
        assert_eq!(gc.meta.cluster_id().await.unwrap(), None, "adopted");
    }

    #[tokio::test]
    async fn a_write_whose_hold_gc_took_is_refused_and_stored_again() {
        let s = setup().await;
        let data = Bytes::from(content(100_000, 5));
        let chunk = ChunkRef {
            id: chunk_id(&data),
            size: data.len() as u32,
        };
        s.files.store_chunk(data.clone(), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Gc claims the unreferenced chunk; an upload asking now must wait.
        let claimed =
            s.gc.meta
                .claim_unreferenced(Duration::ZERO, 10)
                .await
                .unwrap();
        assert_eq!(claimed, vec![chunk.id.clone()]);
        assert_eq!(
            s.gc.meta.hold_chunk(&chunk, None).await.unwrap(),
            ChunkHold::Deleting
        );
        // The upload retries while gc deletes and forgets the chunk, then
        // writes it again: the chunk ends up stored, objects and row.
        let upload = tokio::spawn({
            let files = s.files.clone();
            async move { files.store_chunk(data, None).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.gc.cluster
            .delete_from(&s.gc.cluster.nodes()[0], &chunk.id)
            .await
            .unwrap();
        s.gc.meta.forget_chunk(&chunk.id).await.unwrap();
        upload.await.unwrap().unwrap();
        assert!(stored(&s.node, &chunk.id).await, "the rewrite is missing");
        assert_eq!(
            s.gc.meta.chunks_page("", 10).await.unwrap(),
            vec![chunk],
            "the chunk's row is back, stored"
        );
    }

    #[tokio::test]
    async fn a_stream_outlasting_the_grace_period_still_commits() {
        let mut s = setup().await;
        let data = content(12 * 1024 * 1024, 3);
        let mut upload = s.files.begin_stream(&crate::caller::Caller::anyone());
        // Several chunks are stored, and gc runs, before the stream ends.
        upload.push(&data[..8 * 1024 * 1024]).await.unwrap();
        collect(&mut s.gc).await;
        upload.push(&data[8 * 1024 * 1024..]).await.unwrap();
        collect(&mut s.gc).await;
        upload
            .finish("long.bin", coffer_proto::put::PutMode::Overwrite, None)
            .await
            .unwrap();

        let (_, chunks) = s
            .files
            .open(&crate::caller::Caller::anyone(), "long.bin", None)
            .await
            .unwrap();
        let mut back = Vec::new();
        let mut pieces = Box::pin(s.files.read_chunks(chunks));
        while let Some(piece) = pieces.next().await {
            back.extend_from_slice(&piece.unwrap().data);
        }
        assert!(back == data, "read back differs");
    }
}
