//! Reading the synced folder: every file by the name it is synced under,
//! and the paths a pass must not touch because it cannot see them whole.

use super::ignore::Ignore;
use anyhow::Context;
use coffer_client::local_path::check_segment;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// A file found in the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where it is on disk (its name there may be a decomposed spelling
    /// of the name it is synced under).
    pub path: PathBuf,
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub mtime: u64,
}

/// One file of a scan: the name it is synced under (the server's normal
/// form) and whether the name on disk is exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub exact: bool,
    pub found: Found,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub entries: Vec<Entry>,
    /// Paths (files, or folders and all under them) a pass leaves alone:
    /// symbolic links, folders that cannot be read. What is under them is
    /// unknown, and unknown must never read as "deleted".
    pub skipped: BTreeSet<String>,
}

/// Whether `path` is, or is under, one of `skipped`, in any spelling of
/// letter case: on a case-insensitive disk `docs/link/x` is written
/// through a link `docs/Link`. (On a case-sensitive disk this leaves a
/// little more alone than it must, never less.)
pub fn covered(skipped: &BTreeSet<String>, path: &str) -> bool {
    let path = path.to_lowercase();
    skipped.iter().any(|s| {
        path.strip_prefix(s.to_lowercase().as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Every file under `root` by the name it is synced under. Left out: what
/// `ignore` names, and (with a message through `say`) names the server
/// would refuse or another OS could not hold
/// ([`coffer_client::local_path`]), symbolic links and unreadable
/// folders. Temporary download files a killed run left behind are
/// removed, but only those named in `ours`, the ones this client made: a
/// user's own file that happens to look like one is left alone (names of
/// that shape are never synced, see [`Ignore`]; the caller holds the
/// folder's sync lock, so no download of this client's is in progress).
pub fn scan(
    root: &Path,
    ignore: &Ignore,
    ours: &BTreeSet<PathBuf>,
    say: &dyn Fn(String),
) -> anyhow::Result<Scan> {
    let mut out = Scan::default();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // Gone since its parent was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != root => continue,
            Err(e) if dir != root => {
                let rel = relative(root, &dir);
                say(format!("skipped ({e}): {rel}/"));
                out.skipped.insert(rel);
                continue;
            }
            Err(e) => return Err(e).context(format!("cannot read {}", dir.display())),
        };
        for e in entries {
            let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
            let path = e.path();
            let file_name = e.file_name();
            let Some(name) = file_name.to_str() else {
                say(format!("skipped (not UTF-8): {}", path.display()));
                continue;
            };
            if ours.contains(&path) {
                std::fs::remove_file(&path).ok();
                continue;
            }
            let raw = relative(root, &path);
            // Rules and names are both in the server's normal form.
            let rel = coffer_client::normalize_name(&raw).unwrap_or_else(|_| raw.clone());
            if ignore.ignores(&rel) {
                continue;
            }
            let Ok(kind) = e.file_type() else {
                continue; // gone since the listing
            };
            if kind.is_symlink() {
                say(format!("skipped (a symbolic link): {raw}"));
                out.skipped.insert(rel);
                continue;
            }
            if let Err(why) = check_segment(name) {
                say(format!("skipped ({why}): {raw}"));
                continue;
            }
            if kind.is_dir() {
                dirs.push(path);
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let Ok(meta) = e.metadata() else {
                continue; // gone since the listing
            };
            match coffer_client::normalize_name(&raw) {
                Ok(n) => {
                    let (size, mtime) = size_and_time(&meta);
                    out.entries.push(Entry {
                        exact: n == raw,
                        name: n,
                        found: Found { path, size, mtime },
                    });
                }
                Err(e) => say(format!("skipped ({e}): {raw}")),
            }
        }
    }
    out.entries
        .sort_by(|a, b| (&a.name, &a.found.path).cmp(&(&b.name, &b.found.path)));
    Ok(out)
}

/// `path` under `root`, `/`-separated.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .expect("under the root")
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

pub fn size_and_time(meta: &std::fs::Metadata) -> (u64, u64) {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    (meta.len(), mtime)
}

/// A regular file's size and time; `None` if there is none at `path`
/// (a symbolic link is not followed).
pub fn stat(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| size_and_time(&m))
}

/// Whether nothing at all is at `path` (not even a link or a folder).
pub fn absent(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_paths_cover_themselves_and_what_is_under_them_only() {
        let skipped = BTreeSet::from(["a/link".to_string()]);
        assert!(covered(&skipped, "a/link"));
        assert!(covered(&skipped, "a/link/x.txt"));
        assert!(!covered(&skipped, "a/link2"));
        assert!(!covered(&skipped, "a/lin"));
    }

    #[test]
    fn a_skipped_link_covers_every_spelling_of_its_case() {
        let skipped = BTreeSet::from(["docs/Link".to_string()]);
        assert!(covered(&skipped, "docs/link/x"));
        assert!(covered(&skipped, "DOCS/LINK"));
        assert!(!covered(&skipped, "docs/linked/x"));
    }

    #[test]
    fn only_leftovers_this_client_made_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".coffer-Ab12Cd.part"), b"ours").unwrap();
        std::fs::write(root.join(".coffer-Zz99Yy.part"), b"the user's").unwrap();
        let ours = BTreeSet::from([root.join(".coffer-Ab12Cd.part")]);
        scan(root, &Ignore::parse("").unwrap(), &ours, &|_| {}).unwrap();
        assert!(!root.join(".coffer-Ab12Cd.part").exists());
        assert_eq!(
            std::fs::read(root.join(".coffer-Zz99Yy.part")).unwrap(),
            b"the user's"
        );
    }

    #[test]
    fn names_another_os_cannot_hold_are_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("dir.")).unwrap();
        std::fs::write(root.join("dir./inside.txt"), b"x").unwrap();
        std::fs::write(root.join("a:b.txt"), b"x").unwrap();
        std::fs::write(root.join("CON.txt"), b"x").unwrap();
        std::fs::write(root.join("fine.txt"), b"x").unwrap();
        let said = std::sync::Mutex::new(Vec::new());
        let s = scan(root, &Ignore::parse("").unwrap(), &BTreeSet::new(), &|l| {
            said.lock().unwrap().push(l)
        })
        .unwrap();
        let names: Vec<&str> = s.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec!["fine.txt"]);
        let said = said.into_inner().unwrap().join("\n");
        for name in ["dir.", "a:b.txt", "CON.txt"] {
            assert!(said.contains(name), "{name} not reported: {said}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn links_are_skipped_not_followed_and_names_keep_their_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/a.txt"), b"a").unwrap();
        std::fs::write(root.join("cafe\u{301}.txt"), b"d").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("/nowhere", root.join("dangling.txt")).unwrap();
        let s = scan(root, &Ignore::parse("").unwrap(), &BTreeSet::new(), &|_| {}).unwrap();
        let names: Vec<(&str, bool)> = s
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.exact))
            .collect();
        assert_eq!(names, vec![("caf\u{e9}.txt", false), ("real/a.txt", true)]);
        assert_eq!(
            s.skipped,
            BTreeSet::from(["dangling.txt".to_string(), "link".to_string()])
        );
    }
}
