//! `coffer-bench`: throughput and memory of Coffer against a baseline
//! measured in the same run.
//!
//! Starts three real Garage nodes and `coffer-server` on them (R=3, W=2),
//! then for one file of `--size-mib` MiB:
//! - uploads and downloads it through Coffer's `UploadFile`/`DownloadFile`;
//! - uploads and downloads it with `aws s3 cp` to a single Garage node;
//! - uploads and downloads another file of the same size with the `coffer`
//!   CLI (chunked sessions), then re-uploads it after inserting 1 KiB in
//!   its middle (a delta upload);
//!
//! - uploads 256 MiB through the web app in headless Chromium, against the
//!   CLI on another 256 MiB file (when `dist/` and the browser driver exist);
//!
//! and prints the throughputs, their ratios and the server's peak RSS.
//! Every timed phase starts after a sync(2) and once the CPUs are idle, so
//! none pays for the disk writeback or the storage nodes' background work
//! left by the phases before it.
//! Downloads are timed `--repeat` times (default 3) and the median counts;
//! uploads run once, since a repeat of the same bytes would dedup.
//! `--only metadata` compares the metadata backends instead: SQLite
//! against PostgreSQL for one large file, and small-file commits on SQLite,
//! on PostgreSQL, and spread over two servers sharing PostgreSQL.
//! `--only snapshot` measures disaster recovery instead: a metadata
//! snapshot of `--files` files (default 100,000) and its restore, against
//! a plain copy of the same database file.
//! `--only small` puts `--files` (default 1,000) files of 4 KiB against
//! `aws s3 cp --recursive`, then puts the unchanged tree again.
//! `--only sync` syncs `--files` (default 10,000) such files against
//! `aws s3 sync`, then a no-change pass, then times a saved file's trip
//! between two running `coffer sync`. With `--packs` the server keeps small
//! chunks in packs (`COFFER_PACKS`); both print the objects each node
//! holds and the server's CPU per file.
//! `--only web` measures what the web app asks of the server: a zip of a
//! folder of `--files` (default 1,000) files of 4 KiB against `coffer get`
//! of the same folder, and thumbnails of 12-megapixel JPEGs against the
//! same decoding and scaling done in this process, with the server's peak
//! memory.
//! `soak` runs the randomized fault soak instead (see
//! `coffer_tests::soak`): `--seconds` of faults (or `--minutes`), `--seed`
//! (default: a random one, printed), `--clients` (default 3), `--runs` soaks
//! one after another with seeds counting up from `--seed`; it exits non-zero
//! if any run finds a violation.
//! Run: `cargo run --profile dist -p coffer-tests --bin coffer-bench -- --size-mib 1024`

use anyhow::{bail, Context};
use bytes::Bytes;
use coffer_proto::pb::file_storage_client::FileStorageClient;
use coffer_proto::pb::FileDownloadRequest;
use coffer_tests::data::{pattern_blocks, upload};
use coffer_tests::garage::start_cluster;
use coffer_tests::server::Conn;
use coffer_tests::server::{Server, ServerOpts};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value of a string flag such as `--only download`.
fn str_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// `coffer-bench soak`: one or more soaks, a summary of each and of all.
async fn soak() -> anyhow::Result<()> {
    use coffer_tests::soak::{run, Config};
    let seconds = match str_arg("--minutes") {
        Some(m) => m.parse::<u64>().context("--minutes")? * 60,
        None => arg("--seconds", 60),
    };
    let first = arg("--seed", rand::random::<u32>() as u64);
    let runs = arg("--runs", 1);
    let mut failed = Vec::new();
    let mut lines = Vec::new();
    for seed in first..first + runs {
        let mut cfg = Config::new(seed, std::time::Duration::from_secs(seconds));
        cfg.clients = arg("--clients", 3) as usize;
        let mut soak = Box::pin(run(&cfg));
        let ended = tokio::select! {
            r = &mut soak => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(report) = ended else {
            // Dropped, the run stops every process it started; the
            // runtime would then wait on its blocking pool, so leave.
            drop(soak);
            eprintln!("soak: interrupted (seed {seed})");
            std::process::exit(130);
        };
        let report = report?;
        println!("{}", report.summary());
        let (ok, failed_ops, unknown) = report
            .ops
            .values()
            .fold((0, 0, 0), |a, o| (a.0 + o.0, a.1 + o.1, a.2 + o.2));
        lines.push(format!(
            "| {seed} | {ok} | {failed_ops} | {unknown} | {} | {} | {} | {} | {:.1} | {} |",
            report.faults.values().sum::<u64>(),
            report.acked,
            report.verdict.acked_checked,
            report.verdict.bytes_verified,
            report.heal_secs,
            report.verdict.violations.len()
        ));
        if !report.passed() {
            failed.push(seed);
        }
    }
    println!("| seed | ok | failed | unknown | faults | acknowledged | still kept, read back | bytes verified | heal s | violations |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for l in lines {
        println!("{l}");
    }
    anyhow::ensure!(failed.is_empty(), "violations found with seeds {failed:?}");
    Ok(())
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn file_blocks(path: &Path) -> impl Iterator<Item = Bytes> + Send + 'static {
    let mut f = std::fs::File::open(path).expect("open bench file");
    std::iter::from_fn(move || {
        let mut buf = vec![0u8; coffer_tests::data::MESSAGE];
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]).expect("read bench file") {
                0 => break,
                k => n += k,
            }
        }
        (n > 0).then(|| {
            buf.truncate(n);
            Bytes::from(buf)
        })
    })
}

