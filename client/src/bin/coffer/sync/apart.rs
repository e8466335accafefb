//! Keeping apart names that one file system would take for the same file.
//!
//! macOS and Windows disks ignore case (`Report.txt` is `report.txt`) and
//! macOS also ignores Unicode normalisation (`é` composed or decomposed).
//! Two such names synced to one of those disks would overwrite each
//! other. So the synced namespace is folded everywhere, as Dropbox's is:
//! within a synced folder no two files may have names equal under
//! [`fold`], on every computer, whatever its disk, which also keeps every
//! replica's tree the same.
//!
//! When names collide, one keeps its name: the one both sides last agreed
//! on, else one already on the server, else the first in byte order. Each
//! other name becomes `NAME (case conflict).EXT` (or `(case conflict 2)`…),
//! moved on the server if it is there and renamed on disk if it is here,
//! to the same new name, so no content is lost and the next pass agrees.
//! Folders are names too: the files under each losing spelling of a
//! folder move to `FOLDER (case conflict)/`.
//!
//! A file and a folder cannot share a name either (on any disk, nor on
//! the server). When one side has a file where the other has a folder,
//! the folder keeps the name (it may hold many files) and the file moves
//! to `NAME (folder conflict).EXT`, on each side that has it. A file
//! whose deletion the pass is about to sync is left to that, and a
//! folder holding only such files does not count.
//!
//! This is a pure function of the names; the pass carries it out.

use coffer_proto::paths::normalize;
use std::collections::{BTreeMap, BTreeSet};

/// The name as a case-insensitive, normalisation-insensitive disk sees it.
pub fn fold(name: &str) -> String {
    let nfc = normalize(name).unwrap_or_else(|_| name.to_string());
    nfc.to_lowercase()
}

/// A file found on disk: its name as the server would keep it (NFC), and
/// whether the name on disk is exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnDisk {
    pub name: String,
    pub exact: bool,
}

/// Why a name had to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Another name differs from it only in case or accents.
    Case,
    /// A folder has the name.
    Folder,
}

impl Why {
    /// The words in the new name: `NAME (case conflict).EXT`.
    fn tag(self) -> &'static str {
        match self {
            Why::Case => "case conflict",
            Why::Folder => "folder conflict",
        }
    }

    /// Why, for the user.
    pub fn reason(self) -> &'static str {
        match self {
            Why::Case => "its name differs from another only in case or accents",
            Why::Folder => "a folder has its name",
        }
    }
}

/// A rename that keeps two colliding names apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rename {
    /// The `index`-th file of the local list gets the name `to`.
    Local { index: usize, to: String, why: Why },
    /// The server's `from` (at `version`) moves to `to`.
    Remote {
        from: String,
        version: u64,
        to: String,
        why: Why,
    },
}

/// The renames that leave no two names equal under [`fold`], and no
/// file named like a folder. `local` lists every file found on disk (two
/// entries may share a name: a composed and a decomposed spelling);
/// `remote` maps the server's names to their versions; `base` holds the
/// names last agreed on; `going` the names whose deletion this pass will
/// carry to the other side.
///
/// Folders come first: two spellings of one folder (`Docs/`, `docs/`)
/// would be one folder on a case-insensitive disk, so the files under
/// each spelling but one move to `NAME (case conflict)/`. Only the
/// shallowest such folders are handled at once (their renames change the
/// paths of anything deeper); the next pass sees the rest, then files
/// named like folders, then files.
pub fn keep_apart(
    local: &[OnDisk],
    remote: &BTreeMap<String, u64>,
    base: &BTreeSet<String>,
    going: &BTreeSet<String>,
) -> Vec<Rename> {
    let folders = folders_apart(local, remote, base);
    if !folders.is_empty() {
        return folders;
    }
    let files = files_off_folders(local, remote, going);
    if !files.is_empty() {
        return files;
    }
    files_apart(local, remote, base)
}

