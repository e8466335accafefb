//! `coffer sync LOCAL REMOTE`: keeps a local folder and a remote folder
//! the same, both ways. A pass scans the folder (reading only files whose
//! size or time changed since the last pass), lists the remote folder,
//! plans with [`coffer_client::plan`] against what the last pass left
//! agreed, checks the plan against the safety rules, and carries it out.
//! The agreed state lives in the state directory, never in the folder,
//! and is saved as the pass goes: a pass killed at any point leaves
//! states the next pass's plan finishes (an upload not yet recorded is
//! found on both sides with the same content, and agreed).

use crate::resume::ResumeRecord;
use crate::Ctx;
use anyhow::{bail, Context};
use coffer_client::native::files::{download_file, plan_file, FileSource};
use coffer_client::plan::{self, Action, BaseFile, LocalFile, Refusal, RemoteFile, Tree};
use coffer_client::NoProgress;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// Passes `--once` makes before it gives up on agreeing (each pass after
/// the first only finishes what changed during the one before).
const MAX_PASSES: usize = 3;

/// The state is saved after this many steps (and at the end of a pass).
const SAVE_EVERY: usize = 64;

/// Steps of a pass run at once (uploads, downloads, deletes of different
/// files): small files are round trips, not bytes. 32 measured no faster
/// than 16 (BENCHMARKS.md), and each step may hold a few chunks.
const PARALLEL_STEPS: usize = 16;

/// How often continuous sync looks at the folder for changes.
const LOCAL_POLL: Duration = Duration::from_millis(500);

/// What both sides held when they last agreed on a path, and the local
/// file's size and time then (a file unchanged in both is not read again).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Synced {
    version: u64,
    hash: String,
    size: u64,
    /// Nanoseconds since the epoch; 0 if unknown (the file is read again).
    mtime: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    files: BTreeMap<String, Synced>,
}

/// A file found in the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    path: PathBuf,
    size: u64,
    mtime: u64,
}

/// Everything a pass plans from.
struct Snapshot {
    found: BTreeMap<String, Found>,
    local: Tree<LocalFile>,
}

/// Counts of what a run did.
#[derive(Debug, Default)]
struct Done {
    uploaded: u64,
    downloaded: u64,
    deleted_remote: u64,
    deleted_local: u64,
    conflicts: u64,
    /// Steps skipped because a side changed after the listing.
    deferred: u64,
}

struct Sync<'a> {
    ctx: &'a Ctx,
    root: PathBuf,
    remote: String,
    state_path: PathBuf,
    /// Steps run concurrently; each records its outcome here.
    state: std::sync::Mutex<State>,
    force: bool,
    done: std::sync::Mutex<Done>,
}

