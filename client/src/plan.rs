//! Deciding what a sync pass does: a pure function of three trees, the
//! local folder, the server, and the base (what both agreed on after the
//! last pass), as Dropbox's sync engine does. No I/O here, so every rule
//! is tested on its own and a simulation can drive it with random trees.
//!
//! The rules, per path:
//! - a side *changed* if it differs from the base (content for the local
//!   side, version or content for the server's);
//! - one side changed: its change is carried to the other;
//! - both changed to the same content, or both deleted: only the base is
//!   brought up to date;
//! - an edit and a delete: the edit wins, so no content is lost;
//! - two different edits: both are kept. The local copy moves to a
//!   conflict name and goes up as a new file; the server's comes down to
//!   the path.
//!
//! Every write to the server names the version it expects (a conditional
//! write), so a change made on the server after the listing fails the
//! action instead of being overwritten; the next pass plans again.

use std::collections::{BTreeMap, BTreeSet};

/// A file in the local folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Content hash (over the chunk ids, as the server computes it).
    pub hash: String,
    pub size: u64,
}

/// The latest version of a live file on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub version: u64,
    pub hash: String,
    pub size: u64,
}

/// What both sides held when they last agreed on a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseFile {
    pub version: u64,
    pub hash: String,
}

/// Relative path (`/`-separated, as the server names it) to file.
pub type Tree<T> = BTreeMap<String, T>;

/// One step of a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the local file; `base` is the version the server must still
    /// have (0: no file).
    Upload { path: String, base: u64 },
    /// Fetch `version` to the path, replacing a local file only if it
    /// still has content `replaces` (`None`: only if there is none).
    Download {
        path: String,
        version: u64,
        hash: String,
        replaces: Option<String>,
    },
    /// Delete the server's file, if it is still at `base`.
    DeleteRemote { path: String, base: u64 },
    /// Delete the local file, if it still has content `hash`.
    DeleteLocal { path: String, hash: String },
    /// Both sides edited differently: move the local file (content
    /// `local_hash`) to `keep_as`, upload it there as a new file, then
    /// fetch the server's `version` to `path`.
    Conflict {
        path: String,
        keep_as: String,
        local_hash: String,
        version: u64,
        hash: String,
    },
    /// Both sides agree already: record it in the base.
    Agree {
        path: String,
        version: u64,
        hash: String,
    },
    /// Gone on both sides: drop it from the base.
    Forget { path: String },
}

impl Action {
    pub fn path(&self) -> &str {
        match self {
            Action::Upload { path, .. }
            | Action::Download { path, .. }
            | Action::DeleteRemote { path, .. }
            | Action::DeleteLocal { path, .. }
            | Action::Conflict { path, .. }
            | Action::Agree { path, .. }
            | Action::Forget { path } => path,
        }
    }

    /// Whether the step deletes a file on either side.
    pub fn deletes(&self) -> bool {
        matches!(
            self,
            Action::DeleteRemote { .. } | Action::DeleteLocal { .. }
        )
    }
}

