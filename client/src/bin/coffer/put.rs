//! `coffer put`: upload a file or a directory tree, resumably.

use crate::bars::Bar;
use crate::resume::ResumeRecord;
use crate::Ctx;
use anyhow::{bail, Context};
use coffer_client::format::human_size;
use coffer_client::native::files::{plan_file, FileSource};
use coffer_client::{Observer, UploadReport};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Saves the session id as soon as it exists, and drives the bar.
struct PutObserver<'a> {
    bar: Bar,
    record: &'a ResumeRecord,
    save_error: std::cell::RefCell<Option<anyhow::Error>>,
}

impl Observer for PutObserver<'_> {
    fn session(&self, upload_id: &str, _resumed: bool) {
        if let Err(e) = self.record.save(upload_id) {
            *self.save_error.borrow_mut() = Some(e);
        }
    }
    fn start(&self, bytes: u64) {
        self.bar.start(bytes);
    }
    fn advance(&self, bytes: u64) {
        self.bar.advance(bytes);
    }
}

pub async fn run(
    ctx: &Ctx,
    local: &Path,
    remote: Option<&str>,
    limit_rate: Option<u64>,
) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(local).with_context(|| format!("cannot read {}", local.display()))?;
    let base = local
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .context("the local path has no name; give a remote name")?;
    let remote = match remote {
        None => base,
        Some(r) if r.ends_with('/') && !meta.is_dir() => format!("{r}{base}"),
        Some(r) => r.to_string(),
    };
    // Reject a bad remote name before reading anything.
    let remote = coffer_client::normalize_name(&remote)?;

    if !meta.is_dir() {
        let r = put_file(ctx, local, &remote, limit_rate).await?;
        ctx.out.emit(report_json(&r), || report_line(local, &r));
        return Ok(());
    }
    let mut files = Vec::new();
    walk(local, &mut files)?;
    let mut docs = Vec::new();
    let (mut bytes_total, mut bytes_sent, mut chunks_total, mut chunks_sent) = (0, 0, 0, 0);
    for f in &files {
        let rel = f.strip_prefix(local).expect("walked under local");
        let rel = rel
            .to_str()
            .with_context(|| format!("{} is not UTF-8", f.display()))?;
        let name = format!("{remote}/{rel}");
        let r = put_file(ctx, f, &name, limit_rate).await?;
        bytes_total += r.bytes_total;
        bytes_sent += r.bytes_sent;
        chunks_total += r.chunks_total;
        chunks_sent += r.chunks_sent;
        if !ctx.out.json && !ctx.out.quiet {
            eprintln!("{}", report_line(f, &r));
        }
        docs.push(report_json(&r));
    }
    let summary = json!({
        "name": remote,
        "files": docs,
        "bytes_total": bytes_total,
        "bytes_sent": bytes_sent,
        "chunks_total": chunks_total,
        "chunks_sent": chunks_sent,
    });
    ctx.out.emit(summary, || {
        format!(
            "put {} -> {remote}/ ({} files, {}; sent {} in {chunks_sent} of {chunks_total} chunks)",
            local.display(),
            files.len(),
            human_size(bytes_total),
            human_size(bytes_sent)
        )
    });
    Ok(())
}

/// Uploads one file, continuing an earlier unfinished session if recorded.
async fn put_file(
    ctx: &Ctx,
    local: &Path,
    remote: &str,
    limit_rate: Option<u64>,
) -> anyhow::Result<UploadReport> {
    let record = ResumeRecord::for_upload(&ctx.server, remote, local)?;
    let plan = plan_file(local).await?;
    let mut source = FileSource::new(local);
    if let Some(rate) = limit_rate {
        source = source.with_rate_limit(rate);
    }
    let observer = PutObserver {
        bar: Bar::new(remote, ctx.out.quiet),
        record: &record,
        save_error: Default::default(),
    };
    let resume = record.load();
    let report = ctx
        .coffer
        .upload(remote, &plan, &source, resume.as_deref(), &observer)
        .await
        .with_context(|| format!("uploading {} to {remote}", local.display()))?;
    observer.bar.done();
    record.clear();
    if let Some(e) = observer.save_error.take() {
        // The upload succeeded; only resuming it would have been impossible.
        if !ctx.out.quiet {
            eprintln!("coffer: warning: {e:#}");
        }
    }
    Ok(report)
}

/// Every regular file under `dir`, in path order.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    entries.sort();
    for p in entries {
        let t = std::fs::metadata(&p).with_context(|| format!("cannot read {}", p.display()))?;
        if t.is_dir() {
            walk(&p, out)?;
        } else if t.is_file() {
            out.push(p);
        } else {
            bail!("{} is neither a file nor a directory", p.display());
        }
    }
    Ok(())
}

fn report_json(r: &UploadReport) -> serde_json::Value {
    json!({
        "name": r.metadata.file_name,
        "version": r.metadata.version_number,
        "size": r.metadata.size,
        "content_hash": r.metadata.content_hash,
        "upload_id": r.upload_id,
        "resumed": r.resumed,
        "bytes_total": r.bytes_total,
        "bytes_sent": r.bytes_sent,
        "chunks_total": r.chunks_total,
        "chunks_sent": r.chunks_sent,
    })
}

fn report_line(local: &Path, r: &UploadReport) -> String {
    format!(
        "put {} -> {} (version {}, {}; sent {} in {} of {} chunks{})",
        local.display(),
        r.metadata.file_name,
        r.metadata.version_number,
        human_size(r.bytes_total),
        human_size(r.bytes_sent),
        r.chunks_sent,
        r.chunks_total,
        if r.resumed { ", resumed" } else { "" }
    )
}