/// Files named (under [`fold`]) like a folder of either side move to
/// `NAME (folder conflict).EXT`, to the same new name on each side that
/// has them. Names in `going` neither move nor make folders.
fn files_off_folders(
    local: &[OnDisk],
    remote: &BTreeMap<String, u64>,
    going: &BTreeSet<String>,
) -> Vec<Rename> {
    let names = || {
        local
            .iter()
            .map(|f| f.name.as_str())
            .chain(remote.keys().map(|n| n.as_str()))
    };
    let mut folders = BTreeSet::new();
    let mut taken = BTreeSet::new();
    for name in names() {
        taken.insert(fold(name));
        for folder in folders_of(name) {
            taken.insert(fold(folder));
            if !going.contains(name) {
                folders.insert(fold(folder));
            }
        }
    }
    let clashes = |name: &str| !going.contains(name) && folders.contains(&fold(name));
    let mut moved: BTreeMap<&str, String> = BTreeMap::new();
    let mut new_name = |name| {
        moved
            .entry(name)
            .or_insert_with(|| fresh(name, Why::Folder, &mut taken))
            .clone()
    };
    let mut out = Vec::new();
    for (from, &version) in remote.iter().filter(|(n, _)| clashes(n)) {
        out.push(Rename::Remote {
            from: from.clone(),
            version,
            to: new_name(from),
            why: Why::Folder,
        });
    }
    for (index, f) in local.iter().enumerate().filter(|(_, f)| clashes(&f.name)) {
        out.push(Rename::Local {
            index,
            to: new_name(&f.name),
            why: Why::Folder,
        });
    }
    out
}

/// The first of `name`'s conflict names (see [`conflict_name`]) whose
/// folded form is not in `taken`, which then holds it.
fn fresh(name: &str, why: Why, taken: &mut BTreeSet<String>) -> String {
    let mut n = 1;
    loop {
        let to = conflict_name(name, n, why);
        if taken.insert(fold(&to)) {
            return to;
        }
        n += 1;
    }
}

/// Every folder of `name`, shallowest first: `a`, `a/b` for `a/b/c`.
pub fn folders_of(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('/').map(move |(i, _)| &name[..i])
}

fn folders_apart(
    local: &[OnDisk],
    remote: &BTreeMap<String, u64>,
    base: &BTreeSet<String>,
) -> Vec<Rename> {
    // Every spelling of every folder, by depth and folded name.
    let mut spellings: BTreeMap<(usize, String), BTreeSet<&str>> = BTreeMap::new();
    let names = local
        .iter()
        .map(|f| f.name.as_str())
        .chain(remote.keys().map(|n| n.as_str()));
    let mut taken = BTreeSet::new();
    for name in names {
        taken.insert(fold(name));
        for (depth, folder) in folders_of(name).enumerate() {
            taken.insert(fold(folder));
            spellings
                .entry((depth, fold(folder)))
                .or_default()
                .insert(folder);
        }
    }
    let Some(depth) = spellings
        .iter()
        .find(|(_, s)| s.len() > 1)
        .map(|((d, _), _)| *d)
    else {
        return Vec::new();
    };
    let under = |name: &str, folder: &str| {
        name.strip_prefix(folder)
            .and_then(|rest| rest.strip_prefix('/'))
            .map(str::to_string)
    };
    let mut out = Vec::new();
    for ((_, _), group) in spellings
        .iter()
        .filter(|((d, _), s)| *d == depth && s.len() > 1)
    {
        let keeper = group
            .iter()
            .find(|f| base.iter().any(|b| under(b, f).is_some()))
            .or_else(|| {
                group
                    .iter()
                    .find(|f| remote.keys().any(|r| under(r, f).is_some()))
            })
            .or_else(|| group.iter().next())
            .copied()
            .expect("a group has a spelling");
        for folder in group.iter().filter(|f| **f != keeper) {
            let mut n = 1;
            let to = loop {
                let to = folder_conflict_name(folder, n);
                if taken.insert(fold(&to)) {
                    break to;
                }
                n += 1;
            };
            for (from, &version) in remote {
                if let Some(rest) = under(from, folder) {
                    out.push(Rename::Remote {
                        why: Why::Case,
                        from: from.clone(),
                        version,
                        to: format!("{to}/{rest}"),
                    });
                }
            }
            for (index, f) in local.iter().enumerate() {
                if let Some(rest) = under(&f.name, folder) {
                    out.push(Rename::Local {
                        why: Why::Case,
                        index,
                        to: format!("{to}/{rest}"),
                    });
                }
            }
        }
    }
    out
}

