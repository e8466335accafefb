//! Starts Coffer's server on an ephemeral loopback port and connects
//! clients to it: in-process (`coffer_server::server::run` on a thread of
//! its own) unless the test kills, restarts or measures it, which gets the
//! real `coffer-server` binary ([`ServerOpts::process`]).

use crate::garage::GarageNode;
use coffer_proto::pb::coffer_auth_client::CofferAuthClient;
use coffer_proto::pb::file_storage_client::FileStorageClient;
use coffer_proto::pb::LoginRequest;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The password of the `admin` every test server creates on start
/// (`COFFER_ADMIN_PASSWORD`), unless the test switches authentication off.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// Puts a bearer token on every request (none: sends none).
#[derive(Clone, Default)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub fn new(token: Option<&str>) -> Self {
        Self::header(token.map(|t| format!("Bearer {t}")).as_deref())
    }

    /// Sends `value` as the whole `authorization` header.
    pub fn header(value: Option<&str>) -> Self {
        Self(value.map(|v| v.parse().expect("a header value")))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A connection that logs in as someone: every request carries their
/// access token.
pub type Conn = InterceptedService<Channel, Bearer>;

/// Path of the `coffer-server` binary: `$COFFER_SERVER_BIN`, else the one
/// next to this test's build output, built first if needed.
pub fn server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("COFFER_SERVER_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test-binary> or target/<profile>/<bin>
        // -> target/<profile>/coffer-server
        let exe = std::env::current_exe().expect("current exe");
        let mut profile_dir = exe.parent().expect("target dir");
        if profile_dir.file_name().is_some_and(|n| n == "deps") {
            profile_dir = profile_dir.parent().expect("target dir");
        }
        let bin = profile_dir.join("coffer-server");
        // Cheap when up to date; makes a bare `cargo test` work too.
        build_binaries(&profile_of(profile_dir));
        bin
    })
    .clone()
}

/// Builds the server and the CLI in one `cargo build`, as `scripts/run.sh`
/// and `scripts/test.sh` do: built together, their shared dependencies
/// compile once with one set of features, and a build of either alone would
/// compile them again with another. Run as a plain `cargo build` would
/// run it: without the variables `cargo test` sets
/// for the test itself. (Build scripts such as ring's rerun when
/// `CARGO_MANIFEST_DIR` or `OUT_DIR` changes, and everything above them is then
/// rebuilt, here and again by the next ordinary build.)
pub fn build_binaries(profile: &str) {
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args(["build", "-q", "-p", "coffer-server", "-p", "coffer-client"]);
    cmd.args(["--bin", "coffer-server", "--bin", "coffer"]);
    cmd.args(["--profile", profile]);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || matches!(
                k.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            )
        {
            cmd.env_remove(k.as_ref());
        }
    }
    let status = cmd
        .current_dir(workspace_root())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building coffer-server and coffer failed");
}

/// The Cargo profile whose output directory is `profile_dir`
/// (`target/debug` is the `dev` profile's).
pub fn profile_of(profile_dir: &std::path::Path) -> String {
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".into(),
        Some(name) => name.into(),
    }
}

/// A size line of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in bytes.
pub fn proc_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        * 1024
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct ServerOpts {
    /// Program and arguments to run instead of the `coffer-server` binary
    /// (e.g. the README's run script).
    pub command: Option<Vec<String>>,
    /// Extra environment, e.g. `MINIO_ENDPOINT_1` or `COFFER_WRITE_QUORUM`.
    pub env: Vec<(String, String)>,
    /// Run the real binary in a process of its own (for tests that kill,
    /// restart or measure it) rather than in this process.
    pub process: bool,
}

impl ServerOpts {
    /// A server on the embedded default (local directory nodes).
    pub fn embedded() -> Self {
        Self::default()
    }

    /// A server on the given Garage nodes, configured through the tutorial's
    /// variables (`MINIO_ENDPOINT_i`, per-node keys), with a short node
    /// time-out so failure tests stay quick.
    pub fn on_garage(nodes: &[GarageNode]) -> Self {
        let mut env = vec![
            ("MINIO_REGION".to_string(), nodes[0].region().to_string()),
            ("COFFER_BUCKET".to_string(), nodes[0].bucket().to_string()),
            ("COFFER_NODE_TIMEOUT_MS".to_string(), "3000".to_string()),
        ];
        for (i, n) in nodes.iter().enumerate() {
            let i = i + 1;
            env.push((format!("MINIO_ENDPOINT_{i}"), n.endpoint()));
            env.push((format!("MINIO_ACCESS_KEY_{i}"), n.access_key().to_string()));
            env.push((format!("MINIO_SECRET_KEY_{i}"), n.secret_key().to_string()));
        }
        Self {
            command: None,
            env,
            process: false,
        }
    }

