//! `coffer-server meta restore`: rebuilds the SQLite metadata from the
//! newest good snapshot on any reachable node (or the newest taken at or
//! before a given time), and audits it against what the nodes hold.
//!
//! A snapshot is good when its MAC (keyed by the server's signing key)
//! matches its cluster, time and bytes, it decompresses within the bound,
//! SQLite finds the database intact and it names the cluster it was filed
//! under. A bad one is reported and the next older one is tried. It is
//! read to disk piece by piece and checked before it is decompressed, so
//! neither a huge object nor a decompression bomb is ever held in memory.
//!
//! Every login ends on restore: a snapshot does not know which refresh
//! tokens were revoked after it was taken.

use super::take::{list, Target};
use super::{SnapshotName, PREFIX};
use crate::meta::{Meta, MetaError};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;
use time::OffsetDateTime;

/// What to restore, and where.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The SQLite database file to (re)create.
    pub database: PathBuf,
    /// The newest snapshot taken at or before this time (default: the
    /// newest of all).
    pub at: Option<OffsetDateTime>,
    /// The cluster whose snapshots to use (default: the one the nodes'
    /// markers name).
    pub cluster: Option<String>,
    /// Replace an existing database (kept beside it under another name).
    pub force: bool,
    /// The MAC key of the snapshots (see [`super::mac_key`]).
    pub key: [u8; 32],
    /// The most bytes a snapshot may decompress to.
    pub max_bytes: u64,
}

/// The default of [`RestoreOptions::max_bytes`]: 256 GiB.
pub const MAX_RESTORED_BYTES: u64 = 256 << 30;

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error(
        "{0} exists; restoring replaces it: stop the server and add --force \
         (the old file is kept beside it)"
    )]
    Exists(PathBuf),
    #[error("no reachable node holds a snapshot{0}")]
    NoSnapshot(String),
    #[error("the nodes hold snapshots of several clusters ({0}); choose one with --cluster")]
    Ambiguous(String),
    #[error("no snapshot could be restored: {0}")]
    AllBad(String),
    #[error("{0}")]
    Io(String),
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub snapshot: SnapshotName,
    /// The node it was read from.
    pub node: String,
    /// Newer candidates that were not usable, each with why.
    pub skipped: Vec<String>,
    /// Where the database it replaced was moved.
    pub replaced: Option<PathBuf>,
    /// Nodes that could not be listed.
    pub unreachable: Vec<String>,
}

/// Every snapshot on the reachable `nodes`, newest first, with the
/// indexes of the nodes holding each; and the nodes that could not be
/// listed.
pub async fn catalog(nodes: &[Target]) -> (Vec<(SnapshotName, u64, Vec<usize>)>, Vec<String>) {
    let mut found: BTreeMap<String, (SnapshotName, u64, Vec<usize>)> = BTreeMap::new();
    let mut unreachable = Vec::new();
    for (i, (id, store)) in nodes.iter().enumerate() {
        match list(store.as_ref()).await {
            Ok(l) => {
                for (n, size) in l {
                    found
                        .entry(n.key())
                        .or_insert_with(|| (n, size, Vec::new()))
                        .2
                        .push(i);
                }
            }
            Err(e) => unreachable.push(format!("{id}: {e}")),
        }
    }
    let mut all: Vec<_> = found.into_values().collect();
    all.sort_by_key(|f| std::cmp::Reverse(f.0.taken_at));
    (all, unreachable)
}

/// The cluster to restore: the one asked for, else the one the nodes'
/// markers name, else the only one with snapshots.
async fn choose_cluster(
    nodes: &[Target],
    asked: Option<&str>,
    found: &[(SnapshotName, u64, Vec<usize>)],
) -> Result<String, RestoreError> {
    if let Some(c) = asked {
        return Ok(c.to_string());
    }
    let mut markers = HashSet::new();
    for (_, store) in nodes {
        if let Ok(b) = store.get(crate::identity::MARKER_KEY).await {
            markers.insert(String::from_utf8_lossy(&b).trim().to_string());
        }
    }
    let with_snapshots: HashSet<&str> = found.iter().map(|f| f.0.cluster.as_str()).collect();
    let pool: Vec<String> = if markers.is_empty() {
        with_snapshots.iter().map(|s| s.to_string()).collect()
    } else {
        markers.into_iter().collect()
    };
    match pool.as_slice() {
        [] => Err(RestoreError::NoSnapshot(String::new())),
        [one] => Ok(one.clone()),
        many => Err(RestoreError::Ambiguous(many.join(", "))),
    }
}

