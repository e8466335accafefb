//! `coffer put`: upload a file or a directory tree, resumably. A file
//! whose content equals its latest version is left alone (no new
//! version), and a tree's files go up several at once.

use crate::bars::Bar;
use crate::flight::{self, Flight};
use crate::resume::ResumeRecord;
use crate::Ctx;
use anyhow::{bail, Context};
use coffer_client::format::human_size;
use coffer_client::native::files::{plan_file, FileSource};
use coffer_client::{Metadata, Observer, PutMode, UploadReport};
use futures::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Puts the one file `local` as `remote`, with its own bar.
async fn put_one(
    ctx: &Ctx,
    local: &Path,
    remote: &str,
    limit_rate: Option<u64>,
) -> anyhow::Result<Put> {
    let latest = match ctx.coffer.stat(remote, 0).await {
        Ok(m) => Some(m),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e).context(format!("looking up {remote}")),
    };
    let bar = Bar::new(remote, ctx.out.quiet);
    let r = put_file(ctx, local, remote, limit_rate, latest.as_ref(), &bar, false).await?;
    bar.done();
    Ok(r)
}

/// `coffer put - NAME`: standard input, copied to a temporary file first
/// (an upload is planned from the whole content: bounded memory, however
/// long the input), then put like a file.
async fn put_stdin(ctx: &Ctx, remote: &str, limit_rate: Option<u64>) -> anyhow::Result<()> {
    let remote = coffer_client::normalize_name(remote)?;
    let spool = tempfile::NamedTempFile::new().context("cannot make a temporary file")?;
    let path = spool.path().to_path_buf();
    let copied = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut out = std::fs::File::create(&path)?;
        std::io::copy(&mut std::io::stdin().lock(), &mut out)
    })
    .await?
    .context("reading standard input")?;
    let r = put_one(ctx, spool.path(), &remote, limit_rate).await?;
    let stdin = Path::new("(standard input)");
    ctx.out
        .emit(r.json(), || format!("{} ({copied} bytes)", r.line(stdin)));
    Ok(())
}

/// Saves the session id as soon as it exists, and drives the bar: the
/// file's own, or the whole tree's (`whole`: its length is set once).
struct PutObserver<'a> {
    bar: &'a Bar,
    whole: bool,
    record: &'a ResumeRecord,
    save_error: std::sync::Mutex<Option<anyhow::Error>>,
}

impl Observer for PutObserver<'_> {
    fn session(&self, upload_id: &str, _resumed: bool) {
        if let Err(e) = self.record.save(upload_id) {
            *self.save_error.lock().unwrap() = Some(e);
        }
    }
    fn start(&self, bytes: u64) {
        if !self.whole {
            self.bar.start(bytes);
        }
    }
    fn advance(&self, bytes: u64) {
        self.bar.advance(bytes);
    }
}

/// What putting one file did.
enum Put {
    Sent(UploadReport),
    /// Its content is the latest version's already: nothing was sent and
    /// no version made.
    Unchanged(Metadata),
}

impl Put {
    fn json(&self) -> serde_json::Value {
        match self {
            Put::Sent(r) => report_json(r),
            Put::Unchanged(m) => json!({
                "name": m.file_name,
                "version": m.version_number,
                "size": m.size,
                "content_hash": m.content_hash,
                "unchanged": true,
                "bytes_total": m.size,
                "bytes_sent": 0,
            }),
        }
    }

    fn line(&self, local: &Path) -> String {
        match self {
            Put::Sent(r) => report_line(local, r),
            Put::Unchanged(m) => format!(
                "put {} -> {}: unchanged (version {})",
                local.display(),
                m.file_name,
                m.version_number
            ),
        }
    }
}

