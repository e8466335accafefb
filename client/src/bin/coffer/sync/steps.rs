//! Carrying out a pass: moving colliding names apart, then the planned
//! steps (uploads, downloads, deletes, conflicts), several at once, each
//! checking that its side is still as the pass saw it.

use super::scan::{absent, stat};
use super::state::Synced;
use super::{apart, Snapshot, Sync, SAVE_EVERY};
use crate::flight::{self, Flight};
use crate::resume::ResumeRecord;
use anyhow::{bail, Context};
use apart::{folders_of, Rename};
use coffer_client::native::files::{create_folders_below, download_file_if, plan_file, FileSource};
use coffer_client::plan::Action;
use coffer_client::{Observer, PutMode};
use futures::StreamExt;
use indicatif::ProgressBar;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

impl Sync<'_> {
    /// Carries out the renames that keep colliding names apart.
    pub(super) async fn keep_apart(
        &self,
        renames: Vec<(Rename, String, Option<PathBuf>)>,
    ) -> anyhow::Result<()> {
        self.state.lock().unwrap().clear_cursor()?;
        for (r, what, disk) in renames {
            match r {
                Rename::Remote {
                    from,
                    version,
                    to,
                    why,
                } => {
                    match self
                        .ctx
                        .coffer
                        .move_file(&self.name(&from), &self.name(&to), PutMode::Update(version))
                        .await
                    {
                        Ok(_) => {}
                        // Changed meanwhile (or the new name was taken
                        // since the listing): the next pass looks again.
                        Err(e) if e.is_stale() || e.is_not_found() || e.is_already_exists() => {
                            continue
                        }
                        Err(e) => {
                            return Err(e).context(format!("moving {from} on the server"));
                        }
                    }
                    self.say(format!("{from} is {to} now: {}", why.reason()));
                }
                Rename::Local { mut to, why, .. } => {
                    let from = disk.expect("a local rename has its file");
                    if absent(&from) {
                        continue; // gone since the scan
                    }
                    let mut dest;
                    if parent(&to) == parent(&what) {
                        // Beside it: its folder may be spelled otherwise
                        // on disk. A name taken by a file the scan did not
                        // count (an ignored one) moves on to the next.
                        dest = from.with_file_name(file_name(&to));
                        let mut n = 1;
                        while !absent(&dest) {
                            n += 1;
                            to = apart::conflict_name(&what, n, why);
                            dest = from.with_file_name(file_name(&to));
                        }
                    } else {
                        // Into a new folder (a folder's losing spelling).
                        dest = self.abs(&to);
                        if !absent(&dest) {
                            continue;
                        }
                        self.make_folders(&to)?;
                    }
                    match rename_no_clobber(&from, &dest) {
                        Ok(()) => {}
                        // Taken since the check: the next pass looks again.
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(e) => {
                            return Err(e).context(format!("cannot rename {}", from.display()))
                        }
                    }
                    self.prune_dirs(&from);
                    self.say(format!("{} is {to} now: {}", from.display(), why.reason()));
                }
            }
            self.done.lock().unwrap().renamed += 1;
        }
        Ok(())
    }

    /// Runs the steps, several at a time (see [`Flight`]), in three phases (see
    /// [`phases`]). The state is saved as steps finish; on an error, what
    /// finished is saved and the rest waits for the next pass.
    pub(super) async fn execute(
        &self,
        actions: Vec<Action>,
        snap: &Snapshot,
    ) -> anyhow::Result<()> {
        // The sides are about to change: the next pass lists again.
        self.state.lock().unwrap().clear_cursor()?;
        let bar = self.pass_bar(&actions, snap);
        let mut finished = 0;
        // A step that fails is reported and the others go on: one file
        // (unreadable, or a file where the other side has a folder) must
        // not hold up the rest.
        let mut failed = Vec::new();
        // Steps of different files run at once, as many as the files'
        // sizes allow (see `flight`): small uploads share batch calls.
        let flight = Flight::new();
        for phase in phases(&actions) {
            let mut steps = futures::stream::iter(phase.into_iter().map(|a| {
                let flight = &flight;
                async move {
                    let _turn = match a {
                        Action::Download { .. } | Action::Conflict { .. } => {
                            flight.download(snap.bytes(a)).await
                        }
                        _ => flight.admit(snap.bytes(a)).await,
                    };
                    (a.path(), self.step(a, snap).await)
                }
            }))
            .buffer_unordered(flight::FILES);
            while let Some((path, r)) = steps.next().await {
                if let Err(e) = r {
                    self.say(format!("coffer: sync: {path}: {e:#}"));
                    failed.push(path);
                }
                finished += 1;
                if finished % SAVE_EVERY == 0 {
                    self.save()?;
                }
            }
        }
        bar.finish_and_clear();
        *self.bar.lock().unwrap() = ProgressBar::hidden();
        self.save()?;
        match failed.as_slice() {
            [] => Ok(()),
            [one] => bail!("{one} could not be synced (above); the other files were"),
            [one, ..] => bail!(
                "{} files could not be synced (above), {one} among them; the other files were",
                failed.len()
            ),
        }
    }

    async fn step(&self, a: &Action, snap: &Snapshot) -> anyhow::Result<()> {
        let path = a.path().to_string();
        let moved = Moved::new(self.bar.lock().unwrap().clone());
        match a {
            Action::Upload { base, .. } => {
                let abs = self.disk(&path, snap);
                if self.upload(&path, &abs, &path, *base, snap, &moved).await? {
                    self.say(format!("up: {path}"));
                    self.done.lock().unwrap().uploaded += 1;
                }
            }
            Action::Download {
                version, replaces, ..
            } => {
                if !self.unchanged(&path, snap)
                    || replaces.as_ref() != snap.local.get(&path).map(|l| &l.hash)
                {
                    self.done.lock().unwrap().deferred += 1;
                    return Ok(());
                }
                // Checked again just before the rename: an edit saved
                // during the transfer is never replaced.
                let still = || self.unchanged(&path, snap);
                if !self.download(&path, *version, snap, &moved, &still).await? {
                    self.done.lock().unwrap().deferred += 1;
                    return Ok(());
                }
                self.say(format!("down: {path}"));
                self.done.lock().unwrap().downloaded += 1;
            }
            Action::DeleteRemote { base, .. } => {
                match self
                    .ctx
                    .coffer
                    .delete(&self.name(&path), PutMode::from_base(Some(*base)))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) if e.is_stale() => {
                        self.done.lock().unwrap().deferred += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(e).context(format!("deleting {path} on the server")),
                }
                self.state.lock().unwrap().remove(&path);
                self.say(format!("deleted on the server (restorable): {path}"));
                self.done.lock().unwrap().deleted_remote += 1;
            }
            Action::DeleteLocal { .. } => {
                if !self.unchanged(&path, snap) {
                    self.done.lock().unwrap().deferred += 1;
                    return Ok(());
                }
                let abs = self.disk(&path, snap);
                std::fs::remove_file(&abs)
                    .with_context(|| format!("cannot delete {}", abs.display()))?;
                self.prune_dirs(&abs);
                self.state.lock().unwrap().remove(&path);
                self.say(format!("deleted here: {path}"));
                self.done.lock().unwrap().deleted_local += 1;
            }
            Action::Conflict {
                keep_as, version, ..
            } => {
                let here = self.disk(&path, snap);
                let aside = here.with_file_name(file_name(keep_as));
                if !self.unchanged(&path, snap) || !absent(&aside) {
                    self.done.lock().unwrap().deferred += 1;
                    return Ok(());
                }
                // The local edit moves aside and goes up under its own
                // name; the server's comes down to the path, unless
                // something was saved there meanwhile (the next pass
                // sees it).
                match rename_no_clobber(&here, &aside) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        self.done.lock().unwrap().deferred += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(e).context(format!("cannot move {path} aside")),
                }
                self.upload(keep_as, &aside, &path, 0, snap, &moved).await?;
                let still = || absent(&here);
                self.download(&path, *version, snap, &moved, &still).await?;
                self.say(format!(
                    "conflict: {path}: this folder's copy is now {keep_as}"
                ));
                self.done.lock().unwrap().conflicts += 1;
            }
            Action::Agree { version, hash, .. } => {
                let f = snap.found.get(&path);
                let chunks = snap
                    .plans
                    .get(&path)
                    .map(|p| p.chunks.clone())
                    .unwrap_or_default();
                self.state.lock().unwrap().insert(
                    path,
                    Synced {
                        version: *version,
                        hash: hash.clone(),
                        size: f.map_or(0, |f| f.size),
                        mtime: f.map_or(0, |f| f.mtime),
                        chunks,
                    },
                );
                return Ok(());
            }
            Action::Forget { .. } => {
                self.state.lock().unwrap().remove(&path);
                return Ok(());
            }
        }
        moved.finish(snap.bytes(a));
        self.tick(&path);
        Ok(())
    }

    /// Uploads `rel` if the server still has version `base` of it (0:
    /// none); `false` if it moved on meanwhile (the next pass sees why).
    /// `scanned_as` is the name the scan found the file under (it differs
    /// for a conflict copy moved aside): its chunk list is reused if the
    /// file has not changed since.
    async fn upload(
        &self,
        rel: &str,
        abs: &Path,
        scanned_as: &str,
        base: u64,
        snap: &Snapshot,
        moved: &Moved,
    ) -> anyhow::Result<bool> {
        let before = stat(abs);
        let known = snap
            .found
            .get(scanned_as)
            .filter(|f| before == Some((f.size, f.mtime)))
            .and_then(|_| snap.plans.get(scanned_as));
        let plan = match known {
            Some(p) => p.clone(),
            None => plan_file(abs).await?,
        };
        let source = FileSource::new(abs);
        // The session id is kept as `coffer put` keeps it: a run killed
        // mid-upload is resumed by the next, not left open beside a new
        // session (open sessions per user are capped).
        let record = ResumeRecord::for_upload(&self.ctx.server, &self.name(rel), abs)?;
        let resume = record.load();
        let r = self
            .ctx
            .coffer
            .upload(
                &self.name(rel),
                &plan,
                &source,
                resume.as_deref(),
                PutMode::from_base(Some(base)),
                &KeepSession(&record, moved),
            )
            .await;
        let report = match r {
            Ok(r) => {
                record.clear();
                r
            }
            Err(e) if e.is_stale() => {
                self.done.lock().unwrap().deferred += 1;
                return Ok(false);
            }
            Err(e) => return Err(e).context(format!("uploading {rel}")),
        };
        // A file written during the upload is read again next pass.
        let after = stat(abs);
        self.state.lock().unwrap().insert(
            rel.to_string(),
            Synced {
                version: report.metadata.version_number,
                hash: plan.content_hash,
                size: plan.size,
                mtime: if before == after {
                    after.map_or(0, |a| a.1)
                } else {
                    0
                },
                chunks: plan.chunks,
            },
        );
        Ok(true)
    }

    /// Fetches `version` of `rel` into place: a temporary file, renamed
    /// once verified and only if `still()` holds just before; `false` if
    /// it did not (nothing changed).
    async fn download(
        &self,
        rel: &str,
        version: u64,
        snap: &Snapshot,
        moved: &Moved,
        still: &dyn Fn() -> bool,
    ) -> anyhow::Result<bool> {
        let abs = self.disk(rel, snap);
        if !snap.found.contains_key(rel) {
            // A new file: its folders are made here, never through a link.
            self.make_folders(rel)?;
        }
        // Folders holding no file are not synced, so the other side could
        // not see one here: it gives way. One holding anything stays, and
        // the download fails.
        remove_empty_folders(&abs);
        let meta = download_file_if(
            &self.ctx.coffer,
            &self.name(rel),
            version,
            &abs,
            moved,
            still,
            &|tmp| self.state.lock().unwrap().claim_partial(tmp),
        )
        .await
        .with_context(|| format!("downloading {rel}"))?;
        let Some((meta, written)) = meta else {
            return Ok(false);
        };
        // What was written, not what is there now: an edit that landed
        // since is seen (and uploaded) by the next pass.
        let (size, mtime) = super::scan::size_and_time(&written);
        self.state.lock().unwrap().insert(
            rel.to_string(),
            Synced {
                version: meta.version_number,
                hash: meta.content_hash,
                size,
                mtime,
                chunks: Vec::new(),
            },
        );
        Ok(true)
    }

    /// Makes the folders `rel` (a file's name) goes in, refusing to pass
    /// through a link or a file ([`create_folders_below`]).
    fn make_folders(&self, rel: &str) -> anyhow::Result<()> {
        let Some((dir, _)) = rel.rsplit_once('/') else {
            return Ok(());
        };
        let dir: PathBuf = dir.split('/').collect();
        create_folders_below(&self.root, &dir)
            .with_context(|| format!("cannot make the folders of {rel}"))
    }

    /// Removes the folders a delete left empty, up to the root.
    fn prune_dirs(&self, file: &Path) {
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| *d != self.root && d.starts_with(&self.root)) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