    /// A server on three directory nodes under `root` (outside its data
    /// dir, so they outlive it); returns the node directories too.
    pub fn on_dirs(root: &Path) -> (Self, Vec<PathBuf>) {
        let dirs: Vec<PathBuf> = (1..=3).map(|i| root.join(format!("node{i}"))).collect();
        let spec: Vec<String> = dirs
            .iter()
            .map(|d| format!("dir:{}", d.display()))
            .collect();
        (Self::embedded().with("COFFER_NODES", &spec.join(",")), dirs)
    }

    /// The real binary in a process of its own.
    pub fn process(mut self) -> Self {
        self.process = true;
        self
    }

    /// The same server with its metadata in a fresh PostgreSQL database.
    pub async fn on_postgres(self) -> Self {
        let url = crate::postgres::fresh_database()
            .await
            .expect("a PostgreSQL database");
        self.with("COFFER_DATABASE_URL", &url)
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Without any setting of `key`.
    pub fn without(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// The same server speaking HTTPS only, with a self-signed certificate
    /// for localhost and 127.0.0.1 written into `dir`; returns the options
    /// and the certificate's path (for clients to trust).
    pub fn with_tls(self, dir: &Path) -> (Self, PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("a self-signed certificate");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).expect("write the certificate");
        std::fs::write(&key, made.key_pair.serialize_pem()).expect("write the key");
        let opts = self
            .with("COFFER_TLS_CERT", cert.to_str().expect("a UTF-8 path"))
            .with("COFFER_TLS_KEY", key.to_str().expect("a UTF-8 path"));
        (opts, cert)
    }

    /// The development switch: no authentication.
    pub fn without_auth(self) -> Self {
        self.with("COFFER_AUTH", "disabled")
    }

    /// Whether the server asks for tokens.
    pub fn auth_enabled(&self) -> bool {
        !self
            .env
            .iter()
            .any(|(k, v)| k == "COFFER_AUTH" && v == "disabled")
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A server running on a thread of this process, with its own runtime.
/// Stopping it drops that runtime, as a killed process would vanish: no
/// drain that would wait for the test's own clients to hang up.
struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    /// Stops the server at once and waits for its thread.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }

    /// Starts `coffer_server::server::run` with `opts`' environment turned
    /// into the flags it stands for; returns it and its address.
    fn start(opts: &ServerOpts, data_dir: &Path) -> anyhow::Result<(InProcess, String)> {
        use clap::{CommandFactory, Parser};
        use coffer_server::config::Config;
        let env: std::collections::HashMap<String, String> = opts.env.iter().cloned().collect();
        let mut args = vec![
            "coffer-server".to_string(),
            "--data-dir".to_string(),
            data_dir.display().to_string(),
        ];
        for a in Config::command().get_arguments() {
            let (Some(var), Some(long)) = (a.get_env(), a.get_long()) else {
                continue;
            };
            let var = var.to_string_lossy();
            if matches!(var.as_ref(), "COFFER_DATA_DIR" | "PORT" | "COFFER_HOST") {
                continue;
            }
            if let Some(v) = env.get(var.as_ref()) {
                args.push(format!("--{long}"));
                args.push(v.clone());
            }
        }
        let cfg = Config::try_parse_from(args)?;
        let nodes = cfg.node_specs(|k| env.get(k).cloned());
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let scheme = if env.contains_key("COFFER_TLS_CERT") {
            "https"
        } else {
            "http"
        };
        let addr = format!("{scheme}://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("coffer-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    let serve =
                        coffer_server::server::run(cfg, nodes, listener, std::future::pending());
                    tokio::select! {
                        r = serve => {
                            if let Err(e) = r {
                                eprintln!("in-process coffer-server failed: {e:#}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                rt.shutdown_timeout(std::time::Duration::from_secs(5));
            })?;
        let me = InProcess {
            stop: Some(stop),
            thread: Some(thread),
        };
        Ok((me, addr))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Gives `cmd` the environment of a server with `opts` on `data_dir`,
/// and nothing of this process's Coffer or MinIO settings.
fn configure(cmd: &mut Command, opts: &ServerOpts, data_dir: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("MINIO_") || k.starts_with("COFFER_") || k == "PORT" {
            cmd.env_remove(k);
        }
    }
    cmd.env("PORT", "0")
        .env("COFFER_HOST", "127.0.0.1")
        .env("COFFER_DATA_DIR", data_dir)
        .env("RUST_LOG", "info")
        .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(data_dir);
}

/// What an operator command printed.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `coffer-server ARGS` (an operator command such as `meta restore`)
/// with the configuration of a server with `opts` on `data_dir`.
pub async fn server_command(opts: &ServerOpts, data_dir: &Path, args: &[&str]) -> CommandOutput {
    let mut cmd = Command::new(server_bin());
    configure(&mut cmd, opts, data_dir);
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run coffer-server");
    CommandOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running server. Killed (or, in-process, shut down) on drop.
pub struct Server {
    in_process: Option<InProcess>,
    child: Option<Child>,
    opts: ServerOpts,
    data_dir: PathBuf,
    addr: String,
    /// The admin's access token (with authentication on).
    token: Option<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server with a fresh data dir; with authentication on, it
    /// creates `admin` ([`ADMIN_PASSWORD`]) and the fixture logs in as them.
    pub async fn start(mut opts: ServerOpts) -> anyhow::Result<Server> {
        // Tests run workers by hand back to back; the limits test sets
        // its own interval.
        if opts.get("COFFER_MANUAL_RUN_INTERVAL_SECS").is_none() {
            opts = opts.with("COFFER_MANUAL_RUN_INTERVAL_SECS", "0");
        }
        if opts.auth_enabled() && opts.get("COFFER_ADMIN_PASSWORD").is_none() {
            opts = opts.with("COFFER_ADMIN_PASSWORD", ADMIN_PASSWORD);
        }
        let tmp = tempfile::Builder::new()
            .prefix("coffer-server-")
            .tempdir()?;
        let data_dir = tmp.path().to_path_buf();
        let mut s = Server {
            in_process: None,
            child: None,
            opts,
            data_dir,
            addr: String::new(),
            token: None,
            _tmp: Some(tmp),
        };
        s.spawn().await?;
        Ok(s)
    }

    /// Starts the server, then logs the admin in.
    async fn spawn(&mut self) -> anyhow::Result<()> {
        self.spawn_server().await?;
        self.token = None;
        if self.opts.auth_enabled() {
            let password = self
                .opts
                .get("COFFER_ADMIN_PASSWORD")
                .unwrap_or(ADMIN_PASSWORD)
                .to_string();
            let login = self
                .login("admin", &password)
                .await
                .map_err(|e| anyhow::anyhow!("the fixture cannot log in as admin: {e}"))?;
            self.token = Some(login.access_token);
        }
        Ok(())
    }

    /// Logs `user` in.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
    ) -> Result<coffer_proto::pb::LoginResponse, tonic::Status> {
        CofferAuthClient::new(self.raw_channel().await)
            .login(LoginRequest {
                username: user.into(),
                password: password.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// The admin's access token (`None` with authentication off).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Creates a user with `coffer-server user add` and logs them in;
    /// returns their access token.
    pub async fn add_user(&self, name: &str, password: &str, admin: bool) -> String {
        let mut args = vec!["user", "add", name];
        if admin {
            args.push("--admin");
        }
        let out = server_command(
            &self.opts.clone().with("COFFER_PASSWORD", password),
            &self.data_dir,
            &args,
        )
        .await;
        assert!(out.success, "user add {name}: {out:?}");
        self.login(name, password)
            .await
            .unwrap_or_else(|e| panic!("log in as {name}: {e}"))
            .access_token
    }

    /// A client of the full API as the holder of `token`.
    pub async fn client_as(&self, token: Option<&str>) -> FileStorageClient<Conn> {
        FileStorageClient::new(self.channel_as(token).await)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024)
    }

    /// A connection whose requests carry `token`.
    pub async fn channel_as(&self, token: Option<&str>) -> Conn {
        InterceptedService::new(self.raw_channel().await, Bearer::new(token))
    }

    /// A connection whose requests carry `authorization: VALUE`.
    pub async fn channel_with_header(&self, value: Option<&str>) -> Conn {
        InterceptedService::new(self.raw_channel().await, Bearer::header(value))
    }

    async fn spawn_server(&mut self) -> anyhow::Result<()> {
        // A binary named by COFFER_SERVER_BIN is what every test runs
        // against (e.g. an older build, to see a new test fail on it).
        let named = std::env::var_os("COFFER_SERVER_BIN").is_some();
        if self.opts.command.is_none() && !self.opts.process && !named {
            let (server, addr) = InProcess::start(&self.opts, &self.data_dir)?;
            self.in_process = Some(server);
            self.addr = addr;
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut cmd = match &self.opts.command {
            Some(argv) => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
            None => Command::new(server_bin()),
        };
        configure(&mut cmd, &self.opts, &self.data_dir);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Generous: a custom command may build first.
        let addr = tokio::time::timeout(std::time::Duration::from_secs(1800), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("coffer-server listening on ") {
                    return Ok(addr.trim().to_string());
                }
            }
            anyhow::bail!("coffer-server exited before listening")
        })
        .await;
        let addr = match addr {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => anyhow::bail!("{e}; log:\n{}", self.log_tail()),
            Err(_) => anyhow::bail!(
                "coffer-server did not start in time; log:\n{}",
                self.log_tail()
            ),
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.addr = addr;
        self.child = Some(child);
        Ok(())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Ends every upload session now in the embedded SQLite database.
    /// Finished sessions are kept a day (a retried finish gets the same
    /// answer) and keep their chunks from gc meanwhile; a test of gc
    /// ends them at once.
    pub fn end_upload_sessions(&self) {
        let db = rusqlite::Connection::open(self.data_dir.join("coffer.db")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        db.execute("UPDATE upload_sessions SET expires_at = 0", [])
            .unwrap();
    }

    pub fn opts(&self) -> &ServerOpts {
        &self.opts
    }

    /// Runs `coffer-server ARGS` on this server's data dir and options.
    pub async fn command(&self, args: &[&str]) -> CommandOutput {
        server_command(&self.opts, &self.data_dir, args).await
    }

    /// Runs `coffer-server ARGS` on this server's data dir with the
    /// configuration `change` makes of its own.
    pub async fn command_with(
        &self,
        change: impl FnOnce(ServerOpts) -> ServerOpts,
        args: &[&str],
    ) -> CommandOutput {
        server_command(&change(self.opts.clone()), &self.data_dir, args).await
    }

    /// Empties the data dir, as a lost disk would (after [`Server::kill`]).
    pub fn wipe_data_dir(&self) {
        for e in std::fs::read_dir(&self.data_dir)
            .expect("data dir")
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).expect("remove");
            } else {
                std::fs::remove_file(&p).expect("remove");
            }
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    /// The last lines the server logged (a process's only).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// How the server's process ended, if it ended without being killed
    /// ([`Server::kill`] forgets the process it kills).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// A client of the full (extended) API, as the admin.
    pub async fn client(&self) -> FileStorageClient<Conn> {
        self.client_as(self.token()).await
    }

    /// The admin's change-feed cursor now: it moves with every change.
    pub async fn latest_change(&self) -> String {
        self.client()
            .await
            .list_changes(coffer_proto::pb::ListChangesRequest {
                latest: true,
                ..Default::default()
            })
            .await
            .expect("ListChanges")
            .into_inner()
            .cursor
    }

    /// A client of the operator API, as the admin.
    pub async fn admin(&self) -> coffer_proto::pb::coffer_admin_client::CofferAdminClient<Conn> {
        coffer_proto::pb::coffer_admin_client::CofferAdminClient::new(self.channel().await)
    }

    /// Runs a pass of worker `name` and waits for it; returns its report
    /// (`failed: …` if the pass failed).
    pub async fn run_worker(&self, name: &str) -> String {
        let s = self
            .admin()
            .await
            .run_worker(coffer_proto::pb::RunWorkerRequest {
                name: name.into(),
                wait: true,
            })
            .await
            .expect("run worker")
            .into_inner()
            .status
            .expect("status");
        s.last_report
    }

    /// A client generated from the tutorial's original proto, default
    /// limits, as the admin.
    pub async fn seed_client(&self) -> crate::seed::file_storage_client::FileStorageClient<Conn> {
        crate::seed::file_storage_client::FileStorageClient::new(self.channel().await)
    }

    /// A connection as the admin.
    pub async fn channel(&self) -> Conn {
        self.channel_as(self.token()).await
    }

    /// A connection without credentials (over TLS, trusting the server's
    /// own certificate, when it has one).
    pub async fn raw_channel(&self) -> Channel {
        self.channel_from(None).await
    }

    /// A connection from the loopback address `local` (e.g. 127.0.0.2:
    /// another client host, as the server's per-address limits see it).
    pub async fn channel_from(&self, local: Option<std::net::IpAddr>) -> Channel {
        let mut endpoint = Channel::from_shared(self.addr.clone())
            .expect("valid address")
            .local_address(local);
        if let Some(cert) = self.opts.get("COFFER_TLS_CERT") {
            let pem = std::fs::read(cert).expect("the server's certificate");
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem));
            endpoint = endpoint.tls_config(tls).expect("a TLS configuration");
        }
        endpoint.connect().await.expect("connect to server")
    }

    /// SIGKILL: no shutdown, no flush.
    /// Kills the process (an in-process server is shut down instead).
    pub async fn kill(&mut self) {
        if let Some(mut s) = self.in_process.take() {
            tokio::task::spawn_blocking(move || s.stop()).await.ok();
        }
        if let Some(mut c) = self.child.take() {
            c.start_kill().ok();
            c.wait().await.ok();
        }
    }

    /// Restarts on the same data dir with new options (e.g. more nodes).
    pub async fn restart_with(&mut self, opts: ServerOpts) -> anyhow::Result<()> {
        self.kill().await;
        self.opts = opts;
        self.spawn().await
    }

    /// Starts the server again on the same data dir (after [`Server::kill`]).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await;
        self.spawn().await
    }
}

impl Server {
    /// A plain HTTP GET of `path` as the admin: (status, head, body text).
    pub async fn get(&self, path: &str) -> (u16, String, String) {
        let (status, head, body) = self.get_bytes(path).await;
        (status, head, String::from_utf8_lossy(&body).into_owned())
    }

    /// A number (counter or gauge) from `/metrics`, read as the admin.
    pub async fn metric(&self, name: &str) -> u64 {
        let (code, _, text) = self.get("/metrics").await;
        assert_eq!(code, 200, "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    }

    /// The admin's files under `prefix`, by name, in path order.
    pub async fn names_under(&self, prefix: &str) -> Vec<String> {
        self.client()
            .await
            .list_files(coffer_proto::pb::ListFilesRequest {
                prefix: prefix.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("ListFiles")
            .into_inner()
            .files
            .into_iter()
            .map(|f| f.file_name)
            .collect()
    }

    /// A plain HTTP GET of `path` as the admin: (status, head, body).
    pub async fn get_bytes(&self, path: &str) -> (u16, String, Vec<u8>) {
        http_get_as(self.addr(), path, self.token()).await
    }
}

/// A plain HTTP/1.1 GET on loopback: (status, raw head, body as text).
pub async fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    let (status, head, body) = http_get_bytes(addr, path).await;
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// A plain HTTP/1.1 GET on loopback: (status, raw head, body).
pub async fn http_get_bytes(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    http_get_as(addr, path, None).await
}

/// A plain HTTP/1.1 GET on loopback with `token` as a bearer token:
/// (status, raw head, body).
pub async fn http_get_as(addr: &str, path: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    http_get_with(addr, path, &headers).await
}

/// A plain HTTP/1.1 GET on loopback with extra request headers:
/// (status, raw head, body).
pub async fn http_get_with(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    http_request(addr, "GET", path, headers, &[]).await
}

/// A plain HTTP/1.1 request on loopback with extra request headers and a
/// body (sent with its length unless it is an empty GET or HEAD):
/// (status, raw head, body).
pub async fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = addr.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    let mut extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    if !(body.is_empty() && matches!(method, "GET" | "HEAD")) {
        extra.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    s.write_all(body).await.expect("send the body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (status, head, if chunked { dechunk(&body) } else { body })
}

/// Sends a GET of `path` (with extra `headers`) on `conn` and reads the
/// response head only, leaving the body unread on the connection: (status,
/// head). An error if the server closes before the head ends.
pub async fn get_head(
    conn: &mut tokio::net::TcpStream,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: coffer\r\n{extra}\r\n").as_bytes())
        .await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await? != 1 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, head))
}

/// The body of an HTTP/1.1 chunked transfer, joined.
pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 2 + size + 2).min(b.len())..];
    }
    out
}
