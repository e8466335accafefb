//! Server configuration: flags, environment and `.env`, accepting the
//! tutorial's variable names (`MINIO_ENDPOINT_1..N`, `MINIO_ACCESS_KEY`,
//! `MINIO_SECRET_KEY`, `PORT`).
//!
//! Only the binary reads configuration; it turns [`Config`] into the plain
//! structs the libraries take.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// coffer-server: Coffer's metadata and replication server.
#[derive(Debug, Clone, Parser)]
#[command(name = "coffer-server", version, about)]
pub struct Config {
    /// Without a command: run the server.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to listen on.
    #[arg(long, env = "COFFER_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port for gRPC, grpc-web and HTTP (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 5000)]
    pub port: u16,
    /// Where SQLite metadata (and the embedded default nodes) live.
    #[arg(
        long,
        env = "COFFER_DATA_DIR",
        default_value = "./coffer-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// PostgreSQL for the metadata (`postgres://user:pass@host/db`), shared
    /// by every server of a scaled-out deployment. Unset: SQLite under the
    /// data dir.
    #[arg(
        long,
        env = "COFFER_DATABASE_URL",
        hide_env_values = true,
        global = true,
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub database_url: Option<String>,
    /// Storage nodes: S3 endpoints (`host:port` or a URL) or local
    /// directories (`dir:PATH`), comma-separated. Added to
    /// `MINIO_ENDPOINT_1..N`. With none, three local directories under the
    /// data dir are used.
    #[arg(
        long = "node",
        env = "COFFER_NODES",
        value_delimiter = ',',
        global = true
    )]
    pub nodes: Vec<String>,
    /// S3 access key for every node (per node: `MINIO_ACCESS_KEY_<i>`).
    #[arg(long, env = "MINIO_ACCESS_KEY", default_value = "")]
    pub access_key: String,
    /// S3 secret key for every node (per node: `MINIO_SECRET_KEY_<i>`).
    #[arg(
        long,
        env = "MINIO_SECRET_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub secret_key: String,
    /// S3 region.
    #[arg(long, env = "MINIO_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Bucket on every S3 node (created if missing).
    #[arg(long, env = "COFFER_BUCKET", default_value = "files")]
    pub bucket: String,
    /// Copies of each chunk (default: min(3, nodes)).
    #[arg(long, env = "COFFER_REPLICATION")]
    pub replication: Option<usize>,
    /// Copies that must be written before an upload succeeds (default: a
    /// majority of the replication factor).
    #[arg(long, env = "COFFER_WRITE_QUORUM")]
    pub write_quorum: Option<usize>,
    /// Longest one request to one storage node may take, in milliseconds.
    #[arg(long, env = "COFFER_NODE_TIMEOUT_MS", default_value_t = 10_000)]
    pub node_timeout_ms: u64,
    /// How often node health is probed, in milliseconds.
    #[arg(long, env = "COFFER_PROBE_INTERVAL_MS", default_value_t = 2_000)]
    pub probe_interval_ms: u64,
    /// How often repair runs anti-entropy, in seconds.
    #[arg(long, env = "COFFER_REPAIR_INTERVAL_SECS", default_value_t = 60)]
    pub repair_interval_secs: u64,
    /// Repair copy rate limit in MiB/s (0: unlimited).
    #[arg(long, env = "COFFER_REPAIR_RATE_MIB", default_value_t = 100)]
    pub repair_rate_mib: u64,
    /// Gc object deletions per second at most (0: unlimited).
    #[arg(long, env = "COFFER_GC_DELETE_RATE", default_value_t = 1000)]
    pub gc_delete_rate: u64,
    /// How often scrub re-reads every replica, in seconds.
    #[arg(long, env = "COFFER_SCRUB_INTERVAL_SECS", default_value_t = 7 * 24 * 3600)]
    pub scrub_interval_secs: u64,
    /// Scrub read rate limit in MiB/s (0: unlimited).
    #[arg(long, env = "COFFER_SCRUB_RATE_MIB", default_value_t = 50)]
    pub scrub_rate_mib: u64,
    /// How often gc runs, in seconds.
    #[arg(long, env = "COFFER_GC_INTERVAL_SECS", default_value_t = 3600)]
    pub gc_interval_secs: u64,
    /// Unreferenced chunks younger than this many seconds are kept.
    #[arg(long, env = "COFFER_GC_GRACE_SECS", default_value_t = 3600)]
    pub gc_grace_secs: u64,
    /// How long a server's lease on a background worker (repair, scrub,
    /// gc) lasts unless renewed: another server takes the worker over at
    /// most this long after the holder dies.
    #[arg(long, env = "COFFER_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// Keep at most this many versions per file (default: all).
    #[arg(long, env = "COFFER_KEEP_VERSIONS")]
    pub keep_versions: Option<u32>,
    /// Keep versions younger than this many days even beyond --keep-versions.
    #[arg(long, env = "COFFER_KEEP_DAYS")]
    pub keep_days: Option<u64>,
    /// Purge deleted files (and their versions) after this many seconds.
    #[arg(long, env = "COFFER_DELETED_RETENTION_SECS", default_value_t = 30 * 24 * 3600)]
    pub deleted_retention_secs: u64,
    /// How often the SQLite metadata is snapshotted to every node, in
    /// seconds (0: only when asked, `coffer admin run snapshot`).
    #[arg(long, env = "COFFER_SNAPSHOT_INTERVAL_SECS", default_value_t = 3600)]
    pub snapshot_interval_secs: u64,
    /// Snapshots kept on each node: this many of the newest...
    #[arg(long, env = "COFFER_SNAPSHOT_KEEP", default_value_t = 24)]
    pub snapshot_keep: usize,
    /// ...and besides, the newest of each day for this many days.
    #[arg(long, env = "COFFER_SNAPSHOT_KEEP_DAYS", default_value_t = 7)]
    pub snapshot_keep_days: u32,
    /// MiB of one download read from the nodes ahead of what is sent.
    #[arg(long, env = "COFFER_READ_AHEAD_MIB", default_value_t = 32)]
    pub read_ahead_mib: usize,
    /// MiB all downloads together may hold, server-wide: half read ahead
    /// from the nodes, half reserved by open downloads (448 KiB each) for
    /// their pipes and network buffers. Many stalled clients cannot pin
    /// more; downloads beyond what fits wait for one to end.
    #[arg(long, env = "COFFER_DOWNLOAD_MEMORY_MIB", default_value_t = 256)]
    pub download_memory_mib: usize,
    /// MiB all uploads together may hold, server-wide: bytes received
    /// and not yet stored. An upload finding no room reads nothing more
    /// from its client until one frees some; after the queue wait it is
    /// refused RESOURCE_EXHAUSTED (HTTP 503).
    #[arg(long, env = "COFFER_UPLOAD_MEMORY_MIB", default_value_t = 256)]
    pub upload_memory_mib: usize,
    /// Downloads one caller may have open at once: per account, per
    /// share link, and per client address; one more is refused
    /// RESOURCE_EXHAUSTED (HTTP 429).
    #[arg(long, env = "COFFER_MAX_DOWNLOADS_PER_CALLER", default_value_t = 32)]
    pub max_downloads_per_caller: usize,
    /// Seconds a download waits for room in the download memory budget
    /// before it is refused RESOURCE_EXHAUSTED (HTTP 503).
    #[arg(long, env = "COFFER_DOWNLOAD_QUEUE_SECS", default_value_t = 30)]
    pub download_queue_secs: u64,
    /// KiB per second a client must read a download at, averaged over
    /// each idle time-out of waiting on it; a slower reader is ended.
    #[arg(long, env = "COFFER_MIN_DOWNLOAD_RATE_KIB", default_value_t = 16)]
    pub min_download_rate_kib: u64,
    /// Images larger than this many MiB get no thumbnail (their bytes are
    /// held while one is made).
    #[arg(long, env = "COFFER_THUMB_MAX_SOURCE_MIB", default_value_t = 64)]
    pub thumb_max_source_mib: u64,
    /// Images of more than this many million pixels get no thumbnail;
    /// refused from their header, so a decompression bomb costs nothing.
    #[arg(long, env = "COFFER_THUMB_MAX_MEGAPIXELS", default_value_t = 100)]
    pub thumb_max_megapixels: u64,
    /// Keep chunks under 256 KiB (small files, and the tails of larger
    /// ones) together in shared pack objects of up to 16 MiB, so many
    /// small files are a few objects per node. Off by default while packs
    /// are being built: repacking and the migration of existing small
    /// chunks are not there yet.
    #[arg(long, env = "COFFER_PACKS", default_value_t = false, action = clap::ArgAction::Set)]
    pub packs: bool,
    /// Packs whose live chunks fill less than this percentage of them
    /// are repacked by gc: their live chunks copied into new packs, the
    /// old ones deleted a grace period later (0: never).
    #[arg(long, env = "COFFER_REPACK_BELOW_PERCENT", default_value_t = 60)]
    pub repack_below_percent: u32,
    /// Open upload sessions one user may have at once.
    #[arg(long, env = "COFFER_MAX_OPEN_UPLOADS", default_value_t = 64)]
    pub max_open_uploads: u32,
    /// Versions one user may keep, every file's and deleted files' alike
    /// (each file has at least one): empty files cost no quota, so this
    /// bounds what one account adds to the metadata. 0: no limit. With
    /// several servers on one database, give them all the same value.
    #[arg(
        long,
        env = "COFFER_MAX_VERSIONS_PER_USER",
        default_value_t = 1_000_000
    )]
    pub max_versions_per_user: u64,
    /// Seconds a client may stay silent: a streamed upload that sends
    /// nothing, a download whose client reads nothing, and a connection
    /// that answers no keep-alive ping are closed after this long.
    #[arg(long, env = "COFFER_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,
    /// Seconds a connection may take to send a request's headers (and to
    /// finish the TLS handshake).
    #[arg(long, env = "COFFER_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    pub header_timeout_secs: u64,
    /// Seconds a unary call may run before it is answered
    /// DEADLINE_EXCEEDED (streams of file data are bounded by the idle
    /// time-out instead).
    #[arg(long, env = "COFFER_REQUEST_TIMEOUT_SECS", default_value_t = 300)]
    pub request_timeout_secs: u64,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "COFFER_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Connections one client address may hold at once; one more is
    /// closed at once (behind a proxy, every client shares its address:
    /// raise this, or put the limit in the proxy).
    #[arg(
        long,
        env = "COFFER_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    pub max_connections_per_address: usize,
    /// Reverse proxies (addresses or networks, comma-separated, e.g.
    /// `10.0.0.0/8,127.0.0.1`) whose `X-Forwarded-For` names the client:
    /// login throttling and per-client limits then see the client, not the
    /// proxy. From any other peer the header is ignored.
    #[arg(long, env = "COFFER_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Concurrent HTTP/2 streams (calls) per connection.
    #[arg(long, env = "COFFER_HTTP2_MAX_STREAMS", default_value_t = 128)]
    pub http2_max_streams: u32,
    /// Seconds between manual passes of one worker (`coffer admin run`);
    /// asking again sooner is RESOURCE_EXHAUSTED.
    #[arg(long, env = "COFFER_MANUAL_RUN_INTERVAL_SECS", default_value_t = 10)]
    pub manual_run_interval_secs: u64,
    /// TLS certificate chain (PEM) for the port: with --tls-key, the port
    /// speaks HTTPS only (native gRPC, grpc-web and the web app).
    #[arg(long, env = "COFFER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "COFFER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// `enabled`: every request but logging in needs a token. `disabled`
    /// (development only): anyone who reaches the port reads and changes
    /// every file, as one user.
    #[arg(long, env = "COFFER_AUTH", default_value = "enabled")]
    pub auth: AuthMode,
    /// Access tokens live this many seconds.
    #[arg(long, env = "COFFER_ACCESS_TOKEN_SECS", default_value_t = 15 * 60)]
    pub access_token_secs: u64,
    /// Refresh tokens (logins) live this many seconds.
    #[arg(long, env = "COFFER_REFRESH_TOKEN_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_secs: u64,
    /// The token-signing key (at least 32 characters). Unset: generated
    /// once, kept in `auth.key` in the data dir (0600), or in the shared
    /// PostgreSQL database.
    #[arg(long, env = "COFFER_AUTH_KEY", hide_env_values = true)]
    pub auth_key: Option<String>,
    /// MiB that password checks (logins, share-link passwords) may hold
    /// at once: each argon2id check holds 19 MiB, so the default runs 6
    /// at a time; more wait their turn for up to 10 s, then are refused
    /// UNAVAILABLE (HTTP 503).
    #[arg(long, env = "COFFER_PASSWORD_MEMORY_MIB", default_value_t = 128)]
    pub password_memory_mib: usize,
    /// A bearer token that may read `/metrics` (besides admins).
    #[arg(long, env = "COFFER_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// On a fresh install with no users: create the admin `admin` with
    /// this password.
    #[arg(long, env = "COFFER_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Take HTTP Basic (app passwords, for WebDAV clients) over plain HTTP
    /// too. Off by default: Basic carries the password in the clear, so
    /// it is taken only over TLS (`--tls-cert`) or from a trusted proxy
    /// that says it served HTTPS.
    #[arg(long, env = "COFFER_DAV_BASIC_OVER_HTTP", default_value_t = false, action = clap::ArgAction::Set)]
    pub dav_basic_over_http: bool,
    /// macOS's `._name` and `.DS_Store` files written over WebDAV:
    /// `ignore` takes them and keeps nothing (they never reach the store,
    /// other devices or the change feed); `keep` stores them like any file.
    #[arg(
        long,
        env = "COFFER_DAV_MAC_FILES",
        value_enum,
        default_value = "ignore"
    )]
    pub dav_mac_files: crate::dav::MacFiles,
    /// A built web app to serve at `/` instead of the one in the binary
    /// (a built `dist/`, for front-end work).
    #[arg(long, env = "COFFER_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,
}

