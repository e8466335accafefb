//! The server's whole lifecycle as a library call: [`run`] builds the
//! storage nodes, the metadata store, the cluster, the services and the
//! workers from a [`Config`], serves on a bound listener until `shutdown`
//! completes, then drains in-flight requests and stops every worker. The
//! binary only parses configuration and calls it; tests may call it
//! in-process.

use crate::cluster::{Cluster, ClusterConfig};
use crate::config::{Config, NodeSpec};
use crate::files::{Files, FilesConfig};
use crate::meta::{self, Meta};
use crate::status::Ops;
use crate::store::{local::LocalStore, s3::S3Config, s3::S3Store, BlobStore};
use crate::workers::Workers;
use crate::{api, workers};
use anyhow::Context;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Authentication, and the word on how to log in: the first admin is
/// created from `COFFER_ADMIN_PASSWORD`, or start-up says how to create
/// one. With authentication off, a loud warning.
async fn start_auth(cfg: &Config, meta: &Meta) -> anyhow::Result<crate::auth::Auth> {
    let auth_cfg = cfg.auth_config();
    if !auth_cfg.enabled {
        tracing::warn!(
            "AUTHENTICATION IS OFF (COFFER_AUTH=disabled): anyone who reaches this port can \
             read, change and delete every file. For development only."
        );
        return Ok(crate::auth::Auth::new(
            meta.clone(),
            crate::auth::KEY_WHEN_DISABLED,
            auth_cfg,
        ));
    }
    let key_file = cfg
        .database_url
        .is_none()
        .then(|| cfg.data_dir.join("auth.key"));
    let key = crate::auth::load_key(meta, cfg.auth_key.as_deref(), key_file.as_deref()).await?;
    if meta.users().await?.is_empty() {
        match cfg.admin_password.as_deref().filter(|p| !p.is_empty()) {
            Some(password) => {
                crate::auth::password::check_new(password)
                    .map_err(|e| anyhow::anyhow!("COFFER_ADMIN_PASSWORD: {e}"))?;
                let password = password.to_string();
                let hash =
                    tokio::task::spawn_blocking(move || crate::auth::password::hash(&password))
                        .await?
                        .map_err(anyhow::Error::msg)?;
                match meta.add_user("admin", &hash, crate::meta::Role::Admin).await {
                    Ok(_) => tracing::info!(
                        "created the admin user `admin` with the password in COFFER_ADMIN_PASSWORD; \
                         log in with `coffer login --user admin` or in the web app"
                    ),
                    // Another server of the same database was first.
                    Err(crate::meta::MetaError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            None => {
                let exe = std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "coffer-server".into());
                let place = match &cfg.database_url {
                    Some(_) => String::new(),
                    None => format!(
                        " --data-dir {}",
                        std::fs::canonicalize(&cfg.data_dir)
                            .unwrap_or_else(|_| cfg.data_dir.clone())
                            .display()
                    ),
                };
                tracing::warn!(
                    "no users yet. Create the first admin (while this server runs, from another \
                     terminal): `{exe} user add NAME --admin{place}`, then sign in at the web \
                     app or with `coffer login --user NAME`. Or start with \
                     COFFER_ADMIN_PASSWORD set to create `admin`."
                )
            }
        }
    }
    Ok(crate::auth::Auth::new(meta.clone(), &key, auth_cfg))
}

/// How long a starting server waits for an unreachable metadata database.
const META_PATIENCE: Duration = Duration::from_secs(60);

/// Opens the metadata database, waiting up to [`META_PATIENCE`] for one
/// that cannot be reached yet: a database starting or restarting beside
/// this server (a crash of both, a deployment that starts them together)
/// is waited for, not a reason to exit.
async fn open_meta(cfg: &Config) -> Result<Meta, meta::MetaError> {
    let deadline = std::time::Instant::now() + META_PATIENCE;
    let mut wait = Duration::from_millis(250);
    loop {
        match meta::open(cfg.database_url.as_deref(), &cfg.sqlite_path()).await {
            Err(meta::MetaError::Unreachable(e)) if std::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "the metadata database cannot be reached yet; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            opened => return opened,
        }
    }
}

/// Runs a server on `listener` with the storage nodes `node_specs` (as
/// [`Config::node_specs`] resolves them) until `shutdown` completes.
pub async fn run(
    cfg: Config,
    node_specs: Vec<NodeSpec>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(cfg, node_specs, listener, Box::pin(shutdown)).await
}

/// What [`serve`] returns: the whole server, as one boxed future.
pub type Serving = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// [`run`] for binaries. A binary that awaits an `async fn` of this crate
/// compiles that future again, and with it every future it awaits (in
/// release builds rustc shares no monomorphized code between crates):
/// awaiting `run` cost the server binary's 93 lines 22-37 s of every
/// release build (4 s since). Polled through a trait object, the server is code
/// compiled here, once.
pub fn serve(
    cfg: Config,
    node_specs: Vec<NodeSpec>,
    listener: tokio::net::TcpListener,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Serving {
    Box::pin(serve_until(cfg, node_specs, listener, shutdown))
}

async fn serve_until(
    cfg: Config,
    node_specs: Vec<NodeSpec>,
    listener: tokio::net::TcpListener,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    // Held for the life of the process: one server per SQLite data dir.
    let _lock = match &cfg.database_url {
        None => Some(lock_data_dir(&cfg.data_dir)?),
        Some(_) => None,
    };
    let nodes = build_nodes(&cfg, node_specs).await?;
    let meta = open_meta(&cfg)
        .await
        .context("cannot open the metadata database")?;
    let max_versions = match cfg.max_versions_per_user {
        0 => String::new(),
        n => n.to_string(),
    };
    meta.set_setting(crate::meta::MAX_VERSIONS, &max_versions)
        .await
        .context("cannot record the version limit")?;

    let mut cluster_cfg = ClusterConfig::for_nodes(nodes.len());
    if let Some(r) = cfg.replication {
        cluster_cfg.replication = r;
        cluster_cfg.write_quorum = r / 2 + 1;
    }
    if let Some(w) = cfg.write_quorum {
        cluster_cfg.write_quorum = w;
    }
    cluster_cfg.node_timeout = cfg.node_timeout();
    let (cluster, replica_events) = Cluster::new(nodes, cluster_cfg.clone())?;
    let files_cfg = FilesConfig {
        read_ahead_bytes: cfg.read_ahead_mib.max(1) * 1024 * 1024,
        download_memory_bytes: cfg.download_memory_mib.max(1) * 1024 * 1024,
        upload_memory_bytes: cfg.upload_memory_mib.max(1) * 1024 * 1024,
        max_open_sessions: cfg.max_open_uploads.max(1),
        idle_timeout: Duration::from_secs(cfg.idle_timeout_secs.max(1)),
        max_downloads_per_caller: cfg.max_downloads_per_caller.max(1),
        download_queue_wait: Duration::from_secs(cfg.download_queue_secs.max(1)),
        min_download_rate: cfg.min_download_rate_kib * 1024,
        thumbs: crate::thumbs::ThumbConfig {
            max_source_bytes: cfg.thumb_max_source_mib * 1024 * 1024,
            max_pixels: cfg.thumb_max_megapixels * 1_000_000,
            ..Default::default()
        },
        packs: cfg.packs.then(crate::packs::filler::FillerConfig::default),
        ..FilesConfig::default()
    };
    let files = Files::new(meta.clone(), Arc::new(cluster), files_cfg);
    match crate::identity::check(&meta, files.cluster()).await {
        Ok(crate::identity::Identity::Agreed(id)) => {
            tracing::info!(cluster = %id, backend = meta.backend(), "metadata and nodes agree")
        }
        Ok(crate::identity::Identity::Mismatch(why)) => {
            tracing::warn!("gc will not sweep orphan objects: {why}")
        }
        Err(e) => tracing::warn!(error = %e, "cannot check the cluster identity"),
    }

    let cancel = CancellationToken::new();
    // The recorder stops last, so outcomes of the requests and worker
    // passes that finish during shutdown are still recorded.
    let stop_recorder = CancellationToken::new();
    let recorder = tokio::spawn(workers::replica_log::run(
        meta.clone(),
        replica_events,
        stop_recorder.clone(),
    ));
    // This server's name in the lease table, for taking and releasing.
    let holder = workers::lease::holder_name(&cfg.data_dir);
    let snapshots = crate::snapshot::SnapshotLog::default();
    let auth = start_auth(&cfg, &meta).await?;
    let (worker_set, worker_tasks) = start_workers(
        &cfg,
        &meta,
        files.cluster(),
        &holder,
        (&snapshots, auth.snapshot_key()),
        &cancel,
    );
    let ops = Ops {
        meta: meta.clone(),
        cluster: files.cluster().clone(),
        workers: worker_set,
        snapshots,
        manual_run_interval: Duration::from_secs(cfg.manual_run_interval_secs),
    };

    // A bad certificate stops the start, before anything is served.
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::tls::server_config(cert, key).map_err(anyhow::Error::msg)?)
        }
        _ => None,
    };
    let shares = crate::shares::Shares::new(meta.clone(), files.clone(), auth.clone());
    let dav = crate::dav::Dav::new(files.clone(), meta.clone(), cfg.dav_mac_files);
    let router = api::router(
        api::Services {
            files,
            shares,
            ops,
            auth,
            dav,
        },
        cfg.web_dir.as_deref(),
        Duration::from_secs(cfg.request_timeout_secs.max(1)),
        cancel.clone(),
    )
    .await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        replication = cluster_cfg.replication,
        write_quorum = cluster_cfg.write_quorum,
        data_dir = %cfg.data_dir.display(),
        "coffer-server ready"
    );
    let shutdown_signal = shutdown;
    let shutdown = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal.await;
        tracing::info!("shutting down: finishing in-flight requests");
        shutdown.cancel();
    });
    let limits = crate::listen::Limits {
        max_connections: cfg.max_connections,
        max_per_address: cfg.max_connections_per_address,
        trusted_proxies: cfg.trusted_proxies.clone(),
        http2_max_streams: cfg.http2_max_streams.max(1),
        header_timeout: Duration::from_secs(cfg.header_timeout_secs.max(1)),
        idle_timeout: Duration::from_secs(cfg.idle_timeout_secs.max(1)),
    };
    crate::listen::serve(listener, tls, router, limits, cancel.clone()).await?;
    cancel.cancel();
    for task in worker_tasks {
        task.await.ok();
    }
    // Another server may take the workers over at once.
    for name in ["repair", "scrub", "gc"] {
        if let Err(e) = meta.release_lease(name, &holder).await {
            tracing::debug!(worker = name, error = %e, "cannot release the lease");
        }
    }
    stop_recorder.cancel();
    recorder.await.ok();
    Ok(())
}

