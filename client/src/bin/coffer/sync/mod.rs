//! `coffer sync LOCAL REMOTE`: keeps a local folder and a remote folder
//! the same, both ways. A pass scans the folder (reading only files whose
//! size or time changed since the last pass), lists the remote folder,
//! keeps apart names a disk would confuse ([`apart`]), plans with
//! [`coffer_client::plan`] against what the last pass left agreed, checks
//! the plan against the safety rules, and carries it out ([`steps`],
//! shown by [`progress`]).
//! The agreed state lives in the state directory ([`state`]), never in
//! the folder, and is saved as the pass goes: a pass killed at any point
//! leaves states the next pass's plan finishes (an upload not yet
//! recorded is found on both sides with the same content, and agreed).

mod apart;
mod ignore;
mod progress;
mod scan;
mod state;
mod steps;
mod watch;

use crate::Ctx;
use anyhow::{bail, Context};
use apart::{OnDisk, Rename};
use coffer_client::local_path::{check_relative, local_path};
use coffer_client::native::files::{plan_file, rfc3339};
use coffer_client::plan::{self, Action, BaseFile, LocalFile, Refusal, RemoteFile, Tree};
use coffer_client::UploadPlan;
use futures::StreamExt;
use ignore::Ignore;
use indicatif::ProgressBar;
use scan::{covered, stat, Found, Scan};
use state::{Store, Synced};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};
use watch::FolderWatch;

/// Passes `--once` makes before it gives up on agreeing (each pass after
/// the first only finishes what changed during the one before).
const MAX_PASSES: usize = 4;

/// The state is saved after this many steps (and at the end of a pass).
const SAVE_EVERY: usize = 64;

/// Files hashed at once while scanning: enough to keep both the disk and
/// the cores busy on small files.
const PARALLEL_HASHES: usize = 8;

/// Continuous sync passes again after this long even when nothing
/// signalled a change (an event lost, a feed call cut).
const RESCAN: Duration = Duration::from_secs(300);

/// Everything a pass plans from.
struct Snapshot {
    found: BTreeMap<String, Found>,
    local: Tree<LocalFile>,
    /// Chunk lists of the files read this pass (or known from the state),
    /// so an upload does not read its file a second time to plan it.
    plans: BTreeMap<String, UploadPlan>,
    remote: Tree<RemoteFile>,
    /// The feed's cursor from before the remote folder was read.
    cursor: String,
    /// Whether the plan covers every path (none was left alone for being
    /// a link or unreadable).
    complete: bool,
}

impl Snapshot {
    /// The bytes a step moves.
    fn bytes(&self, a: &Action) -> u64 {
        let local = || self.local.get(a.path()).map_or(0, |f| f.size);
        let remote = || self.remote.get(a.path()).map_or(0, |f| f.size);
        match a {
            Action::Upload { .. } => local(),
            Action::Download { .. } => remote(),
            Action::Conflict { .. } => local() + remote(),
            _ => 0,
        }
    }
}

/// What a pass would do.
enum Prepared {
    /// Colliding names to move apart first, each with the name it moves
    /// from and, for a local file, where it is on disk; the pass plans
    /// after.
    Apart(Vec<(Rename, String, Option<PathBuf>)>),
    Plan(Vec<Action>, Snapshot),
}

/// Counts of what a run did.
#[derive(Debug, Default)]
struct Done {
    uploaded: u64,
    downloaded: u64,
    deleted_remote: u64,
    deleted_local: u64,
    conflicts: u64,
    renamed: u64,
    /// Passes that listed the remote folder (the others knew from the
    /// change feed that it had not changed since the last agreement).
    listings: u64,
    /// Steps skipped because a side changed after the listing.
    deferred: u64,
}

struct Sync<'a> {
    ctx: &'a Ctx,
    root: PathBuf,
    remote: String,
    /// Steps run concurrently; each records its outcome here.
    state: Mutex<Store>,
    ignore: Mutex<Ignore>,
    force: bool,
    done: Mutex<Done>,
    /// The running pass's progress (hidden when there is no terminal).
    bar: Mutex<ProgressBar>,
    /// The last pass's scan: without file-system events, continuous sync
    /// compares the folder with it.
    last_scan: Mutex<Scan>,
    /// Where the state lives (its writes are no change to the folder,
    /// even if it is inside it).
    state_dir: PathBuf,
}

