//! The storage cluster: chunk placement, quorum writes and verified reads
//! over a set of [`BlobStore`] nodes.
//!
//! - [`Cluster::write_chunk`] writes a chunk to its R home nodes in
//!   parallel (one shared buffer) and returns after W acknowledgements.
//! - [`Cluster::read_chunk`] tries replicas in preference order, verifies
//!   BLAKE3, and falls through on error or mismatch.
//!
//! Every replica outcome the cluster learns (written, failed, missing,
//! corrupt) is sent as a [`ReplicaEvent`] so the metadata store can record
//! it and repair can act on it. The cluster itself keeps no metadata.

pub mod health;
pub mod placement;

use crate::store::{chunk_key, BlobStore, StoreError};
use bytes::Bytes;
use health::NodeHealth;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;

/// Replication settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// R: how many copies of each chunk the cluster keeps.
    pub replication: usize,
    /// W: how many copies must be written before a write succeeds.
    pub write_quorum: usize,
    /// Longest one request to one node may take.
    pub node_timeout: Duration,
    /// How long a failed node is skipped by writes (and tried last by reads).
    pub down_backoff: Duration,
    /// Bound on writes queued against one node; past it, replicas for that
    /// node are skipped and handed to repair, so a hung node cannot make
    /// the server hold ever more chunk buffers.
    pub max_pending_writes_per_node: usize,
}

impl ClusterConfig {
    /// Defaults for `nodes` nodes: R = min(3, nodes), W = majority of R.
    pub fn for_nodes(nodes: usize) -> Self {
        let replication = nodes.clamp(1, 3);
        Self {
            replication,
            write_quorum: replication / 2 + 1,
            node_timeout: Duration::from_secs(10),
            down_backoff: Duration::from_secs(5),
            max_pending_writes_per_node: 32,
        }
    }
}

/// One storage node.
pub struct Node {
    /// Stable id, used for placement: changing it moves the node's chunks.
    pub id: String,
    pub store: Arc<dyn BlobStore>,
    pub health: NodeHealth,
}

/// What the cluster learned about one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// The node holds a good copy.
    Ok,
    /// The node should hold a copy and does not (failed or skipped write,
    /// or a read found nothing).
    Missing,
    /// The node's copy does not match its id.
    Corrupt,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Ok => "ok",
            ReplicaState::Missing => "missing",
            ReplicaState::Corrupt => "corrupt",
        }
    }
}

/// A replica outcome, for the metadata store and repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaEvent {
    pub chunk_id: String,
    pub node: String,
    pub state: ReplicaState,
}

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("invalid cluster configuration: {0}")]
    Config(String),
    /// Fewer than W nodes took the chunk; the write did not succeed (some
    /// copies may exist; they are harmless, being content-addressed).
    #[error("write quorum not reached: {acked} of {needed} required copies written ({detail})")]
    QuorumNotReached {
        acked: usize,
        needed: usize,
        detail: String,
    },
    /// No node returned a copy that matches the chunk id, but some could
    /// not be asked: trying again later may succeed.
    #[error("chunk {id} is unavailable: no replica could be read and verified ({detail})")]
    ChunkUnavailable { id: String, detail: String },
    /// Every node answered, and none holds a good copy: retrying cannot
    /// help.
    #[error("chunk {id} is lost: every node answered and none holds a good copy ({detail})")]
    ChunkLost { id: String, detail: String },
}

/// The set of storage nodes and how chunks are spread over them.
pub struct Cluster {
    nodes: Vec<Arc<Node>>,
    cfg: ClusterConfig,
    events: mpsc::UnboundedSender<ReplicaEvent>,
}

