//! Reading: a version's metadata, and its chunks for a download, read a
//! few ahead within the stream's and the server's download budgets.

use super::*;
use crate::meta::PackedAt;
use std::collections::HashMap;

/// Most chunks of one download in flight at once, however small.
const MAX_READ_AHEAD_CHUNKS: usize = 64;

/// Download budgets are never closed.
const OPEN: &str = "the download budget is open";

/// A chunk read for a download, verified. It counts against the download
/// budget (its stream's read-ahead and the server's) until dropped.
pub struct HeldChunk {
    pub data: Bytes,
    _room: (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    ),
}

/// A download's places under its caller's keys, held while it is open.
pub type Admitted = crate::per_key::Held<String>;

/// The keys a download is counted under: who asks (`account NAME`,
/// `share link ID`) and from where.
pub fn download_keys(who: String, addr: Option<std::net::IpAddr>) -> Vec<String> {
    let mut keys = vec![who];
    if let Some(a) = addr {
        keys.push(format!("address {a}"));
    }
    keys
}

impl Files {
    /// Metadata of version `version` (latest live one if `None`).
    pub async fn metadata(
        &self,
        caller: &Caller,
        path: &str,
        version: Option<u64>,
    ) -> Result<FileVersion, FileError> {
        let row = self.find(caller, path, version).await?;
        self.with_health(row).await
    }

    /// Metadata of the latest live version of `path` without its
    /// replication health (`health` left zero), which costs a query of its
    /// own: for WebDAV, which asks several times a request and shows none.
    pub async fn metadata_without_health(
        &self,
        caller: &Caller,
        path: &str,
    ) -> Result<FileVersion, FileError> {
        let row = self.find(caller, path, None).await?;
        Ok(self.with_health_counts(row, HealthCounts::default()))
    }

    /// Opens a version for reading: its metadata and ordered chunk list.
    pub async fn open(
        &self,
        caller: &Caller,
        path: &str,
        version: Option<u64>,
    ) -> Result<(FileVersion, Vec<ChunkRef>), FileError> {
        // Retention may remove the version between the two reads (on
        // PostgreSQL each sees the latest commit): its chunk list then comes
        // back empty, and a second look finds the version gone.
        for _ in 0..3 {
            let row = self.find(caller, path, version).await?;
            let chunks = self.meta.version_chunks(row.file_id, row.number).await?;
            if chunks.iter().map(|c| u64::from(c.size)).sum::<u64>() == row.size {
                return Ok((self.with_health(row).await?, chunks));
            }
        }
        Err(FileError::Internal(format!(
            "the chunks of {path:?} do not add up to its size"
        )))
    }

    /// The contents of `chunks`, in order, verified, up to
    /// [`FilesConfig::read_ahead_bytes`] fetched ahead. Each chunk counts
    /// against the server-wide budget until the [`HeldChunk`] is dropped.
    pub fn read_chunks(
        &self,
        chunks: Vec<ChunkRef>,
    ) -> impl Stream<Item = Result<HeldChunk, FileError>> + Send + 'static {
        let cluster = self.cluster.clone();
        let meta = self.meta.clone();
        // Where the small chunks are, if packed: asked once, by the
        // first read that needs it.
        let small: Arc<Vec<String>> = Arc::new(
            chunks
                .iter()
                .filter(|c| (c.size as usize) < crate::packs::PACK_BELOW)
                .map(|c| c.id.clone())
                .collect(),
        );
        let located = Arc::new(tokio::sync::OnceCell::new());
        let global = self.budget.read_ahead().clone();
        // Budget in KiB: semaphore permits are u32, chunks up to MAX_CHUNK.
        let budget_kib = (self.cfg.read_ahead_bytes / 1024).max(MAX_CHUNK / 1024);
        // Read-ahead starts at one chunk and doubles with every chunk the
        // reader takes, up to the budget: a reader that stalls at once
        // holds one chunk, not the whole read-ahead.
        let first = MAX_CHUNK / 1024;
        let budget = Arc::new(tokio::sync::Semaphore::new(first));
        let granted = Arc::new(std::sync::atomic::AtomicUsize::new(first));
        let grow = budget.clone();
        futures::stream::iter(chunks)
            // In order, one at a time: a chunk waits for room in the budget,
            // so the earliest chunk is never starved by later ones.
            .then(move |c| {
                let budget = budget.clone();
                let global = global.clone();
                let cluster = cluster.clone();
                let (meta, small, located) = (meta.clone(), small.clone(), located.clone());
                // Yields the read's handle on purpose: `buffered` below
                // awaits it, so reads overlap.
                #[allow(clippy::async_yields_async)]
                async move {
                    let kib = (c.size as usize).div_ceil(1024).clamp(1, first) as u32;
                    // This stream's read-ahead first, then the server's
                    // (a fair queue: the earliest waiter is served first).
                    let room = (
                        budget.acquire_many_owned(kib).await.expect(OPEN),
                        global.acquire_many_owned(kib).await.expect(OPEN),
                    );
                    // A task per chunk: fetches and BLAKE3 checks run on
                    // every core, not on the response's task. The task owns
                    // the room, so a read that outlives a dropped download
                    // still counts until it ends.
                    tokio::spawn(async move {
                        let data = if small.contains(&c.id) {
                            read_small(&cluster, &meta, &small, &located, &c).await
                        } else {
                            cluster.read_chunk(&c.id).await.map_err(FileError::from)
                        };
                        (data, room)
                    })
                }
            })
            .map(|read| async move {
                match read.await {
                    Ok((r, room)) => r.map(|data| HeldChunk { data, _room: room }),
                    Err(e) => Err(FileError::Internal(e.to_string())),
                }
            })
            .buffered(MAX_READ_AHEAD_CHUNKS)
            // The reader's progress earns more read-ahead; the room itself
            // goes with the chunk, given back when the reader drops it.
            .map(move |chunk| {
                let had = granted.load(std::sync::atomic::Ordering::Relaxed);
                if had < budget_kib {
                    let more = had.min(budget_kib - had);
                    granted.store(had + more, std::sync::atomic::Ordering::Relaxed);
                    grow.add_permits(more);
                }
                chunk
            })
    }
}