/// Plans a pass. `conflict_name` gives the name a conflicting local copy
/// moves to (see [`conflict_name`]); it is called only for conflicts.
pub fn plan(
    local: &Tree<LocalFile>,
    remote: &Tree<RemoteFile>,
    base: &Tree<BaseFile>,
    conflict_name: &dyn Fn(&str) -> String,
) -> Vec<Action> {
    let paths: BTreeSet<&String> = local
        .keys()
        .chain(remote.keys())
        .chain(base.keys())
        .collect();
    let mut out = Vec::new();
    for path in paths {
        let (l, r, b) = (local.get(path), remote.get(path), base.get(path));
        let local_changed = match (l, b) {
            (Some(l), Some(b)) => l.hash != b.hash,
            (None, None) => false,
            _ => true,
        };
        // The hash too: a file deleted, purged and made again starts
        // over at version 1, so a number alone can repeat.
        let remote_changed = match (r, b) {
            (Some(r), Some(b)) => r.version != b.version || r.hash != b.hash,
            (None, None) => false,
            _ => true,
        };
        let path = path.clone();
        let action = match (local_changed, remote_changed) {
            (false, false) => None,
            (true, false) => Some(match l {
                Some(_) => Action::Upload {
                    path,
                    base: r.map_or(0, |r| r.version),
                },
                None => match r {
                    Some(r) => Action::DeleteRemote {
                        path,
                        base: r.version,
                    },
                    None => Action::Forget { path },
                },
            }),
            (false, true) => Some(match r {
                // A new version with the content already here (a restore
                // of it): nothing to fetch.
                Some(r) if l.is_some_and(|l| l.hash == r.hash) => Action::Agree {
                    path,
                    version: r.version,
                    hash: r.hash.clone(),
                },
                Some(r) => Action::Download {
                    path,
                    version: r.version,
                    hash: r.hash.clone(),
                    replaces: l.map(|l| l.hash.clone()),
                },
                None => match l {
                    Some(l) => Action::DeleteLocal {
                        path,
                        hash: l.hash.clone(),
                    },
                    None => Action::Forget { path },
                },
            }),
            (true, true) => Some(match (l, r) {
                (None, None) => Action::Forget { path },
                (Some(l), Some(r)) if l.hash == r.hash => Action::Agree {
                    path,
                    version: r.version,
                    hash: r.hash.clone(),
                },
                // An edit against a delete: the edit wins.
                (Some(_), None) => Action::Upload { path, base: 0 },
                (None, Some(r)) => Action::Download {
                    path,
                    version: r.version,
                    hash: r.hash.clone(),
                    replaces: None,
                },
                (Some(l), Some(r)) => Action::Conflict {
                    keep_as: conflict_name(&path),
                    path,
                    local_hash: l.hash.clone(),
                    version: r.version,
                    hash: r.hash.clone(),
                },
            }),
        };
        out.extend(action);
    }
    out
}

/// Why a pass must not run as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The pass would delete more than half of a tree of more than
    /// [`MASS_DELETE_FLOOR`] files; `--force` lets it.
    MassDelete { deletes: usize, of: usize },
}

/// Trees of at most this many files may lose any number in one pass.
pub const MASS_DELETE_FLOOR: usize = 5;

/// Checks a plan against the safety rules (rclone bisync's `--max-delete`
/// in spirit): deleting most of what was synced is far more often an
/// unmounted disk or a mistake than a wish.
pub fn check(actions: &[Action], base: &Tree<BaseFile>) -> Result<(), Refusal> {
    let deletes = actions.iter().filter(|a| a.deletes()).count();
    let of = base.len();
    if of > MASS_DELETE_FLOOR && deletes * 2 > of {
        return Err(Refusal::MassDelete { deletes, of });
    }
    Ok(())
}

