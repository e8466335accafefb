//! The checker: the history against a model of what Coffer promises, and
//! the healed cluster against the history. Each rule names the operations
//! that break it.
//!
//! Rules over the history:
//! - a version of a path, once seen, never changes (every sighting of
//!   (path, version) agrees on the content: acks, reads, listings, the
//!   feed, the final state);
//! - two acknowledged writes never get the same version of a path, and a
//!   write acknowledged before another began has the lower number;
//! - an acknowledged conditional write on base b made version b + 1;
//! - no content appears that no client wrote;
//! - each client's reads of the change feed continue without a gap.
//!
//! Rules over the healed cluster (after repair and gc have run):
//! - every version seen during the run (acknowledged, read, listed, in
//!   the feed, through a share link) that retention keeps (the newest
//!   `keep` of its path) is still there, unchanged, and every listed
//!   version reads back with its content hash and size (unknown outcomes
//!   may have happened or not, but not half);
//! - the change feed replayed from its start gives the final listing;
//! - every chunk of acknowledged content is on 3 nodes again, and the
//!   servers count no under-replicated chunk;
//! - a deleted file is restorable.

use super::cluster::{SoakCluster, REPLICATION};
use super::history::{Kind, Op, Seen};
use super::workload::{list_all, read_version, seen_of_change, versions_of};
use coffer_proto::pb::file_storage_client::FileStorageClient;
use coffer_proto::pb::{self};
use std::collections::{BTreeMap, HashMap, HashSet};
use tonic::transport::Channel;

/// What the checker verified, and what it found wrong.
#[derive(Debug, Default)]
pub struct Verdict {
    pub violations: Vec<String>,
    pub versions_checked: u64,
    pub acked_checked: u64,
    pub bytes_verified: u64,
    pub chunks_checked: u64,
    /// Of those, chunks found inside a pack on the nodes.
    pub chunks_packed: u64,
    /// Last edits of a side of the sync pair found kept.
    pub sync_edits_checked: u64,
}