impl Cluster {
    /// Builds a cluster; the receiver gets every [`ReplicaEvent`].
    pub fn new(
        nodes: Vec<(String, Arc<dyn BlobStore>)>,
        cfg: ClusterConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ReplicaEvent>), ClusterError> {
        if nodes.is_empty() {
            return Err(ClusterError::Config("no storage nodes".into()));
        }
        if cfg.replication == 0 || cfg.replication > nodes.len() {
            return Err(ClusterError::Config(format!(
                "replication factor {} needs between 1 and {} nodes",
                cfg.replication,
                nodes.len()
            )));
        }
        if cfg.write_quorum == 0 || cfg.write_quorum > cfg.replication {
            return Err(ClusterError::Config(format!(
                "write quorum {} must be between 1 and the replication factor {}",
                cfg.write_quorum, cfg.replication
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for (id, _) in &nodes {
            if !seen.insert(id.clone()) {
                return Err(ClusterError::Config(format!("node id {id} appears twice")));
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let nodes = nodes
            .into_iter()
            .map(|(id, store)| {
                Arc::new(Node {
                    id,
                    store,
                    health: NodeHealth::default(),
                })
            })
            .collect();
        Ok((
            Self {
                nodes,
                cfg,
                events: tx,
            },
            rx,
        ))
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// Every node, in preference order for `chunk_id`; the first R are the
    /// chunk's home.
    pub fn placement(&self, chunk_id: &str) -> Vec<Arc<Node>> {
        let ids: Vec<&str> = self.nodes.iter().map(|n| n.id.as_str()).collect();
        placement::rank(chunk_id, &ids)
            .into_iter()
            .map(|i| self.nodes[i].clone())
            .collect()
    }

    /// The node with id `id`, if it is configured.
    pub fn node(&self, id: &str) -> Option<Arc<Node>> {
        self.nodes.iter().find(|n| n.id == id).cloned()
    }

    /// The R nodes a chunk should live on.
    pub fn home(&self, chunk_id: &str) -> Vec<Arc<Node>> {
        let mut p = self.placement(chunk_id);
        p.truncate(self.cfg.replication);
        p
    }

    /// Reports a replica outcome learned outside the cluster's own reads
    /// and writes (by repair, scrub or gc), in order with the cluster's.
    pub fn report(&self, chunk_id: &str, node: &str, state: ReplicaState) {
        self.emit(chunk_id, node, state);
    }

    async fn on_node<T>(
        &self,
        node: &Node,
        limit: Duration,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(limit, op).await {
            Ok(r) => r,
            Err(_) => Err(timeout_error(&node.id, limit)),
        };
        match &result {
            Ok(_) | Err(StoreError::NotFound { .. }) => node.health.record_success(),
            Err(e) if e.is_retryable() => node.health.record_failure(self.cfg.down_backoff),
            Err(_) => {}
        }
        result
    }

    /// Reads chunk `id` from one node, unverified.
    pub async fn get_from(&self, node: &Node, id: &str) -> Result<Bytes, StoreError> {
        self.on_node(node, self.cfg.node_timeout, node.store.get(&chunk_key(id)))
            .await
    }

    /// Writes chunk `id` to one node.
    pub async fn put_on(&self, node: &Node, id: &str, data: Bytes) -> Result<(), StoreError> {
        self.on_node(
            node,
            self.cfg.node_timeout,
            node.store.put(&chunk_key(id), data),
        )
        .await
    }

    /// Deletes chunk `id` from one node.
    pub async fn delete_from(&self, node: &Node, id: &str) -> Result<(), StoreError> {
        self.on_node(
            node,
            self.cfg.node_timeout,
            node.store.delete(&chunk_key(id)),
        )
        .await
    }

    /// Reads object `key` (not a chunk) from one node.
    pub async fn get_object(&self, node: &Node, key: &str) -> Result<Bytes, StoreError> {
        self.on_node(node, self.cfg.node_timeout, node.store.get(key))
            .await
    }

    /// Writes object `key` (not a chunk) to one node.
    pub async fn put_object(&self, node: &Node, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.on_node(node, self.cfg.node_timeout, node.store.put(key, data))
            .await
    }

    /// Deletes object `key` (not a chunk) from one node.
    pub async fn delete_object(&self, node: &Node, key: &str) -> Result<(), StoreError> {
        self.on_node(node, self.cfg.node_timeout, node.store.delete(key))
            .await
    }

    /// The ids of every chunk object on a node (other objects are ignored).
    pub async fn list_chunks(
        &self,
        node: &Node,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        // A listing walks the whole bucket: allow it more time than one object.
        let objects = self
            .on_node(node, self.cfg.node_timeout * 30, node.store.list("chunks/"))
            .await?;
        Ok(objects
            .iter()
            .filter_map(|o| crate::store::chunk_id_of_key(&o.key))
            .map(str::to_string)
            .collect())
    }

    fn emit(&self, chunk_id: &str, node: &str, state: ReplicaState) {
        // The receiver lives as long as the server; if it is gone we are
        // shutting down and the outcome no longer matters.
        let _ = self.events.send(ReplicaEvent {
            chunk_id: chunk_id.to_string(),
            node: node.to_string(),
            state,
        });
    }

    /// Writes chunk `id` (whose bytes are `data`) to R nodes and returns the
    /// ids of the first W nodes that acknowledged it.
    ///
    /// Success means W nodes hold a durable copy. It does not mean all R
    /// do: the remaining writes go on in the background, and any copy that
    /// fails or is skipped (its node is down or overloaded) is reported as
    /// [`ReplicaState::Missing`] for repair. When a home node is down, the
    /// next healthy node in preference order takes its copy (sloppy quorum).
    pub async fn write_chunk(&self, id: &str, data: Bytes) -> Result<Vec<String>, ClusterError> {
        let key = chunk_key(id);
        let r = self.cfg.replication;
        let mut targets = Vec::with_capacity(r);
        for (rank, node) in self.placement(id).into_iter().enumerate() {
            let home = rank < r;
            if targets.len() == r {
                break;
            }
            let overloaded = node.health.pending_writes() >= self.cfg.max_pending_writes_per_node;
            if node.health.is_down() || overloaded {
                if home {
                    self.emit(id, &node.id, ReplicaState::Missing);
                }
                continue;
            }
            targets.push(node);
        }
        let (tx, mut rx) = mpsc::channel(r.max(1));
        for node in targets {
            node.health.pending_writes.fetch_add(1, Ordering::Relaxed);
            let (key, data, tx, events, cfg) = (
                key.clone(),
                data.clone(),
                tx.clone(),
                self.events.clone(),
                self.cfg.clone(),
            );
            let chunk_id = id.to_string();
            tokio::spawn(async move {
                let result = match tokio::time::timeout(
                    cfg.node_timeout,
                    node.store.put(&key, data),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(timeout_error(&node.id, cfg.node_timeout)),
                };
                node.health.pending_writes.fetch_sub(1, Ordering::Relaxed);
                let state = match &result {
                    Ok(()) => {
                        node.health.record_success();
                        ReplicaState::Ok
                    }
                    Err(e) => {
                        tracing::warn!(node = %node.id, chunk = %chunk_id, error = %e, "replica write failed");
                        node.health.record_failure(cfg.down_backoff);
                        ReplicaState::Missing
                    }
                };
                let _ = events.send(ReplicaEvent {
                    chunk_id,
                    node: node.id.clone(),
                    state,
                });
                // The waiter may have returned already; that is fine.
                let _ = tx
                    .send((node.id.clone(), result.map_err(|e| e.to_string())))
                    .await;
            });
        }
        drop(tx);
        let mut acked = Vec::new();
        let mut errors = Vec::new();
        while let Some((node, result)) = rx.recv().await {
            match result {
                Ok(()) => {
                    acked.push(node);
                    if acked.len() >= self.cfg.write_quorum {
                        return Ok(acked);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            errors.push("too few nodes are up".into());
        }
        Err(ClusterError::QuorumNotReached {
            acked: acked.len(),
            needed: self.cfg.write_quorum,
            detail: errors.join("; "),
        })
    }

    /// Reads chunk `id` from the first replica whose bytes hash to `id`.
    ///
    /// Home nodes come first, healthy before down; then the other nodes,
    /// which may hold a copy placed by a sloppy write. A home copy found
    /// missing or corrupt on the way is reported for repair.
    pub async fn read_chunk(&self, id: &str) -> Result<Bytes, ClusterError> {
        self.read_verified(id, id, None, |data| verify(id, data))
            .await
    }

    /// Reads chunk `id`, stored as bytes `range` of pack `pack`: a ranged
    /// read of the pack's replicas, in the same order and with the same
    /// check as [`Cluster::read_chunk`]; a replica whose range does not
    /// hash to `id` is reported as a corrupt copy of the pack.
    pub async fn read_packed(
        &self,
        id: &str,
        pack: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, ClusterError> {
        self.read_verified(pack, id, Some(range), |data| verify(id, data))
            .await
    }

    /// Several chunks of pack `pack` in one ranged read of bytes `span`:
    /// `parts` are the chunks' ids and their ranges within the pack, each
    /// inside `span`. A replica is taken only if every part hashes to its
    /// id (else it is reported as a corrupt copy of the pack and the next
    /// is read); the parts come back in the order given.
    pub async fn read_pack_span(
        &self,
        pack: &str,
        span: std::ops::Range<u64>,
        parts: &[(String, std::ops::Range<u64>)],
    ) -> Result<Vec<Bytes>, ClusterError> {
        let slice = |r: &std::ops::Range<u64>| {
            (r.start - span.start) as usize..(r.end - span.start) as usize
        };
        let whole = self
            .read_verified(pack, pack, Some(span.clone()), |data| {
                parts
                    .iter()
                    .all(|(id, r)| data.get(slice(r)).is_some_and(|bytes| verify(id, bytes)))
            })
            .await?;
        Ok(parts.iter().map(|(_, r)| whole.slice(slice(r))).collect())
    }

    /// Chunk `id` (for messages) from object `object` (the chunk itself,
    /// or its pack), whole or one range of it, from the first replica
    /// whose bytes pass `check`.
    async fn read_verified(
        &self,
        object: &str,
        id: &str,
        range: Option<std::ops::Range<u64>>,
        check: impl Fn(&[u8]) -> bool,
    ) -> Result<Bytes, ClusterError> {
        let key = chunk_key(object);
        let r = self.cfg.replication;
        let mut order: Vec<(bool, Arc<Node>)> = self
            .placement(object)
            .into_iter()
            .enumerate()
            .map(|(rank, n)| (rank < r, n))
            .collect();
        // Stable: keeps preference order within each group.
        order.sort_by_key(|(home, n)| (!home, n.health.is_down()));
        let mut problems = Vec::new();
        let mut all_answered = true;
        for (home, node) in order {
            let read = async {
                match &range {
                    None => node.store.get(&key).await,
                    Some(r) => node.store.get_range(&key, r.clone()).await,
                }
            };
            let result = match tokio::time::timeout(self.cfg.node_timeout, read).await {
                Ok(r) => r,
                Err(_) => Err(timeout_error(&node.id, self.cfg.node_timeout)),
            };
            match result {
                Ok(data) => {
                    node.health.record_success();
                    if check(&data) {
                        return Ok(data);
                    }
                    tracing::warn!(node = %node.id, chunk = %id, object = %object, "replica is corrupt");
                    self.emit(object, &node.id, ReplicaState::Corrupt);
                    problems.push(format!("{}: corrupt", node.id));
                }
                Err(StoreError::NotFound { .. }) => {
                    node.health.record_success();
                    if home {
                        self.emit(object, &node.id, ReplicaState::Missing);
                    }
                    problems.push(format!("{}: missing", node.id));
                }
                Err(e) => {
                    tracing::warn!(node = %node.id, chunk = %id, object = %object, error = %e, "replica read failed");
                    all_answered = false;
                    if e.is_retryable() {
                        node.health.record_failure(self.cfg.down_backoff);
                    }
                    problems.push(e.to_string());
                }
            }
        }
        let (id, detail) = (id.to_string(), problems.join("; "));
        Err(if all_answered {
            tracing::error!(chunk = %id, %detail, "chunk lost");
            ClusterError::ChunkLost { id, detail }
        } else {
            ClusterError::ChunkUnavailable { id, detail }
        })
    }
}

fn verify(id: &str, data: &[u8]) -> bool {
    blake3::hash(data).to_hex().as_str() == id
}

fn timeout_error(node: &str, after: Duration) -> StoreError {
    StoreError::Unavailable {
        store: node.to_string(),
        source: format!("no answer within {after:?}").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::faults::FaultyStore;
    use crate::store::local::LocalStore;
    use coffer_proto::chunking::chunk_id;

    struct Fixture {
        _dir: tempfile::TempDir,
        faulty: Vec<Arc<FaultyStore>>,
        cluster: Cluster,
        events: mpsc::UnboundedReceiver<ReplicaEvent>,
    }

    async fn fixture(n: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut faulty = Vec::new();
        let mut nodes: Vec<(String, Arc<dyn BlobStore>)> = Vec::new();
        for i in 0..n {
            let local = Arc::new(LocalStore::new(
                format!("n{i}"),
                dir.path().join(format!("n{i}")),
            ));
            local.ensure_ready().await.unwrap();
            let f = Arc::new(FaultyStore::new(local));
            faulty.push(f.clone());
            nodes.push((format!("n{i}"), f));
        }
        let (cluster, events) = Cluster::new(nodes, ClusterConfig::for_nodes(n)).unwrap();
        Fixture {
            _dir: dir,
            faulty,
            cluster,
            events,
        }
    }

    async fn copies(f: &Fixture, id: &str) -> usize {
        let mut n = 0;
        for s in &f.faulty {
            if s.get(&chunk_key(id)).await.is_ok() {
                n += 1;
            }
        }
        n
    }

    async fn settle(f: &mut Fixture, want: usize) -> Vec<ReplicaEvent> {
        let mut got = Vec::new();
        while got.len() < want {
            got.push(f.events.recv().await.unwrap());
        }
        got
    }

    #[tokio::test]
    async fn writes_reach_every_home_node() {
        let mut f = fixture(3).await;
        let data = Bytes::from_static(b"chunk bytes");
        let id = chunk_id(&data);
        let acked = f.cluster.write_chunk(&id, data.clone()).await.unwrap();
        assert_eq!(acked.len(), 2);
        let events = settle(&mut f, 3).await;
        assert!(events.iter().all(|e| e.state == ReplicaState::Ok));
        assert_eq!(copies(&f, &id).await, 3);
        assert_eq!(f.cluster.read_chunk(&id).await.unwrap(), data);
    }

    #[tokio::test]
    async fn one_node_down_still_meets_quorum_and_leaves_a_hint() {
        let mut f = fixture(3).await;
        f.faulty[1].set_down(true);
        let data = Bytes::from_static(b"abc");
        let id = chunk_id(&data);
        f.cluster.write_chunk(&id, data.clone()).await.unwrap();
        let events = settle(&mut f, 3).await;
        let missing: Vec<_> = events
            .iter()
            .filter(|e| e.state == ReplicaState::Missing)
            .collect();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].node, "n1");
        assert_eq!(f.cluster.read_chunk(&id).await.unwrap(), data);
    }

    #[tokio::test]
    async fn a_down_home_node_hands_its_copy_to_the_next_node_and_leaves_a_hint() {
        let mut f = fixture(4).await;
        let data = Bytes::from_static(b"sloppy");
        let id = chunk_id(&data);
        let order = f.cluster.placement(&id);
        let (down, fallback) = (order[0].clone(), order[3].clone());
        down.health.record_failure(Duration::from_secs(3600));
        f.cluster.write_chunk(&id, data.clone()).await.unwrap();
        let events = settle(&mut f, 4).await;
        assert!(events.contains(&ReplicaEvent {
            chunk_id: id.clone(),
            node: down.id.clone(),
            state: ReplicaState::Missing
        }));
        assert!(events.contains(&ReplicaEvent {
            chunk_id: id.clone(),
            node: fallback.id.clone(),
            state: ReplicaState::Ok
        }));
        assert!(
            fallback.store.get(&chunk_key(&id)).await.is_ok(),
            "the fallback node holds a copy"
        );
        assert!(
            down.store.get(&chunk_key(&id)).await.is_err(),
            "the down node was skipped"
        );
        assert_eq!(copies(&f, &id).await, 3);
    }

    #[tokio::test]
    async fn too_few_nodes_fail_the_write_as_unavailable() {
        let f = fixture(3).await;
        f.faulty[0].set_down(true);
        f.faulty[2].set_down(true);
        let data = Bytes::from_static(b"abc");
        let err = f
            .cluster
            .write_chunk(&chunk_id(&data), data)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClusterError::QuorumNotReached {
                    acked: 1,
                    needed: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_packed_chunk_is_read_by_range_and_a_bad_pack_copy_is_reported() {
        let mut f = fixture(3).await;
        let mut b = crate::packs::format::Builder::new();
        let chunks: Vec<Bytes> = (0..3u8)
            .map(|i| Bytes::from(vec![i; 100 + i as usize]))
            .collect();
        let entries: Vec<_> = chunks
            .iter()
            .map(|c| b.push(*blake3::hash(c).as_bytes(), c).unwrap())
            .collect();
        let pack = b.seal();
        f.cluster
            .write_chunk(&pack.id, pack.bytes.clone())
            .await
            .unwrap();
        settle(&mut f, 3).await;
        for (c, e) in chunks.iter().zip(&entries) {
            let got = f
                .cluster
                .read_packed(&e.id_hex(), &pack.id, e.range())
                .await
                .unwrap();
            assert_eq!(&got, c);
        }
        // A wrong range does not pass as the chunk: every copy is "bad".
        let (e0, e1) = (entries[0], entries[1]);
        assert!(f
            .cluster
            .read_packed(&e0.id_hex(), &pack.id, e1.range())
            .await
            .is_err());
        let bad: Vec<_> = (0..3).map(|_| f.events.try_recv().unwrap()).collect();
        assert!(
            bad.iter()
                .all(|ev| ev.chunk_id == pack.id && ev.state == ReplicaState::Corrupt),
            "{bad:?}"
        );
        // One corrupt copy: the next one serves, and the pack is reported.
        let first = f.cluster.placement(&pack.id)[0].id.clone();
        let idx: usize = first[1..].parse().unwrap();
        f.faulty[idx].set_corrupt_reads(true);
        let got = f
            .cluster
            .read_packed(&e1.id_hex(), &pack.id, e1.range())
            .await
            .unwrap();
        assert_eq!(got, chunks[1]);
        assert_eq!(
            f.events.try_recv().unwrap(),
            ReplicaEvent {
                chunk_id: pack.id.clone(),
                node: first,
                state: ReplicaState::Corrupt
            }
        );
    }

    #[tokio::test]
    async fn corrupt_replicas_are_skipped_and_reported() {
        let mut f = fixture(3).await;
        let data = Bytes::from(vec![7u8; 1000]);
        let id = chunk_id(&data);
        f.cluster.write_chunk(&id, data.clone()).await.unwrap();
        settle(&mut f, 3).await;
        let first = f.cluster.placement(&id)[0].id.clone();
        let idx: usize = first[1..].parse().unwrap();
        f.faulty[idx].set_corrupt_reads(true);
        assert_eq!(f.cluster.read_chunk(&id).await.unwrap(), data);
        let ev = f.events.recv().await.unwrap();
        assert_eq!(
            ev,
            ReplicaEvent {
                chunk_id: id.clone(),
                node: first,
                state: ReplicaState::Corrupt
            }
        );
        for s in &f.faulty {
            s.set_corrupt_reads(true);
        }
        // Every node answered with a bad copy: lost, not worth a retry.
        assert!(matches!(
            f.cluster.read_chunk(&id).await,
            Err(ClusterError::ChunkLost { .. })
        ));
        // One node could not be asked: it may yet hold a good copy.
        f.faulty[idx].set_down(true);
        assert!(matches!(
            f.cluster.read_chunk(&id).await,
            Err(ClusterError::ChunkUnavailable { .. })
        ));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let store: Arc<dyn BlobStore> = Arc::new(LocalStore::new("x", "/nonexistent"));
        let one = || vec![("a".to_string(), store.clone())];
        let mut cfg = ClusterConfig::for_nodes(1);
        assert_eq!((cfg.replication, cfg.write_quorum), (1, 1));
        cfg.replication = 2;
        assert!(Cluster::new(one(), cfg).is_err());
        let mut cfg = ClusterConfig::for_nodes(1);
        cfg.write_quorum = 2;
        assert!(Cluster::new(one(), cfg).is_err());
        let two = vec![
            ("a".to_string(), store.clone()),
            ("a".to_string(), store.clone()),
        ];
        assert!(Cluster::new(two, ClusterConfig::for_nodes(2)).is_err());
        let five = ClusterConfig::for_nodes(5);
        assert_eq!((five.replication, five.write_quorum), (3, 2));
    }
}
