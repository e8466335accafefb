//! A randomized fault soak with a history checker, after Jepsen: clients
//! work against a real cluster ([`cluster`]) from a seeded generator
//! ([`workload`]) while a nemesis breaks things from the same seed
//! ([`nemesis`]); every operation is recorded ([`history`]); once the
//! faults stop and the cluster heals (scrub and repair run until every
//! chunk has its copies, then gc), the checker ([`check`]) holds the
//! history and the cluster to what Coffer promises: nothing acknowledged
//! is ever lost.
//!
//! A run that finds a violation (or any run, with `COFFER_SOAK_SAVE` set)
//! writes its history, faults and every process's log to one folder
//! (`target/soak/`, or `COFFER_SOAK_DIR`) and prints the command that runs
//! the same schedule again.

pub mod check;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod sync;
pub mod workload;

use cluster::SoakCluster;
use coffer_proto::pb::coffer_admin_client::CofferAdminClient;
use coffer_proto::pb::file_storage_client::FileStorageClient;
use coffer_proto::pb::{ClusterStatusRequest, RunWorkerRequest};
use history::{History, Kind, Outcome};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One soak run.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// How long clients work and the nemesis breaks things.
    pub duration: Duration,
    pub clients: usize,
    /// Versions of each file the servers keep (older ones are gc's).
    pub keep_versions: u32,
    /// Break nothing: the workload alone.
    pub calm: bool,
    /// Run the `coffer sync` folder pair beside the clients.
    pub sync: bool,
    /// Drop every copy of one acknowledged chunk before checking: what a
    /// broken store would do, to show the checker catches it.
    pub drop_acked_chunk: bool,
    /// Where a failing run's folder goes (default: `COFFER_SOAK_DIR`,
    /// else `target/soak/`).
    pub save_to: Option<PathBuf>,
}

impl Config {
    pub fn new(seed: u64, duration: Duration) -> Self {
        Self {
            seed,
            duration,
            clients: 3,
            keep_versions: 20,
            calm: false,
            sync: true,
            drop_acked_chunk: false,
            save_to: None,
        }
    }

    /// The command that runs this schedule again.
    pub fn repeat_command(&self) -> String {
        format!(
            "cargo run --release -p coffer-tests --bin coffer-bench -- soak --seed {} --seconds {} --clients {}",
            self.seed,
            self.duration.as_secs(),
            self.clients
        )
    }
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    /// By kind: (ok, failed, unknown).
    pub ops: BTreeMap<&'static str, (u64, u64, u64)>,
    pub faults: BTreeMap<&'static str, u64>,
    /// Why operations failed or have no known outcome, by status.
    pub reasons: BTreeMap<String, u64>,
    pub verdict: check::Verdict,
    /// Writes acknowledged during the run (the checker reads back those
    /// retention still keeps: `verdict.acked_checked`).
    pub acked: u64,
    /// From the end of the faults until every chunk had its copies.
    pub heal_secs: f64,
    /// Where the history and logs of a failing run went.
    pub folder: Option<PathBuf>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.verdict.violations.is_empty()
    }

    /// A summary for people.
    pub fn summary(&self) -> String {
        let mut out = format!("soak seed {}\n", self.seed);
        let total: u64 = self.ops.values().map(|(a, b, c)| a + b + c).sum();
        out += &format!("operations: {total}\n");
        for (kind, (ok, failed, unknown)) in &self.ops {
            out += &format!("  {kind:<15} ok {ok:>5}  failed {failed:>5}  unknown {unknown:>5}\n");
        }
        let mut reasons: Vec<_> = self.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1));
        out += "most frequent reasons for failed and unknown outcomes:\n";
        for (reason, n) in reasons.iter().take(8) {
            out += &format!("  {n:>5}  {reason}\n");
        }
        out += &format!("faults injected: {}\n", self.faults.values().sum::<u64>());
        for (kind, n) in &self.faults {
            out += &format!("  {kind:<17} {n:>4}\n");
        }
        let v = &self.verdict;
        out += &format!(
            "checked: {} acknowledged writes of {} (the rest were removed by retention), {} versions read back ({} bytes), {} chunks' copies \
             ({} of them in packs), {} last edits of the sync pair\n",
            v.acked_checked, self.acked, v.versions_checked, v.bytes_verified, v.chunks_checked,
            v.chunks_packed, v.sync_edits_checked
        );
        out += &format!(
            "healed (every chunk on 3 nodes) in {:.1} s\n",
            self.heal_secs
        );
        out += &format!("violations: {}\n", v.violations.len());
        for m in v.violations.iter().take(50) {
            out += &format!("  {m}\n");
        }
        if let Some(f) = &self.folder {
            out += &format!("history and logs: {}\n", f.display());
        }
        out
    }
}

