//! Repair: brings every chunk back to R good copies on its home nodes.
//!
//! Each pass first drains the hints (replicas recorded missing or corrupt
//! by writes, reads and scrub), then runs anti-entropy: it lists every
//! node's bucket, compares with the placement each stored chunk should
//! have, copies what is missing from a verified replica, records copies it
//! finds where no outcome was recorded (an outcome lost to a crash or an
//! unreachable database), and, once a chunk's home nodes all hold it,
//! removes copies from nodes outside its home (left by sloppy writes or a
//! change of nodes). Copies are made before any is removed, so no replica
//! is lost on the way.

use super::pace::Pace;
use super::runner::{Pass, Worker, WorkerError};
use crate::cluster::{Cluster, Node, ReplicaState};
use crate::meta::Meta;
use std::collections::HashSet;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct Repair {
    pub meta: Meta,
    pub cluster: Arc<Cluster>,
    /// Bytes copied per second at most.
    pub pace: Pace,
}

/// Copies a verified replica of `id` onto `node`; returns the bytes copied.
pub async fn restore_copy(cluster: &Cluster, id: &str, node: &Node) -> Result<u64, String> {
    let data = cluster.read_chunk(id).await.map_err(|e| e.to_string())?;
    let len = data.len() as u64;
    cluster
        .put_on(node, id, data)
        .await
        .map_err(|e| e.to_string())?;
    cluster.report(id, &node.id, ReplicaState::Ok);
    Ok(len)
}

#[derive(Default)]
struct Tally {
    copied: u64,
    /// Copies found on their home nodes with no outcome recorded.
    found: u64,
    removed: u64,
    errors: u64,
    last_error: Option<String>,
}

impl Tally {
    fn fail(&mut self, e: String) {
        self.errors += 1;
        self.last_error = Some(e);
    }
}

impl Repair {
    async fn drain_hints(&self, t: &mut Tally, cancel: &CancellationToken) -> Result<(), String> {
        let hints = self
            .meta
            .replicas_needing_repair(100_000)
            .await
            .map_err(|e| e.to_string())?;
        for (chunk, node_id) in hints {
            if cancel.is_cancelled() {
                break;
            }
            let home = self.cluster.home(&chunk);
            let Some(node) = home.iter().find(|n| n.id == node_id) else {
                // Not expected there (any more): anti-entropy keeps the home full.
                self.meta
                    .forget_replica(&chunk, &node_id)
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            };
            if node.health.is_down() {
                continue;
            }
            match restore_copy(&self.cluster, &chunk, node).await {
                Ok(bytes) => {
                    t.copied += 1;
                    self.pace.spend(bytes).await;
                }
                Err(e) => t.fail(e),
            }
        }
        Ok(())
    }

    async fn anti_entropy(&self, t: &mut Tally, cancel: &CancellationToken) -> Result<(), String> {
        let nodes = self.cluster.nodes().to_vec();
        let mut listings: Vec<Option<HashSet<String>>> = Vec::with_capacity(nodes.len());
        for node in &nodes {
            listings.push(match self.cluster.list_chunks(node).await {
                Ok(set) => Some(set),
                Err(e) => {
                    t.fail(format!("cannot list {}: {e}", node.id));
                    None
                }
            });
        }
        let index = |id: &str| nodes.iter().position(|n| n.id == id).expect("known node");
        let chunks = super::all_chunks(&self.meta).await?;
        let short = self
            .meta
            .short_of_copies(self.cluster.config().replication)
            .await
            .map_err(|e| e.to_string())?;
        for id in chunks {
            if cancel.is_cancelled() {
                break;
            }
            let home = self.cluster.home(&id);
            let mut home_ok = 0;
            for node in &home {
                match &listings[index(&node.id)] {
                    None => {}
                    Some(set) if set.contains(&id) => {
                        home_ok += 1;
                        // Listed, never recorded: say so (scrub verifies
                        // its bytes like any other copy's).
                        if short
                            .get(&id)
                            .is_some_and(|known| !known.contains(&node.id))
                        {
                            self.cluster.report(&id, &node.id, ReplicaState::Ok);
                            t.found += 1;
                        }
                    }
                    Some(_) => match restore_copy(&self.cluster, &id, node).await {
                        Ok(bytes) => {
                            t.copied += 1;
                            self.pace.spend(bytes).await;
                            home_ok += 1;
                        }
                        Err(e) => t.fail(e),
                    },
                }
            }
            if home_ok < home.len() {
                continue;
            }
            for (i, node) in nodes.iter().enumerate() {
                let extra = listings[i].as_ref().is_some_and(|s| s.contains(&id))
                    && !home.iter().any(|h| h.id == node.id);
                if !extra {
                    continue;
                }
                match self.cluster.delete_from(node, &id).await {
                    Ok(()) => {
                        t.removed += 1;
                        self.meta
                            .forget_replica(&id, &node.id)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Err(e) => t.fail(e.to_string()),
                }
            }
        }
        Ok(())
    }
}

impl Worker for Repair {
    fn name(&self) -> &'static str {
        "repair"
    }

    async fn pass(&mut self, cancel: &CancellationToken) -> Result<Pass, WorkerError> {
        let mut t = Tally::default();
        self.drain_hints(&mut t, cancel).await?;
        self.anti_entropy(&mut t, cancel).await?;
        let report = format!(
            "copied {} chunk replicas, recorded {} found unrecorded, removed {} misplaced, {} errors",
            t.copied, t.found, t.removed, t.errors
        );
        match t.last_error {
            Some(last) if t.errors > 0 => Err(WorkerError::Partly { report, last }),
            _ if cancel.is_cancelled() => Ok(Pass::cancelled(report)),
            _ if t.copied + t.found + t.removed == 0 => Ok(Pass::idle(report)),
            _ => Ok(Pass::done(report)),
        }
    }
}
