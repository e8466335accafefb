//! A `coffer sync` folder pair under the soak: two folders kept the same
//! as one remote folder by two running `coffer sync` processes, each
//! through another server, while an editor writes and deletes files on
//! both sides. Once the cluster has healed, the pair must agree with the
//! server, and no side's last edit may be lost: its content is in the
//! folders (at its name, or as a conflicted copy) or among the remote
//! file's versions.

use super::check::Verdict;
use super::history::{Content, History, Kind, Op, Outcome};
use super::workload::{list_all, versions_of};
use crate::cli::Cli;
use coffer_proto::pb::file_storage_client::FileStorageClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead};
use tokio::process::Child;
use tonic::transport::Channel;

/// Appends each line of `pipe` to `log`, prefixed with the time since `epoch`.
fn log_lines(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    mut log: std::fs::File,
    epoch: Instant,
) {
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let ms = epoch.elapsed().as_millis();
            let _ = writeln!(log, "[{ms:>7} ms] {line}");
        }
    });
}

/// The remote folder both sides sync with.
pub const REMOTE: &str = "sync";
/// Names the editor uses: few, so edits meet; at most five, so deleting
/// most of them is not a mass delete that sync refuses without --force.
const NAMES: [&str; 4] = ["s0.txt", "s1.txt", "d/s2.txt", "d/s3.txt"];
/// Written once and never touched: neither folder is ever emptied (sync
/// refuses to carry an emptied folder's deletes, as an unmounted disk's).
const KEEP: &str = "keep.txt";

/// How long the pair may take to agree once the cluster has healed: less
/// than `coffer sync`'s full rescan (every 5 minutes), so an edit whose
/// event was lost fails the run instead of waiting for the rescan.
const AGREE_WITHIN: Duration = Duration::from_secs(3 * 60);

pub struct SyncPair {
    root: tempfile::TempDir,
    clis: Vec<Cli>,
    children: Vec<Option<Child>>,
    /// The last content each side wrote at each name (`None`: deleted).
    last: Vec<HashMap<String, Option<Content>>>,
    /// Edits made so far.
    edits: u64,
    /// The history's time zero, which the logs' times count from.
    epoch: Instant,
}

impl SyncPair {
    /// Starts `coffer sync` on two empty folders, side `i` through
    /// `addrs[i]`.
    pub async fn start(addrs: &[String], history: &History) -> anyhow::Result<SyncPair> {
        let root = tempfile::Builder::new()
            .prefix("coffer-soak-sync-")
            .tempdir()?;
        let mut pair = SyncPair {
            clis: addrs.iter().take(2).map(|a| Cli::new(a)).collect(),
            children: vec![None, None],
            last: vec![HashMap::new(), HashMap::new()],
            edits: 0,
            epoch: Instant::now() - Duration::from_millis(history.now_ms()),
            root,
        };
        for side in 0..2 {
            std::fs::create_dir_all(pair.dir(side))?;
            std::fs::create_dir_all(pair.root.path().join(format!("staging-{side}")))?;
        }
        let keep = Content::new(0x6b65_6570, 100);
        std::fs::write(pair.dir(0).join(KEEP), keep.bytes())?;
        pair.record(0, KEEP, Some(keep), history.now_ms(), history);
        for side in 0..2 {
            pair.spawn(side)?;
        }
        Ok(pair)
    }

    fn dir(&self, side: usize) -> PathBuf {
        self.root.path().join(format!("side-{side}"))
    }

    fn log(&self, side: usize) -> PathBuf {
        self.root.path().join(format!("sync-{side}.log"))
    }

