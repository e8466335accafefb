//! Taking snapshots: a consistent copy of the metadata, compressed, written
//! to every node that is up, then old snapshots removed by [`Keep`]; and
//! the `snapshot` worker that does this on a schedule and on demand.

use super::{expired, Keep, SnapshotInfo, SnapshotLog, SnapshotName, PREFIX};
use crate::cluster::Cluster;
use crate::meta::{rfc3339, Meta};
use crate::store::BlobStore;
use crate::workers::runner::{Pass, Worker, WorkerError};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A node to write to: its id and store.
pub type Target = (String, Arc<dyn BlobStore>);

/// What one snapshot did.
#[derive(Debug, Clone)]
pub struct Taken {
    pub info: SnapshotInfo,
    /// Nodes the snapshot could not be written to, with why.
    pub failed: Vec<String>,
}

/// Takes one snapshot of `meta` (through a scratch file in `scratch`),
/// authenticated with `key` (see [`super::mac_key`]), and writes it to
/// every one of `nodes`. Fails if there is nothing to snapshot yet, the
/// database cannot be copied, or no node took it.
pub async fn take(
    meta: &Meta,
    nodes: &[Target],
    scratch: &Path,
    key: &[u8; 32],
) -> Result<Taken, String> {
    let cluster = meta
        .cluster_id()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the cluster has no identity yet; nothing to snapshot")?;
    std::fs::create_dir_all(scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let dir = tempfile::Builder::new()
        .prefix(".snapshot-")
        .tempdir_in(scratch)
        .map_err(|e| format!("cannot make a scratch dir in {}: {e}", scratch.display()))?;
    let copy = dir.path().join("coffer.db");
    // The copy is consistent as of a moment during this call; name it by
    // the moment before, so restores never claim more than they hold.
    let taken_at = time::OffsetDateTime::now_utc();
    meta.snapshot_into(&copy).await.map_err(|e| e.to_string())?;
    let (data, database_bytes) = tokio::task::spawn_blocking(move || compress(&copy))
        .await
        .map_err(|e| e.to_string())??;
    let mut name = SnapshotName {
        cluster,
        taken_at,
        mac: String::new(),
    };
    name.mac = name
        .hasher(key)
        .update(&data)
        .finalize()
        .to_hex()
        .to_string();
    let key = name.key();
    let data = Bytes::from(data);
    let writes = nodes.iter().map(|(id, store)| {
        let (key, data) = (key.clone(), data.clone());
        async move { (id, store.put(&key, data).await) }
    });
    let mut failed = Vec::new();
    for (id, r) in futures::future::join_all(writes).await {
        if let Err(e) = r {
            failed.push(format!("{id}: {e}"));
        }
    }
    let written = nodes.len() - failed.len();
    if written == 0 {
        return Err(format!(
            "snapshot {key} landed on no node: {}",
            if failed.is_empty() {
                "no node is up".to_string()
            } else {
                failed.join("; ")
            }
        ));
    }
    Ok(Taken {
        info: SnapshotInfo {
            key,
            taken_at: rfc3339(taken_at),
            bytes: data.len() as u64,
            database_bytes,
            nodes: written as u32,
            of_nodes: nodes.len() as u32,
        },
        failed,
    })
}

fn compress(path: &Path) -> Result<(Vec<u8>, u64), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the copy: {e}"))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let data = zstd::stream::encode_all(std::io::BufReader::new(file), 3)
        .map_err(|e| format!("cannot compress the copy: {e}"))?;
    Ok((data, len))
}

/// Every snapshot on `store`, of any cluster.
pub async fn list(store: &dyn BlobStore) -> Result<Vec<(SnapshotName, u64)>, String> {
    let objects = store.list(PREFIX).await.map_err(|e| e.to_string())?;
    Ok(objects
        .into_iter()
        .filter_map(|o| SnapshotName::parse(&o.key).map(|n| (n, o.size)))
        .collect())
}

