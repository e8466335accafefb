//! `coffer get`: download a file, or every file under a remote folder.
//! Each file appears only once complete and verified.

use crate::bars::Bar;
use crate::output::meta_json;
use crate::Ctx;
use anyhow::{bail, Context};
use coffer_client::format::human_size;
use coffer_client::native::files::download_file;
use coffer_client::{normalize_name, ClientError};
use serde_json::json;
use std::path::{Path, PathBuf};

pub async fn run(
    ctx: &Ctx,
    remote: &str,
    local: Option<&Path>,
    version: Option<u64>,
) -> anyhow::Result<()> {
    let remote = normalize_name(remote)?;
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
            // written: a server that is wrong or hostile gets no file
            // outside `root`.
            let plan = files
                .iter()
                .map(|f| Ok((f, root.join(inside(&remote, &f.file_name)?))))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut docs = Vec::new();
            let mut total = 0;
            for (f, dest) in plan {
                if let Some(dir) = dest.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let m = get_file(ctx, &f.file_name, f.version_number, &dest).await?;
                total += m.size;
                let mut doc = meta_json(&m);
                doc["local"] = json!(dest.to_string_lossy());
                docs.push(doc);
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

/// The local relative path for `name`, listed under the folder `remote`:
/// only a name in the normal form this client would send, below
/// `remote/`, made of plain segments (no `..`, no root, no drive).
fn inside(remote: &str, name: &str) -> anyhow::Result<PathBuf> {
    let refuse = |why: &str| {
        anyhow::anyhow!(
            "the server listed {name:?} under {remote}/, which {why}; nothing was written"
        )
    };
    match normalize_name(name) {
        Ok(n) if n == name => {}
        _ => return Err(refuse("is not a valid Coffer name")),
    }
    let rel = name
        .strip_prefix(remote)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| refuse("is not inside that folder"))?;
    let path = PathBuf::from(rel);
    if rel.contains('\\')
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(refuse("would leave the target folder"));
    }
    Ok(path)
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

#[cfg(test)]
mod tests {
    use super::inside;
    use std::path::PathBuf;

    #[test]
    fn only_names_inside_the_folder_become_local_paths() {
        assert_eq!(inside("d", "d/a/b.txt").unwrap(), PathBuf::from("a/b.txt"));
        for bad in [
            "d/../x",
            "d/a/../../x",
            "../d/x",
            "/etc/passwd",
            "e/x",
            "dx/y",
            "d",
            "d//x",
            "d/./x",
            "d/a\\..\\..\\x",
            "d/a\u{202e}txt.exe",
            "d/\u{0}",
        ] {
            assert!(inside("d", bad).is_err(), "{bad:?}");
        }
    }
}