/// What `coffer-server` does besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// The metadata database: snapshots and restore.
    #[command(subcommand)]
    Meta(MetaCommand),
    /// User accounts, on the server's own data dir or database (also while
    /// it runs). Passwords come from COFFER_PASSWORD or a prompt.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum UserCommand {
    /// Creates a user.
    Add {
        name: String,
        /// May use the admin service and /metrics.
        #[arg(long)]
        admin: bool,
    },
    /// Sets a user's password (and ends their logins).
    Passwd { name: String },
    /// Removes a user: their logins end and their files are deleted.
    Rm { name: String },
    /// Lists the users, with their usage and quota.
    List,
    /// Sets a user's byte quota: the logical size of every retained
    /// version. SIZE is bytes or a size like 500MB, 10GiB, 1.5T; `none`
    /// lifts it.
    Quota { name: String, size: String },
}

/// Whether requests need a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    Enabled,
    Disabled,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum MetaCommand {
    /// Rebuilds the SQLite metadata from the newest good snapshot on any
    /// reachable node. Run it with the server stopped, on the same
    /// configuration (data dir and nodes).
    Restore {
        /// The newest snapshot taken at or before this time (RFC 3339,
        /// e.g. 2026-11-26T10:00:00Z).
        #[arg(long, value_parser = parse_time)]
        at: Option<time::OffsetDateTime>,
        /// Replace an existing database (it is kept beside the new one).
        #[arg(long)]
        force: bool,
        /// The cluster whose snapshots to use, if the nodes hold several.
        #[arg(long)]
        cluster: Option<String>,
        /// The most GiB a snapshot may decompress to; a larger one is
        /// skipped as bad.
        #[arg(long, default_value_t = 256)]
        max_size_gib: u64,
    },
    /// Lists the snapshots on the reachable nodes, newest first.
    Snapshots,
    /// Rebuilds where packed chunks are from the packs' own indexes on
    /// the nodes: each chunk a version holds whose recorded pack (or own
    /// object) is gone is pointed at a pack that holds it. `meta restore`
    /// does this too. Safe while the server runs.
    ReindexPacks,
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339))
        .map_err(|_| format!("{s:?} is not a time like 2026-11-26T10:00:00Z"))
}