/// Removes `path` if it is a folder holding nothing but empty folders
/// (never a file, a link or anything else in them).
fn remove_empty_folders(path: &Path) {
    fn is_dir(p: &Path) -> bool {
        std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
    }
    fn only_folders(p: &Path) -> bool {
        is_dir(p)
            && std::fs::read_dir(p)
                .is_ok_and(|mut entries| entries.all(|e| e.is_ok_and(|e| only_folders(&e.path()))))
    }
    fn remove(p: &Path) {
        if let Ok(entries) = std::fs::read_dir(p) {
            for e in entries.flatten() {
                remove(&e.path());
            }
        }
        // Fails, as it should, if anything came in meanwhile.
        let _ = std::fs::remove_dir(p);
    }
    if only_folders(path) {
        remove(path);
    }
}

/// The last segment of a `/`-separated path.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Renames `from` to `to` unless something is at `to` (AlreadyExists):
/// a hard link, which never replaces, then the old name removed. Where
/// links are not supported (FAT, some network mounts) a plain rename
/// after a check, with a moment's race.
fn rename_no_clobber(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => std::fs::remove_file(from),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if !absent(to) => Err(std::io::ErrorKind::AlreadyExists.into()),
        Err(_) => std::fs::rename(from, to),
    }
}

/// All but the last segment of a `/`-separated path ("" at the top).
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// One step's bytes on the pass's bar; what a transfer did not report
/// (chunks the server already had) is added when the step ends.
struct Moved {
    bar: ProgressBar,
    bytes: AtomicU64,
}

