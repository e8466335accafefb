//! `coffer get`: download a file, or every file under a remote folder.
//! Each file appears only once complete and verified.

use crate::bars::Bar;
use crate::flight::{self, Flight};
use crate::output::meta_json;
use crate::Ctx;
use anyhow::{bail, Context};
use coffer_client::format::human_size;
use coffer_client::local_path::local_path;
use coffer_client::native::files::{create_folders_below, download_file};
use coffer_client::{normalize_name, ClientError, Observer};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use std::path::{Path, PathBuf};

pub async fn run(
    ctx: &Ctx,
    remote: &str,
    local: Option<&Path>,
    version: Option<u64>,
) -> anyhow::Result<()> {
    let remote = normalize_name(remote)?;
    if local == Some(Path::new("-")) {
        return to_stdout(ctx, &remote, version.unwrap_or(0)).await;
    }
    let base = remote
        .rsplit('/')
        .next()
        .expect("a normal name has a segment");
    match ctx.coffer.stat(&remote, version.unwrap_or(0)).await {
        Ok(_) => {
            let dest = match local {
                Some(p) if p.is_dir() => p.join(base),
                Some(p) => p.to_path_buf(),
                None => PathBuf::from(base),
            };
            let m = get_file(ctx, &remote, version.unwrap_or(0), &dest).await?;
            let mut doc = meta_json(&m);
            doc["local"] = json!(dest.to_string_lossy());
            ctx.out.emit(doc, || {
                format!(
                    "get {} (version {}, {}) -> {}",
                    m.file_name,
                    m.version_number,
                    human_size(m.size),
                    dest.display()
                )
            });
            Ok(())
        }
        Err(ClientError::NotFound(msg)) if version.is_none() => {
            // Perhaps a folder: fetch everything under it.
            let files = ctx.coffer.list(&format!("{remote}/")).await?;
            if files.is_empty() {
                bail!("{msg}");
            }
            let root = local.map_or_else(|| PathBuf::from(base), Path::to_path_buf);
            // Every name the server returned is checked before anything is
            // written: a name that would climb out of `root`, or that
            // another OS could not hold, is reported and skipped.
            let mut plan = Vec::new();
            let mut skipped = 0;
            for f in &files {
                match local_path(&remote, &f.file_name) {
                    Ok(rel) => plan.push((f, rel)),
                    Err(why) => {
                        eprintln!("coffer: skipped ({why}): {:?}", f.file_name);
                        skipped += 1;
                    }
                }
            }
            if !plan.is_empty() {
                std::fs::create_dir_all(&root)
                    .with_context(|| format!("cannot create {}", root.display()))?;
            }
            let mut todo = Vec::with_capacity(plan.len());
            for (f, rel) in plan {
                if let Some(dir) = rel.parent() {
                    create_folders_below(&root, dir)
                        .with_context(|| format!("cannot make the folders of {}", f.file_name))?;
                }
                todo.push((f, root.join(rel)));
            }
            // Several files at once (see `flight`): a small file is a
            // round trip, not bytes. One bar for the tree.
            let bar = Bar::new(&format!("/{remote}/ ({} files)", todo.len()), ctx.out.quiet);
            bar.start(todo.iter().map(|(f, _)| f.size).sum());
            let flight = Flight::new();
            let got: Vec<coffer_client::Metadata> = futures::stream::iter(&todo)
                .map(|(f, dest)| {
                    let (bar, flight) = (&bar, &flight);
                    async move {
                        let _turn = flight.download(f.size).await;
                        download_file(
                            &ctx.coffer,
                            &f.file_name,
                            f.version_number,
                            dest,
                            &Whole(bar),
                        )
                        .await
                        .with_context(|| format!("downloading {}", f.file_name))
                    }
                })
                .buffered(flight::FILES)
                .try_collect()
                .await?;
            bar.done();
            let mut docs = Vec::new();
            let mut total = 0;
            for (m, (_, dest)) in got.iter().zip(&todo) {
                total += m.size;
                let mut doc = meta_json(m);
                doc["local"] = json!(dest.to_string_lossy());
                docs.push(doc);
            }
            if skipped > 0 {
                bail!(
                    "{skipped} of the {} files under {remote}/ were not fetched: their names \
                     cannot be files here (above); the others were",
                    files.len()
                );
            }
            let doc = json!({ "name": remote, "files": docs, "bytes_total": total });
            ctx.out.emit(doc, || {
                format!(
                    "get {remote}/ ({} files, {}) -> {}",
                    files.len(),
                    human_size(total),
                    root.display()
                )
            });
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// `coffer get NAME -`: the bytes to standard output as they come,
/// checked against the content hash at the end (a mismatch fails the
/// command, after the bytes are out, as with any stream).
async fn to_stdout(ctx: &Ctx, remote: &str, version: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut d = ctx.coffer.open_download(remote, version).await?;
    let mut hasher = coffer_client::download::StreamContentHasher::new();
    let mut out = std::io::stdout().lock();
    while let Some(piece) = d.next().await? {
        hasher.update(&piece);
        out.write_all(&piece)
            .context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")?;
    d.check(hasher)?;
    Ok(())
}

/// Moves a tree's bar as one file's bytes come (its length is the
/// tree's, set once).
struct Whole<'a>(&'a Bar);

impl Observer for Whole<'_> {
    fn advance(&self, bytes: u64) {
        self.0.advance(bytes);
    }
}

async fn get_file(
    ctx: &Ctx,
    remote: &str,
    version: u64,
    dest: &Path,
) -> anyhow::Result<coffer_client::Metadata> {
    let bar = Bar::new(remote, ctx.out.quiet);
    let m = download_file(&ctx.coffer, remote, version, dest, &bar)
        .await
        .with_context(|| format!("downloading {remote}"))?;
    bar.done();
    Ok(m)
}