pub async fn run(
    ctx: &Ctx,
    local: &Path,
    remote: Option<&str>,
    limit_rate: Option<u64>,
) -> anyhow::Result<()> {
    if local == Path::new("-") {
        let remote = remote.context("`coffer put - NAME`: standard input needs a remote name")?;
        return put_stdin(ctx, remote, limit_rate).await;
    }
    let meta =
        std::fs::metadata(local).with_context(|| format!("cannot read {}", local.display()))?;
    let base = local
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .context("the local path has no name; give a remote name")?;
    let remote = match remote {
        None => base,
        // The root: a directory's contents go there, a file keeps its name.
        Some("/" | ".") if meta.is_dir() => String::new(),
        Some("/" | ".") => base,
        Some(r) if r.ends_with('/') && !meta.is_dir() => format!("{r}{base}"),
        Some(r) => r.to_string(),
    };
    // Reject a bad remote name before reading anything.
    let remote = if remote.is_empty() {
        remote
    } else {
        coffer_client::normalize_name(&remote)?
    };
    // Where a directory's files go: `remote/`, or the root.
    let under = if remote.is_empty() {
        String::new()
    } else {
        format!("{remote}/")
    };

    if !meta.is_dir() {
        let r = put_one(ctx, local, &remote, limit_rate).await?;
        ctx.out.emit(r.json(), || r.line(local));
        return Ok(());
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    walk(local, &mut files, &mut skipped)?;
    for p in &skipped {
        let what = match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_symlink() => "a symbolic link, not followed",
            _ => "neither a file nor a folder",
        };
        if !ctx.out.quiet {
            eprintln!("coffer: skipped ({what}): {}", p.display());
        }
    }
    let mut named = Vec::with_capacity(files.len());
    let mut total = 0;
    for f in &files {
        let rel = f.strip_prefix(local).expect("walked under local");
        let rel = rel
            .to_str()
            .with_context(|| format!("{} is not UTF-8", f.display()))?;
        let name = coffer_client::normalize_name(&format!("{under}{rel}"))?;
        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        total += len;
        named.push((f.clone(), name, len));
    }
    // What is there already, in one listing rather than a call per file.
    let latest: HashMap<String, Metadata> = ctx
        .coffer
        .list(&under)
        .await
        .with_context(|| format!("listing /{under}"))?
        .into_iter()
        .map(|m| (m.file_name.clone(), m))
        .collect();
    let bar = Bar::new(&format!("/{under} ({} files)", files.len()), ctx.out.quiet);
    bar.start(total);
    // Small files are round trips, not bytes: many in flight keep the
    // server and the nodes busy (8 at once took 5.5 s for 1,000 files of
    // 4 KiB, 32 took 4.3 s: BENCHMARKS.md), and share batch calls.
    let flight = Flight::new();
    let results: Vec<anyhow::Result<(PathBuf, Put)>> = futures::stream::iter(&named)
        .map(|(f, name, len)| {
            let (bar, latest, flight) = (&bar, latest.get(name), &flight);
            async move {
                let _turn = flight.admit(*len).await;
                let put = put_file(ctx, f, name, limit_rate, latest, bar, true).await?;
                if !ctx.out.json && !ctx.out.quiet {
                    bar.println(&put.line(f));
                }
                Ok((f.clone(), put))
            }
        })
        .buffer_unordered(flight::FILES)
        .collect()
        .await;
    bar.done();
    let mut done = Vec::new();
    let mut failed = 0;
    for r in results {
        match r {
            Ok(d) => done.push(d),
            Err(e) => {
                failed += 1;
                eprintln!("coffer: {e:#}");
            }
        }
    }
    done.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut bytes_total, mut bytes_sent, mut chunks_total, mut chunks_sent) = (0, 0, 0, 0);
    let mut unchanged = 0;
    for (_, put) in &done {
        match put {
            Put::Sent(r) => {
                bytes_total += r.bytes_total;
                bytes_sent += r.bytes_sent;
                chunks_total += r.chunks_total;
                chunks_sent += r.chunks_sent;
            }
            Put::Unchanged(m) => {
                bytes_total += m.size;
                unchanged += 1;
            }
        }
    }
    let summary = json!({
        "name": remote,
        "files": done.iter().map(|(_, p)| p.json()).collect::<Vec<_>>(),
        "unchanged": unchanged,
        "failed": failed,
        "skipped": skipped.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
        "bytes_total": bytes_total,
        "bytes_sent": bytes_sent,
        "chunks_total": chunks_total,
        "chunks_sent": chunks_sent,
    });
    ctx.out.emit(summary, || {
        format!(
            "put {} -> /{under} ({} files, {unchanged} unchanged, {}; sent {} in {chunks_sent} of {chunks_total} chunks)",
            local.display(),
            files.len(),
            human_size(bytes_total),
            human_size(bytes_sent)
        )
    });
    if failed > 0 {
        bail!("{failed} of {} files were not uploaded", files.len());
    }
    Ok(())
}

/// Uploads one file, continuing an earlier unfinished session if
/// recorded; leaves it alone if its content is `latest`'s already.
async fn put_file(
    ctx: &Ctx,
    local: &Path,
    remote: &str,
    limit_rate: Option<u64>,
    latest: Option<&Metadata>,
    bar: &Bar,
    whole: bool,
) -> anyhow::Result<Put> {
    let record = ResumeRecord::for_upload(&ctx.server, remote, local)?;
    let plan = plan_file(local).await?;
    if let Some(m) = latest.filter(|m| !m.deleted && m.content_hash == plan.content_hash) {
        record.clear();
        bar.advance(plan.size);
        return Ok(Put::Unchanged(m.clone()));
    }
    let mut source = FileSource::new(local);
    if let Some(rate) = limit_rate {
        source = source.with_rate_limit(rate);
    }
    let observer = PutObserver {
        bar,
        whole,
        record: &record,
        save_error: Default::default(),
    };
    let resume = record.load();
    let report = ctx
        .coffer
        .upload(
            remote,
            &plan,
            &source,
            resume.as_deref(),
            PutMode::Overwrite,
            &observer,
        )
        .await
        .with_context(|| format!("uploading {} to {remote}", local.display()))?;
    record.clear();
    if let Some(e) = observer.save_error.lock().unwrap().take() {
        // The upload succeeded; only resuming it would have been impossible.
        if !ctx.out.quiet {
            eprintln!("coffer: warning: {e:#}");
        }
    }
    Ok(Put::Sent(report))
}

/// Every regular file under `dir`, in path order. Symbolic links are not
/// followed (as `coffer sync` does not: a link may lead out of the tree,
/// or round in a loop); they, and anything that is neither file nor
/// folder, go into `skipped`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, skipped: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    entries.sort();
    for p in entries {
        let t = std::fs::symlink_metadata(&p)
            .with_context(|| format!("cannot read {}", p.display()))?;
        if t.is_dir() {
            walk(&p, out, skipped)?;
        } else if t.is_file() {
            out.push(p);
        } else {
            skipped.push(p);
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
