//! What operators see: every node's health and usage, replication state and
//! worker status, gathered once for the admin RPC, the CLI and `/metrics`.

use crate::cluster::Cluster;
use crate::meta::{Meta, MetaError};
use crate::workers::{runner::WorkerStatus, Workers};
use std::sync::Arc;

/// The handles an operator's questions need. Cheap to clone.
#[derive(Clone)]
pub struct Ops {
    pub meta: Meta,
    pub cluster: Arc<Cluster>,
    pub workers: Workers,
    /// The last metadata snapshot (SQLite only).
    pub snapshots: crate::snapshot::SnapshotLog,
    /// Least time between two manual passes of one worker.
    pub manual_run_interval: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    pub id: String,
    pub up: bool,
    pub latency_ms: u64,
    pub chunks: u64,
    pub bytes: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterReport {
    pub nodes: Vec<NodeReport>,
    pub replication: usize,
    pub write_quorum: usize,
    pub chunks: u64,
    pub under_replicated: u64,
    pub workers: Vec<WorkerStatus>,
    /// Who holds each worker's lease.
    pub leases: Vec<crate::meta::LeaseRow>,
    pub backend: &'static str,
    /// Metadata snapshots; `None` where the backend takes none (PostgreSQL).
    pub snapshot: Option<crate::snapshot::SnapshotState>,
}

/// One account's storage use, for the operator view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUse {
    pub name: String,
    pub role: &'static str,
    pub usage: crate::meta::Usage,
}

impl Ops {
    /// Every account's storage use, by name.
    pub async fn accounts(&self) -> Result<Vec<AccountUse>, MetaError> {
        let mut out = Vec::new();
        for u in self.meta.users().await? {
            out.push(AccountUse {
                usage: self.meta.usage(u.id).await?,
                role: u.role.as_str(),
                name: u.name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether this server can take uploads now: the database answers and
    /// at least W nodes are up. `Err` says what is missing.
    pub async fn readiness(&self) -> Result<(), String> {
        match tokio::time::timeout(std::time::Duration::from_secs(3), self.meta.ping()).await {
            Err(_) => return Err("the metadata database does not answer".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(())) => {}
        }
        let nodes = self.cluster.nodes();
        let up = nodes.iter().filter(|n| !n.health.is_down()).count();
        let w = self.cluster.config().write_quorum;
        if up < w {
            return Err(format!(
                "{up} of {} storage nodes up; {w} are needed to store a chunk",
                nodes.len()
            ));
        }
        Ok(())
    }

    pub async fn report(&self) -> Result<ClusterReport, MetaError> {
        let r = self.cluster.config().replication;
        let figures = self.meta.report(r).await?;
        let (usage, chunks, under_replicated) =
            (figures.usage, figures.chunks, figures.under_replicated);
        let nodes = self
            .cluster
            .nodes()
            .iter()
            .map(|n| {
                let (chunks, bytes) = usage
                    .iter()
                    .find(|u| u.0 == n.id)
                    .map_or((0, 0), |u| (u.1, u.2));
                NodeReport {
                    id: n.id.clone(),
                    up: !n.health.is_down(),
                    latency_ms: n.health.latency_ms(),
                    chunks,
                    bytes,
                    failures: n.health.failures(),
                }
            })
            .collect();
        Ok(ClusterReport {
            nodes,
            replication: r,
            write_quorum: self.cluster.config().write_quorum,
            chunks,
            under_replicated,
            workers: self.workers.all().iter().map(|w| w.status()).collect(),
            leases: self.meta.leases().await?,
            backend: self.meta.backend(),
            snapshot: self
                .workers
                .get("snapshot")
                .map(|_| self.snapshots.lock().expect("snapshot log").clone()),
        })
    }
}

/// `report` in the Prometheus text exposition format.
pub fn prometheus(report: &ClusterReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let node = |id: &str| {
        format!(
            "{{node=\"{}\"}}",
            id.replace('\\', "\\\\").replace('"', "\\\"")
        )
    };
    let nodes = &report.nodes;
    metric(
        "coffer_node_up",
        "Whether the node answers (1) or is marked down (0).",
        "gauge",
        nodes.iter().map(|n| (node(&n.id), n.up as u64)).collect(),
    );
    metric(
        "coffer_node_latency_ms",
        "Round trip of the last health probe.",
        "gauge",
        nodes.iter().map(|n| (node(&n.id), n.latency_ms)).collect(),
    );
    metric(
        "coffer_node_chunks",
        "Good chunk copies recorded on the node.",
        "gauge",
        nodes.iter().map(|n| (node(&n.id), n.chunks)).collect(),
    );
    metric(
        "coffer_node_bytes",
        "Bytes of good chunk copies on the node.",
        "gauge",
        nodes.iter().map(|n| (node(&n.id), n.bytes)).collect(),
    );
    metric(
        "coffer_node_failures_total",
        "Failed requests to the node since start.",
        "counter",
        nodes.iter().map(|n| (node(&n.id), n.failures)).collect(),
    );
    metric(
        "coffer_chunks",
        "Distinct chunks stored.",
        "gauge",
        vec![(String::new(), report.chunks)],
    );
    metric(
        "coffer_under_replicated_chunks",
        "Chunks with fewer than R good copies.",
        "gauge",
        vec![(String::new(), report.under_replicated)],
    );
    let worker = |n: &str| format!("{{worker=\"{n}\"}}");
    metric(
        "coffer_worker_passes_total",
        "Completed passes of each background worker.",
        "counter",
        report
            .workers
            .iter()
            .map(|w| (worker(&w.name), w.passes))
            .collect(),
    );
    metric(
        "coffer_worker_errors_total",
        "Failed passes of each background worker.",
        "counter",
        report
            .workers
            .iter()
            .map(|w| (worker(&w.name), w.errors))
            .collect(),
    );
    metric(
        "coffer_worker_running",
        "Whether the worker is in a pass.",
        "gauge",
        report
            .workers
            .iter()
            .map(|w| (worker(&w.name), w.running as u64))
            .collect(),
    );
    if let Some(snap) = &report.snapshot {
        let last = snap.last.as_ref();
        let taken = last
            .and_then(|l| {
                time::OffsetDateTime::parse(
                    &l.taken_at,
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()
            })
            .map_or(0, |t| t.unix_timestamp().max(0) as u64);
        metric(
            "coffer_snapshot_last_timestamp_seconds",
            "When the newest metadata snapshot was taken (0: none yet).",
            "gauge",
            vec![(String::new(), taken)],
        );
        metric(
            "coffer_snapshot_last_bytes",
            "Size of the newest metadata snapshot object.",
            "gauge",
            vec![(String::new(), last.map_or(0, |l| l.bytes))],
        );
        metric(
            "coffer_snapshot_last_nodes",
            "Nodes the newest metadata snapshot was written to.",
            "gauge",
            vec![(String::new(), last.map_or(0, |l| u64::from(l.nodes)))],
        );
        metric(
            "coffer_snapshot_failures_total",
            "Metadata snapshots that failed since start.",
            "counter",
            vec![(String::new(), snap.failures)],
        );
    }
    out
}