/// One storage node as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSpec {
    Local {
        id: String,
        dir: PathBuf,
    },
    S3 {
        id: String,
        endpoint: String,
        access_key: String,
        secret_key: String,
    },
}

impl Config {
    /// The SQLite database under the data dir.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("coffer.db")
    }

    /// Authentication's tuning.
    pub fn auth_config(&self) -> crate::auth::AuthConfig {
        crate::auth::AuthConfig {
            enabled: self.auth == AuthMode::Enabled,
            access_ttl: Duration::from_secs(self.access_token_secs.max(1)),
            refresh_ttl: Duration::from_secs(self.refresh_token_secs.max(1)),
            metrics_token: self.metrics_token.clone().filter(|t| !t.is_empty()),
            password_checks: (self.password_memory_mib / crate::auth::password::CHECK_MIB).max(1),
            basic_over_http: self.dav_basic_over_http,
        }
    }

    /// How long a node may take to answer.
    pub fn node_timeout(&self) -> Duration {
        Duration::from_millis(self.node_timeout_ms.max(1))
    }

    /// The storage nodes: `--node`/`COFFER_NODES`, then
    /// `MINIO_ENDPOINT_1..N` from `env`; or, if there are none, the embedded
    /// default of three local directories under the data dir.
    pub fn node_specs(&self, env: impl Fn(&str) -> Option<String>) -> Vec<NodeSpec> {
        let mut raw: Vec<(String, Option<usize>)> = self
            .nodes
            .iter()
            .filter(|n| !n.trim().is_empty())
            .map(|n| (n.trim().to_string(), None))
            .collect();
        for i in 1.. {
            match env(&format!("MINIO_ENDPOINT_{i}")) {
                Some(e) if !e.trim().is_empty() => raw.push((e.trim().to_string(), Some(i))),
                _ => break,
            }
        }
        if raw.is_empty() {
            return (1..=3)
                .map(|i| NodeSpec::Local {
                    id: format!("local-{i}"),
                    dir: self.data_dir.join("nodes").join(format!("node{i}")),
                })
                .collect();
        }
        raw.into_iter()
            .map(|(spec, index)| {
                if let Some(dir) = spec.strip_prefix("dir:") {
                    return NodeSpec::Local {
                        id: format!("dir:{dir}"),
                        dir: PathBuf::from(dir),
                    };
                }
                let endpoint = if spec.contains("://") {
                    spec.trim_end_matches('/').to_string()
                } else {
                    format!("http://{spec}")
                };
                let per_node = |name: &str| index.and_then(|i| env(&format!("{name}_{i}")));
                NodeSpec::S3 {
                    id: endpoint.clone(),
                    endpoint,
                    access_key: per_node("MINIO_ACCESS_KEY")
                        .unwrap_or_else(|| self.access_key.clone()),
                    secret_key: per_node("MINIO_SECRET_KEY")
                        .unwrap_or_else(|| self.secret_key.clone()),
                }
            })
            .collect()
    }
}