/// How `coffer sync` runs (its flags).
pub struct Options {
    /// One full pass, then exit.
    pub once: bool,
    /// Let a pass delete most files, or everything from an empty folder.
    pub force: bool,
    /// Say what a pass would do; do nothing.
    pub status: bool,
    /// Poll the folder instead of following file-system events.
    pub poll: bool,
}

pub async fn run(ctx: &Ctx, local: &Path, remote: &str, opts: Options) -> anyhow::Result<()> {
    let Options {
        once,
        force,
        status,
        poll,
    } = opts;
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
    // One state per server, account, folder and remote folder: another
    // account's files are not what this state agreed on.
    let user = ctx
        .coffer
        .whoami()
        .await
        .context("asking the server who this is")?
        .username;
    let key =
        blake3::hash(format!("{}\0{user}\0{}\0{remote}", ctx.server, root.display()).as_bytes());
    let state_path = crate::resume::state_dir()?
        .join("sync")
        .join(format!("{}.db", &key.to_hex()[..32]));
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
    let store = Store::open(&state_path)?;
    let ignore = Ignore::load(&root)?;
    let mut s = Sync {
        ctx,
        root,
        remote,
        state: Mutex::new(store),
        ignore: Mutex::new(ignore),
        force,
        done: Default::default(),
        bar: Mutex::new(ProgressBar::hidden()),
        last_scan: Mutex::new(Scan::default()),
        state_dir: state_path
            .parent()
            .expect("under the state dir")
            .to_path_buf(),
    };
    if status {
        // What is pending, safe or not: nothing runs.
        s.force = true;
        let pending = s.prepare().await?;
        return s.report_pending(&pending);
    }
    if once {
        let agreed = s.until_agreed().await?;
        s.report(agreed);
        if !agreed {
            bail!(
                "the folders do not agree yet: files were left alone (above), \
                 or kept changing during {MAX_PASSES} passes"
            );
        }
        return Ok(());
    }
    s.follow(poll).await
}