/// `dir/NAME (case conflict N)`: the `n`-th candidate name for a folder.
fn folder_conflict_name(folder: &str, n: usize) -> String {
    if n == 1 {
        format!("{folder} (case conflict)")
    } else {
        format!("{folder} (case conflict {n})")
    }
}

fn files_apart(
    local: &[OnDisk],
    remote: &BTreeMap<String, u64>,
    base: &BTreeSet<String>,
) -> Vec<Rename> {
    #[derive(Default)]
    struct Group<'a> {
        names: BTreeSet<&'a str>,
        local: Vec<usize>,
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for (i, f) in local.iter().enumerate() {
        let g = groups.entry(fold(&f.name)).or_default();
        g.names.insert(&f.name);
        g.local.push(i);
    }
    for name in remote.keys() {
        groups.entry(fold(name)).or_default().names.insert(name);
    }
    let mut taken: BTreeSet<String> = groups.keys().cloned().collect();
    let mut out = Vec::new();
    for g in groups.values() {
        if g.names.len() < 2 && g.local.len() < 2 {
            continue;
        }
        let keeper = g
            .names
            .iter()
            .find(|n| base.contains(**n))
            .or_else(|| g.names.iter().find(|n| remote.contains_key(**n)))
            .or_else(|| g.names.iter().next())
            .copied()
            .expect("a group has a name");
        // The keeper's own file on disk: the exact spelling if there is
        // one, else the first.
        let kept_local = g
            .local
            .iter()
            .copied()
            .filter(|&i| local[i].name == keeper)
            .min_by_key(|&i| (!local[i].exact, i));
        let mut fresh = |name: &str| fresh(name, Why::Case, &mut taken);
        for name in g.names.iter().filter(|n| **n != keeper) {
            let to = fresh(name);
            if let Some(&version) = remote.get(*name) {
                out.push(Rename::Remote {
                    why: Why::Case,
                    from: name.to_string(),
                    version,
                    to: to.clone(),
                });
            }
            for &i in g.local.iter().filter(|&&i| local[i].name == *name) {
                // Two spellings of one name here: each needs its own.
                let to = if out
                    .iter()
                    .any(|r| matches!(r, Rename::Local { to: t, .. } if *t == to))
                {
                    fresh(name)
                } else {
                    to.clone()
                };
                out.push(Rename::Local {
                    index: i,
                    to,
                    why: Why::Case,
                });
            }
        }
        for &i in g
            .local
            .iter()
            .filter(|&&i| local[i].name == keeper && Some(i) != kept_local)
        {
            out.push(Rename::Local {
                why: Why::Case,
                index: i,
                to: fresh(keeper),
            });
        }
    }
    out
}