impl Moved {
    fn new(bar: ProgressBar) -> Self {
        Moved {
            bar,
            bytes: AtomicU64::new(0),
        }
    }

    fn finish(&self, size: u64) {
        let seen = self.bytes.load(Ordering::Relaxed);
        self.bar.inc(size.saturating_sub(seen));
    }
}

impl Observer for Moved {
    fn advance(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.bar.inc(bytes);
    }
}

/// Saves an upload's session id as soon as it exists, and shows its
/// bytes on the bar.
struct KeepSession<'a>(&'a ResumeRecord, &'a Moved);

impl Observer for KeepSession<'_> {
    fn session(&self, upload_id: &str, _resumed: bool) {
        // Without the record the upload still works; only resuming it
        // after a kill would not.
        let _ = self.0.save(upload_id);
    }

    fn advance(&self, bytes: u64) {
        self.1.advance(bytes);
    }
}

/// The steps in the order they may run: first everything but local
/// deletes; then local deletes, so removing a folder a delete emptied
/// never races a download into it; last the writes to a name a delete
/// frees, where a file gives way to a folder or a folder to a file (`x`
/// deleted and `x/y` written, or the other way round), which would fail
/// while the old name is still there.
fn phases(actions: &[Action]) -> [Vec<&Action>; 3] {
    let deleted: BTreeSet<&str> = actions
        .iter()
        .filter(|a| matches!(a, Action::DeleteLocal { .. } | Action::DeleteRemote { .. }))
        .map(Action::path)
        .collect();
    let deleted_folders: BTreeSet<&str> = deleted.iter().flat_map(|d| folders_of(d)).collect();
    let waits = |a: &Action| {
        let p = a.path();
        matches!(
            a,
            Action::Upload { .. } | Action::Download { .. } | Action::Conflict { .. }
        ) && (deleted_folders.contains(p) || folders_of(p).any(|f| deleted.contains(f)))
    };
    let mut out: [Vec<&Action>; 3] = Default::default();
    for a in actions {
        let phase = match a {
            Action::DeleteLocal { .. } => 1,
            a if waits(a) => 2,
            _ => 0,
        };
        out[phase].push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rename_never_replaces_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let e = rename_no_clobber(&a, &b).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        assert_eq!(std::fs::read(&a).unwrap(), b"a");
        rename_no_clobber(&a, &c).unwrap();
        assert!(absent(&a));
        assert_eq!(std::fs::read(&c).unwrap(), b"a");
    }

    #[test]
    fn writes_to_a_name_a_delete_frees_wait_for_the_deletes() {
        let up = |p: &str| Action::Upload {
            path: p.into(),
            base: 0,
        };
        let down = |p: &str| Action::Download {
            path: p.into(),
            version: 1,
            hash: "h".into(),
            replaces: None,
        };
        let actions = vec![
            up("x/y"),
            Action::DeleteRemote {
                path: "x".into(),
                base: 2,
            },
            down("d"),
            Action::DeleteLocal {
                path: "d/e/old".into(),
                hash: "h".into(),
            },
            up("other"),
            down("x.txt"),
        ];
        let [first, deletes, last] = phases(&actions);
        let paths = |v: Vec<&Action>| v.iter().map(|a| a.path().to_string()).collect::<Vec<_>>();
        assert_eq!(paths(first), ["x", "other", "x.txt"]);
        assert_eq!(paths(deletes), ["d/e/old"]);
        assert_eq!(paths(last), ["x/y", "d"]);
    }

    #[test]
    fn only_folders_of_empty_folders_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(empty.join("a/b")).unwrap();
        std::fs::create_dir_all(empty.join("c")).unwrap();
        remove_empty_folders(&empty);
        assert!(absent(&empty));

        let full = dir.path().join("full");
        std::fs::create_dir_all(full.join("a/b")).unwrap();
        std::fs::create_dir_all(full.join("c")).unwrap();
        std::fs::write(full.join("a/b/kept.txt"), b"kept").unwrap();
        remove_empty_folders(&full);
        assert_eq!(std::fs::read(full.join("a/b/kept.txt")).unwrap(), b"kept");
        assert!(
            full.join("c").is_dir(),
            "a folder that stays is left as it was"
        );

        let file = dir.path().join("file");
        std::fs::write(&file, b"f").unwrap();
        remove_empty_folders(&file);
        assert_eq!(std::fs::read(&file).unwrap(), b"f");
    }
}