pub async fn run(
    ctx: &Ctx,
    local: &Path,
    remote: &str,
    once: bool,
    force: bool,
    status: bool,
) -> anyhow::Result<()> {
    let remote = coffer_client::normalize_name(remote)?;
    let meta = std::fs::metadata(local).with_context(|| {
        format!(
            "{} is not there: create it, or check that its disk is mounted; nothing was changed",
            local.display()
        )
    })?;
    if !meta.is_dir() {
        bail!("{} is not a folder", local.display());
    }
    let root = local.canonicalize()?;
    let key = blake3::hash(format!("{}\0{}\0{remote}", ctx.server, root.display()).as_bytes());
    let state_path = crate::resume::state_dir()?
        .join("sync")
        .join(format!("{}.json", &key.to_hex()[..32]));
    // One sync per folder at a time: the lock is held while this runs,
    // and a killed run's lock goes with its process.
    std::fs::create_dir_all(state_path.parent().expect("under the state dir"))?;
    let lock = std::fs::File::create(state_path.with_extension("lock"))
        .with_context(|| format!("cannot create the lock next to {}", state_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "another coffer sync of {} is running; stop it first",
            root.display()
        );
    }
    let state = match std::fs::read(&state_path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("the sync state {} is damaged", state_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(e).context(format!("cannot read {}", state_path.display())),
    };
    let mut s = Sync {
        ctx,
        root,
        remote,
        state_path,
        state: std::sync::Mutex::new(state),
        force,
        done: Default::default(),
    };
    if status {
        // What is pending, safe or not: nothing runs.
        s.force = true;
        let (actions, _) = s.prepare().await?;
        return s.report_pending(&actions);
    }
    if once {
        let agreed = s.until_agreed().await?;
        s.report(agreed);
        if !agreed {
            bail!("the folders do not agree yet: files kept changing during {MAX_PASSES} passes");
        }
        return Ok(());
    }
    // Continuous: a pass whenever either side changes.
    let mut cursor = ctx.coffer.latest_cursor().await?;
    loop {
        if let Err(e) = s.until_agreed().await {
            eprintln!("coffer: sync: {e:#}");
        }
        // Names, sizes and times: whether the folder changed since.
        let seen = s.scan()?;
        let mut watch = ctx.coffer.watch(&cursor).await?;
        loop {
            tokio::select! {
                page = watch.next() => match page? {
                    Some(p) => {
                        cursor = p.cursor;
                        if !p.changes.is_empty() { break; }
                    }
                    None => break,
                },
                _ = tokio::time::sleep(LOCAL_POLL) => {
                    if s.scan()? != seen { break; }
                }
            }
        }
    }
}

impl Sync<'_> {
    /// Passes until a plan is empty; `false` if they never got there.
    async fn until_agreed(&self) -> anyhow::Result<bool> {
        for _ in 0..MAX_PASSES {
            let (actions, snapshot) = self.prepare().await?;
            if actions.is_empty() {
                return Ok(true);
            }
            self.execute(actions, &snapshot).await?;
        }
        Ok(self.prepare().await?.0.is_empty())
    }

    /// Scans, lists and plans, and checks the plan is safe to run.
    async fn prepare(&self) -> anyhow::Result<(Vec<Action>, Snapshot)> {
        let found = self.scan()?;
        if found.is_empty() && !self.state.lock().unwrap().files.is_empty() && !self.force {
            bail!(
                "{} is empty, but {} files were synced from it: is its disk unmounted? \
                 Nothing was deleted; run with --force to delete them on the server too",
                self.root.display(),
                self.state.lock().unwrap().files.len()
            );
        }
        let mut local = Tree::new();
        for (name, f) in &found {
            // Unchanged since the last pass (same size and time): not read.
            let known = self
                .state
                .lock()
                .unwrap()
                .files
                .get(name)
                .filter(|s| s.size == f.size && s.mtime == f.mtime && s.mtime != 0)
                .map(|s| s.hash.clone());
            let hash = match known {
                Some(h) => h,
                None => plan_file(&f.path).await?.content_hash,
            };
            local.insert(name.clone(), LocalFile { hash, size: f.size });
        }
        let prefix = format!("{}/", self.remote);
        let remote: Tree<RemoteFile> = self
            .ctx
            .coffer
            .list(&prefix)
            .await
            .with_context(|| format!("listing {prefix}"))?
            .into_iter()
            .filter_map(|m| {
                let rel = m.file_name.strip_prefix(&prefix)?.to_string();
                Some((
                    rel,
                    RemoteFile {
                        version: m.version_number,
                        hash: m.content_hash,
                        size: m.size,
                    },
                ))
            })
            .collect();
        let base: Tree<BaseFile> = self
            .state
            .lock()
            .unwrap()
            .files
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    BaseFile {
                        version: s.version,
                        hash: s.hash.clone(),
                    },
                )
            })
            .collect();
        let host = hostname();
        let stamp = stamp();
        // A conflict copy's name is new on both sides: two conflicts of one
        // file in the same second get "(2)", "(3)"...
        let actions = plan::plan(&local, &remote, &base, &|p| {
            let first = plan::conflict_name(p, &host, &stamp);
            let mut name = first.clone();
            let mut n = 1;
            while local.contains_key(&name) || remote.contains_key(&name) {
                n += 1;
                name = plan::conflict_name(p, &host, &format!("{stamp} ({n})"));
            }
            name
        });
        if !self.force {
            if let Err(Refusal::MassDelete { deletes, of }) = plan::check(&actions, &base) {
                bail!(
                    "this pass would delete {deletes} of the {of} synced files; \
                     nothing was changed. If that is what you want, run with --force"
                );
            }
        }
        Ok((actions, Snapshot { found, local }))
    }

    /// Runs the steps, [`PARALLEL_STEPS`] at a time; local deletes last,
    /// so removing a folder a delete emptied never races a download into
    /// it. The state is saved as steps finish; on an error, what finished
    /// is saved and the rest waits for the next pass.
    async fn execute(&self, actions: Vec<Action>, snap: &Snapshot) -> anyhow::Result<()> {
        let (last, first): (Vec<&Action>, Vec<&Action>) = actions
            .iter()
            .partition(|a| matches!(a, Action::DeleteLocal { .. }));
        let mut finished = 0;
        for phase in [first, last] {
            let mut steps = futures::stream::iter(phase.into_iter().map(|a| self.step(a, snap)))
                .buffer_unordered(PARALLEL_STEPS);
            while let Some(r) = steps.next().await {
                if let Err(e) = r {
                    drop(steps);
                    self.save()?;
                    return Err(e);
                }
                finished += 1;
                if finished % SAVE_EVERY == 0 {
                    self.save()?;
                }
            }
        }
        self.save()
    }

    fn name(&self, rel: &str) -> String {
        format!("{}/{rel}", self.remote)
    }

    fn abs(&self, rel: &str) -> PathBuf {
        rel.split('/').fold(self.root.clone(), |p, c| p.join(c))
    }

    /// Whether the local file is as the scan found it (or still absent).
    fn unchanged(&self, rel: &str, snap: &Snapshot) -> bool {
        let now = stat(&self.abs(rel));
        match (snap.found.get(rel), now) {
            (Some(f), Some((size, mtime))) => f.size == size && f.mtime == mtime,
            (None, None) => true,
            _ => false,
        }
    }

    fn say(&self, line: String) {
        if !self.ctx.out.quiet {
            eprintln!("{line}");
        }
    }

    async fn step(&self, a: &Action, snap: &Snapshot) -> anyhow::Result<()> {
        let path = a.path().to_string();
        match a {
            Action::Upload { base, .. } => {
                if self.upload(&path, *base).await? {
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
                self.download(&path, *version).await?;
                self.say(format!("down: {path}"));
                self.done.lock().unwrap().downloaded += 1;
            }
            Action::DeleteRemote { base, .. } => {
                match self
                    .ctx
                    .coffer
                    .delete_if(&self.name(&path), Some(*base))
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
                self.state.lock().unwrap().files.remove(&path);
                self.say(format!("deleted on the server (restorable): {path}"));
                self.done.lock().unwrap().deleted_remote += 1;
            }
            Action::DeleteLocal { .. } => {
                if !self.unchanged(&path, snap) {
                    self.done.lock().unwrap().deferred += 1;
                    return Ok(());
                }
                let abs = self.abs(&path);
                std::fs::remove_file(&abs)
                    .with_context(|| format!("cannot delete {}", abs.display()))?;
                self.prune_dirs(&abs);
                self.state.lock().unwrap().files.remove(&path);
                self.say(format!("deleted here: {path}"));
                self.done.lock().unwrap().deleted_local += 1;
            }
            Action::Conflict {
                keep_as, version, ..
            } => {
                if !self.unchanged(&path, snap) || self.abs(keep_as).exists() {
                    self.done.lock().unwrap().deferred += 1;
                    return Ok(());
                }
                // The local edit moves aside and goes up under its own
                // name; the server's comes down to the path.
                std::fs::rename(self.abs(&path), self.abs(keep_as))
                    .with_context(|| format!("cannot move {path} aside"))?;
                self.upload(keep_as, 0).await?;
                self.download(&path, *version).await?;
                self.say(format!(
                    "conflict: {path}: this folder's copy is now {keep_as}"
                ));
                self.done.lock().unwrap().conflicts += 1;
            }
            Action::Agree { version, hash, .. } => {
                let f = snap.found.get(&path);
                self.state.lock().unwrap().files.insert(
                    path,
                    Synced {
                        version: *version,
                        hash: hash.clone(),
                        size: f.map_or(0, |f| f.size),
                        mtime: f.map_or(0, |f| f.mtime),
                    },
                );
            }
            Action::Forget { .. } => {
                self.state.lock().unwrap().files.remove(&path);
            }
        }
        Ok(())
    }

    /// Uploads `rel` if the server still has version `base` of it (0:
    /// none); `false` if it moved on meanwhile (the next pass sees why).
    async fn upload(&self, rel: &str, base: u64) -> anyhow::Result<bool> {
        let abs = self.abs(rel);
        let before = stat(&abs);
        let plan = plan_file(&abs).await?;
        let source = FileSource::new(&abs);
        // The session id is kept as `coffer put` keeps it: a run killed
        // mid-upload is resumed by the next, not left open beside a new
        // session (open sessions per user are capped).
        let record = ResumeRecord::for_upload(&self.ctx.server, &self.name(rel), &abs)?;
        let resume = record.load();
        let r = self
            .ctx
            .coffer
            .upload_if(
                &self.name(rel),
                &plan,
                &source,
                resume.as_deref(),
                Some(base),
                &KeepSession(&record),
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
        let after = stat(&abs);
        self.state.lock().unwrap().files.insert(
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
            },
        );
        Ok(true)
    }

    /// Fetches `version` of `rel` into place (a temporary file renamed
    /// once verified).
    async fn download(&self, rel: &str, version: u64) -> anyhow::Result<()> {
        let abs = self.abs(rel);
        if let Some(dir) = abs.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let meta = download_file(
            &self.ctx.coffer,
            &self.name(rel),
            version,
            &abs,
            &NoProgress,
        )
        .await
        .with_context(|| format!("downloading {rel}"))?;
        let (size, mtime) = stat(&abs).unwrap_or((meta.size, 0));
        self.state.lock().unwrap().files.insert(
            rel.to_string(),
            Synced {
                version: meta.version_number,
                hash: meta.content_hash,
                size,
                mtime,
            },
        );
        Ok(())
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

    /// Writes the state: a temporary file, synced, renamed over the old.
    fn save(&self) -> anyhow::Result<()> {
        let dir = self.state_path.parent().expect("under the state dir");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, &*self.state.lock().unwrap())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.state_path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", self.state_path.display()))?;
        Ok(())
    }

    /// Every file under the root by its remote-relative name. Temporary
    /// download files are left out; names the server would refuse are
    /// reported and left out.
    fn scan(&self) -> anyhow::Result<BTreeMap<String, Found>> {
        let mut out = BTreeMap::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot read {}", dir.display()))?;
            for e in entries {
                let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
                let path = e.path();
                let file_name = e.file_name();
                let Some(name) = file_name.to_str() else {
                    self.say(format!("skipped (not UTF-8): {}", path.display()));
                    continue;
                };
                if name.starts_with(".coffer-") && name.ends_with(".part") {
                    // A download a killed run left unfinished (this run
                    // holds the folder's lock, so none is in progress).
                    std::fs::remove_file(&path).ok();
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue; // gone since the listing
                };
                if meta.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if !meta.is_file() {
                    continue;
                }
                let rel = path
                    .strip_prefix(&self.root)
                    .expect("under the root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                match coffer_client::normalize_name(&rel) {
                    Ok(n) if n == rel => {
                        let (size, mtime) = size_and_time(&meta);
                        out.insert(rel, Found { path, size, mtime });
                    }
                    _ => self.say(format!("skipped (a name the server refuses): {rel}")),
                }
            }
        }
        Ok(out)
    }

    fn report(&self, agreed: bool) {
        let d = self.done.lock().unwrap();
        let summary = json!({
            "local": self.root,
            "remote": self.remote,
            "agreed": agreed,
            "files": self.state.lock().unwrap().files.len(),
            "uploaded": d.uploaded,
            "downloaded": d.downloaded,
            "deleted_remote": d.deleted_remote,
            "deleted_local": d.deleted_local,
            "conflicts": d.conflicts,
            "deferred": d.deferred,
        });
        self.ctx.out.emit(summary, || {
            format!(
                "sync {} <-> {}/: {} files; {} up, {} down, {} deleted on the server, \
                 {} deleted here, {} conflicts{}",
                self.root.display(),
                self.remote,
                self.state.lock().unwrap().files.len(),
                d.uploaded,
                d.downloaded,
                d.deleted_remote,
                d.deleted_local,
                d.conflicts,
                if agreed { "; in agreement" } else { "" }
            )
        });
    }

    fn report_pending(&self, actions: &[Action]) -> anyhow::Result<()> {
        let pending: Vec<serde_json::Value> = actions
            .iter()
            .map(|a| json!({ "path": a.path(), "action": describe(a) }))
            .collect();
        let lines: Vec<String> = actions
            .iter()
            .map(|a| format!("{:<16} {}", describe(a), a.path()))
            .collect();
        self.ctx.out.emit(
            json!({ "pending": pending, "agreed": actions.is_empty() }),
            || {
                if lines.is_empty() {
                    "nothing to do: the folders agree".to_string()
                } else {
                    lines.join("\n")
                }
            },
        );
        Ok(())
    }
}

fn describe(a: &Action) -> &'static str {
    match a {
        Action::Upload { .. } => "upload",
        Action::Download { .. } => "download",
        Action::DeleteRemote { .. } => "delete on server",
        Action::DeleteLocal { .. } => "delete here",
        Action::Conflict { .. } => "conflict",
        Action::Agree { .. } => "record",
        Action::Forget { .. } => "forget",
    }
}

fn size_and_time(meta: &std::fs::Metadata) -> (u64, u64) {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    (meta.len(), mtime)
}

fn stat(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| size_and_time(&m))
}

/// Saves an upload's session id as soon as it exists.
struct KeepSession<'a>(&'a ResumeRecord);

impl coffer_client::Observer for KeepSession<'_> {
    fn session(&self, upload_id: &str, _resumed: bool) {
        // Without the record the upload still works; only resuming it
        // after a kill would not.
        let _ = self.0.save(upload_id);
    }
}

/// This computer's name, for conflict copies.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this computer".into())
}

/// Now, as conflict copies name it: `YYYY-MM-DD HHMMSS` (UTC).
fn stamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}{:02}{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