impl Sync<'_> {
    /// Continuous sync: a pass whenever either side changes.
    async fn follow(&self, poll: bool) -> anyhow::Result<()> {
        let mut folder = if poll {
            FolderWatch::polling_only()
        } else {
            FolderWatch::start(&self.root)
        };
        let mut cursor = self.ctx.coffer.latest_cursor().await?;
        let prefix = format!("{}/", self.remote);
        let relevant = |p: &Path| self.relevant(p);
        loop {
            // Events so far are covered by the pass's own scan.
            folder.drain();
            if let Err(e) = self.until_agreed().await {
                self.say(format!("coffer: sync: {e:#}"));
            }
            let mut watch = match self.ctx.coffer.watch(&cursor).await {
                Ok(w) => w,
                Err(e) => {
                    self.say(format!("coffer: sync: following the server's changes: {e}"));
                    if e.is_stale() {
                        // Too old to serve: the next pass lists anyway.
                        if let Ok(c) = self.ctx.coffer.latest_cursor().await {
                            cursor = c;
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            };
            let rescan = tokio::time::sleep(RESCAN);
            tokio::pin!(rescan);
            loop {
                tokio::select! {
                    page = watch.next() => match page {
                        Ok(Some(p)) => {
                            cursor = p.cursor;
                            if p.changes.iter().any(|c| c.file_name.starts_with(&prefix)) {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            self.say(format!("coffer: sync: following the server's changes: {e}"));
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            break;
                        }
                    },
                    () = folder.changed(&relevant) => {
                        if !folder.polling() {
                            break;
                        }
                        // Without events: whether the folder differs
                        // from what the last pass saw.
                        match self.scan() {
                            Ok(now) if now == *self.last_scan.lock().unwrap() => {}
                            _ => break,
                        }
                    },
                    () = &mut rescan => break,
                }
            }
        }
    }

    /// Whether a file-system event at `path` may change what a pass does:
    /// not for ignored paths, temporary downloads, or the state's own
    /// files.
    fn relevant(&self, path: &Path) -> bool {
        if path.starts_with(&self.state_dir) {
            return false;
        }
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return true;
        };
        let rel = rel.to_string_lossy();
        if rel.is_empty() {
            return true;
        }
        let rel = coffer_client::normalize_name(&rel).unwrap_or_else(|_| rel.into_owned());
        !self.ignore.lock().unwrap().ignores(&rel)
    }

    /// Passes until a plan is empty; `false` if they never got there.
    async fn until_agreed(&self) -> anyhow::Result<bool> {
        for _ in 0..MAX_PASSES {
            match self.prepare().await? {
                Prepared::Apart(renames) => self.keep_apart(renames).await?,
                Prepared::Plan(actions, snap) if actions.is_empty() => return self.agreed(&snap),
                Prepared::Plan(actions, snapshot) => self.execute(actions, &snapshot).await?,
            }
        }
        match self.prepare().await? {
            Prepared::Plan(actions, snap) if actions.is_empty() => self.agreed(&snap),
            _ => Ok(false),
        }
    }

    /// Both sides agree as of `snap` (unless it left a path alone): its
    /// cursor is saved, so the next pass lists the remote folder only if
    /// the feed shows a change in it.
    fn agreed(&self, snap: &Snapshot) -> anyhow::Result<bool> {
        let key = self.cursor_key();
        let mut state = self.state.lock().unwrap();
        if !snap.complete {
            // A path left alone still differs: the next pass lists again.
            state.clear_cursor()?;
            return Ok(false);
        }
        if state.cursor(&key)?.as_deref() != Some(snap.cursor.as_str()) {
            state.set_cursor(&key, &snap.cursor)?;
        }
        Ok(true)
    }

    /// The saved cursor's name: it holds only under the same ignore rules.
    fn cursor_key(&self) -> String {
        format!("agreed {}", self.ignore.lock().unwrap().digest)
    }

    /// Scans, lists and plans, and checks the plan is safe to run.
    async fn prepare(&self) -> anyhow::Result<Prepared> {
        // The patterns may have been edited since the last pass.
        *self.ignore.lock().unwrap() = Ignore::load(&self.root)?;
        let scan = self.scan()?;
        *self.last_scan.lock().unwrap() = scan.clone();
        let Scan {
            entries,
            mut skipped,
        } = scan;
        let synced = self.state.lock().unwrap().files().len();
        if entries.is_empty() && synced > 0 && !self.force {
            bail!(
                "{} is empty, but {synced} files were synced from it: is its disk unmounted? \
                 Nothing was deleted; run with --force to delete them on the server too",
                self.root.display(),
            );
        }
        let (remote, cursor) = self.remote_tree().await?;
        let base = self.agreed_tree(|s| BaseFile {
            version: s.version,
            hash: s.hash.clone(),
        });

        // Names a disk would take for one file are moved apart first.
        let on_disk: Vec<OnDisk> = entries
            .iter()
            .map(|e| OnDisk {
                name: e.name.clone(),
                exact: e.exact,
            })
            .collect();
        let versions = remote.iter().map(|(k, r)| (k.clone(), r.version)).collect();
        let going = self.going(&entries, &remote, &base);
        let renames =
            apart::keep_apart(&on_disk, &versions, &base.keys().cloned().collect(), &going);
        if !renames.is_empty() {
            return Ok(Prepared::Apart(
                renames
                    .into_iter()
                    .map(|r| match &r {
                        Rename::Local { index, .. } => {
                            let e = &entries[*index];
                            (r.clone(), e.name.clone(), Some(e.found.path.clone()))
                        }
                        Rename::Remote { from, .. } => (r.clone(), from.clone(), None),
                    })
                    .collect(),
            ));
        }

        let found: BTreeMap<String, Found> =
            entries.into_iter().map(|e| (e.name, e.found)).collect();
        let (local, plans, unreadable) = self.hash(&found).await;
        skipped.extend(unreadable);
        let host = hostname();
        let stamp = stamp();
        // A conflict copy's name is new on both sides: two conflicts of one
        // file in the same second get "(2)", "(3)"...
        let mut actions = plan::plan(&local, &remote, &base, &|p| {
            let first = plan::conflict_name(p, &host, &stamp);
            let mut name = first.clone();
            let mut n = 1;
            while local.contains_key(&name) || remote.contains_key(&name) {
                n += 1;
                name = plan::conflict_name(p, &host, &format!("{stamp} ({n})"));
            }
            name
        });
        // What this pass cannot see whole, it leaves alone.
        let planned = actions.len();
        actions.retain(|a| !covered(&skipped, a.path()));
        let complete = actions.len() == planned;
        if !self.force {
            if let Err(Refusal::MassDelete { deletes, of }) = plan::check(&actions, &base) {
                bail!(
                    "this pass would delete {deletes} of the {of} synced files; \
                     nothing was changed. If that is what you want, run with --force"
                );
            }
        }
        Ok(Prepared::Plan(
            actions,
            Snapshot {
                found,
                local,
                plans,
                remote,
                cursor,
                complete,
            },
        ))
    }

    /// The deletions this pass carries over: agreed files gone from one
    /// side and unchanged on the other. A file named like a folder is left
    /// to them rather than moved aside.
    fn going(
        &self,
        entries: &[scan::Entry],
        remote: &Tree<RemoteFile>,
        base: &Tree<BaseFile>,
    ) -> BTreeSet<String> {
        let state = self.state.lock().unwrap();
        let here: BTreeSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let gone_there = entries.iter().filter(|e| {
            !remote.contains_key(&e.name)
                && state.get(&e.name).is_some_and(|s| s.describes(&e.found))
        });
        let gone_here = remote.iter().filter(|(name, r)| {
            !here.contains(name.as_str()) && base.get(*name).is_some_and(|b| b.version == r.version)
        });
        gone_there
            .map(|e| e.name.clone())
            .chain(gone_here.map(|(name, _)| name.clone()))
            .collect()
    }

    /// The local tree: hashes of files unchanged since the last pass (same
    /// size and time) come from the state; the others are read, several
    /// at once. Files that cannot be read are reported and named in the
    /// third part (the pass leaves them alone).
    async fn hash(
        &self,
        found: &BTreeMap<String, Found>,
    ) -> (Tree<LocalFile>, BTreeMap<String, UploadPlan>, Vec<String>) {
        let mut local = Tree::new();
        let mut plans = BTreeMap::new();
        let mut read = Vec::new();
        {
            let state = self.state.lock().unwrap();
            for (name, f) in found {
                match state.get(name).filter(|s| s.describes(f)) {
                    Some(s) => {
                        local.insert(
                            name.clone(),
                            LocalFile {
                                hash: s.hash.clone(),
                                size: f.size,
                            },
                        );
                        if !s.chunks.is_empty() {
                            plans.insert(name.clone(), known_plan(s));
                        }
                    }
                    None => read.push((name.clone(), f.path.clone())),
                }
            }
        }
        let hashed: Vec<(String, Result<UploadPlan, _>)> = futures::stream::iter(read)
            .map(|(name, path)| async move { (name, plan_file(&path).await) })
            .buffer_unordered(PARALLEL_HASHES)
            .collect()
            .await;
        let mut unreadable = Vec::new();
        for (name, p) in hashed {
            match p {
                Ok(p) => {
                    local.insert(
                        name.clone(),
                        LocalFile {
                            hash: p.content_hash.clone(),
                            size: p.size,
                        },
                    );
                    plans.insert(name, p);
                }
                Err(e) => {
                    self.say(format!("skipped this pass ({e}): {name}"));
                    unreadable.push(name);
                }
            }
        }
        (local, plans, unreadable)
    }

    /// What the last agreement holds, less what `.cofferignore` leaves
    /// out and names this computer must not write (an older client may
    /// have agreed on one), each file as `f` makes it.
    fn agreed_tree<T>(&self, f: impl Fn(&Synced) -> T) -> Tree<T> {
        let ignore = self.ignore.lock().unwrap();
        self.state
            .lock()
            .unwrap()
            .files()
            .iter()
            .filter(|(k, _)| !ignore.ignores(k) && check_relative(k).is_ok())
            .map(|(k, s)| (k.clone(), f(s)))
            .collect()
    }

    /// The remote folder (less what `.cofferignore` leaves out), and the
    /// feed's cursor from before it was read. When the feed shows no
    /// change under the folder since the last agreed pass, under the same
    /// ignore rules, the folder is what that pass agreed on and is not
    /// listed again.
    async fn remote_tree(&self) -> anyhow::Result<(Tree<RemoteFile>, String)> {
        let key = self.cursor_key();
        let saved = self.state.lock().unwrap().cursor(&key)?;
        if let Some(saved) = saved {
            let prefix = format!("{}/", self.remote);
            match self.ctx.coffer.changes(&saved, 1000).await {
                Ok(page)
                    if !page.more
                        && !page
                            .changes
                            .iter()
                            .any(|c| c.file_name.starts_with(&prefix)) =>
                {
                    let tree = self.agreed_tree(|s| RemoteFile {
                        version: s.version,
                        hash: s.hash.clone(),
                        size: s.size,
                    });
                    return Ok((tree, page.cursor));
                }
                Ok(_) => {}
                // Too old to serve: list.
                Err(e) if e.is_stale() => {}
                Err(e) => return Err(e).context("reading the change feed"),
            }
        }
        let cursor = self
            .ctx
            .coffer
            .latest_cursor()
            .await
            .context("reading the change feed")?;
        self.done.lock().unwrap().listings += 1;
        Ok((self.list_remote().await?, cursor))
    }

    /// The remote folder, less what `.cofferignore` leaves out. A name
    /// that cannot be a path here ([`coffer_client::local_path`]: it would
    /// climb out of the folder, or another OS could not hold it) is
    /// reported and left out: never written, and, since the last
    /// agreement leaves it out too, never taken for deleted here.
    async fn list_remote(&self) -> anyhow::Result<Tree<RemoteFile>> {
        let prefix = format!("{}/", self.remote);
        let listed = self
            .ctx
            .coffer
            .list(&prefix)
            .await
            .with_context(|| format!("listing {prefix}"))?;
        let ignore = self.ignore.lock().unwrap();
        Ok(listed
            .into_iter()
            .filter_map(|m| {
                if let Err(why) = local_path(&self.remote, &m.file_name) {
                    self.say(format!("skipped ({why}): {}", m.file_name));
                    return None;
                }
                let rel = m.file_name.strip_prefix(&prefix)?.to_string();
                if ignore.ignores(&rel) {
                    return None;
                }
                Some((
                    rel,
                    RemoteFile {
                        version: m.version_number,
                        hash: m.content_hash,
                        size: m.size,
                    },
                ))
            })
            .collect())
    }

    fn name(&self, rel: &str) -> String {
        format!("{}/{rel}", self.remote)
    }

    /// Where `rel` goes on disk. Every name a pass plans with passed
    /// [`check_relative`] (the scan, the listing and the agreed state
    /// leave out the others), so it stays below the root.
    fn abs(&self, rel: &str) -> PathBuf {
        debug_assert!(check_relative(rel).is_ok(), "{rel:?} reached a step");
        rel.split('/').fold(self.root.clone(), |p, c| p.join(c))
    }

    /// Where `rel` is on disk: where the scan found it, else its own name.
    fn disk(&self, rel: &str, snap: &Snapshot) -> PathBuf {
        snap.found
            .get(rel)
            .map_or_else(|| self.abs(rel), |f| f.path.clone())
    }

    /// Whether the local file is as the scan found it (or still absent).
    fn unchanged(&self, rel: &str, snap: &Snapshot) -> bool {
        let now = stat(&self.disk(rel, snap));
        match (snap.found.get(rel), now) {
            (Some(f), Some((size, mtime))) => f.size == size && f.mtime == mtime,
            (None, None) => true,
            _ => false,
        }
    }

    fn save(&self) -> anyhow::Result<()> {
        self.state.lock().unwrap().save()
    }

    /// The folder as it is now (see [`scan::scan`]); leftovers of this
    /// client's killed downloads are removed on the way.
    fn scan(&self) -> anyhow::Result<Scan> {
        let ours = self.state.lock().unwrap().partials()?;
        let ignore = self.ignore.lock().unwrap();
        let scan = scan::scan(&self.root, &ignore, &ours, &|line| self.say(line))?;
        if !ours.is_empty() {
            self.state.lock().unwrap().forget_gone_partials()?;
        }
        Ok(scan)
    }
}

/// An upload plan rebuilt from a synced file's stored chunk list.
fn known_plan(s: &Synced) -> UploadPlan {
    UploadPlan {
        size: s.size,
        content_hash: s.hash.clone(),
        chunks: s.chunks.clone(),
        modified: rfc3339(UNIX_EPOCH + Duration::from_nanos(s.mtime)),
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