fn aws(node: &coffer_tests::garage::GarageNode, cfg: &Path, args: &[&str]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let out = std::process::Command::new("aws")
        .args(["--endpoint-url", &node.endpoint(), "--only-show-errors"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", node.access_key())
        .env("AWS_SECRET_ACCESS_KEY", node.secret_key())
        .env("AWS_DEFAULT_REGION", node.region())
        .env("AWS_CONFIG_FILE", cfg)
        .output()
        .context("running aws (install it with: pip install awscli)")?;
    if !out.status.success() {
        bail!(
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(start.elapsed().as_secs_f64())
}

/// CPU seconds (user + system) of process `pid` so far, or of this
/// process's waited-for children with `children`.
fn cpu_secs(pid: &str, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let at = if children { 13 } else { 11 };
    let ticks: f64 = fields.get(at..at + 2).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// CPU seconds spent so far by the storage nodes, the server, and the
/// finished command-line clients (`aws`, `coffer`).
#[derive(Clone, Copy)]
struct CpuUse {
    nodes: f64,
    server: f64,
    clients: f64,
}

impl CpuUse {
    fn now(nodes: &[coffer_tests::garage::GarageNode], server: &Server) -> Self {
        let pid = |p: Option<u32>| p.map_or(String::new(), |p| p.to_string());
        Self {
            nodes: nodes.iter().map(|n| cpu_secs(&pid(n.pid()), false)).sum(),
            server: cpu_secs(&pid(server.pid()), false),
            clients: cpu_secs("self", true),
        }
    }

    /// Runs `f`, and returns its result with the CPU spent meanwhile.
    fn during<T>(
        nodes: &[coffer_tests::garage::GarageNode],
        server: &Server,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<(T, Self)> {
        let before = Self::now(nodes, server);
        let out = f()?;
        Ok((out, Self::now(nodes, server).since(before)))
    }

    fn since(self, before: Self) -> Self {
        Self {
            nodes: self.nodes - before.nodes,
            server: self.server - before.server,
            clients: self.clients - before.clients,
        }
    }
}

/// Prints where the CPU of the baseline upload and of `coffer put` went,
/// and the best ratio this machine allows if Coffer itself cost nothing:
/// the nodes' work for three copies, spread over every core.
fn print_upload_cpu(s3_secs: f64, s3: CpuUse, put: CpuUse) {
    print_cpu(("aws s3 cp upload", "coffer put"), s3_secs, s3, put);
}

/// The objects under `chunks/` on each node (counted on the nodes) and
/// the server's CPU per file, after an upload of `n` small files.
async fn print_per_file(
    nodes: &[coffer_tests::garage::GarageNode],
    n: usize,
    cpu: &CpuUse,
) -> anyhow::Result<()> {
    let mut counts = Vec::new();
    for node in nodes {
        counts.push(node.list_keys("chunks/").await?.len());
    }
    println!("objects per node for {n} files: {counts:?}");
    println!(
        "server CPU per file: {:.3} ms",
        cpu.server * 1000.0 / n as f64
    );
    Ok(())
}

/// [`print_upload_cpu`] for other commands: `names` are the baseline's
/// and Coffer's.
fn print_cpu(names: (&str, &str), s3_secs: f64, s3: CpuUse, put: CpuUse) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "CPU seconds, {}: storage node {:.1}, aws {:.1}",
        names.0, s3.nodes, s3.clients
    );
    println!(
        "CPU seconds, {}: storage nodes {:.1}, server {:.1}, coffer {:.1}",
        names.1, put.nodes, put.server, put.clients
    );
    let floor = put.nodes / cores;
    println!(
        "upload ceiling on {cores} cores: the nodes' work alone takes {floor:.1} s, \
         a ratio of at most {:.2} even if Coffer cost nothing",
        s3_secs / floor
    );
}

/// Lets the machine settle before a timed phase: writes every dirty page to
/// disk, then waits (at most 30 s) until the CPUs are nearly idle, so a
/// phase pays neither for the writeback nor for the storage nodes'
/// background work (block checks, index updates) left by the phase before.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let mut last = cpu_ticks();
    while Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = cpu_ticks();
        let (busy, total) = (now.0 - last.0, now.1 - last.1);
        last = now;
        if total > 0.0 && busy / total < 0.05 {
            return;
        }
    }
}

/// (busy, total) jiffies over all CPUs since boot, from /proc/stat.
fn cpu_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().sum();
    // idle and iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// Runs `coffer --server <server> --quiet --json ARGS` with its resume
/// records in `state`; returns (seconds, stdout), or its stderr as the error.
fn run_coffer(server: &Server, state: &Path, args: &[&str]) -> anyhow::Result<(f64, String)> {
    let start = Instant::now();
    let out = std::process::Command::new(coffer_tests::cli::cli_bin())
        .args(["--server", server.addr(), "--quiet", "--json"])
        .args(args)
        .env("COFFER_STATE_DIR", state)
        .env("COFFER_TOKEN", server.token().unwrap_or_default())
        .output()?;
    if !out.status.success() {
        bail!(
            "coffer {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((
        start.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// Reads the latest version of `name` through `DownloadFile` (into `out`
/// when given), checks that it hashes to `want`; returns the seconds taken.
async fn time_download_file(
    client: &mut FileStorageClient<Conn>,
    name: &str,
    want: &str,
    out: Option<&Path>,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut stream = client
        .download_file(FileDownloadRequest {
            file_name: name.into(),
            version: 0,
        })
        .await?
        .into_inner();
    let mut file = match out {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let mut hasher = coffer_proto::chunking::StreamContentHasher::new();
    while let Some(m) = stream.message().await? {
        hasher.update(&m.file_data);
        if let Some(f) = &mut file {
            f.write_all(&m.file_data)?;
        }
    }
    if let Some(f) = &mut file {
        f.flush()?;
    }
    let secs = start.elapsed().as_secs_f64();
    if hasher.finish() != want {
        bail!("downloaded bytes of {name} differ from the upload");
    }
    Ok(secs)
}

/// The cluster's status once the uploads' background work is done.
/// Uploads return after W = 2 copies and the third is written behind; this
/// shows that every chunk did get its three copies (background writes and
/// their records settle within moments).
async fn settled_status(
    server: &Server,
) -> anyhow::Result<coffer_proto::pb::ClusterStatusResponse> {
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    Ok(server
        .admin()
        .await
        .cluster_status(coffer_proto::pb::ClusterStatusRequest {})
        .await?
        .into_inner())
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs the CLI with arguments; returns (seconds, stdout).
type RunCli<'a> = dyn Fn(&[&str]) -> anyhow::Result<(f64, String)> + 'a;

/// Uploads 256 MiB through the web app in headless Chromium and 256 MiB of
/// other content with the CLI; returns (browser seconds, CLI seconds), or
/// `None` if the web app is not built or Chromium is not installed.
fn browser_upload(
    server: &Server,
    work: &Path,
    run_cli: &RunCli<'_>,
) -> anyhow::Result<Option<(f64, f64)>> {
    let root = coffer_tests::server::workspace_root();
    let script = root.join("tests/browser/bench.mjs");
    // bench.mjs drives Chromium itself: it needs no npm packages.
    let chromium = std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into());
    if !root.join("dist/index.html").is_file() || !Path::new(&chromium).is_file() {
        return Ok(None);
    }
    let write = |name: &str, seed: u64| -> anyhow::Result<std::path::PathBuf> {
        let p = work.join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p)?);
        for b in pattern_blocks(256 * 1024 * 1024, seed) {
            f.write_all(&b)?;
        }
        f.flush()?;
        Ok(p)
    };
    let web_file = write("browser-256.bin", 7001)?;
    let cli_file = write("cli-256.bin", 7002)?;
    settle();
    let (cli, _) = run_cli(&["put", cli_file.to_str().unwrap(), "bench/cli-256.bin"])?;
    let out = std::process::Command::new("node")
        .arg(&script)
        .env("COFFER_URL", server.addr())
        .env("COFFER_USER", "admin")
        .env("COFFER_PASSWORD", coffer_tests::server::ADMIN_PASSWORD)
        .env("UPLOAD_FILE", &web_file)
        .output()?;
    if !out.status.success() {
        bail!(
            "browser upload failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seconds: f64 = stdout
        .split("\"seconds\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|v| v.trim().parse().ok())
        .context("browser bench printed no time")?;
    Ok(Some((seconds, cli)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("soak") {
        return soak().await;
    }
    if str_arg("--only").as_deref() == Some("snapshot") {
        return snapshot_only(arg("--files", 100_000)).await;
    }
    if str_arg("--only").as_deref() == Some("web") {
        return web_only(arg("--files", 1000), arg("--repeat", 3).max(1)).await;
    }
    let small_only = matches!(str_arg("--only").as_deref(), Some("small" | "sync"));
    // `--only small` needs no large file.
    let size_mib = if small_only {
        1
    } else {
        arg("--size-mib", 1024)
    };
    let repeat = arg("--repeat", 3).max(1);
    let size = size_mib * 1024 * 1024;
    // Built (if stale) now, not inside the first timed `coffer put`.
    let cli = coffer_tests::cli::cli_bin();
    println!("coffer CLI: {}", cli.display());
    let work = tempfile::tempdir()?;
    let src = work.path().join("bench.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src)?);
        for b in pattern_blocks(size, 2024) {
            f.write_all(&b)?;
        }
        f.flush()?;
    }
    let cfg = work.path().join("aws-config");
    std::fs::write(&cfg, "[default]\ns3 =\n    addressing_style = path\n")?;

    let nodes = start_cluster(3).await?;
    let web_dir = coffer_tests::server::workspace_root().join("dist");
    // A process of its own, whose memory and CPU are measured.
    let mut opts = ServerOpts::on_garage(&nodes)
        .process()
        .with("COFFER_NODE_TIMEOUT_MS", "30000")
        // One login for a run longer than an access token's default life.
        .with("COFFER_ACCESS_TOKEN_SECS", "86400")
        .with("COFFER_WEB_DIR", web_dir.to_str().unwrap());
    if let Some(mib) = str_arg("--read-ahead-mib") {
        opts = opts.with("COFFER_READ_AHEAD_MIB", &mib);
    }
    if std::env::args().any(|a| a == "--packs") {
        opts = opts.with("COFFER_PACKS", "true");
    }
    let server = Server::start(opts).await?;
    let pid = server.pid().context("server pid")?;
    let idle_rss = peak_rss_mib(pid);
    let mut client = server.client().await;
    match str_arg("--only").as_deref() {
        Some("download") => {
            return downloads_only(&server, &nodes[0], &cfg, &src, work.path(), repeat).await
        }
        Some("upload") => return uploads_only(&server, &nodes, &cfg, &src, work.path()).await,
        Some("metadata") => {
            return metadata_only(&server, &nodes, &src, work.path(), repeat).await;
        }
        Some("sync") => {
            return sync_only_bench(
                &server,
                &nodes,
                &cfg,
                work.path(),
                arg("--files", 10_000) as usize,
            )
            .await
        }
        Some("small") => {
            return small_only_bench(
                &server,
                &nodes,
                &cfg,
                work.path(),
                arg("--files", 1000) as usize,
            )
            .await
        }
        _ => {}
    }

    // Baseline: one S3 node, one copy. The upload runs once: Garage keeps
    // blocks by content, so a repeat of the same bytes would skip the
    // writes. Downloads are timed `repeat` times and the median counts:
    // single runs on this shared machine vary by a third.
    settle();
    let bucket_key = format!("s3://{}/baseline/bench.bin", nodes[0].bucket());
    let (s3_up, s3_up_cpu) = CpuUse::during(&nodes, &server, || {
        aws(
            &nodes[0],
            &cfg,
            &["s3", "cp", src.to_str().unwrap(), &bucket_key],
        )
    })?;
    let mut s3_downs = Vec::new();
    for _ in 0..repeat {
        settle();
        s3_downs.push(aws(
            &nodes[0],
            &cfg,
            &[
                "s3",
                "cp",
                &bucket_key,
                work.path().join("s3-back.bin").to_str().unwrap(),
            ],
        )?);
    }
    let rounds = |v: &[f64]| {
        v.iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let s3_rounds = rounds(&s3_downs);
    let s3_down = median(s3_downs);

    // Coffer: three nodes, three copies.
    let start = Instant::now();
    let resp = upload(&mut client, "bench/bench.bin", file_blocks(&src)).await?;
    let coffer_up = start.elapsed().as_secs_f64();
    let rss_after_upload = peak_rss_mib(pid);
    let mut downs = Vec::new();
    for _ in 0..repeat {
        settle();
        let back = work.path().join("coffer-back.bin");
        downs.push(
            time_download_file(
                &mut client,
                "bench/bench.bin",
                &resp.content_hash,
                Some(&back),
            )
            .await?,
        );
    }
    let coffer_rounds = rounds(&downs);
    let coffer_down = median(downs);
    let rss_after_download = peak_rss_mib(pid);

    // The CLI, on different content (the same bytes would all dedup).
    let cli_src = work.path().join("cli.bin");
    let edited = work.path().join("cli-edited.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&cli_src)?);
        let mut g = std::io::BufWriter::new(std::fs::File::create(&edited)?);
        let mut at = 0u64;
        for b in pattern_blocks(size, 4048) {
            f.write_all(&b)?;
            if at <= size / 2 && size / 2 < at + b.len() as u64 {
                let cut = (size / 2 - at) as usize;
                g.write_all(&b[..cut])?;
                g.write_all(&coffer_tests::data::pattern(1024, 99))?;
                g.write_all(&b[cut..])?;
            } else {
                g.write_all(&b)?;
            }
            at += b.len() as u64;
        }
        f.flush()?;
        g.flush()?;
    }
    settle();
    let state = work.path().join("cli-state");
    let run_cli = |args: &[&str]| run_coffer(&server, &state, args);
    let ((cli_up, _), cli_up_cpu) = CpuUse::during(&nodes, &server, || {
        run_cli(&["put", cli_src.to_str().unwrap(), "bench/cli.bin"])
    })?;
    let back = work.path().join("cli-back.bin");
    let mut cli_downs = Vec::new();
    for _ in 0..repeat {
        settle();
        cli_downs.push(run_cli(&["get", "bench/cli.bin", back.to_str().unwrap()])?.0);
    }
    let cli_rounds = rounds(&cli_downs);
    let cli_down = median(cli_downs);
    let (cli_delta, delta_json) = run_cli(&["put", edited.to_str().unwrap(), "bench/cli.bin"])?;
    let rss_after_cli = peak_rss_mib(pid);
    let status = settled_status(&server).await?;

    // The browser app, when built: a 256 MiB upload from the file picker to
    // the committed version, against the CLI on another 256 MiB file.
    let browser = browser_upload(&server, work.path(), &run_cli)?;

    let mibps = |secs: f64| size_mib as f64 / secs;
    println!("coffer-bench: {size_mib} MiB file, 3 Garage nodes (R=3, W=2) vs aws s3 cp to 1 Garage node");
    println!(
        "(downloads: median of {repeat} runs; uploads: one run each, as a repeat would dedup)"
    );
    println!("{:<34} {:>10} {:>12}", "", "seconds", "MiB/s");
    println!(
        "{:<34} {:>10.2} {:>12.1}",
        "aws s3 cp upload (1 node)",
        s3_up,
        mibps(s3_up)
    );
    println!(
        "{:<34} {:>10.2} {:>12.1}",
        "coffer UploadFile (3 replicas)",
        coffer_up,
        mibps(coffer_up)
    );
    println!(
        "{:<34} {:>10.2} {:>12.1}",
        "aws s3 cp download (1 node)",
        s3_down,
        mibps(s3_down)
    );
    println!(
        "{:<34} {:>10.2} {:>12.1}",
        "coffer DownloadFile",
        coffer_down,
        mibps(coffer_down)
    );
    println!(
        "upload ratio   (coffer / aws s3 cp): {:.2}",
        s3_up / coffer_up
    );
    println!(
        "download ratio (coffer / aws s3 cp): {:.2}",
        s3_down / coffer_down
    );
    println!(
        "{:<34} {:>10.2} {:>12.1}",
        "coffer put (CLI, 3 replicas)",
        cli_up,
        mibps(cli_up)
    );
    println!(
        "{:<34} {:>10.2} {:>12.1}",
        "coffer get (CLI)",
        cli_down,
        mibps(cli_down)
    );
    println!(
        "{:<34} {:>10.2}",
        "coffer put after a 1 KiB insert", cli_delta
    );
    println!(
        "CLI upload ratio   (coffer put / aws s3 cp): {:.2}",
        s3_up / cli_up
    );
    println!(
        "CLI download ratio (coffer get / aws s3 cp): {:.2}",
        s3_down / cli_down
    );
    println!(
        "delta re-upload time / first upload time: {:.3}",
        cli_delta / cli_up
    );
    println!(
        "download rounds (s): aws s3 cp {s3_rounds}; DownloadFile {coffer_rounds}; coffer get {cli_rounds}"
    );
    print_upload_cpu(s3_up, s3_up_cpu, cli_up_cpu);
    println!("delta summary: {}", delta_json.trim());
    println!("server peak RSS after the CLI runs: {rss_after_cli:.1} MiB");
    println!(
        "after the uploads: {} chunks stored, {} with fewer than {} good copies",
        status.chunks, status.under_replicated_chunks, status.replication_factor
    );
    match browser {
        Some((web, cli)) => {
            println!("browser upload of 256 MiB: {web:.2} s; coffer put of 256 MiB: {cli:.2} s");
            println!(
                "browser upload ratio (browser / CLI throughput): {:.2}",
                cli / web
            );
        }
        None => {
            println!("browser upload: skipped (build dist/ with trunk; install chromium or set CHROMIUM)")
        }
    }
    println!(
        "server peak RSS: {idle_rss:.1} MiB idle, {rss_after_upload:.1} MiB after upload, \
         {rss_after_download:.1} MiB after download (goal: < 200 MiB)"
    );
    Ok(())
}

/// `--only download`: the download paths alone, rounds interleaved so
/// that drift on a shared machine hits each path alike.
async fn downloads_only(
    server: &Server,
    node: &coffer_tests::garage::GarageNode,
    cfg: &Path,
    src: &Path,
    work: &Path,
    repeat: u64,
) -> anyhow::Result<()> {
    settle();
    let key = format!("s3://{}/baseline/bench.bin", node.bucket());
    aws(node, cfg, &["s3", "cp", src.to_str().unwrap(), &key])?;
    let state = work.join("cli-state");
    let (_, put) = run_coffer(
        server,
        &state,
        &["put", src.to_str().unwrap(), "bench/bench.bin"],
    )?;
    let hash = put
        .split("\"content_hash\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("coffer put printed no content hash")?
        .to_string();
    let back = work.join("back.bin");
    let (mut s3, mut get, mut grpc) = (Vec::new(), Vec::new(), Vec::new());
    let mut client = server.client().await;
    for round in 0..repeat {
        settle();
        s3.push(aws(node, cfg, &["s3", "cp", &key, back.to_str().unwrap()])?);
        settle();
        let (secs, _) = run_coffer(
            server,
            &state,
            &["get", "bench/bench.bin", back.to_str().unwrap()],
        )?;
        get.push(secs);
        settle();
        grpc.push(time_download_file(&mut client, "bench/bench.bin", &hash, None).await?);
        println!(
            "round {round}: aws s3 cp {:.2} s, coffer get {:.2} s, DownloadFile {:.2} s",
            s3[s3.len() - 1],
            get[get.len() - 1],
            grpc[grpc.len() - 1]
        );
    }
    let (s3, get, grpc) = (median(s3), median(get), median(grpc));
    println!("medians: aws s3 cp {s3:.2} s, coffer get {get:.2} s, DownloadFile {grpc:.2} s");
    println!(
        "CLI download ratio {:.2}, DownloadFile ratio {:.2}",
        s3 / get,
        s3 / grpc
    );
    Ok(())
}

/// `--only upload`: `aws s3 cp` to one node against `coffer put` of other
/// bytes of the same size (three copies), then the copies are counted.
async fn uploads_only(
    server: &Server,
    nodes: &[coffer_tests::garage::GarageNode],
    cfg: &Path,
    src: &Path,
    work: &Path,
) -> anyhow::Result<()> {
    let node = &nodes[0];
    settle();
    let key = format!("s3://{}/baseline/bench.bin", node.bucket());
    let (s3, s3_cpu) = CpuUse::during(nodes, server, || {
        aws(node, cfg, &["s3", "cp", src.to_str().unwrap(), &key])
    })?;
    let size = std::fs::metadata(src)?.len();
    let other = work.join("other.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&other)?);
        for b in pattern_blocks(size, 4048) {
            f.write_all(&b)?;
        }
        f.flush()?;
    }
    settle();
    let state = work.join("cli-state");
    let ((put, _), put_cpu) = CpuUse::during(nodes, server, || {
        run_coffer(
            server,
            &state,
            &["put", other.to_str().unwrap(), "bench/other.bin"],
        )
    })?;
    let status = settled_status(server).await?;
    println!("aws s3 cp upload {s3:.2} s, coffer put {put:.2} s");
    println!("CLI upload ratio {:.2}", s3 / put);
    print_upload_cpu(s3, s3_cpu, put_cpu);
    println!(
        "{} chunks stored, {} with fewer than {} good copies",
        status.chunks, status.under_replicated_chunks, status.replication_factor
    );
    Ok(())
}

/// `--only small`: `aws s3 cp --recursive` of `n` files of 4 KiB to one
/// node against `coffer put` of another such tree (three copies); then a
/// second put of the unchanged tree against the first, and `aws s3 sync`
/// of the unchanged tree for reference. The second put must make no
/// version.
async fn small_only_bench(
    server: &Server,
    nodes: &[coffer_tests::garage::GarageNode],
    cfg: &Path,
    work: &Path,
    n: usize,
) -> anyhow::Result<()> {
    let node = &nodes[0];
    let (ours, theirs) = (work.join("small-coffer"), work.join("small-aws"));
    small_files(&theirs, n, 4096, 11)?;
    small_files(&ours, n, 4096, 12)?;
    let dest = format!("s3://{}/small/", node.bucket());
    settle();
    let (s3, s3_cpu) = CpuUse::during(nodes, server, || {
        aws(
            node,
            cfg,
            &["s3", "cp", "--recursive", theirs.to_str().unwrap(), &dest],
        )
    })?;
    let state = work.join("cli-state");
    settle();
    let ((put, _), put_cpu) = CpuUse::during(nodes, server, || {
        run_coffer(
            server,
            &state,
            &["put", ours.to_str().unwrap(), "bench/small"],
        )
    })?;
    let before = server.latest_change().await;
    settle();
    let (reput, out) = run_coffer(
        server,
        &state,
        &["put", ours.to_str().unwrap(), "bench/small"],
    )?;
    let after = server.latest_change().await;
    let unchanged: serde_json::Value = serde_json::from_str(&out)?;
    if before != after || unchanged["unchanged"].as_u64() != Some(n as u64) {
        bail!(
            "the second put changed something: {} unchanged, feed {before} -> {after}",
            unchanged["unchanged"]
        );
    }
    settle();
    let s3_sync = aws(node, cfg, &["s3", "sync", theirs.to_str().unwrap(), &dest])?;
    println!(
        "{n} files of 4 KiB: aws s3 cp --recursive {s3:.2} s, coffer put {put:.2} s (3 copies)"
    );
    println!("small-file put ratio (aws / coffer) {:.2}", s3 / put);
    print_upload_cpu(s3, s3_cpu, put_cpu);
    print_per_file(nodes, n, &put_cpu).await?;
    println!(
        "unchanged: coffer put again {reput:.2} s, aws s3 sync {s3_sync:.2} s; no version made"
    );
    println!("re-put / put {:.3}", reput / put);
    Ok(())
}

/// `--only sync`: the first `coffer sync --once` of `n` files of 4 KiB
/// (three copies) against `aws s3 sync` of another such tree to one node;
/// a no-change pass against the first (it must make no version); and, with
/// two `coffer sync` running, the time from writing a file in one folder
/// to its appearing whole in the other, median of 20.
async fn sync_only_bench(
    server: &Server,
    nodes: &[coffer_tests::garage::GarageNode],
    cfg: &Path,
    work: &Path,
    n: usize,
) -> anyhow::Result<()> {
    let node = &nodes[0];
    let (ours, theirs) = (work.join("sync-coffer"), work.join("sync-aws"));
    small_files(&theirs, n, 4096, 21)?;
    small_files(&ours, n, 4096, 22)?;
    let dest = format!("s3://{}/sync/", node.bucket());
    settle();
    let (s3, s3_cpu) = CpuUse::during(nodes, server, || {
        aws(node, cfg, &["s3", "sync", theirs.to_str().unwrap(), &dest])
    })?;
    let state = work.join("sync-state");
    let args = ["sync", ours.to_str().unwrap(), "bench/sync", "--once"];
    settle();
    let ((first, _), first_cpu) =
        CpuUse::during(nodes, server, || run_coffer(server, &state, &args))?;
    let before = server.latest_change().await;
    settle();
    let (again, _) = run_coffer(server, &state, &args)?;
    if server.latest_change().await != before {
        bail!("the no-change sync pass made a change");
    }
    settle();
    let s3_again = aws(node, cfg, &["s3", "sync", theirs.to_str().unwrap(), &dest])?;
    println!(
        "{n} files of 4 KiB: aws s3 sync {s3:.2} s, first coffer sync {first:.2} s (3 copies)"
    );
    println!("first-sync ratio (aws / coffer) {:.2}", s3 / first);
    print_cpu(("aws s3 sync", "coffer sync"), s3, s3_cpu, first_cpu);
    print_per_file(nodes, n, &first_cpu).await?;
    println!("no change: coffer sync {again:.2} s, aws s3 sync {s3_again:.2} s; no version made");
    println!("no-change pass / first {:.3}", again / first);

    // Two folders kept in sync by two running `coffer sync`.
    let live = |name: &str| -> anyhow::Result<(std::path::PathBuf, std::process::Child)> {
        let dir = work.join(name);
        std::fs::create_dir_all(&dir)?;
        let child = std::process::Command::new(coffer_tests::cli::cli_bin())
            .args(["--server", server.addr(), "--quiet", "sync"])
            .arg(&dir)
            .arg("bench/live")
            .env("COFFER_STATE_DIR", work.join(format!("{name}-state")))
            .env("COFFER_TOKEN", server.token().unwrap_or_default())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        Ok((dir, child))
    };
    let (x, mut xp) = live("live-x")?;
    let (y, mut yp) = live("live-y")?;
    let arrived = |path: &Path, want: &[u8]| std::fs::read(path).is_ok_and(|d| d == want);
    let mut times = Vec::new();
    // The first file also waits for both to start.
    for i in 0..21 {
        let data = format!("live file {i}").into_bytes();
        let start = Instant::now();
        std::fs::write(x.join(format!("f{i}.txt")), &data)?;
        let target = y.join(format!("f{i}.txt"));
        while !arrived(&target, &data) {
            if start.elapsed() > std::time::Duration::from_secs(60) {
                bail!("f{i}.txt did not reach the second folder in 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    xp.kill().ok();
    yp.kill().ok();
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "save to second folder: median {:.2} s, min {:.2} s, max {:.2} s (20 files)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    Ok(())
}

/// Writes `n` files of `size` bytes, each different, under `dir`.
fn small_files(dir: &Path, n: usize, size: usize, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..n {
        let data = coffer_tests::data::pattern(size, seed * 1_000_000 + i as u64);
        std::fs::write(dir.join(format!("f{i:05}.bin")), data)?;
    }
    Ok(())
}

/// `--only metadata`: the same work on the SQLite server (`sqlite`) and on
/// servers sharing a PostgreSQL that syncs its commits, on the same nodes.
async fn metadata_only(
    sqlite: &Server,
    nodes: &[coffer_tests::garage::GarageNode],
    src: &Path,
    work: &Path,
    repeat: u64,
) -> anyhow::Result<()> {
    let pg =
        tokio::task::spawn_blocking(coffer_tests::postgres::PgCluster::start_durable).await??;
    let url = pg.database().await?;
    let opts = || {
        ServerOpts::on_garage(nodes)
            .process()
            .with("COFFER_NODE_TIMEOUT_MS", "30000")
            .with("COFFER_ACCESS_TOKEN_SECS", "86400")
            .with("COFFER_DATABASE_URL", &url)
    };
    let pg_a = Server::start(opts()).await?;
    let pg_b = Server::start(opts()).await?;

    // One large file each, different bytes (the nodes dedup by content).
    let size = std::fs::metadata(src)?.len();
    let other = work.join("pg.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&other)?);
        for b in pattern_blocks(size, 5050) {
            f.write_all(&b)?;
        }
        f.flush()?;
    }
    // The content hash (over the chunk ids), cut here from the file.
    let hash_of = |p: &Path| -> anyhow::Result<String> {
        let mut h = coffer_proto::chunking::StreamContentHasher::new();
        for b in file_blocks(p) {
            h.update(&b);
        }
        Ok(h.finish())
    };
    let (want_sqlite, want_pg) = (hash_of(src)?, hash_of(&other)?);
    let mut sq = sqlite.client().await;
    let mut pq = pg_a.client().await;
    settle();
    let t = Instant::now();
    upload(&mut sq, "meta/large.bin", file_blocks(src)).await?;
    let up_sqlite = t.elapsed().as_secs_f64();
    settle();
    let t = Instant::now();
    upload(&mut pq, "meta/large.bin", file_blocks(&other)).await?;
    let up_pg = t.elapsed().as_secs_f64();
    let (mut down_sqlite, mut down_pg) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        settle();
        down_sqlite.push(time_download_file(&mut sq, "meta/large.bin", &want_sqlite, None).await?);
        settle();
        down_pg.push(time_download_file(&mut pq, "meta/large.bin", &want_pg, None).await?);
    }
    let (down_sqlite, down_pg) = (median(down_sqlite), median(down_pg));
    let mib = size as f64 / (1024.0 * 1024.0);
    println!("large file, {mib:.0} MiB:");
    println!(
        "  upload   SQLite {up_sqlite:.2} s ({:.1} MiB/s), PostgreSQL {up_pg:.2} s ({:.1} MiB/s): PostgreSQL at {:.2}x",
        mib / up_sqlite,
        mib / up_pg,
        up_sqlite / up_pg
    );
    println!(
        "  download SQLite {down_sqlite:.2} s ({:.1} MiB/s), PostgreSQL {down_pg:.2} s ({:.1} MiB/s): PostgreSQL at {:.2}x",
        mib / down_sqlite,
        mib / down_pg,
        down_sqlite / down_pg
    );

    // Small files: `coffer put` of a folder, one commit per file.
    let (n, small) = (2000usize, 4096usize);
    let dirs: Vec<std::path::PathBuf> = (0..4).map(|i| work.join(format!("small-{i}"))).collect();
    small_files(&dirs[0], n, small, 1)?;
    small_files(&dirs[1], n, small, 2)?;
    small_files(&dirs[2], n / 2, small, 3)?;
    small_files(&dirs[3], n / 2, small, 4)?;
    let put = |server: &Server, dir: &Path, state: &str, remote: &str| {
        run_coffer(
            server,
            &work.join(state),
            &["put", dir.to_str().unwrap(), remote],
        )
        .map(|(secs, _)| secs)
    };
    settle();
    let on_sqlite = put(sqlite, &dirs[0], "state-sq", "small/")?;
    settle();
    let on_pg = put(&pg_a, &dirs[1], "state-pg", "small/")?;
    settle();
    let t = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let a = s.spawn(|| put(&pg_a, &dirs[2], "state-a", "spread-a/"));
        let b = s.spawn(|| put(&pg_b, &dirs[3], "state-b", "spread-b/"));
        a.join().expect("put a")?;
        b.join().expect("put b")?;
        Ok(())
    })?;
    let spread = t.elapsed().as_secs_f64();
    println!("{n} files of {small} bytes (`coffer put DIR`):");
    println!(
        "  SQLite, one server          {on_sqlite:.2} s, {:.0} commits/s",
        n as f64 / on_sqlite
    );
    println!(
        "  PostgreSQL, one server      {on_pg:.2} s, {:.0} commits/s",
        n as f64 / on_pg
    );
    println!(
        "  PostgreSQL, two servers     {spread:.2} s, {:.0} commits/s",
        n as f64 / spread
    );
    Ok(())
}

/// `--only snapshot`: the metadata of `files` one-chunk files, built
/// through the metadata interface on a RAM disk, then on the real disk:
/// a snapshot to three directory nodes and a restore from them, against a
/// plain copy of the database file with an fsync (the baseline).
async fn snapshot_only(files: u64) -> anyhow::Result<()> {
    use coffer_server::meta::{ChunkHold, ChunkRef, Meta, NewVersion, DEFAULT_OWNER};
    use coffer_server::snapshot::{restore, take};
    use coffer_server::store::{local::LocalStore, BlobStore};
    use std::sync::Arc;

    let ram = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir())?;
    let built: Meta = Arc::new(coffer_server::meta::sqlite::open(
        &ram.path().join("coffer.db"),
    )?);
    built.init_cluster_id("bench").await?;
    let nodes = ["n1".to_string(), "n2".to_string(), "n3".to_string()];
    let t = Instant::now();
    for i in 0..files {
        let chunk = ChunkRef {
            id: blake3::hash(&i.to_le_bytes()).to_hex().to_string(),
            size: 4096,
        };
        if let ChunkHold::Write(hold) = built.hold_chunk(&chunk, None).await? {
            built.record_chunk(&chunk, &hold, &nodes).await?;
        }
        built
            .commit_version(&NewVersion {
                owner: DEFAULT_OWNER,
                path: format!("bench/dir{:03}/file{i:06}.txt", i / 1000),
                size: 4096,
                hash: chunk.id.clone(),
                chunks: vec![chunk],
                uploader: "bench".into(),
                stream: None,
                session: None,
                mode: Default::default(),
                modified: None,
                checksums: None,
            })
            .await?;
    }
    println!(
        "built the metadata of {files} files in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let work = tempfile::tempdir()?;
    let db = work.path().join("coffer.db");
    built.snapshot_into(&db).await?;
    drop(built);
    let meta: Meta = Arc::new(coffer_server::meta::sqlite::open(&db)?);
    let db_bytes = std::fs::metadata(&db)?.len();

    settle();
    let t = Instant::now();
    let copy = work.path().join("copy.db");
    std::fs::copy(&db, &copy)?;
    std::fs::File::open(&copy)?.sync_all()?;
    let copy_secs = t.elapsed().as_secs_f64();

    let targets: Vec<take::Target> = (1..=3)
        .map(|i| {
            let store: Arc<dyn BlobStore> = Arc::new(LocalStore::new(
                format!("node{i}"),
                work.path().join(format!("node{i}")),
            ));
            (format!("node{i}"), store)
        })
        .collect();
    settle();
    let t = Instant::now();
    let key = coffer_server::snapshot::mac_key(b"a signing key for the benchmark, 32+ bytes");
    let taken = take::take(&meta, &targets, work.path(), &key)
        .await
        .map_err(anyhow::Error::msg)?;
    let snap_secs = t.elapsed().as_secs_f64();

    settle();
    let t = Instant::now();
    let opts = restore::RestoreOptions {
        database: work.path().join("restored").join("coffer.db"),
        at: None,
        cluster: None,
        force: false,
        key,
        max_bytes: restore::MAX_RESTORED_BYTES,
    };
    restore::restore(&targets, &opts).await?;
    let restore_secs = t.elapsed().as_secs_f64();
    let restored: Meta = Arc::new(coffer_server::meta::sqlite::open(&opts.database)?);
    let t = Instant::now();
    let audit = restore::audit(&restored, &targets).await?;
    let audit_secs = t.elapsed().as_secs_f64();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "RELIABILITY snapshot of {files} files: database {:.1} MiB, object {:.1} MiB, \
         taken and written to 3 nodes in {snap_secs:.2} s (a plain copy with fsync: {copy_secs:.2} s, \
         ratio {:.1}x)",
        mib(db_bytes),
        mib(taken.info.bytes),
        snap_secs / copy_secs.max(1e-6)
    );
    println!(
        "RELIABILITY restore of {files} files: {restore_secs:.2} s (read, verify, unpack, \
         integrity check); audit against the nodes {audit_secs:.2} s ({} chunks the nodes lack, \
         as none were written)",
        audit.missing_chunks
    );
    anyhow::ensure!(
        audit.missing_chunks == files,
        "the restored metadata names {} chunks, not {files}",
        audit.missing_chunks
    );
    Ok(())
}

/// `--only web`: see the module's documentation.
async fn web_only(files: u64, repeat: u64) -> anyhow::Result<()> {
    use coffer_tests::server::http_request;
    let work = tempfile::tempdir()?;
    let state = work.path().join("cli-state");
    let mut server = Server::start(
        ServerOpts::embedded()
            .process()
            .with("COFFER_ACCESS_TOKEN_SECS", "86400"),
    )
    .await?;

    // Opening a folder of 100,000 files against one of 100: the first
    // page the web app asks for (ListFiles, by name, 1,000 files).
    {
        let mut c = server.client().await;
        for folder in ["big", "small"] {
            upload(
                &mut c,
                &format!("{folder}/file000000.txt"),
                pattern_blocks(11, 5),
            )
            .await?;
        }
        server.kill().await;
        let db = server.data_dir().join("coffer.db");
        coffer_tests::data::fill_folder(&db, "big", 100_000)?;
        coffer_tests::data::fill_folder(&db, "small", 100)?;
        server.restart().await?;
    }
    let c = server.client().await;
    let open = |folder: &'static str| {
        let mut c = c.clone();
        async move {
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                let page = c
                    .list_files(coffer_proto::pb::ListFilesRequest {
                        prefix: format!("{folder}/"),
                        page_size: 1000,
                        delimiter: "/".into(),
                        order_by: "name".into(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                times.push(t.elapsed().as_secs_f64());
                anyhow::ensure!(!page.files.is_empty(), "no files in {folder}");
            }
            anyhow::Ok(median(times))
        }
    };
    let big = open("big").await?;
    let small = open("small").await?;
    println!(
        "opening a folder of 100,000 files (first page of 1,000): {:.1} ms; of 100 files: {:.1} ms; \
         ratio {:.2}",
        big * 1000.0,
        small * 1000.0,
        big / small
    );
    // What the app did before: the whole folder, every page, in path order.
    let t = Instant::now();
    let mut token = String::new();
    let mut listed = 0;
    loop {
        let page = c
            .clone()
            .list_files(coffer_proto::pb::ListFilesRequest {
                prefix: "big/".into(),
                page_size: 1000,
                page_token: token,
                delimiter: "/".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        listed += page.files.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let whole = t.elapsed().as_secs_f64();
    println!(
        "listing all {listed} files of it, as the app did before: {:.0} ms ({:.0}x the first page)",
        whole * 1000.0,
        whole / big
    );
    let pid = server.pid().context("the server runs as a process")?;
    let bearer = format!("Bearer {}", server.token().unwrap_or_default());

    // A zip of a folder against `coffer get` of it, same server, same files.
    let tree = work.path().join("folder");
    small_files(&tree, files as usize, 4096, 31)?;
    run_coffer(&server, &state, &["put", tree.to_str().unwrap(), "folder"])?;
    let (mut zips, mut gets) = (Vec::new(), Vec::new());
    let mut zip_bytes = 0;
    for round in 0..repeat {
        settle();
        let dest = work.path().join(format!("got{round}"));
        gets.push(run_coffer(&server, &state, &["get", "folder", dest.to_str().unwrap()])?.0);
        settle();
        let t = Instant::now();
        let (code, head, body) = http_request(
            server.addr(),
            "POST",
            "/zip",
            &[
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            b"path=folder",
        )
        .await;
        zips.push(t.elapsed().as_secs_f64());
        if code != 200 {
            bail!("zip: {code} {head}");
        }
        zip_bytes = body.len();
    }
    let (zip, get) = (median(zips), median(gets));
    println!(
        "zip of a folder of {files} files of 4 KiB ({zip_bytes} bytes): {zip:.3} s; coffer get of it: {get:.3} s; \
         zip / get speed: {:.2}",
        get / zip
    );

    // Thumbnails of 12-megapixel JPEGs: the server (fetch, decode, scale,
    // encode, keep) against decoding and scaling here.
    const PHOTOS: usize = 8;
    let photos = work.path().join("photos");
    std::fs::create_dir_all(&photos)?;
    let mut sources = Vec::new();
    for i in 0..PHOTOS {
        let img = image::RgbImage::from_fn(4000, 3000, |x, y| {
            image::Rgb([
                (x / 16 + i as u32 * 7) as u8,
                (y / 12) as u8,
                ((x ^ y) & 0xFF) as u8,
            ])
        });
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(img).write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )?;
        std::fs::write(photos.join(format!("p{i}.jpg")), &jpeg)?;
        sources.push(jpeg);
    }
    run_coffer(
        &server,
        &state,
        &["put", photos.to_str().unwrap(), "photos"],
    )?;
    let rss_before = peak_rss_mib(pid);
    settle();
    let t = Instant::now();
    for i in 0..PHOTOS {
        let (code, head, _) = http_request(
            server.addr(),
            "GET",
            &format!("/thumb/photos/p{i}.jpg?edge=256"),
            &[("Authorization", bearer.as_str())],
            b"",
        )
        .await;
        if code != 200 {
            bail!("thumbnail: {code} {head}");
        }
    }
    let served = t.elapsed().as_secs_f64();
    let rss_after = peak_rss_mib(pid);
    settle();
    let t = Instant::now();
    for jpeg in &sources {
        coffer_server::thumbs::render::thumbnail(jpeg, 256, 100_000_000)?;
    }
    let local = t.elapsed().as_secs_f64();
    println!(
        "thumbnails of {PHOTOS} 12-megapixel JPEGs: server {:.2}/s, in process {:.2}/s, ratio {:.2}; \
         server peak RSS {rss_before:.0} MiB before, {rss_after:.0} MiB after",
        PHOTOS as f64 / served,
        PHOTOS as f64 / local,
        local / served
    );
    Ok(())
}
