//! Runs the real `coffer` command-line client against a test server, with
//! its own state directory (resume records).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use tokio::process::{Child, Command};

/// Path of the `coffer` binary: `$COFFER_CLI_BIN`, else the one next to
/// this test's build output, built first if needed.
pub fn cli_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("COFFER_CLI_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current exe");
        let mut profile_dir = exe.parent().expect("target dir");
        if profile_dir.file_name().is_some_and(|n| n == "deps") {
            profile_dir = profile_dir.parent().expect("target dir");
        }
        // Cheap when up to date; makes a bare `cargo test` work too.
        crate::server::build_binaries(&crate::server::profile_of(profile_dir));
        profile_dir.join("coffer")
    })
    .clone()
}

/// The CLI pointed at one server, with a private state directory.
pub struct Cli {
    server: String,
    /// Sent as `COFFER_TOKEN`.
    token: Option<String>,
    state: tempfile::TempDir,
}

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout as one JSON document; panics (with stderr) if it is not.
    pub fn json(&self) -> serde_json::Value {
        assert!(self.ok, "coffer failed: {}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", self.stdout))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Cli {
    pub fn new(server_addr: &str) -> Self {
        Cli {
            server: server_addr.to_string(),
            token: None,
            state: tempfile::Builder::new()
                .prefix("coffer-cli-state-")
                .tempdir()
                .expect("state dir"),
        }
    }

    /// The CLI pointed at `server_addr` as the holder of `token`.
    pub fn with_token(server_addr: &str, token: &str) -> Self {
        let mut cli = Self::new(server_addr);
        cli.token = Some(token.to_string());
        cli
    }

    /// The CLI pointed at `server`, as its admin.
    pub fn for_server(server: &crate::server::Server) -> Self {
        let mut cli = Self::new(server.addr());
        cli.token = server.token().map(str::to_string);
        cli
    }

    /// Where resume records go (`COFFER_STATE_DIR`).
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// The command, configured through the environment, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(cli_bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("COFFER_") || k == "XDG_STATE_HOME" {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .env("COFFER_SERVER", &self.server)
            .env("COFFER_STATE_DIR", self.state.path())
            .env("XDG_CONFIG_HOME", self.state.path().join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(t) = &self.token {
            cmd.env("COFFER_TOKEN", t);
        }
        cmd
    }

    /// Runs `coffer ARGS` to the end.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.command(args)
            .output()
            .await
            .expect("run coffer")
            .into()
    }

    /// Runs `coffer --json ARGS`, expecting success and one JSON document.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.run(&all).await.json()
    }

    /// Starts `coffer ARGS` without waiting (to interrupt it).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().expect("start coffer")
    }
}
