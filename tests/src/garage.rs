//! Real single-node Garage S3 servers on loopback, for end-to-end tests.
//!
//! Each [`GarageNode`] is one `garage server` process (db_engine `sqlite`, replication_factor 1,
//! block compression off, as MinIO ships) listening on 127.0.0.1 with ephemeral ports, owning a
//! temporary directory that holds its config, metadata dir, data dir and log file (`garage.log`).
//! After [`GarageNode::start`] the node has one access key with read/write/owner rights on bucket
//! [`BUCKET`], and S3 requests against it succeed.
//!
//! Node failures are simulated with signals: [`GarageNode::pause`] (SIGSTOP: requests hang),
//! [`GarageNode::kill`] (SIGKILL: connections are refused) and [`GarageNode::wipe_and_restart`]
//! (the node is replaced by an empty one with the same endpoint, key and bucket).
//!
//! The binary is found by [`garage_bin`]; `scripts/install-test-deps.sh` installs it.
//! Only the S3-generic `aws-sdk-s3` client is used for data access, so the same tests can run
//! against any S3-compatible server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use tokio::process::{Child, Command};

/// The bucket every node is set up with.
pub const BUCKET: &str = "files";
/// The S3 region every node is configured with.
pub const REGION: &str = "garage";
/// Name under which the access key is imported into Garage.
const KEY_NAME: &str = "coffer-test";
/// Log file name inside the node's directory.
const LOG_FILE: &str = "garage.log";
/// How long a node may take to become ready (start or restart).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout for one `garage` CLI invocation.
const CLI_TIMEOUT: Duration = Duration::from_secs(15);
/// Number of log lines quoted in startup error messages.
const LOG_TAIL_LINES: usize = 40;

/// Path of the garage binary: `$GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage`.
///
/// # Panics
/// If none of these exists, with a message saying how to install it.
pub fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GARAGE_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "GARAGE_BIN is set to {} but no such file exists",
            p.display()
        );
        return p;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("garage");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let candidate = PathBuf::from(home).join(".cargo/bin/garage");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "garage binary not found: set $GARAGE_BIN, put `garage` on PATH, or run \
         scripts/install-test-deps.sh (cargo install garage@2.5.0 --locked)"
    );
}

/// A port no other server of this test process was given.
fn free_port() -> anyhow::Result<u16> {
    crate::ports::free_port().context("choosing a port")
}

/// `n` random bytes as lowercase hex.
fn random_hex<const N: usize>() -> String {
    hex::encode(rand::random::<[u8; N]>())
}

/// One single-node Garage server process and everything it owns.
///
/// Dropping it kills the process (SIGCONT then SIGKILL, then reaps it) and deletes its directory.
///
/// The server is also started with `PR_SET_PDEATHSIG = SIGKILL`, so it dies if the thread that
/// started it exits (e.g. the test process is killed). Start nodes from async code on a runtime
/// that outlives them, not from a short-lived thread.
pub struct GarageNode {
    /// Holds `garage.toml`, `meta/`, `data/` and `garage.log`; deleted on drop.
    dir: tempfile::TempDir,
    /// The running server, `None` after [`GarageNode::kill`].
    child: Option<Child>,
    s3_port: u16,
    rpc_port: u16,
    admin_port: u16,
    access_key: String,
    secret_key: String,
}