/// `dir/NAME (case conflict N).EXT` (or `folder conflict`): the `n`-th
/// candidate name for `path`.
pub fn conflict_name(path: &str, n: usize, why: Why) -> String {
    let (dir, file) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    let (stem, ext) = match file.rfind('.') {
        Some(i) if i > 0 => (&file[..i], &file[i..]),
        _ => (file, ""),
    };
    let tag = if n == 1 {
        why.tag().to_string()
    } else {
        format!("{} {n}", why.tag())
    };
    format!("{dir}{stem} ({tag}){ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With no deletions pending.
    fn apart(
        local: &[OnDisk],
        remote: &BTreeMap<String, u64>,
        base: &BTreeSet<String>,
    ) -> Vec<Rename> {
        keep_apart(local, remote, base, &BTreeSet::new())
    }

    fn disk(names: &[(&str, bool)]) -> Vec<OnDisk> {
        names
            .iter()
            .map(|(n, exact)| OnDisk {
                name: n.to_string(),
                exact: *exact,
            })
            .collect()
    }

    #[test]
    fn names_apart_under_folding_need_nothing() {
        let local = disk(&[("a.txt", true), ("b/a.txt", true)]);
        let remote = BTreeMap::from([("a.txt".to_string(), 1), ("c.txt".to_string(), 2)]);
        assert!(apart(&local, &remote, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_new_local_name_gives_way_to_the_servers() {
        let local = disk(&[("Report.txt", true)]);
        let remote = BTreeMap::from([("report.txt".to_string(), 4)]);
        assert_eq!(
            apart(&local, &remote, &BTreeSet::new()),
            vec![Rename::Local {
                why: Why::Case,
                index: 0,
                to: "Report (case conflict).txt".into()
            }]
        );
    }

    #[test]
    fn server_names_that_collide_are_moved_and_the_agreed_one_stays() {
        let local = disk(&[("docs/a.md", true)]);
        let remote = BTreeMap::from([
            ("docs/A.md".to_string(), 2),
            ("docs/a.md".to_string(), 5),
            ("docs/A.MD".to_string(), 7),
        ]);
        let base = BTreeSet::from(["docs/a.md".to_string()]);
        let r = apart(&local, &remote, &base);
        assert_eq!(
            r,
            vec![
                Rename::Remote {
                    why: Why::Case,
                    from: "docs/A.MD".into(),
                    version: 7,
                    to: "docs/A (case conflict).MD".into()
                },
                Rename::Remote {
                    why: Why::Case,
                    from: "docs/A.md".into(),
                    version: 2,
                    to: "docs/A (case conflict 2).md".into()
                },
            ]
        );
    }

    #[test]
    fn a_name_on_both_sides_moves_to_the_same_new_name_on_both() {
        let local = disk(&[("x.txt", true), ("X.txt", true)]);
        let remote = BTreeMap::from([("x.txt".to_string(), 1), ("X.txt".to_string(), 3)]);
        let base = BTreeSet::from(["x.txt".to_string(), "X.txt".to_string()]);
        let r = apart(&local, &remote, &base);
        assert_eq!(
            r,
            vec![
                Rename::Remote {
                    why: Why::Case,
                    from: "x.txt".into(),
                    version: 1,
                    to: "x (case conflict).txt".into()
                },
                Rename::Local {
                    why: Why::Case,
                    index: 0,
                    to: "x (case conflict).txt".into()
                },
            ]
        );
    }

    #[test]
    fn a_decomposed_spelling_beside_the_composed_one_is_renamed() {
        // Both spellings on a disk that keeps them apart: the exact one
        // keeps the name.
        let local = disk(&[("caf\u{e9}.txt", false), ("caf\u{e9}.txt", true)]);
        let r = apart(&local, &BTreeMap::new(), &BTreeSet::new());
        assert_eq!(
            r,
            vec![Rename::Local {
                why: Why::Case,
                index: 0,
                to: "caf\u{e9} (case conflict).txt".into()
            }]
        );
    }

    #[test]
    fn two_spellings_of_a_folder_are_moved_apart_before_any_file() {
        // Here `docs/b.txt` and an unrelated `Report.txt`/`report.txt`
        // pair; on the server `Docs/a.txt` (agreed) and `Docs/sub/c.txt`.
        let local = disk(&[
            ("docs/b.txt", true),
            ("Report.txt", true),
            ("report.txt", true),
        ]);
        let remote = BTreeMap::from([
            ("Docs/a.txt".to_string(), 3),
            ("Docs/sub/c.txt".to_string(), 1),
        ]);
        let base = BTreeSet::from(["Docs/a.txt".to_string()]);
        assert_eq!(
            apart(&local, &remote, &base),
            vec![Rename::Local {
                why: Why::Case,
                index: 0,
                to: "docs (case conflict)/b.txt".into()
            }],
            "the folder first; the files' turn comes on the next pass"
        );
        // Deeper folders wait for the shallower, and the server's files
        // under a losing spelling move too.
        let remote = BTreeMap::from([
            ("A/x/1.txt".to_string(), 1),
            ("a/X/2.txt".to_string(), 2),
            ("a/y.txt".to_string(), 4),
        ]);
        assert_eq!(
            apart(&[], &remote, &BTreeSet::from(["A/x/1.txt".to_string()])),
            vec![
                Rename::Remote {
                    why: Why::Case,
                    from: "a/X/2.txt".into(),
                    version: 2,
                    to: "a (case conflict)/X/2.txt".into()
                },
                Rename::Remote {
                    why: Why::Case,
                    from: "a/y.txt".into(),
                    version: 4,
                    to: "a (case conflict)/y.txt".into()
                },
            ]
        );
    }

    #[test]
    fn new_names_avoid_names_already_taken() {
        let local = disk(&[
            ("a.txt", true),
            ("A.txt", true),
            ("a (case conflict).txt", true),
        ]);
        let r = apart(&local, &BTreeMap::new(), &BTreeSet::new());
        assert_eq!(
            r,
            vec![Rename::Local {
                why: Why::Case,
                index: 0,
                to: "a (case conflict 2).txt".into()
            }]
        );
        assert_eq!(fold("Caf\u{65}\u{301}.TXT"), "caf\u{e9}.txt");
    }

    #[test]
    fn a_file_named_like_a_folder_moves_aside_on_each_side_that_has_it() {
        // Here a file `notes`, on the server `notes/a.md`; a file `Plan.txt`
        // on both sides and `plan.TXT/b.md` here.
        let local = disk(&[("notes", true), ("Plan.txt", true), ("plan.TXT/b.md", true)]);
        let remote = BTreeMap::from([("notes/a.md".to_string(), 1), ("Plan.txt".to_string(), 6)]);
        let base = BTreeSet::from(["Plan.txt".to_string()]);
        assert_eq!(
            apart(&local, &remote, &base),
            vec![
                Rename::Remote {
                    from: "Plan.txt".into(),
                    version: 6,
                    to: "Plan (folder conflict).txt".into(),
                    why: Why::Folder,
                },
                Rename::Local {
                    index: 0,
                    to: "notes (folder conflict)".into(),
                    why: Why::Folder,
                },
                Rename::Local {
                    index: 1,
                    to: "Plan (folder conflict).txt".into(),
                    why: Why::Folder,
                },
            ]
        );
    }

    #[test]
    fn a_pending_deletion_neither_moves_nor_makes_a_folder() {
        // `x` was deleted here and `x/y` made: the server's `x` is about to
        // be deleted, not moved. And `d/old`, deleted on the server, leaves
        // its new file `d` nothing to clash with.
        let local = disk(&[("x/y", true), ("d/old", true)]);
        let remote = BTreeMap::from([("x".to_string(), 3), ("d".to_string(), 1)]);
        let base = BTreeSet::from(["x".to_string(), "d/old".to_string()]);
        let going = BTreeSet::from(["x".to_string(), "d/old".to_string()]);
        assert!(keep_apart(&local, &remote, &base, &going).is_empty());
        // Without the deletions pending both would move.
        assert_eq!(
            keep_apart(&local, &remote, &base, &BTreeSet::new()).len(),
            2
        );
    }
}
