//! A throwaway PostgreSQL cluster for the tests: Debian's `postgresql`
//! binaries, one cluster per test process on a free loopback port, a fresh
//! database per test.
//!
//! `initdb` refuses to run as root, so as root the server runs as the
//! `postgres` system user in a directory that user can reach. The
//! postmaster gets `PR_SET_PDEATHSIG`, so it goes when the test process
//! does.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::OnceCell;

/// A running cluster.
pub struct PgCluster {
    port: u16,
    dir: PathBuf,
    pid: u32,
    durability: Durability,
}

/// What a commit survives once acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Nothing is waited for: a crash of the server loses the last
    /// commits. Fast, for tests that never crash it.
    None,
    /// Each commit's log is written before it is acknowledged, but not
    /// synced: a crash of the server loses nothing, a crash of the machine
    /// may.
    Process,
    /// Synced to disk, as in production.
    Disk,
}

static CLUSTER: OnceCell<PgCluster> = OnceCell::const_new();

/// The directory with `initdb` and `postgres`: `$COFFER_PG_BIN`, else the
/// newest `/usr/lib/postgresql/*/bin`.
pub fn pg_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("COFFER_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| {
            anyhow::anyhow!(
                "PostgreSQL is not installed (/usr/lib/postgresql: {e}); \
                 scripts/install-test-deps.sh installs Debian's postgresql"
            )
        })?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| anyhow::anyhow!("no initdb under /usr/lib/postgresql/*/bin"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The `postgres` system user's (uid, gid).
fn postgres_user() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "postgres" {
            return Ok((f[2].parse()?, f[3].parse()?));
        }
    }
    anyhow::bail!("no postgres system user (is Debian's postgresql installed?)")
}

fn command_as_owner(program: &Path) -> anyhow::Result<std::process::Command> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(program);
    if is_root() {
        let (uid, gid) = postgres_user()?;
        cmd.uid(uid).gid(gid);
        cmd.env("HOME", "/tmp");
    }
    Ok(cmd)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(crate::ports::free_port()?)
}

impl PgCluster {
    /// The cluster of this test process, started on first use.
    pub async fn shared() -> anyhow::Result<&'static PgCluster> {
        CLUSTER
            .get_or_try_init(|| async {
                tokio::task::spawn_blocking(PgCluster::start)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
            })
            .await
    }

    fn start() -> anyhow::Result<PgCluster> {
        Self::start_with(Durability::None)
    }

    /// A cluster of its own, for a test that freezes it.
    pub fn start_private() -> anyhow::Result<PgCluster> {
        Self::start_with(Durability::None)
    }

    /// A cluster of its own that loses no acknowledged commit when it is
    /// crashed ([`PgCluster::restart`]), for the fault soak.
    pub fn start_crash_safe() -> anyhow::Result<PgCluster> {
        Self::start_with(Durability::Process)
    }

    /// The postmaster and every process it started.
    fn processes(&self) -> Vec<i32> {
        let mut pids = vec![self.pid as i32];
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...: comm may hold spaces, so split
            // after its closing parenthesis.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(self.pid) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Freezes the whole server (SIGSTOP): it stops answering, as a
    /// database that is down or cut off does.
    pub fn freeze(&self) {
        let pids = self.processes();
        for &pid in &pids {
            crate::signal::send(pid as u32, libc::SIGSTOP);
        }
        for pid in pids {
            crate::signal::wait_stopped(pid as u32);
        }
    }

    /// Resumes a frozen server.
    pub fn thaw(&self) {
        for pid in self.processes() {
            crate::signal::send(pid as u32, libc::SIGCONT);
        }
    }

    /// A cluster of its own that syncs every commit to disk as a
    /// production one does (the shared test cluster does not), for
    /// benchmarks.
    pub fn start_durable() -> anyhow::Result<PgCluster> {
        Self::start_with(Durability::Disk)
    }

    fn start_with(durability: Durability) -> anyhow::Result<PgCluster> {
        remove_stale_clusters();
        use std::os::unix::fs::PermissionsExt;
        let bin = pg_bin_dir()?;
        // Not a 0700 temp dir: the postgres user must reach it.
        let dir = std::env::temp_dir().join(format!(
            "coffer-pg-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        if is_root() {
            let (uid, gid) = postgres_user()?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        }
        let data = dir.join("data");
        let out = command_as_owner(&bin.join("initdb"))?
            .args([
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ])
            .args(["--no-sync", "-E", "UTF8", "--locale", "C"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port()?;
        let mut cluster = PgCluster {
            port,
            dir,
            pid: 0,
            durability,
        };
        cluster.boot()?;
        Ok(cluster)
    }

    /// Starts the postmaster on the cluster's directory and port, and
    /// waits until it accepts connections.
    fn boot(&mut self) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt;
        let bin = pg_bin_dir()?;
        let (dir, data) = (self.dir.clone(), self.dir.join("data"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("postgres.log"))?;
        let mut cmd = command_as_owner(&bin.join("postgres"))?;
        cmd.args(["-D", data.to_str().unwrap()])
            .args(["-p", &self.port.to_string(), "-k", dir.to_str().unwrap()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
            ]);
        match self.durability {
            // A test database: durability is not what is tested here.
            Durability::None => {
                cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                    .args(["-c", "full_page_writes=off"]);
            }
            Durability::Process => {
                cmd.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
            }
            Durability::Disk => {}
        }
        cmd.stdout(Stdio::null()).stderr(log);
        // SAFETY: prctl is async-signal-safe; it runs after the uid
        // change, which would otherwise clear it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                Ok(())
            });
        }
        // PR_SET_PDEATHSIG fires when the spawning *thread* ends, so the
        // postmaster is spawned from a thread that lives as long as it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                tx.send(Ok(child.id())).ok();
                child.wait().ok();
            }
            Err(e) => {
                tx.send(Err(e)).ok();
            }
        });
        self.pid = rx.recv()??;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                self.log_tail()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    }

    /// Crashes the server (an immediate shutdown: no checkpoint, every
    /// connection cut) and starts it again on the same data and port; it
    /// recovers from its write-ahead log as after a power cut.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.boot()
    }

    /// Crashes the server (an immediate shutdown) and leaves it down:
    /// connections are refused until [`PgCluster::start_again`].
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.thaw();
        crate::signal::send(self.pid, libc::SIGQUIT);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while Path::new(&format!("/proc/{}", self.pid)).exists() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "PostgreSQL did not stop: {}",
                self.log_tail()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts a stopped server again on the same data and port.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.boot()
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's log, last lines.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; returns its URL.
    pub async fn database(&self) -> anyhow::Result<String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "coffer_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut tries = 0;
        let (client, conn) = loop {
            // Right after start-up the server may still refuse: it is
            // recovering or starting its processes.
            match tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls).await {
                Ok(c) => break c,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => anyhow::bail!("cannot connect: {e}\n{}", self.log_tail()),
            }
        };
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        Ok(self.url(&name))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate shutdown; the shared cluster is never dropped and goes
        // with the test process instead.
        // After `stop` the pid may belong to another process by now.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.pid)).unwrap_or_default();
        if comm.trim() == "postgres" {
            crate::signal::send(self.pid, libc::SIGQUIT);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// Removes the directories of clusters whose test process is gone.
fn remove_stale_clusters() {
    for e in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("coffer-pg-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            std::fs::remove_dir_all(e.path()).ok();
        }
    }
}

/// A new, empty database on the shared cluster; returns its URL.
pub async fn fresh_database() -> anyhow::Result<String> {
    PgCluster::shared().await?.database().await
}