/// `dir/NAME (conflicted copy from HOST YYYY-MM-DD HHMMSS).EXT`, as
/// Dropbox names the losing side of a conflict. `stamp` is the time,
/// already formatted `YYYY-MM-DD HHMMSS`.
pub fn conflict_name(path: &str, host: &str, stamp: &str) -> String {
    let (dir, file) = match path.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), path),
    };
    // A leading dot is a hidden file's name, not an extension.
    let (stem, ext) = match file.rfind('.') {
        Some(i) if i > 0 => (&file[..i], &file[i..]),
        _ => (file, ""),
    };
    let host: String = host
        .chars()
        .filter(|c| !c.is_control() && *c != '/' && *c != '\\')
        .collect();
    format!("{dir}{stem} (conflicted copy from {host} {stamp}){ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(hash: &str) -> LocalFile {
        LocalFile {
            hash: hash.into(),
            size: 1,
        }
    }
    fn r(version: u64, hash: &str) -> RemoteFile {
        RemoteFile {
            version,
            hash: hash.into(),
            size: 1,
        }
    }
    fn b(version: u64, hash: &str) -> BaseFile {
        BaseFile {
            version,
            hash: hash.into(),
        }
    }

    /// One path's local, server and base files, and the plan wanted.
    type Case = (
        Option<LocalFile>,
        Option<RemoteFile>,
        Option<BaseFile>,
        Vec<Action>,
    );

    /// The plan for one path "p" given each side.
    fn one(lf: Option<LocalFile>, rf: Option<RemoteFile>, bf: Option<BaseFile>) -> Vec<Action> {
        fn tree<T>(x: Option<T>) -> Tree<T> {
            x.map(|v| ("p".to_string(), v)).into_iter().collect()
        }
        let (lt, rt, bt) = (tree(lf), tree(rf), tree(bf));
        plan(&lt, &rt, &bt, &|p| format!("{p} (conflict)"))
    }

    #[test]
    fn every_combination_of_the_three_trees() {
        let p = || "p".to_string();
        let cases: Vec<Case> = vec![
            // Nothing changed.
            (Some(l("a")), Some(r(1, "a")), Some(b(1, "a")), vec![]),
            (None, None, None, vec![]),
            // New on one side.
            (
                Some(l("a")),
                None,
                None,
                vec![Action::Upload { path: p(), base: 0 }],
            ),
            (
                None,
                Some(r(3, "a")),
                None,
                vec![Action::Download {
                    path: p(),
                    version: 3,
                    hash: "a".into(),
                    replaces: None,
                }],
            ),
            // New on both: the same content agrees, different conflicts.
            (
                Some(l("a")),
                Some(r(2, "a")),
                None,
                vec![Action::Agree {
                    path: p(),
                    version: 2,
                    hash: "a".into(),
                }],
            ),
            (
                Some(l("a")),
                Some(r(2, "b")),
                None,
                vec![Action::Conflict {
                    path: p(),
                    keep_as: "p (conflict)".into(),
                    local_hash: "a".into(),
                    version: 2,
                    hash: "b".into(),
                }],
            ),
            // Edited on one side.
            (
                Some(l("b")),
                Some(r(1, "a")),
                Some(b(1, "a")),
                vec![Action::Upload { path: p(), base: 1 }],
            ),
            (
                Some(l("a")),
                Some(r(2, "b")),
                Some(b(1, "a")),
                vec![Action::Download {
                    path: p(),
                    version: 2,
                    hash: "b".into(),
                    replaces: Some("a".into()),
                }],
            ),
            // Deleted on one side.
            (
                None,
                Some(r(1, "a")),
                Some(b(1, "a")),
                vec![Action::DeleteRemote { path: p(), base: 1 }],
            ),
            (
                Some(l("a")),
                None,
                Some(b(1, "a")),
                vec![Action::DeleteLocal {
                    path: p(),
                    hash: "a".into(),
                }],
            ),
            // Deleted on both, or deleted here after being deleted there.
            (
                None,
                None,
                Some(b(1, "a")),
                vec![Action::Forget { path: p() }],
            ),
            // Edit against delete: the edit wins, both ways.
            (
                Some(l("b")),
                None,
                Some(b(1, "a")),
                vec![Action::Upload { path: p(), base: 0 }],
            ),
            (
                None,
                Some(r(2, "b")),
                Some(b(1, "a")),
                vec![Action::Download {
                    path: p(),
                    version: 2,
                    hash: "b".into(),
                    replaces: None,
                }],
            ),
            // Edited on both: to the same content, or not.
            (
                Some(l("c")),
                Some(r(2, "c")),
                Some(b(1, "a")),
                vec![Action::Agree {
                    path: p(),
                    version: 2,
                    hash: "c".into(),
                }],
            ),
            (
                Some(l("b")),
                Some(r(2, "c")),
                Some(b(1, "a")),
                vec![Action::Conflict {
                    path: p(),
                    keep_as: "p (conflict)".into(),
                    local_hash: "b".into(),
                    version: 2,
                    hash: "c".into(),
                }],
            ),
            // A server version that moved on with the content already
            // here (a restore of it): only the base catches up.
            (
                Some(l("a")),
                Some(r(5, "a")),
                Some(b(1, "a")),
                vec![Action::Agree {
                    path: p(),
                    version: 5,
                    hash: "a".into(),
                }],
            ),
            // The same version number with other content (the file was
            // deleted, purged and made again): a change on the server.
            (
                Some(l("a")),
                Some(r(1, "z")),
                Some(b(1, "a")),
                vec![Action::Download {
                    path: p(),
                    version: 1,
                    hash: "z".into(),
                    replaces: Some("a".into()),
                }],
            ),
        ];
        for (i, (lf, rf, bf, want)) in cases.into_iter().enumerate() {
            assert_eq!(one(lf, rf, bf), want, "case {i}");
        }
    }

    /// A small deterministic generator, so failures are reproducible
    /// from the printed seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn no_content_on_either_side_is_planned_away() {
        for seed in 1..500u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let (mut lt, mut rt, mut bt) = (Tree::new(), Tree::new(), Tree::new());
            for i in 0..12 {
                let path = format!("f{i}");
                // Versions are immutable: version v always holds "hv".
                // A local file holds any of those contents, or "h0".
                if rng.pick(4) > 0 {
                    let v = rng.pick(3) + 1;
                    bt.insert(path.clone(), b(v, &format!("h{v}")));
                }
                if rng.pick(4) > 0 {
                    lt.insert(path.clone(), l(&format!("h{}", rng.pick(4))));
                }
                if rng.pick(4) > 0 {
                    let v = rng.pick(3) + 1;
                    rt.insert(path.clone(), r(v, &format!("h{v}")));
                }
            }
            let actions = plan(&lt, &rt, &bt, &|p| format!("{p} (conflict)"));
            assert!(
                actions.windows(2).all(|w| w[0].path() < w[1].path()),
                "seed {seed}: one action a path, in order"
            );
            for a in &actions {
                let (lf, rf, bf) = (lt.get(a.path()), rt.get(a.path()), bt.get(a.path()));
                match a {
                    // A local file is deleted only if unchanged since the
                    // base, and the server's only if unchanged there.
                    Action::DeleteLocal { hash, .. } => {
                        assert_eq!(Some(hash), bf.map(|b| &b.hash), "seed {seed}: {a:?}");
                        assert!(rf.is_none(), "seed {seed}: {a:?}");
                    }
                    Action::DeleteRemote { base, .. } => {
                        assert_eq!(Some(*base), bf.map(|b| b.version), "seed {seed}: {a:?}");
                        assert!(lf.is_none(), "seed {seed}: {a:?}");
                    }
                    // A download replaces local content only if that
                    // content is what was synced (or the same as the
                    // server's): never an unsynced local edit.
                    Action::Download {
                        replaces: Some(old),
                        hash,
                        ..
                    } => {
                        assert!(
                            bf.is_some_and(|b| &b.hash == old) || old == hash,
                            "seed {seed}: {a:?} with base {bf:?}"
                        );
                    }
                    Action::Conflict { keep_as, .. } => {
                        assert!(!lt.contains_key(keep_as) && !rt.contains_key(keep_as));
                    }
                    _ => {}
                }
            }
            // Every path where the sides differ gets a step.
            for path in lt.keys().chain(rt.keys()) {
                let same = lt.get(path).map(|x| &x.hash) == rt.get(path).map(|x| &x.hash)
                    && bt.get(path).map(|x| x.version) == rt.get(path).map(|x| x.version)
                    && bt.get(path).map(|x| &x.hash) == lt.get(path).map(|x| &x.hash);
                assert!(
                    same || actions.iter().any(|a| a.path() == path),
                    "seed {seed}: {path} differs and nothing is planned"
                );
            }
        }
    }

    #[test]
    fn mass_deletes_are_refused_above_a_few_files() {
        let base: Tree<BaseFile> = (0..10).map(|i| (format!("f{i}"), b(1, "a"))).collect();
        let del = |n: usize| -> Vec<Action> {
            (0..n)
                .map(|i| Action::DeleteRemote {
                    path: format!("f{i}"),
                    base: 1,
                })
                .collect()
        };
        assert_eq!(check(&del(5), &base), Ok(()));
        assert_eq!(
            check(&del(6), &base),
            Err(Refusal::MassDelete { deletes: 6, of: 10 })
        );
        // A handful of files may all go.
        let small: Tree<BaseFile> = (0..5).map(|i| (format!("f{i}"), b(1, "a"))).collect();
        assert_eq!(check(&del(5), &small), Ok(()));
    }

    #[test]
    fn conflict_names_keep_the_folder_and_the_extension() {
        let s = "2026-11-27 101500";
        assert_eq!(
            conflict_name("docs/report.final.pdf", "laptop", s),
            "docs/report.final (conflicted copy from laptop 2026-11-27 101500).pdf"
        );
        assert_eq!(
            conflict_name("Makefile", "pc", s),
            "Makefile (conflicted copy from pc 2026-11-27 101500)"
        );
        assert_eq!(
            conflict_name("a/.bashrc", "h/o\\st", s),
            "a/.bashrc (conflicted copy from host 2026-11-27 101500)"
        );
    }
}