/// Runs one soak; the report says whether it passed.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    eprintln!(
        "soak: seed {} for {:?} (repeat: {})",
        cfg.seed,
        cfg.duration,
        cfg.repeat_command()
    );
    let mut cluster = SoakCluster::start(cfg.keep_versions).await?;
    let history = Arc::new(History::new());
    let mut pair = None;
    match soak(cfg, &mut cluster, &history, &mut pair).await {
        Ok(report) => Ok(report),
        Err(e) => {
            // The history and the logs say most about what went wrong.
            let mut report = Report {
                seed: cfg.seed,
                ..Report::default()
            };
            report
                .verdict
                .violations
                .push(format!("the soak stopped: {e:#}"));
            if let Ok(folder) = save(cfg, &cluster, &history, &report) {
                if let Some(p) = &pair {
                    p.save_logs(&folder);
                }
                eprintln!("soak: history and logs: {}", folder.display());
            }
            Err(e)
        }
    }
}

async fn soak(
    cfg: &Config,
    cluster: &mut SoakCluster,
    history: &Arc<History>,
    pair: &mut Option<sync::SyncPair>,
) -> anyhow::Result<Report> {
    let addrs = cluster.addrs();
    if cfg.sync {
        *pair = Some(sync::SyncPair::start(&addrs, history).await?);
    }
    // Only now: starting the pair may first build the `coffer` binary.
    let until = Instant::now() + cfg.duration;
    let work = workload::run(cfg.seed, cfg.clients, &addrs, until, history.clone());
    let edits = async {
        match pair.as_mut() {
            Some(p) => p.edit(cfg.seed, until, history.clone()).await,
            None => Ok(()),
        }
    };
    if cfg.calm {
        let (w, e) = tokio::join!(work, edits);
        w?;
        e?;
    } else {
        let faults = nemesis::run(cfg.seed, cluster, until, history.clone());
        let (w, e, f) = tokio::join!(work, edits, faults);
        w?;
        e?;
        f?;
    }
    cluster.revive_crashed(history).await?;
    cluster.heal().await?;
    let healed = Instant::now();
    let heal = heal(cluster).await;
    let heal_secs = healed.elapsed().as_secs_f64();
    let ops = history.ops();
    let mut report = Report {
        seed: cfg.seed,
        heal_secs,
        ..Report::default()
    };
    report.acked = ops.iter().filter(|o| o.acked().is_some()).count() as u64;
    for op in &ops {
        let e = report.ops.entry(op.kind.name()).or_default();
        let reason = match &op.outcome {
            Outcome::Ok { .. } => {
                e.0 += 1;
                continue;
            }
            Outcome::Failed { code, message } => {
                e.1 += 1;
                format!("failed {code}: {message}")
            }
            Outcome::Unknown { message } => {
                e.2 += 1;
                format!("unknown {message}")
            }
        };
        // Names and numbers apart, the same reason.
        let reason: String = reason
            .chars()
            .take(90)
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        *report.reasons.entry(reason).or_default() += 1;
    }
    for f in history.faults() {
        if f.injected {
            *report.faults.entry(f.kind).or_default() += 1;
        } else if f.kind == cluster::CRASH {
            report.verdict.violations.push(f.what);
        }
    }
    if let Err(e) = heal {
        report
            .verdict
            .violations
            .push(format!("the cluster did not heal: {e:#}"));
    }
    if cfg.drop_acked_chunk {
        drop_one_acked_chunk(cluster, &ops, history).await?;
    }
    check::history(&ops, &mut report.verdict);
    let mut c =
        FileStorageClient::new(workload::channel(&addrs[0])?).max_decoding_message_size(64 << 20);
    if let Some(p) = pair.as_mut() {
        p.check(&mut c, history, &mut report.verdict).await?;
        // Nothing changes the files while the cluster is checked.
        p.stop().await;
    }
    check::cluster(
        &ops,
        cluster,
        &mut c,
        cfg.keep_versions,
        &mut report.verdict,
    )
    .await?;
    if !report.passed() || std::env::var_os("COFFER_SOAK_SAVE").is_some() {
        let folder = save(cfg, cluster, history, &report)?;
        if let Some(p) = &pair {
            p.save_logs(&folder);
        }
        report.folder = Some(folder);
    }
    Ok(report)
}

