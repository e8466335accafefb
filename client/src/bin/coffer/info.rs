//! `coffer ls`, `stat`, `versions`, `restore`, `rm`, `mv` and `mkdir`:
//! the metadata commands.

use crate::output::{meta_json, meta_line};
use crate::Ctx;
use anyhow::bail;
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

pub async fn rm(ctx: &Ctx, remote: &str, recursive: bool) -> anyhow::Result<()> {
    if recursive {
        if let Some(files) = delete_folder(ctx, remote).await? {
            let doc = json!({ "name": remote, "deleted": true, "folder": true, "files": files });
            ctx.out.emit(doc, || {
                format!(
                    "deleted {remote}/ and the {files} file(s) in it (each restorable: \
                     coffer versions NAME, coffer restore NAME N)"
                )
            });
            return Ok(());
        }
    }
    let latest = match ctx.coffer.delete(remote, PutMode::Overwrite).await {
        Err(e) if e.is_not_found() && !recursive && is_folder(ctx, remote).await => {
            bail!("{remote} is a folder: `coffer rm -r {remote}` deletes it with everything in it")
        }
        r => r?,
    };
    let doc = json!({ "name": remote, "deleted": true, "latest_version": latest });
    ctx.out.emit(doc, || {
        format!("deleted {remote} (restore with: coffer restore {remote} {latest})")
    });
    Ok(())
}

/// Deletes folder `remote`; `None` if it is not a folder.
async fn delete_folder(ctx: &Ctx, remote: &str) -> anyhow::Result<Option<u64>> {
    match ctx.coffer.delete_folder(remote).await {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether `remote` names a folder (something is in it, or it was made).
async fn is_folder(ctx: &Ctx, remote: &str) -> bool {
    let Ok(name) = coffer_client::normalize_name(remote) else {
        return false;
    };
    let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
    ctx.coffer
        .list_folder(parent)
        .await
        .is_ok_and(|(_, folders)| folders.iter().any(|f| f.trim_end_matches('/') == name))
}

/// `coffer mv`: a file with MoveFile, a folder with MoveFolder; onto an
/// existing folder (or a name ending in `/`), into it.
pub async fn mv(ctx: &Ctx, from: &str, to: &str) -> anyhow::Result<()> {
    let from = coffer_client::normalize_name(from)?;
    let base = from.rsplit('/').next().unwrap_or(&from).to_string();
    let into = to.ends_with('/') || to == "." || is_folder(ctx, to).await;
    let to = match to.trim_end_matches('/') {
        "" | "." => base.clone(),
        t if into => format!("{t}/{base}"),
        t => t.to_string(),
    };
    let to = coffer_client::normalize_name(&to)?;
    match ctx.coffer.move_file(&from, &to, PutMode::Overwrite).await {
        Ok(m) => {
            let doc = json!({ "from": from, "to": m.file_name, "version": m.version_number });
            ctx.out
                .emit(doc, || format!("moved {from} -> {}", m.file_name));
            Ok(())
        }
        Err(e) if e.is_not_found() => {
            let files = ctx.coffer.move_folder(&from, &to).await?;
            let doc = json!({ "from": from, "to": to, "folder": true, "files": files });
            ctx.out
                .emit(doc, || format!("moved {from}/ -> {to}/ ({files} file(s))"));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// `coffer mkdir`.
pub async fn mkdir(ctx: &Ctx, remote: &str) -> anyhow::Result<()> {
    let path = ctx.coffer.make_folder(remote).await?;
    ctx.out.emit(json!({ "name": path, "folder": true }), || {
        format!("made {path}/")
    });
    Ok(())
}