/// The rules over the history alone.
pub fn history(ops: &[Op], v: &mut Verdict) {
    let written: HashSet<&str> = ops
        .iter()
        .filter_map(|o| match &o.kind {
            Kind::Upload { content, .. }
            | Kind::SyncEdit {
                content: Some(content),
                ..
            } => Some(content.hash.as_str()),
            _ => None,
        })
        .collect();
    // Every sighting of every version.
    let mut versions: HashMap<(&str, u64), (&Seen, u64)> = HashMap::new();
    for op in ops {
        for s in op.seen().iter().filter(|s| !s.hash.is_empty()) {
            if !written.contains(s.hash.as_str()) {
                v.violations.push(format!(
                    "op {} ({}) saw version {} of {} with content {} that no client wrote",
                    op.id,
                    s.how,
                    s.version,
                    s.path,
                    short(&s.hash)
                ));
            }
            match versions.get(&(s.path.as_str(), s.version)) {
                Some((first, by))
                    if (first.hash.as_str(), first.size) != (s.hash.as_str(), s.size) =>
                {
                    v.violations.push(format!(
                        "version {} of {} changed: op {by} saw {} ({} bytes, {}), op {} saw {} ({} bytes, {})",
                        s.version, s.path, short(&first.hash), first.size, first.how,
                        op.id, short(&s.hash), s.size, s.how
                    ));
                }
                Some(_) => {}
                None => {
                    versions.insert((s.path.as_str(), s.version), (s, op.id));
                }
            }
        }
    }
    // Acknowledged writes: unique numbers, in real-time order.
    let mut acks: BTreeMap<&str, Vec<(&Op, u64)>> = BTreeMap::new();
    for op in ops {
        if let Some(a) = op.acked() {
            acks.entry(a.path.as_str())
                .or_default()
                .push((op, a.version));
        }
        if let (Kind::Upload { base: Some(b), .. }, Some(a)) = (&op.kind, op.acked()) {
            if *b > 0 && a.version != b + 1 {
                v.violations.push(format!(
                    "op {}: a conditional upload on version {b} of {} was acknowledged as version {}",
                    op.id, a.path, a.version
                ));
            }
        }
    }
    for (path, list) in &acks {
        let mut by_version: HashMap<u64, u64> = HashMap::new();
        for (op, n) in list {
            if let Some(other) = by_version.insert(*n, op.id) {
                v.violations.push(format!(
                    "ops {other} and {} were both acknowledged as version {n} of {path}",
                    op.id
                ));
            }
        }
        for (a, na) in list {
            for (b, nb) in list {
                if a.completed_ms < b.invoked_ms && na >= nb {
                    v.violations.push(format!(
                        "op {} (version {na} of {path}) was acknowledged before op {} began, \
                         which got version {nb}",
                        a.id, b.id
                    ));
                }
            }
        }
    }
    // The feed, per client: each read continues where the last ended.
    let mut last: HashMap<usize, u64> = HashMap::new();
    for op in ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::Changes { .. }))
    {
        let Some(first) = op.seen().first().and_then(|s| s.seq) else {
            continue;
        };
        let expected = last.get(&op.client).map_or(1, |l| l + 1);
        if first != expected {
            v.violations.push(format!(
                "op {}: client {} read change {first} after its cursor, not {expected}",
                op.id, op.client
            ));
        }
        let seqs: Vec<u64> = op.seen().iter().filter_map(|s| s.seq).collect();
        if seqs.windows(2).any(|w| w[1] != w[0] + 1) {
            v.violations.push(format!(
                "op {}: a page of changes has a gap: {seqs:?}",
                op.id
            ));
        }
        last.insert(op.client, *seqs.last().unwrap());
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// The rules over the healed cluster, read through `c`.
pub async fn cluster(
    ops: &[Op],
    cluster: &SoakCluster,
    c: &mut FileStorageClient<Channel>,
    keep: u32,
    v: &mut Verdict,
) -> anyhow::Result<()> {
    let mut paths: Vec<String> = (0..super::workload::PATHS)
        .map(super::workload::path)
        .collect();
    for op in ops {
        for s in op.seen() {
            if !paths.contains(&s.path) {
                paths.push(s.path.clone());
            }
        }
    }
    // Every version of every path, read back.
    let mut finals: HashMap<(String, u64), pb::MetadataResponse> = HashMap::new();
    let mut deleted: Vec<(String, u64)> = Vec::new();
    for path in &paths {
        let list = match versions_of(c, path).await {
            Ok(l) => l,
            Err(s) if s.code() == tonic::Code::NotFound => Vec::new(),
            Err(s) => {
                v.violations
                    .push(format!("the versions of {path} cannot be listed: {s}"));
                continue;
            }
        };
        if list.first().is_some_and(|m| m.deleted) {
            deleted.push((path.clone(), list[0].version_number));
        }
        for m in list {
            v.versions_checked += 1;
            match read_version(c, path, m.version_number).await {
                Ok((size, hash)) if (size, hash.as_str()) == (m.size, m.content_hash.as_str()) => {
                    v.bytes_verified += size;
                }
                Ok((size, hash)) => v.violations.push(format!(
                    "version {} of {path} reads back as {} ({size} bytes), not its listed {} ({} bytes)",
                    m.version_number, short(&hash), short(&m.content_hash), m.size
                )),
                Err(s) => v.violations.push(format!(
                    "version {} of {path} cannot be read: {s}",
                    m.version_number
                )),
            }
            finals.insert((path.clone(), m.version_number), m);
        }
    }
    // What retention keeps: the newest `keep` versions of each path.
    let mut latest: HashMap<&str, u64> = HashMap::new();
    for (path, version) in finals.keys() {
        let l = latest.entry(path.as_str()).or_default();
        *l = (*l).max(*version);
    }
    let kept = |path: &str, version: u64| {
        version + u64::from(keep) > latest.get(path).copied().unwrap_or(0)
    };
    // Whatever was seen during the run, acknowledgements among it, is
    // there now unchanged while retention keeps it: a version of an upload
    // whose outcome was unknown, once seen, stays too.
    let mut reported = HashSet::new();
    for op in ops {
        for s in op
            .seen()
            .iter()
            .filter(|s| !s.hash.is_empty() && kept(&s.path, s.version))
        {
            v.acked_checked += u64::from(s.how == "ack");
            let now = finals.get(&(s.path.clone(), s.version));
            if now.is_some_and(|m| (m.content_hash.as_str(), m.size) == (s.hash.as_str(), s.size))
                || !reported.insert((s.path.as_str(), s.version))
            {
                continue;
            }
            v.violations.push(match now {
                Some(m) => format!(
                    "op {} saw version {} of {} as {} ({} bytes, {}); it is now {} ({} bytes)",
                    op.id,
                    s.version,
                    s.path,
                    short(&s.hash),
                    s.size,
                    s.how,
                    short(&m.content_hash),
                    m.size
                ),
                None => format!(
                    "op {} saw version {} of {} ({}); it is gone",
                    op.id, s.version, s.path, s.how
                ),
            });
        }
    }
    feed(c, v).await?;
    let kept_acks: Vec<&Op> = ops
        .iter()
        .filter(|o| o.acked().is_some_and(|a| kept(&a.path, a.version)))
        .collect();
    replication(ops, &kept_acks, cluster, v).await?;
    // A deleted file is restorable.
    for (path, latest) in deleted {
        match c
            .restore_version(pb::RestoreVersionRequest {
                file_name: path.clone(),
                version: latest,
            })
            .await
        {
            Ok(m) if m.get_ref().content_hash == finals[&(path.clone(), latest)].content_hash => {}
            Ok(_) => v
                .violations
                .push(format!("restoring deleted {path} gave other content")),
            Err(s) => v
                .violations
                .push(format!("deleted {path} cannot be restored: {s}")),
        }
    }
    Ok(())
}

/// The change feed from its start replays to the final listing.
async fn feed(c: &mut FileStorageClient<Channel>, v: &mut Verdict) -> anyhow::Result<()> {
    let mut replay: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut cursor = String::new();
    let mut next = 1;
    loop {
        let r = c
            .list_changes(pb::ListChangesRequest {
                cursor: cursor.clone(),
                page_size: 1000,
                latest: false,
            })
            .await?
            .into_inner();
        for ch in r.changes.iter().map(seen_of_change) {
            if ch.seq != Some(next) {
                v.violations.push(format!(
                    "the feed skips from change {} to {:?}",
                    next - 1,
                    ch.seq
                ));
            }
            next = ch.seq.unwrap_or(next) + 1;
            if ch.deleted {
                replay.remove(&ch.path);
            } else {
                replay.insert(ch.path, (ch.version, ch.hash));
            }
        }
        cursor = r.cursor;
        if !r.more {
            break;
        }
    }
    let listing: BTreeMap<String, (u64, String)> = list_all(c, "")
        .await?
        .into_iter()
        .map(|m| (m.file_name, (m.version_number, m.content_hash)))
        .collect();
    if replay != listing {
        let differ: Vec<String> = listing
            .keys()
            .chain(replay.keys())
            .filter(|p| listing.get(*p) != replay.get(*p))
            .map(|p| {
                format!(
                    "{p}: listed {:?}, replayed {:?}",
                    listing.get(p),
                    replay.get(p)
                )
            })
            .collect();
        v.violations.push(format!(
            "the change feed does not replay to the listing: {}",
            differ.join("; ")
        ));
    }
    Ok(())
}

/// Every chunk of the content of `acks` (acknowledged writes still kept:
/// uploads, and the restores and moves that copied some upload's bytes)
/// is on `REPLICATION` nodes. `ops` says what bytes each content hash is.
async fn replication(
    ops: &[Op],
    acks: &[&Op],
    cluster: &SoakCluster,
    v: &mut Verdict,
) -> anyhow::Result<()> {
    let contents: HashMap<&str, &super::history::Content> = ops
        .iter()
        .filter_map(|o| match &o.kind {
            Kind::Upload { content, .. } => Some((content.hash.as_str(), content)),
            _ => None,
        })
        .collect();
    let copies = cluster.copies().await?;
    let mut done = HashSet::new();
    for op in acks {
        let Some(a) = op.acked() else { continue };
        let Some(content) = contents.get(a.hash.as_str()) else {
            continue;
        };
        if !done.insert(a.hash.as_str()) {
            continue;
        }
        let data = content.bytes();
        for (off, len) in coffer_proto::chunking::chunk_spans(&data) {
            let id = coffer_proto::chunking::chunk_id(&data[off..off + len]);
            v.chunks_checked += 1;
            if copies.packed.contains(&id) {
                v.chunks_packed += 1;
            }
            let n = copies.count.get(&id).copied().unwrap_or(0);
            if n < REPLICATION {
                v.violations.push(format!(
                    "op {}: chunk {} of {} is on {n} nodes, not {REPLICATION}",
                    op.id,
                    short(&id),
                    a.path
                ));
            }
        }
    }
    Ok(())
}
