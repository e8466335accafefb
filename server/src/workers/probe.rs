//! Health probe: asks every node a cheap question on an interval, so a
//! failed node is marked down even when no request touches it, and marked
//! up again as soon as it answers.

use super::runner::{Pass, Worker, WorkerError};
use crate::cluster::Cluster;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct Probe {
    pub cluster: Arc<Cluster>,
}

impl Worker for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    async fn pass(&mut self, _cancel: &CancellationToken) -> Result<Pass, WorkerError> {
        let cfg = self.cluster.config().clone();
        let probes = self.cluster.nodes().iter().map(|node| {
            let node = node.clone();
            async move {
                let start = Instant::now();
                let ok = matches!(
                    tokio::time::timeout(cfg.node_timeout, node.store.list("probe/")).await,
                    Ok(Ok(_))
                );
                if ok {
                    node.health.record_success();
                    node.health.record_latency(start.elapsed());
                } else {
                    node.health.record_failure(cfg.down_backoff);
                }
                ok
            }
        });
        let up = futures::future::join_all(probes)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count();
        Ok(Pass::done(format!(
            "{up} of {} nodes up",
            self.cluster.nodes().len()
        )))
    }
}