impl std::fmt::Debug for GarageNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarageNode")
            .field("dir", &self.dir.path())
            .field("pid", &self.pid())
            .field("s3_port", &self.s3_port)
            .field("rpc_port", &self.rpc_port)
            .field("admin_port", &self.admin_port)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl GarageNode {
    /// Starts a single-node Garage (db_engine sqlite, replication_factor 1) on 127.0.0.1 with
    /// ephemeral free ports (S3 API, RPC, admin), waits until it is ready, assigns and applies the
    /// layout, imports a fresh random key, creates bucket [`BUCKET`] and grants read/write/owner on
    /// it to the key.
    ///
    /// Returns once a HeadBucket and a ListObjectsV2 on the bucket have succeeded through
    /// [`GarageNode::client`], so a PutObject will succeed. If the process dies during startup
    /// (e.g. a port was taken in the meantime), it is retried with fresh ports.
    pub async fn start() -> anyhow::Result<GarageNode> {
        let mut last_err = None;
        for _ in 0..3 {
            let mut node = Self::create()?;
            match node.boot(true).await {
                Ok(()) => return Ok(node),
                Err(e) => {
                    let died = node
                        .child
                        .as_mut()
                        .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
                    if !died {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("garage did not start")))
    }

    /// Allocates the directory, ports and credentials; does not start anything.
    fn create() -> anyhow::Result<GarageNode> {
        let dir = tempfile::Builder::new()
            .prefix("coffer-garage-")
            .tempdir()
            .context("creating the garage node's tempdir")?;
        let node = GarageNode {
            dir,
            child: None,
            s3_port: free_port()?,
            rpc_port: free_port()?,
            admin_port: free_port()?,
            access_key: format!("GK{}", random_hex::<12>()),
            secret_key: random_hex::<32>(),
        };
        node.write_config(&random_hex::<32>())?;
        Ok(node)
    }

    fn write_config(&self, rpc_secret: &str) -> anyhow::Result<()> {
        let config = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
# MinIO, the storage Coffer is deployed on, does not compress by default;
# Garage's zstd pass would only burn CPU on the tests' random bytes.
compression_level = "none"

rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
api_bind_addr = "127.0.0.1:{s3}"
s3_region = "{REGION}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
            meta = self.meta_dir().display(),
            data = self.data_dir().display(),
            rpc = self.rpc_port,
            s3 = self.s3_port,
            admin = self.admin_port,
        );
        std::fs::write(self.config_path(), config).context("writing garage.toml")
    }

    /// Spawns the server, waits until its CLI answers, optionally sets up layout, key and bucket
    /// (`setup`), then waits until the S3 API serves the bucket.
    async fn boot(&mut self, setup: bool) -> anyhow::Result<()> {
        let started = Instant::now();
        self.spawn()?;
        let result = async {
            let node_id = self.wait_for_rpc(started).await?;
            if setup {
                self.setup(&node_id).await?;
            }
            self.wait_for_s3(started).await
        }
        .await;
        result.map_err(|e| {
            anyhow!(
                "{e:#}\n--- last lines of {} ---\n{}",
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES)
            )
        })
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.meta_dir())?;
        std::fs::create_dir_all(self.data_dir())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening garage.log")?;
        let mut cmd = Command::new(garage_bin());
        cmd.arg("-c")
            .arg(self.config_path())
            .arg("server")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe. If the spawning thread (hence usually the test
        // process) dies without running our Drop, the kernel kills the server: no leaked processes.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", garage_bin().display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Errors if the server process has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("garage is not running");
        };
        if let Some(status) = child.try_wait()? {
            bail!("garage server exited during startup: {status}");
        }
        Ok(())
    }

    /// Retries `garage node id -q` until the daemon answers; returns the node id (hex, no address).
    async fn wait_for_rpc(&mut self, started: Instant) -> anyhow::Result<String> {
        loop {
            self.check_alive()?;
            // `node id` can answer from the key file before the daemon
            // listens; `status` needs the daemon's RPC.
            let probe = match self.cli(&["status"]).await {
                Ok(_) => self.cli(&["node", "id", "-q"]).await,
                Err(e) => Err(e),
            };
            match probe {
                Ok(out) => {
                    let full = out.trim();
                    let id = full.split('@').next().unwrap_or(full).to_string();
                    if !id.is_empty() {
                        return Ok(id);
                    }
                }
                Err(e) if started.elapsed() > READY_TIMEOUT => {
                    return Err(e.context("garage RPC did not become ready"));
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Layout, key, bucket and permissions on a fresh (empty) node.
    async fn setup(&self, node_id: &str) -> anyhow::Result<()> {
        self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", node_id])
            .await?;
        self.cli(&["layout", "apply", "--version", "1"]).await?;
        self.cli(&[
            "key",
            "import",
            "--yes",
            &self.access_key,
            &self.secret_key,
            "-n",
            KEY_NAME,
        ])
        .await?;
        // Lets the S3 store's "create the bucket if missing" path be tested.
        self.cli(&["key", "allow", "--create-bucket", KEY_NAME])
            .await?;
        self.cli(&["bucket", "create", BUCKET]).await?;
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_NAME,
        ])
        .await?;
        Ok(())
    }

    /// Retries HeadBucket + ListObjectsV2 until both succeed.
    async fn wait_for_s3(&mut self, started: Instant) -> anyhow::Result<()> {
        let client = self.client();
        loop {
            self.check_alive()?;
            let attempt = tokio::time::timeout(Duration::from_secs(3), async {
                client.head_bucket().bucket(BUCKET).send().await?;
                client
                    .list_objects_v2()
                    .bucket(BUCKET)
                    .max_keys(1)
                    .send()
                    .await?;
                anyhow::Ok(())
            })
            .await;
            let err = match attempt {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => anyhow!("S3 request timed out"),
            };
            if started.elapsed() > READY_TIMEOUT {
                return Err(err.context("garage S3 API did not become ready"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `garage -c CFG ARGS...`; returns stdout, or an error quoting stdout and stderr.
    async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new(garage_bin());
        cmd.arg("-c")
            .arg(self.config_path())
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
            .await
            .map_err(|_| anyhow!("`garage {}` timed out", args.join(" ")))?
            .with_context(|| format!("running `garage {}`", args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "`garage {}` failed ({}): {}{}",
                args.join(" "),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// The last `n` lines of the node's log file (empty if unreadable).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// S3 endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Access key id: `GK` followed by 24 hex digits.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// Secret access key: 64 hex digits.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The bucket the key may read, write and own: [`BUCKET`] (`files`).
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The S3 region: [`REGION`] (`garage`).
    pub fn region(&self) -> &str {
        REGION
    }

    /// The node's directory (config, `meta/`, `data/`, `garage.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `garage.toml` config file, for running the garage CLI by hand.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// The server's log file (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    fn meta_dir(&self) -> PathBuf {
        self.dir.path().join("meta")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// PID of the server process, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// A new S3 client for this node: path-style addressing, region `garage`, static credentials.
    ///
    /// It has no operation timeout: a request to a paused node hangs until the node resumes.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let creds = Credentials::new(
            self.access_key.clone(),
            self.secret_key.clone(),
            None,
            None,
            "coffer-tests-garage",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(coffer_server::store::s3::https_client())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Freezes the server with SIGSTOP (a hung node: connections are accepted, nothing answers).
    ///
    /// Returns once every thread has stopped: the kernel stops a process's threads one by one as
    /// each is next scheduled, and until then a thread woken by a request can still answer it.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            crate::signal::send(pid, libc::SIGSTOP);
            crate::signal::wait_stopped(pid);
        }
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            crate::signal::send(pid, libc::SIGCONT);
        }
    }

    /// Kills the server with SIGKILL and waits for it to exit (a crashed node: connections are
    /// refused). Its directories are kept, so [`GarageNode::restart`] brings it back with its data.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                crate::signal::send(pid, libc::SIGCONT);
            }
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts the server again on the same directories and ports (after [`GarageNode::kill`];
    /// kills it first if it is still running) and waits until the bucket is served.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await;
        self.boot(false).await
    }

    /// Replaces the node by an empty one: kills it, deletes its metadata and data directories,
    /// and starts a fresh server on the same ports with the same key and an empty bucket `files`.
    pub async fn wipe_and_restart(&mut self) -> anyhow::Result<()> {
        self.kill().await;
        for dir in [self.meta_dir(), self.data_dir()] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        self.boot(true).await
    }

    /// All object keys in the bucket that start with `prefix` (follows ListObjectsV2 pagination).
    pub async fn list_keys(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .list_sized(prefix)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Every object under `prefix`, with its size in bytes.
    pub async fn list_sized(&self, prefix: &str) -> anyhow::Result<Vec<(String, u64)>> {
        let client = self.client();
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = client
                .list_objects_v2()
                .bucket(BUCKET)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .with_context(|| format!("ListObjectsV2 prefix={prefix:?}"))?;
            keys.extend(resp.contents().iter().filter_map(|o| {
                o.key()
                    .map(|k| (k.to_owned(), o.size().unwrap_or(0).max(0) as u64))
            }));
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(keys),
            }
        }
    }

    /// The content of object `key`.
    pub async fn get(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        self.fetch(key, None).await
    }

    /// Bytes `range` of object `key`.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> anyhow::Result<Vec<u8>> {
        self.fetch(key, Some(range)).await
    }

    /// Object `key`, whole or bytes `range` of it.
    async fn fetch(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> anyhow::Result<Vec<u8>> {
        let header = range
            .as_ref()
            .map(|r| format!("bytes={}-{}", r.start, r.end.saturating_sub(1)));
        let resp = self
            .client()
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .set_range(header)
            .send()
            .await
            .with_context(|| format!("GetObject {key:?} {range:?}"))?;
        let body = resp
            .body
            .collect()
            .await
            .with_context(|| format!("reading GetObject {key:?} body"))?;
        Ok(body.into_bytes().to_vec())
    }

    /// Writes object `key` (creating or overwriting it, e.g. to corrupt a chunk).
    pub async fn put(&self, key: &str, data: Vec<u8>) -> anyhow::Result<()> {
        self.client()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(data))
            .send()
            .await
            .with_context(|| format!("PutObject {key:?}"))?;
        Ok(())
    }

    /// Deletes object `key` (succeeds if it does not exist).
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client()
            .delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .with_context(|| format!("DeleteObject {key:?}"))?;
        Ok(())
    }
}

impl Drop for GarageNode {
    /// SIGCONT then SIGKILL the server and reap it (briefly blocking), so no process is leaked.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                crate::signal::send(pid, libc::SIGCONT);
            }
            let _ = child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                match child.try_wait() {
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    _ => break,
                }
            }
        }
    }
}

/// Starts `n` independent single-node Garages concurrently (each with its own key).
pub async fn start_cluster(n: usize) -> anyhow::Result<Vec<GarageNode>> {
    futures::future::try_join_all((0..n).map(|_| GarageNode::start())).await
}
