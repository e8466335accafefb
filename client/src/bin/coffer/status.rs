//! `coffer status` (server health and the cluster view) and
//! `coffer admin run` (start a background worker).

use crate::Ctx;
use coffer_client::format::human_size;
use coffer_client::pb::WorkerStatus;
use serde_json::{json, Value};

pub async fn status(ctx: &Ctx) -> anyhow::Result<()> {
    let healthy = ctx.coffer.health().await?;
    let me = ctx.coffer.whoami().await?;
    let usage_line = format!("{}: {}", me.username, crate::session::usage_text(&me));
    // The cluster view is for admins; a user sees their own part.
    let c = match ctx.coffer.cluster_status().await {
        Err(coffer_client::ClientError::Server {
            code: tonic::Code::PermissionDenied,
            ..
        }) => {
            let doc = json!({
                "server": ctx.server,
                "healthy": healthy,
                "user": crate::session::whoami_json(&me),
            });
            ctx.out.emit(doc, || {
                format!(
                    "server {}: {}\n{usage_line}",
                    ctx.server,
                    if healthy { "serving" } else { "NOT serving" }
                )
            });
            if !healthy {
                anyhow::bail!("the server at {} reports it is not serving", ctx.server);
            }
            return Ok(());
        }
        other => other?,
    };
    let doc = json!({
        "server": ctx.server,
        "healthy": healthy,
        "user": crate::session::whoami_json(&me),
        "replication_factor": c.replication_factor,
        "write_quorum": c.write_quorum,
        "chunks": c.chunks,
        "under_replicated_chunks": c.under_replicated_chunks,
        "nodes": c.nodes.iter().map(|n| json!({
            "id": n.id,
            "up": n.up,
            "latency_ms": n.latency_ms,
            "chunks": n.chunks,
            "bytes": n.bytes,
            "failures": n.failures,
        })).collect::<Vec<_>>(),
        "workers": c.workers.iter().map(worker_json).collect::<Vec<_>>(),
        "metadata_backend": c.metadata_backend,
        "snapshot": c.snapshot.as_ref().map(|s| json!({
            "last_taken_at": s.last_taken_at,
            "last_bytes": s.last_bytes,
            "last_database_bytes": s.last_database_bytes,
            "last_nodes": s.last_nodes,
            "of_nodes": s.of_nodes,
            "last_key": s.last_key,
            "failures": s.failures,
            "last_error": s.last_error,
            "last_error_at": s.last_error_at,
        })),
    });
    ctx.out.emit(doc, || {
        let mut lines = vec![
            format!(
                "server {}: {}",
                ctx.server,
                if healthy { "serving" } else { "NOT serving" }
            ),
            usage_line.clone(),
            format!(
                "replication: R={} W={}; {} chunks, {} under-replicated",
                c.replication_factor, c.write_quorum, c.chunks, c.under_replicated_chunks
            ),
            format!("metadata: {}", c.metadata_backend),
            snapshot_line(c.snapshot.as_ref()),
            "nodes:".into(),
        ];
        for n in &c.nodes {
            lines.push(format!(
                "  {:<24} {:<4} {:>6} ms {:>10} chunks {:>10}  {} failures",
                n.id,
                if n.up { "up" } else { "DOWN" },
                n.latency_ms,
                n.chunks,
                human_size(n.bytes),
                n.failures
            ));
        }
        lines.push("workers:".into());
        lines.extend(c.workers.iter().map(worker_line));
        lines.join("\n")
    });
    if !healthy {
        anyhow::bail!("the server at {} reports it is not serving", ctx.server);
    }
    Ok(())
}

pub async fn run_worker(ctx: &Ctx, name: &str, wait: bool) -> anyhow::Result<()> {
    let s = ctx.coffer.run_worker(name, wait).await?;
    ctx.out.emit(worker_json(&s), || {
        if wait {
            worker_line(&s)
        } else {
            format!("started a {name} pass")
        }
    });
    if wait && s.last_outcome == "failed" {
        anyhow::bail!("the {name} pass failed: {}", s.last_report);
    }
    Ok(())
}

fn snapshot_line(s: Option<&coffer_client::pb::SnapshotStatus>) -> String {
    let Some(s) = s else {
        return "snapshots: none (the database's own backups protect the metadata)".into();
    };
    let mut line = if s.last_taken_at.is_empty() {
        "snapshots: none yet".to_string()
    } else {
        format!(
            "snapshots: last {} ({}) on {} of {} nodes",
            s.last_taken_at,
            human_size(s.last_bytes),
            s.last_nodes,
            s.of_nodes
        )
    };
    if s.failures > 0 || !s.last_error.is_empty() {
        line.push_str(&format!(
            "; {} FAILED, last at {}: {}",
            s.failures, s.last_error_at, s.last_error
        ));
    }
    line
}

fn worker_json(w: &WorkerStatus) -> Value {
    json!({
        "name": w.name,
        "state": w.state,
        "passes": w.passes,
        "last_pass_started": w.last_pass_started,
        "last_pass_finished": w.last_pass_finished,
        "last_report": w.last_report,
        "last_outcome": w.last_outcome,
        "errors": w.errors,
        "last_error": w.last_error,
        "lease_holder": w.lease_holder,
        "lease_expires": w.lease_expires,
    })
}

fn worker_line(w: &WorkerStatus) -> String {
    let mut s = format!(
        "  {:<8} {:<8} {} passes, {} errors; last: {}",
        w.name,
        w.state,
        w.passes,
        w.errors,
        if w.last_report.is_empty() {
            "-"
        } else {
            &w.last_report
        }
    );
    if !w.last_error.is_empty() {
        s.push_str(&format!(" (last error: {})", w.last_error));
    }
    if !w.lease_holder.is_empty() {
        s.push_str(&format!(" [runs on {}]", w.lease_holder));
    }
    s
}