/// Removes `cluster`'s snapshots on every one of `nodes` that retention
/// no longer keeps. Returns how many objects went, and per-node errors.
pub async fn prune(nodes: &[Target], cluster: &str, keep: Keep) -> (u64, Vec<String>) {
    let now = time::OffsetDateTime::now_utc();
    let (mut removed, mut errors) = (0, Vec::new());
    for (id, store) in nodes {
        let names: Vec<SnapshotName> = match list(store.as_ref()).await {
            Ok(l) => l
                .into_iter()
                .map(|(n, _)| n)
                .filter(|n| n.cluster == cluster)
                .collect(),
            Err(e) => {
                errors.push(format!("{id}: {e}"));
                continue;
            }
        };
        for n in expired(&names, keep, now) {
            match store.delete(&n.key()).await {
                Ok(()) => removed += 1,
                Err(e) => errors.push(format!("{id}: {e}")),
            }
        }
    }
    (removed, errors)
}

/// The newest snapshot of `cluster` on any of `nodes`, for status after
/// a restart.
pub async fn newest(nodes: &[Target], cluster: &str) -> Option<SnapshotInfo> {
    let mut found: Vec<(SnapshotName, u64)> = Vec::new();
    for (_, store) in nodes {
        if let Ok(l) = list(store.as_ref()).await {
            found.extend(l.into_iter().filter(|(n, _)| n.cluster == cluster));
        }
    }
    let newest = found.iter().map(|(n, _)| n.taken_at).max()?;
    let copies: Vec<&(SnapshotName, u64)> =
        found.iter().filter(|(n, _)| n.taken_at == newest).collect();
    let (name, bytes) = copies[0];
    Some(SnapshotInfo {
        key: name.key(),
        taken_at: rfc3339(name.taken_at),
        bytes: *bytes,
        database_bytes: 0,
        nodes: copies.len() as u32,
        of_nodes: nodes.len() as u32,
    })
}

/// The `snapshot` worker.
pub struct SnapshotWorker {
    pub meta: Meta,
    pub cluster: Arc<Cluster>,
    /// Where the scratch copy goes (the data dir: same disk as the database).
    pub scratch: PathBuf,
    pub keep: Keep,
    pub log: SnapshotLog,
    /// The MAC key (see [`super::mac_key`]).
    pub key: [u8; 32],
}

impl SnapshotWorker {
    fn targets(&self) -> Vec<Target> {
        self.cluster
            .nodes()
            .iter()
            .filter(|n| !n.health.is_down())
            .map(|n| (n.id.clone(), n.store.clone()))
            .collect()
    }

    fn failed(&self, e: &str) {
        let mut log = self.log.lock().expect("snapshot log");
        log.failures += 1;
        log.last_error = e.to_string();
        log.last_error_at = crate::meta::now_rfc3339();
    }
}

impl Worker for SnapshotWorker {
    fn name(&self) -> &'static str {
        "snapshot"
    }

    async fn pass(&mut self, _cancel: &CancellationToken) -> Result<Pass, WorkerError> {
        let targets = self.targets();
        let mut taken = match take(&self.meta, &targets, &self.scratch, &self.key).await {
            Ok(t) => t,
            Err(e) => {
                self.failed(&e);
                return Err(e.into());
            }
        };
        taken.info.of_nodes = self.cluster.nodes().len() as u32;
        let info = taken.info.clone();
        let down = self.cluster.nodes().len() - targets.len();
        self.log.lock().expect("snapshot log").last = Some(info.clone());
        let cluster = SnapshotName::parse(&info.key)
            .map(|n| n.cluster)
            .unwrap_or_default();
        // Only where the new snapshot landed: a node that missed it keeps
        // its older ones.
        let landed: Vec<Target> = targets
            .into_iter()
            .filter(|(id, _)| {
                !taken
                    .failed
                    .iter()
                    .any(|f| f.starts_with(&format!("{id}: ")))
            })
            .collect();
        let (removed, prune_errors) = prune(&landed, &cluster, self.keep).await;
        let mut report = format!(
            "snapshot {} ({} bytes, database {} bytes) on {} of {} nodes; {removed} old snapshot objects removed",
            info.key, info.bytes, info.database_bytes, info.nodes, info.of_nodes
        );
        if down > 0 {
            report.push_str(&format!("; {down} node(s) down"));
        }
        let problems: Vec<String> = taken.failed.into_iter().chain(prune_errors).collect();
        if !problems.is_empty() {
            tracing::warn!(problems = %problems.join("; "), "snapshot: some nodes failed");
            report.push_str(&format!("; errors: {}", problems.join("; ")));
        }
        tracing::info!(key = %info.key, bytes = info.bytes, nodes = info.nodes, "metadata snapshot taken");
        Ok(Pass::done(report))
    }
}