    /// Starts side `side`'s `coffer sync`; each line it prints goes to its
    /// log with the history's time, so the log and the history line up.
    fn spawn(&mut self, side: usize) -> anyhow::Result<()> {
        let dir = self.dir(side);
        let mut cmd = self.clis[side].command(&["sync", dir.to_str().unwrap(), REMOTE]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn()?;
        let log = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log(side))
        };
        if let Some(out) = child.stdout.take() {
            log_lines(out, log()?, self.epoch);
        }
        if let Some(err) = child.stderr.take() {
            log_lines(err, log()?, self.epoch);
        }
        self.children[side] = Some(child);
        Ok(())
    }

    /// Starts again a side whose `coffer sync` exited (say, its server
    /// was down when it began); returns which did.
    fn revive(&mut self, history: &History) -> anyhow::Result<()> {
        for side in 0..2 {
            let exited = match self.children[side].as_mut() {
                Some(c) => c.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                history.event(
                    "sync exited",
                    format!("side {side}: {status}; started again"),
                );
                self.spawn(side)?;
            }
        }
        Ok(())
    }

    /// Edits both folders at random until `until`; each edit lands whole
    /// (written beside the folder, then renamed into it).
    pub async fn edit(
        &mut self,
        seed: u64,
        until: Instant,
        history: Arc<History>,
    ) -> anyhow::Result<()> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x7379_6e63);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
            self.revive(&history)?;
            let side = rng.random_range(0..2);
            let name = NAMES[rng.random_range(0..NAMES.len())];
            let target = self.dir(side).join(name);
            let invoked_ms = history.now_ms();
            let content = if rng.random_bool(0.8) {
                let content = Content::new(rng.random(), rng.random_range(1..20_000));
                let staged = self
                    .root
                    .path()
                    .join(format!("staging-{side}/{}", self.edits));
                std::fs::write(&staged, content.bytes())?;
                std::fs::create_dir_all(target.parent().unwrap())?;
                std::fs::rename(&staged, &target)?;
                Some(content)
            } else {
                match std::fs::remove_file(&target) {
                    Ok(()) => None,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            self.record(side, name, content, invoked_ms, &history);
        }
        Ok(())
    }

    /// Notes an edit as side `side`'s last of `name`, and in the history.
    fn record(
        &mut self,
        side: usize,
        name: &str,
        content: Option<Content>,
        invoked_ms: u64,
        history: &History,
    ) {
        self.last[side].insert(name.to_string(), content.clone());
        self.edits += 1;
        history.record(Op {
            id: u64::MAX - self.edits,
            client: usize::MAX - side,
            server: side,
            kind: Kind::SyncEdit {
                side,
                name: name.to_string(),
                content,
            },
            invoked_ms,
            completed_ms: history.now_ms(),
            outcome: Outcome::Ok { seen: Vec::new() },
        });
    }

    /// Waits (bounded) until both folders and the remote folder hold the
    /// same files, then checks that no side's last edit was lost.
    pub async fn check(
        &mut self,
        c: &mut FileStorageClient<Channel>,
        history: &History,
        v: &mut Verdict,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + AGREE_WITHIN;
        let (mut sides, mut remote);
        loop {
            self.revive(history)?;
            sides = [tree(&self.dir(0))?, tree(&self.dir(1))?];
            remote = remote_tree(c).await?;
            if sides[0] == sides[1] && sides[0] == remote {
                break;
            }
            if Instant::now() > deadline {
                v.violations.push(format!(
                    "the sync pair did not agree within {AGREE_WITHIN:?}: side 0 {:?}, side 1 {:?}, server {:?}",
                    short(&sides[0]),
                    short(&sides[1]),
                    short(&remote)
                ));
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let present: HashSet<&String> = remote.values().collect();
        for (side, last) in self.last.iter().enumerate() {
            for (name, content) in last {
                let Some(content) = content else { continue };
                v.sync_edits_checked += 1;
                if present.contains(&content.hash) {
                    continue;
                }
                let history = versions(c, &format!("{REMOTE}/{name}")).await?;
                if !history.contains(&content.hash) {
                    v.violations.push(format!(
                        "side {side}'s last edit of {name} ({}) is neither in the folders nor among the server's versions",
                        &content.hash[..12]
                    ));
                }
            }
        }
        Ok(())
    }

    /// Stops both processes.
    pub async fn stop(&mut self) {
        for c in self.children.iter_mut().filter_map(Option::take) {
            let mut c = c;
            c.kill().await.ok();
        }
    }

    /// Keeps both processes' logs in `dir`.
    pub fn save_logs(&self, dir: &Path) {
        for side in 0..2 {
            std::fs::copy(self.log(side), dir.join(format!("sync-{side}.log"))).ok();
        }
    }
}

/// Every regular file below `dir`: relative name -> content hash.
fn tree(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                let rel = e.path().strip_prefix(dir)?.to_string_lossy().into_owned();
                // Sync's own partial downloads are not the folder's files.
                if rel.contains(".coffer-") || rel.ends_with(".part") {
                    continue;
                }
                let hash = coffer_proto::chunking::content_hash_of(&std::fs::read(e.path())?);
                out.insert(rel, hash);
            }
        }
    }
    Ok(out)
}

/// The remote folder's live files: relative name -> content hash.
async fn remote_tree(
    c: &mut FileStorageClient<Channel>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let prefix = format!("{REMOTE}/");
    Ok(list_all(c, &prefix)
        .await?
        .into_iter()
        .map(|m| (m.file_name[prefix.len()..].to_string(), m.content_hash))
        .collect())
}

/// Content hashes of every version of `path` (none if it never existed).
async fn versions(
    c: &mut FileStorageClient<Channel>,
    path: &str,
) -> anyhow::Result<HashSet<String>> {
    match versions_of(c, path).await {
        Ok(list) => Ok(list.into_iter().map(|m| m.content_hash).collect()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(HashSet::new()),
        Err(s) => Err(s.into()),
    }
}

fn short(t: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    t.iter().map(|(k, v)| (k.as_str(), &v[..12])).collect()
}
