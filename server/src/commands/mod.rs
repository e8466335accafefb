//! Operator commands of the `coffer-server` binary besides serving:
//! `meta restore` and `meta snapshots` here, `user …` in [`users`]. Each prints what it did for a
//! person at a terminal and fails with one line that says what to do.

use crate::config::{Command, Config, MetaCommand, NodeSpec};
use crate::snapshot::restore::{self, RestoreOptions};
use crate::snapshot::take::Target;
use anyhow::Context;
use std::future::Future;
use std::pin::Pin;

pub mod users;

/// Runs `command` with the server's configuration; boxed, so the binary
/// that awaits it does not compile it again (see [`crate::server::serve`]).
pub fn run(
    cfg: Config,
    nodes: Vec<NodeSpec>,
    command: Command,
) -> Pin<Box<dyn Future<Output = anyhow::Result<()>>>> {
    Box::pin(run_command(cfg, nodes, command))
}

async fn run_command(cfg: Config, nodes: Vec<NodeSpec>, command: Command) -> anyhow::Result<()> {
    match command {
        Command::User(c) => users::run(&cfg, c).await,
        Command::Meta(MetaCommand::Restore {
            at,
            force,
            cluster,
            max_size_gib,
        }) => {
            if cfg.database_url.is_some() {
                anyhow::bail!(
                    "the metadata is in PostgreSQL (COFFER_DATABASE_URL): restore it with \
                     PostgreSQL's own tools; Coffer's snapshots cover the SQLite default only"
                );
            }
            std::fs::create_dir_all(&cfg.data_dir)
                .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
            // No server may use the database while it is replaced.
            let _lock = crate::server::lock_data_dir(&cfg.data_dir)?;
            let key = snapshot_key(&cfg)?;
            let targets = targets(&cfg, nodes).await?;
            let opts = RestoreOptions {
                database: cfg.sqlite_path(),
                at,
                cluster,
                force,
                key,
                max_bytes: max_size_gib.saturating_mul(1 << 30),
            };
            let done = restore::restore(&targets, &opts).await?;
            report_restore(&cfg, &targets, &done).await
        }
        Command::Meta(MetaCommand::ReindexPacks) => {
            let meta = crate::meta::open(cfg.database_url.as_deref(), &cfg.sqlite_path())
                .await
                .context("cannot open the metadata database")?;
            let targets = targets(&cfg, nodes).await?;
            let done = crate::packs::reindex::reindex(&meta, &targets).await?;
            report_reindex(&done);
            Ok(())
        }
        Command::Meta(MetaCommand::Snapshots) => {
            let targets = targets(&cfg, nodes).await?;
            let (found, unreachable) = restore::catalog(&targets).await;
            restore::describe(&found, &targets, &mut std::io::stdout())?;
            for u in unreachable {
                eprintln!("warning: cannot list {u}");
            }
            Ok(())
        }
    }
}

/// The key that authenticates this server's snapshots: derived from the
/// signing key it runs with, which must be here (`COFFER_AUTH_KEY`, or
/// `auth.key` in the data dir).
fn snapshot_key(cfg: &Config) -> anyhow::Result<[u8; 32]> {
    if !cfg.auth_config().enabled {
        return Ok(crate::snapshot::mac_key(crate::auth::KEY_WHEN_DISABLED));
    }
    let file = cfg.data_dir.join("auth.key");
    match crate::auth::existing_key(cfg.auth_key.as_deref(), &file)? {
        Some(k) => Ok(crate::snapshot::mac_key(&k)),
        None => anyhow::bail!(
            "snapshots are authenticated with the server's signing key, and it is not here: \
             set COFFER_AUTH_KEY to the key the server ran with, or put its auth.key back at {}",
            file.display()
        ),
    }
}

async fn targets(cfg: &Config, nodes: Vec<NodeSpec>) -> anyhow::Result<Vec<Target>> {
    crate::server::build_nodes(cfg, nodes).await
}

async fn report_restore(
    cfg: &Config,
    targets: &[Target],
    done: &restore::Restored,
) -> anyhow::Result<()> {
    let taken = crate::meta::rfc3339(done.snapshot.taken_at);
    for s in &done.skipped {
        println!("skipped a bad snapshot: {s}");
    }
    for u in &done.unreachable {
        println!("warning: cannot list {u}");
    }
    println!(
        "restored the metadata of cluster {} from the snapshot taken at {taken} (read from {})",
        done.snapshot.cluster, done.node
    );
    if let Some(old) = &done.replaced {
        println!("the database it replaced is kept at {}", old.display());
    }
    println!("versions committed after {taken} are lost");
    println!("every login has ended: users sign in again");
    let meta = crate::meta::open(None, &cfg.sqlite_path())
        .await
        .context("cannot open the restored database")?;
    // A snapshot taken before a repack names packs deleted since: the
    // packs on the nodes say where their chunks are now.
    match crate::packs::reindex::reindex(&meta, targets).await {
        Ok(done) => report_reindex(&done),
        Err(e) => println!("warning: cannot read the packs' indexes: {e}"),
    }
    match restore::audit(&meta, targets).await {
        Ok(a) => {
            if a.orphan_chunks > 0 {
                println!(
                    "{} chunk(s) ({} bytes) on the nodes were stored after the snapshot; gc \
                     keeps them for {} days, so a newer snapshot can still be restored, \
                     then removes them once unclaimed for its grace period ({} s)",
                    a.orphan_chunks,
                    a.orphan_bytes,
                    crate::meta::sql::gc::RESTORE_HOLD.as_secs() / 86_400,
                    cfg.gc_grace_secs
                );
            }
            if a.missing_chunks > 0 {
                println!(
                    "warning: {} chunk(s) the snapshot names are on no reachable node (deleted \
                     after the snapshot, or on a node that is down): versions using them cannot \
                     be read until repair finds a copy",
                    a.missing_chunks
                );
            }
        }
        Err(e) => println!("warning: cannot compare the metadata with the nodes: {e}"),
    }
    println!("start the server to serve the restored files");
    Ok(())
}

fn report_reindex(done: &crate::packs::reindex::Reindexed) {
    for p in &done.problems {
        println!("warning: {p}");
    }
    println!(
        "read the indexes of {} pack(s) on the nodes; {} chunk(s) whose recorded place was gone \
         now point at a pack that holds them",
        done.packs, done.pointed
    );
}
