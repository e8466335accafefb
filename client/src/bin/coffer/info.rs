//! `coffer ls`, `stat`, `versions`, `restore` and `rm`: the metadata
//! commands.

use crate::output::{meta_json, meta_line};
use crate::Ctx;
use coffer_client::format::human_size;
use coffer_client::PutMode;
use serde_json::{json, Value};

pub async fn ls(ctx: &Ctx, prefix: &str) -> anyhow::Result<()> {
    let files = ctx.coffer.list(prefix).await?;
    let doc = Value::Array(files.iter().map(meta_json).collect());
    ctx.out.emit(doc, || {
        files.iter().map(meta_line).collect::<Vec<_>>().join("\n")
    });
    Ok(())
}

pub async fn stat(ctx: &Ctx, remote: &str, version: Option<u64>) -> anyhow::Result<()> {
    let m = ctx.coffer.stat(remote, version.unwrap_or(0)).await?;
    ctx.out.emit(meta_json(&m), || {
        let mut lines = vec![
            format!("name:         {}", m.file_name),
            format!("version:      {}", m.version_number),
            format!("size:         {} ({} bytes)", human_size(m.size), m.size),
            format!("uploaded:     {}", m.upload_time),
            format!("blake3:       {}", m.content_hash),
            format!("chunks:       {}", m.chunk_count),
        ];
        if m.deleted {
            lines.push("deleted:      yes".into());
        }
        if let Some(h) = &m.replica_health {
            lines.push(format!(
                "replication:  {} of {} chunks fully replicated (R={}), {} under-replicated, {} unavailable",
                h.fully_replicated, h.chunks, h.replication_factor, h.under_replicated, h.unavailable
            ));
        }
        lines.join("\n")
    });
    Ok(())
}

pub async fn versions(ctx: &Ctx, remote: &str) -> anyhow::Result<()> {
    let vs = ctx.coffer.versions(remote).await?;
    let doc = Value::Array(vs.iter().map(meta_json).collect());
    ctx.out.emit(doc, || {
        vs.iter().map(meta_line).collect::<Vec<_>>().join("\n")
    });
    Ok(())
}

pub async fn restore(ctx: &Ctx, remote: &str, version: u64) -> anyhow::Result<()> {
    let m = ctx.coffer.restore(remote, version).await?;
    ctx.out.emit(meta_json(&m), || {
        format!(
            "restored {} version {version} as version {}",
            m.file_name, m.version_number
        )
    });
    Ok(())
}

pub async fn rm(ctx: &Ctx, remote: &str) -> anyhow::Result<()> {
    let latest = ctx.coffer.delete(remote, PutMode::Overwrite).await?;
    let doc = json!({ "name": remote, "deleted": true, "latest_version": latest });
    ctx.out.emit(doc, || {
        format!("deleted {remote} (restore with: coffer restore {remote} {latest})")
    });
    Ok(())
}