/// Takes the data dir's lock, or says which process has it. SQLite under
/// one data dir takes one server; several servers share PostgreSQL.
pub fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("coffer.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).ok();
            (&file)
                .write_all(format!("{}\n", std::process::id()).as_bytes())
                .ok();
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another coffer-server (pid {}) is using the data dir {}; stop it, or give this one \
                 its own --data-dir (several servers share one database with --database-url)",
                pid.trim(),
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn start_workers(
    cfg: &Config,
    meta: &Meta,
    cluster: &Arc<Cluster>,
    holder: &str,
    (snapshots, snapshot_key): (&crate::snapshot::SnapshotLog, [u8; 32]),
    cancel: &CancellationToken,
) -> (Workers, Vec<tokio::task::JoinHandle<()>>) {
    use workers::lease::Leased;
    use workers::pace::Pace;
    use workers::{gc, probe, repair, runner, scrub};
    let lease = Duration::from_secs(cfg.lease_secs);

    let secs = Duration::from_secs;
    let mut set = Workers::default();
    let mut tasks = Vec::new();
    let mut add = |(handle, task)| {
        set.add(handle);
        tasks.push(task);
    };
    add(runner::spawn(
        probe::Probe {
            cluster: cluster.clone(),
        },
        Duration::from_millis(cfg.probe_interval_ms.max(100)),
        cancel.clone(),
    ));
    add(runner::spawn(
        Leased::new(
            repair::Repair {
                meta: meta.clone(),
                cluster: cluster.clone(),
                pace: Pace::new(cfg.repair_rate_mib * 1024 * 1024),
            },
            meta,
            holder,
            lease,
        ),
        secs(cfg.repair_interval_secs.max(1)),
        cancel.clone(),
    ));
    add(runner::spawn(
        Leased::new(
            scrub::Scrub {
                meta: meta.clone(),
                cluster: cluster.clone(),
                pace: Pace::new(cfg.scrub_rate_mib * 1024 * 1024),
            },
            meta,
            holder,
            lease,
        ),
        secs(cfg.scrub_interval_secs.max(1)),
        cancel.clone(),
    ));
    let gc_cfg = gc::GcConfig {
        grace: secs(cfg.gc_grace_secs),
        keep_versions: cfg.keep_versions,
        keep_younger_than: cfg.keep_days.map(|d| secs(d * 24 * 3600)),
        deleted_retention: Some(secs(cfg.deleted_retention_secs)),
        repack_below_percent: cfg.repack_below_percent,
        pack_existing: cfg.packs,
    };
    add(runner::spawn(
        Leased::new(
            gc::Gc {
                meta: meta.clone(),
                cluster: cluster.clone(),
                cfg: gc_cfg,
                pace: Pace::new(cfg.gc_delete_rate),
            },
            meta,
            holder,
            lease,
        ),
        secs(cfg.gc_interval_secs.max(1)),
        cancel.clone(),
    ));
    // PostgreSQL is backed up with its own tools; only SQLite snapshots.
    if meta.backend() == "sqlite" {
        let worker = crate::snapshot::take::SnapshotWorker {
            meta: meta.clone(),
            cluster: cluster.clone(),
            scratch: cfg.data_dir.clone(),
            keep: crate::snapshot::Keep {
                last: cfg.snapshot_keep,
                daily_days: cfg.snapshot_keep_days,
            },
            log: snapshots.clone(),
            key: snapshot_key,
        };
        let interval = match cfg.snapshot_interval_secs {
            0 => secs(100 * 365 * 24 * 3600),
            s => secs(s),
        };
        let (handle, task) = runner::spawn(worker, interval, cancel.clone());
        tasks.push(tokio::spawn(catch_up_snapshot(
            meta.clone(),
            cluster.clone(),
            snapshots.clone(),
            handle.clone(),
            (cfg.snapshot_interval_secs > 0).then_some(interval),
        )));
        set.add(handle);
        tasks.push(task);
    }
    (set, tasks)
}

/// At start-up: shows the newest snapshot on the nodes in status, and
/// takes one now if it is older than the interval (a server restarted
/// more often than the interval would otherwise never take one).
async fn catch_up_snapshot(
    meta: Meta,
    cluster: Arc<Cluster>,
    log: crate::snapshot::SnapshotLog,
    handle: Arc<workers::runner::WorkerHandle>,
    interval: Option<Duration>,
) {
    let Ok(Some(id)) = meta.cluster_id().await else {
        return;
    };
    let nodes: Vec<_> = cluster
        .nodes()
        .iter()
        .map(|n| (n.id.clone(), n.store.clone()))
        .collect();
    let newest = crate::snapshot::take::newest(&nodes, &id).await;
    let stale = match (&newest, interval) {
        (_, None) => false,
        (None, Some(_)) => meta.has_chunks().await.unwrap_or(false),
        (Some(n), Some(i)) => {
            time::OffsetDateTime::parse(&n.taken_at, &time::format_description::well_known::Rfc3339)
                .map(|t| time::OffsetDateTime::now_utc() - t > i)
                .unwrap_or(true)
        }
    };
    {
        let mut l = log.lock().expect("snapshot log");
        if l.last.is_none() {
            l.last = newest;
        }
    }
    if stale {
        handle.run_now(false).await;
    }
}

pub(crate) async fn build_nodes(
    cfg: &Config,
    specs: Vec<NodeSpec>,
) -> anyhow::Result<Vec<(String, Arc<dyn BlobStore>)>> {
    let mut nodes: Vec<(String, Arc<dyn BlobStore>)> = Vec::new();
    for spec in specs {
        let (id, store): (String, Arc<dyn BlobStore>) = match spec {
            NodeSpec::Local { id, dir } => (id.clone(), Arc::new(LocalStore::new(id, dir))),
            NodeSpec::S3 {
                id,
                endpoint,
                access_key,
                secret_key,
            } => {
                let s3 = S3Store::new(&S3Config {
                    name: id.clone(),
                    endpoint,
                    region: cfg.region.clone(),
                    bucket: cfg.bucket.clone(),
                    access_key,
                    secret_key,
                    timeout: cfg.node_timeout(),
                });
                (id, Arc::new(s3))
            }
        };
        // A node that is down at start-up may come back; say so and go on.
        if let Err(e) = store.ensure_ready().await {
            tracing::warn!(node = %id, error = %e, "storage node not ready");
        }
        nodes.push((id, store));
    }
    Ok(nodes)
}