/// An address (`10.1.2.3`) or network (`10.0.0.0/8`).
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a network like 10.0.0.0/8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("coffer-server").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = parse(&[]);
        assert_eq!((c.host.as_str(), c.bucket.as_str()), ("0.0.0.0", "files"));
        let nodes = c.node_specs(|_| None);
        assert_eq!(nodes.len(), 3);
        assert!(matches!(&nodes[0], NodeSpec::Local { id, .. } if id == "local-1"));
    }

    #[test]
    fn tutorial_endpoints_become_s3_nodes() {
        let env: HashMap<&str, &str> = [
            ("MINIO_ENDPOINT_1", "localhost:9001"),
            ("MINIO_ENDPOINT_2", "https://s3.example.com/"),
            ("MINIO_SECRET_KEY_2", "other"),
            ("MINIO_ENDPOINT_4", "ignored:1"),
        ]
        .into();
        let c = parse(&["--access-key", "ak", "--secret-key", "sk"]);
        let nodes = c.node_specs(|k| env.get(k).map(|v| v.to_string()));
        assert_eq!(
            nodes,
            vec![
                NodeSpec::S3 {
                    id: "http://localhost:9001".into(),
                    endpoint: "http://localhost:9001".into(),
                    access_key: "ak".into(),
                    secret_key: "sk".into()
                },
                NodeSpec::S3 {
                    id: "https://s3.example.com".into(),
                    endpoint: "https://s3.example.com".into(),
                    access_key: "ak".into(),
                    secret_key: "other".into()
                },
            ]
        );
    }

    #[test]
    fn restore_takes_a_time_and_the_global_flags_after_it() {
        let c = parse(&[
            "meta",
            "restore",
            "--at",
            "2026-11-26T10:00:00Z",
            "--data-dir",
            "/d",
        ]);
        let Some(Command::Meta(MetaCommand::Restore { at, force, .. })) = c.command else {
            panic!("not a restore: {:?}", c.command)
        };
        assert_eq!(at.unwrap().unix_timestamp(), 1_795_687_200);
        assert!(!force);
        assert_eq!(c.data_dir, PathBuf::from("/d"));
        let bad = Config::try_parse_from(["coffer-server", "meta", "restore", "--at", "yesterday"]);
        assert!(bad.unwrap_err().to_string().contains("is not a time"));
    }

    #[test]
    fn node_flags_accept_directories() {
        let c = parse(&["--node", "dir:/tmp/a,dir:/tmp/b"]);
        let nodes = c.node_specs(|_| None);
        assert_eq!(
            nodes[1],
            NodeSpec::Local {
                id: "dir:/tmp/b".into(),
                dir: "/tmp/b".into()
            }
        );
    }
}