/// Restores the database from the nodes. The caller holds the data dir's
/// lock, so no server uses the database meanwhile.
pub async fn restore(nodes: &[Target], opts: &RestoreOptions) -> Result<Restored, RestoreError> {
    let db = &opts.database;
    if db.exists() && !opts.force {
        return Err(RestoreError::Exists(db.clone()));
    }
    let (found, unreachable) = catalog(nodes).await;
    let cluster = choose_cluster(nodes, opts.cluster.as_deref(), &found).await?;
    let candidates: Vec<_> = found
        .into_iter()
        .filter(|(n, _, _)| n.cluster == cluster)
        .filter(|(n, _, _)| opts.at.is_none_or(|at| n.taken_at <= at))
        .collect();
    if candidates.is_empty() {
        let when = match opts.at {
            Some(at) => format!(" taken at or before {}", crate::meta::rfc3339(at)),
            None => String::new(),
        };
        return Err(RestoreError::NoSnapshot(format!(
            " of cluster {cluster}{when}{}",
            if unreachable.is_empty() {
                String::new()
            } else {
                format!(" (unreachable: {})", unreachable.join("; "))
            }
        )));
    }
    let dir = db.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let mut skipped = Vec::new();
    for (name, _, holders) in candidates {
        for i in holders {
            let (node, store) = &nodes[i];
            match fetch(store.as_ref(), &name, dir, opts).await {
                Ok(file) => {
                    let replaced = install(file, db, opts.force)?;
                    return Ok(Restored {
                        snapshot: name,
                        node: node.clone(),
                        skipped,
                        replaced,
                        unreachable,
                    });
                }
                Err(why) => skipped.push(format!(
                    "snapshot of {} on {node}: {why}",
                    crate::meta::rfc3339(name.taken_at)
                )),
            }
        }
    }
    Err(RestoreError::AllBad(skipped.join("; ")))
}

/// Writes an object's pieces to a file and feeds them to its MAC.
struct Receiving {
    file: std::io::BufWriter<std::fs::File>,
    mac: blake3::Hasher,
}

impl crate::store::Sink for Receiving {
    fn take(&mut self, piece: &[u8]) -> std::io::Result<()> {
        self.mac.update(piece);
        self.file.write_all(piece)
    }
}

