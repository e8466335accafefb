//! Scrub: re-reads every home replica of every chunk at a bounded rate,
//! verifies BLAKE3, and replaces a corrupt or missing copy from a verified
//! one. Finds bitrot before a read needs the copy.

use super::pace::Pace;
use super::repair::restore_copy;
use super::runner::{Pass, Worker, WorkerError};
use crate::cluster::{Cluster, ReplicaState};
use crate::meta::Meta;
use crate::store::StoreError;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct Scrub {
    pub meta: Meta,
    pub cluster: Arc<Cluster>,
    /// Bytes read per second at most.
    pub pace: Pace,
}

impl Worker for Scrub {
    fn name(&self) -> &'static str {
        "scrub"
    }

    async fn pass(&mut self, cancel: &CancellationToken) -> Result<Pass, WorkerError> {
        let chunks = super::all_chunks(&self.meta).await?;
        let (mut checked, mut corrupt, mut missing, mut fixed, mut errors) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut last_error = String::new();
        for id in chunks {
            for node in self.cluster.home(&id) {
                if cancel.is_cancelled() {
                    return Ok(Pass::cancelled(format!(
                        "cancelled after {checked} replicas"
                    )));
                }
                if node.health.is_down() {
                    continue;
                }
                let bad = match self.cluster.get_from(&node, &id).await {
                    Ok(data) => {
                        checked += 1;
                        self.pace.spend(data.len() as u64).await;
                        if blake3::hash(&data).to_hex().as_str() == id {
                            continue;
                        }
                        corrupt += 1;
                        ReplicaState::Corrupt
                    }
                    Err(StoreError::NotFound { .. }) => {
                        missing += 1;
                        ReplicaState::Missing
                    }
                    Err(e) => {
                        errors += 1;
                        last_error = e.to_string();
                        continue;
                    }
                };
                tracing::warn!(node = %node.id, chunk = %id, state = bad.as_str(), "scrub found a bad replica");
                self.cluster.report(&id, &node.id, bad);
                match restore_copy(&self.cluster, &id, &node).await {
                    Ok(_) => fixed += 1,
                    Err(e) => {
                        errors += 1;
                        last_error = e;
                    }
                }
            }
        }
        let report = format!(
            "checked {checked} replicas: {corrupt} corrupt, {missing} missing, {fixed} replaced, {errors} errors"
        );
        if errors > 0 {
            return Err(WorkerError::Partly {
                report,
                last: last_error,
            });
        }
        Ok(Pass::done(report))
    }
}