/// Scrub finds what the faults destroyed, repair copies it back, until
/// the servers count no chunk short of copies; then gc runs.
async fn heal(cluster: &SoakCluster) -> anyhow::Result<()> {
    let admins = cluster
        .addrs()
        .iter()
        .map(|a| workload::channel_for(a, Duration::from_secs(600)).map(CofferAdminClient::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // One server holds each worker's lease: run it wherever it runs.
    let run = |name: &'static str| {
        let admins = admins.clone();
        async move {
            // A killed server's lease runs out before another takes it.
            for _ in 0..60 {
                for mut admin in admins.clone() {
                    let status = admin
                        .run_worker(RunWorkerRequest {
                            name: name.into(),
                            wait: true,
                        })
                        .await?
                        .into_inner()
                        .status
                        .unwrap_or_default();
                    if status.last_outcome != "standby" {
                        eprintln!(
                            "soak: {name}: {} ({})",
                            status.last_report, status.last_outcome
                        );
                        return Ok(status);
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            anyhow::bail!("no server ran {name}")
        }
    };
    for pass in 0..10 {
        run("scrub").await?;
        run("repair").await?;
        let status = admins[0]
            .clone()
            .cluster_status(ClusterStatusRequest {})
            .await?
            .into_inner();
        if status.under_replicated_chunks == 0 {
            run("gc").await?;
            return Ok(());
        }
        eprintln!(
            "soak: heal pass {pass}: {} chunks short of copies",
            status.under_replicated_chunks
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("chunks were still short of copies after 10 scrub and repair passes")
}

/// Deletes every copy of the first chunk of the last acknowledged upload.
async fn drop_one_acked_chunk(
    cluster: &SoakCluster,
    ops: &[history::Op],
    history: &History,
) -> anyhow::Result<()> {
    let (op, content) = ops
        .iter()
        .rev()
        .find_map(|o| match (&o.kind, o.acked()) {
            (Kind::Upload { content, .. }, Some(_)) => Some((o, content)),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("no upload was acknowledged"))?;
    let data = content.bytes();
    let (off, len) = coffer_proto::chunking::chunk_spans(&data)[0];
    let id = coffer_proto::chunking::chunk_id(&data[off..off + len]);
    history.fault("drop chunk", format!("{id} of op {}", op.id));
    eprintln!("soak: dropping chunk {id} of op {} from every node", op.id);
    cluster.drop_chunk(&id).await
}

/// Writes the run's history, faults, findings and logs to a folder.
fn save(
    cfg: &Config,
    cluster: &SoakCluster,
    history: &History,
    report: &Report,
) -> anyhow::Result<PathBuf> {
    let dir = cfg
        .save_to
        .clone()
        .or_else(|| std::env::var_os("COFFER_SOAK_DIR").map(PathBuf::from))
        .unwrap_or_else(|| crate::server::workspace_root().join("target/soak"))
        .join(format!("seed-{}-{}", cfg.seed, std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut lines = String::new();
    for op in history.ops() {
        lines += &serde_json::to_string(&op)?;
        lines.push('\n');
    }
    std::fs::write(dir.join("history.jsonl"), lines)?;
    let mut lines = String::new();
    for f in history.faults() {
        lines += &serde_json::to_string(&f)?;
        lines.push('\n');
    }
    std::fs::write(dir.join("faults.jsonl"), lines)?;
    let mut summary = report.summary();
    summary += &format!("repeat: {}\n", cfg.repeat_command());
    std::fs::write(dir.join("report.txt"), summary)?;
    cluster.save_logs(&dir);
    Ok(dir)
}