/// Reads one snapshot object to disk, authenticates it and unpacks it
/// into a temporary file in `dir`, ready for the database's place.
async fn fetch(
    store: &dyn crate::store::BlobStore,
    name: &SnapshotName,
    dir: &Path,
    opts: &RestoreOptions,
) -> Result<tempfile::NamedTempFile, String> {
    let scratch = |prefix: &str| {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(dir)
            .map_err(|e| format!("cannot make a file in {}: {e}", dir.display()))
    };
    let packed = scratch(".restore-packed-")?;
    let mut into = Receiving {
        file: std::io::BufWriter::new(packed.reopen().map_err(|e| e.to_string())?),
        mac: name.hasher(&opts.key),
    };
    store
        .get_into(&name.key(), &mut into)
        .await
        .map_err(|e| e.to_string())?;
    into.file.flush().map_err(|e| e.to_string())?;
    let claimed = blake3::Hash::from_hex(&name.mac).map_err(|e| e.to_string())?;
    // `Hash` compares in constant time.
    if into.mac.finalize() != claimed {
        return Err(
            "not authenticated: its MAC does not match (corrupt, planted, or taken \
             with another signing key than the one given)"
                .into(),
        );
    }
    let (cluster, max) = (name.cluster.clone(), opts.max_bytes);
    let mut file = scratch(".restore-")?;
    tokio::task::spawn_blocking(move || {
        let mut decoder = zstd::stream::read::Decoder::new(
            std::fs::File::open(packed.path()).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("does not decompress: {e}"))?;
        // At most a 128 MiB window, whatever the frame asks for.
        decoder
            .window_log_max(27)
            .map_err(|e| format!("does not decompress: {e}"))?;
        let mut limited = std::io::Read::take(decoder, max.saturating_add(1));
        let n = std::io::copy(&mut limited, file.as_file_mut())
            .map_err(|e| format!("does not decompress: {e}"))?;
        if n > max {
            return Err(format!(
                "decompresses to more than {max} bytes, the bound on a restored database"
            ));
        }
        drop(packed);
        file.as_file().sync_all().map_err(|e| e.to_string())?;
        crate::meta::sqlite::prepare_restored(file.path(), &cluster).map_err(|e| e.to_string())?;
        Ok(file)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Moves `file` into the database's place, the old database (and its WAL)
/// aside first.
fn install(
    file: tempfile::NamedTempFile,
    db: &Path,
    force: bool,
) -> Result<Option<PathBuf>, RestoreError> {
    let mut replaced = None;
    if force && db.exists() {
        let stamp = OffsetDateTime::now_utc().unix_timestamp();
        let aside = PathBuf::from(format!("{}.replaced-{stamp}", db.display()));
        for suffix in ["", "-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{suffix}", db.display()));
            if from.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&from, &to).map_err(|e| io("move aside", &from, e))?;
            }
        }
        replaced = Some(aside);
    }
    // A stale WAL or shared-memory file beside the new database would be
    // replayed into it.
    for suffix in ["-wal", "-shm"] {
        let stale = PathBuf::from(format!("{}{suffix}", db.display()));
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| io("remove", &stale, e))?;
        }
    }
    file.persist(db).map_err(|e| io("write", db, e.error))?;
    if let Some(dir) = db.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all().ok();
        }
    }
    Ok(replaced)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> RestoreError {
    RestoreError::Io(format!("cannot {what} {}: {e}", path.display()))
}

/// How the restored metadata and the nodes differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// Chunks on the nodes the metadata does not name: stored after the
    /// snapshot (their versions are lost). Gc removes them after its grace
    /// period.
    pub orphan_chunks: u64,
    pub orphan_bytes: u64,
    /// Chunks the metadata names that no reachable node holds (deleted
    /// after the snapshot, or on nodes that are down).
    pub missing_chunks: u64,
}

/// Compares the restored metadata with the chunks on the reachable nodes.
pub async fn audit(meta: &Meta, nodes: &[Target]) -> Result<Audit, MetaError> {
    let known: HashSet<String> = crate::workers::all_chunks(meta)
        .await
        .map_err(MetaError::Backend)?
        .into_iter()
        .collect();
    let mut on_nodes: BTreeMap<String, u64> = BTreeMap::new();
    for (_, store) in nodes {
        if let Ok(objects) = store.list("chunks/").await {
            for o in objects {
                if let Some(id) = crate::store::chunk_id_of_key(&o.key) {
                    on_nodes.insert(id.to_string(), o.size);
                }
            }
        }
    }
    let mut a = Audit::default();
    for (id, size) in &on_nodes {
        if !known.contains(id) {
            a.orphan_chunks += 1;
            a.orphan_bytes += size;
        }
    }
    a.missing_chunks = known
        .iter()
        .filter(|id| !on_nodes.contains_key(*id))
        .count() as u64;
    Ok(a)
}

/// Writes a one-line summary of `found` per snapshot, for `meta snapshots`.
pub fn describe(
    found: &[(SnapshotName, u64, Vec<usize>)],
    nodes: &[Target],
    out: &mut impl Write,
) -> std::io::Result<()> {
    if found.is_empty() {
        writeln!(out, "no snapshots under {PREFIX} on the reachable nodes")?;
    }
    for (n, size, holders) in found {
        let on: Vec<&str> = holders.iter().map(|&i| nodes[i].0.as_str()).collect();
        writeln!(
            out,
            "{}  cluster {}  {size} bytes  on {}",
            crate::meta::rfc3339(n.taken_at),
            n.cluster,
            on.join(", ")
        )?;
    }
    Ok(())
}