/// Pack ranges at most this far apart are read together: reading the gap
/// costs less than another request (a small GET is a round trip).
const COALESCE_GAP: u64 = 1024 * 1024;
/// The longest coalesced read.
const COALESCE_MAX: u64 = 8 * 1024 * 1024;
/// Coalesced reads of one prefetch in flight at once.
const COALESCED_AT_ONCE: usize = 4;

impl Files {
    /// The packed ones of `chunks` (small chunks of many files, say),
    /// read with as few ranged GETs as their places allow: neighbours in a
    /// pack share one read, each chunk checked against its id. What is not
    /// packed, or whose read failed, is left out; the caller reads it the
    /// usual way, which reports and repairs what is wrong.
    pub async fn prefetch_packed(&self, chunks: &[ChunkRef]) -> HashMap<String, Bytes> {
        let ids: Vec<String> = chunks
            .iter()
            .filter(|c| (c.size as usize) < crate::packs::PACK_BELOW)
            .map(|c| c.id.clone())
            .collect();
        if ids.is_empty() {
            return HashMap::new();
        }
        let Ok(at) = self.meta.pack_locations(&ids).await else {
            return HashMap::new();
        };
        let mut by_pack: HashMap<&str, Vec<(String, std::ops::Range<u64>)>> = HashMap::new();
        let sizes: HashMap<&str, u32> = chunks.iter().map(|c| (c.id.as_str(), c.size)).collect();
        for (id, p) in &at {
            let size = u64::from(sizes[id.as_str()]);
            let list = by_pack.entry(p.pack.as_str()).or_default();
            if !list.iter().any(|(seen, _)| seen == id) {
                list.push((id.clone(), p.offset..p.offset + size));
            }
        }
        let mut reads = Vec::new();
        for (pack, parts) in by_pack {
            let ranges: Vec<_> = parts.iter().map(|(_, r)| r.clone()).collect();
            for read in crate::packs::ranges::coalesce(&ranges, COALESCE_GAP, COALESCE_MAX) {
                let of: Vec<_> = read.parts.iter().map(|&i| parts[i].clone()).collect();
                reads.push((pack.to_string(), read.range, of));
            }
        }
        let cluster = &self.cluster;
        futures::stream::iter(reads)
            .map(|(pack, span, parts)| async move {
                let got = cluster.read_pack_span(&pack, span, &parts).await;
                got.map(|bytes| {
                    parts
                        .into_iter()
                        .map(|(id, _)| id)
                        .zip(bytes)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
            })
            .buffer_unordered(COALESCED_AT_ONCE)
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }
}

/// Where a download's packed chunks are, by chunk id.
type Located = tokio::sync::OnceCell<Result<HashMap<String, PackedAt>, String>>;

/// A small chunk: a ranged read of its pack, or the chunk's own object.
async fn read_small(
    cluster: &Cluster,
    meta: &Meta,
    small: &[String],
    located: &Located,
    c: &ChunkRef,
) -> Result<Bytes, FileError> {
    let at = located
        .get_or_init(|| async { meta.pack_locations(small).await.map_err(|e| e.to_string()) })
        .await
        .as_ref()
        .map_err(|e| FileError::Unavailable(e.clone()))?;
    Ok(match at.get(&c.id) {
        Some(p) => {
            let range = p.offset..p.offset + u64::from(c.size);
            cluster.read_packed(&c.id, &p.pack, range).await?
        }
        None => cluster.read_chunk(&c.id).await?,
    })
}
