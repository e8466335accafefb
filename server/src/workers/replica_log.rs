//! Records replica outcomes reported by the cluster (background writes that
//! finished or failed, missing or corrupt copies found by reads) in the
//! metadata store, in batches. These rows are what repair works from;
//! they are committed without an fsync of their own where the backend
//! allows.

use crate::cluster::{ReplicaEvent, ReplicaState};
use crate::meta::{Meta, ReplicaHealth, ReplicaOutcome};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 512;

/// Drains `events` into `meta` until cancelled, then records what is left.
pub async fn run(
    meta: Meta,
    mut events: UnboundedReceiver<ReplicaEvent>,
    cancel: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let got = tokio::select! {
            n = events.recv_many(&mut batch, BATCH) => n,
            _ = cancel.cancelled() => {
                while let Ok(e) = events.try_recv() {
                    batch.push(e);
                }
                0
            }
        };
        if !batch.is_empty() {
            let outcomes: Vec<ReplicaOutcome> = batch.drain(..).map(outcome).collect();
            let n = outcomes.len();
            // An outcome lost to a power cut is found again by
            // anti-entropy's listing of the nodes.
            if let Err(e) = meta.record_replicas(&outcomes).await {
                tracing::error!(error = %e, lost = n, "could not record replica outcomes");
            }
        }
        if got == 0 {
            // Cancelled, or every sender is gone.
            return;
        }
    }
}

fn outcome(e: ReplicaEvent) -> ReplicaOutcome {
    ReplicaOutcome {
        chunk_id: e.chunk_id,
        node: e.node,
        state: match e.state {
            ReplicaState::Ok => ReplicaHealth::Ok,
            ReplicaState::Missing => ReplicaHealth::Missing,
            ReplicaState::Corrupt => ReplicaHealth::Corrupt,
        },
    }
}
