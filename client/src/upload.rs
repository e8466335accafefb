//! Delta uploads through the chunked session: plan locally, send only what
//! the cluster lacks, a few chunks in flight, each retried with back-off.
//!
//! [`UploadPlan`] cuts and hashes content with the shared scheme
//! (`coffer_proto::chunking`), so the ids match the server's. A
//! [`ChunkSource`] gives the bytes of one chunk back when it has to be sent,
//! so a file is never held whole.

use crate::batch::{Coalescer, Limits};
use crate::client::{normalize, Coffer, Transport};
use crate::error::ClientError;
use crate::observer::Observer;
use crate::retry::with_backoff;
use crate::Metadata;
use bytes::Bytes;
use coffer_proto::chunking::{chunk_id, Chunker, ContentHasher};
use coffer_proto::pb::{
    finish_upload_result, start_upload_result, AbortUploadRequest, ChunkRef, FinishUploadRequest,
    FinishUploadsRequest, PutChunkRequest, PutChunksRequest, StartUploadRequest,
    StartUploadResponse, StartUploadsRequest,
};
use coffer_proto::put::PutMode;
use coffer_proto::reason;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::future::Future;
use tonic::Status;

/// Chunks sent at the same time.
pub const PARALLEL_CHUNKS: usize = 4;

/// Chunks smaller than this (FastCDC's minimum: the last chunk of a file,
/// or a small file whole) go up in `PutChunks` batches; the server packs
/// them into shared objects.
pub const SMALL_CHUNK: u32 = coffer_proto::chunking::MIN_CHUNK as u32;

/// Files (and small chunks) in one batch call; the server takes at most
/// 1,000.
const BATCH_ITEMS: usize = 1000;
/// Chunk references in one `StartUploads`, so its message stays well
/// under the 5 MiB limit (a larger plan goes alone).
const BATCH_PLANNED: usize = 20_000;
/// Batch calls of one kind on their way at once.
const BATCHES_IN_FLIGHT: usize = 2;

/// The upload calls of one login, coalesced across its uploads in flight
/// (see [`crate::batch`]): a tree of small files goes up in a few
/// `StartUploads`, `PutChunks` and `FinishUploads` calls.
#[derive(Debug)]
pub(crate) struct Batches {
    start: Coalescer<StartUploadRequest, StartUploadResponse>,
    put: Coalescer<PutChunkRequest, u32>,
    finish: Coalescer<FinishUploadRequest, Metadata>,
}

impl Default for Batches {
    fn default() -> Self {
        let limits = |weight| Limits {
            items: BATCH_ITEMS,
            weight,
            in_flight: BATCHES_IN_FLIGHT,
        };
        Batches {
            start: Coalescer::new(limits(BATCH_PLANNED)),
            put: Coalescer::new(limits(coffer_proto::chunking::MAX_CHUNK)),
            finish: Coalescer::new(limits(BATCH_ITEMS)),
        }
    }
}

/// One chunk of a planned upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChunk {
    pub id: String,
    pub offset: u64,
    pub size: u32,
}

/// What an upload will send: the content's chunks and hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadPlan {
    pub size: u64,
    /// The content hash (over the chunk ids), lowercase hex.
    pub content_hash: String,
    pub chunks: Vec<PlannedChunk>,
    /// The content's modification time (RFC 3339), kept with the version.
    pub modified: Option<String>,
}

/// Builds an [`UploadPlan`] from content pushed in pieces of any size.
#[derive(Debug, Default)]
pub struct Planner {
    chunker: Chunker,
    hasher: ContentHasher,
    offset: u64,
    chunks: Vec<PlannedChunk>,
}

impl Planner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next bytes of the content.
    pub fn push(&mut self, data: &[u8]) {
        for c in self.chunker.push(data) {
            self.add(&c);
        }
    }

    fn add(&mut self, chunk: &[u8]) {
        let id = chunk_id(chunk);
        self.hasher.push_id(&id).expect("a chunk id is hex");
        self.chunks.push(PlannedChunk {
            id,
            offset: self.offset,
            size: chunk.len() as u32,
        });
        self.offset += chunk.len() as u64;
    }

    /// Ends the content.
    pub fn finish(mut self) -> UploadPlan {
        let rest = std::mem::take(&mut self.chunker).finish();
        for c in rest {
            self.add(&c);
        }
        UploadPlan {
            size: self.offset,
            content_hash: self.hasher.finish(),
            chunks: self.chunks,
            modified: None,
        }
    }
}

impl UploadPlan {
    /// The plan of content held in memory.
    pub fn of(data: &[u8]) -> Self {
        let mut p = Planner::new();
        p.push(data);
        p.finish()
    }
}

/// Gives back the bytes of a planned chunk.
pub trait ChunkSource {
    /// `len` bytes at `offset` of the content.
    fn read(&self, offset: u64, len: u32) -> impl Future<Output = Result<Bytes, ClientError>>;
}

impl ChunkSource for Bytes {
    async fn read(&self, offset: u64, len: u32) -> Result<Bytes, ClientError> {
        let start = offset as usize;
        self.get(start..start + len as usize)
            .map(|_| self.slice(start..start + len as usize))
            .ok_or_else(|| ClientError::Protocol(format!("chunk at {offset} is past the end")))
    }
}

/// What an upload did.
#[derive(Debug, Clone)]
pub struct UploadReport {
    /// The committed version.
    pub metadata: Metadata,
    pub upload_id: String,
    /// An earlier session was continued.
    pub resumed: bool,
    pub bytes_total: u64,
    pub chunks_total: u64,
    /// What this call sent (chunks the cluster already had are not sent).
    pub bytes_sent: u64,
    pub chunks_sent: u64,
}

impl<T: Transport> Coffer<T> {
    /// Uploads `plan` as a new version of `name`, reading chunk bytes from
    /// `source`, committed only if `mode` holds (else
    /// [`ClientError::is_stale`] and nothing is committed). With `resume`,
    /// continues that session if the server still has it, else starts a
    /// new one.
    pub async fn upload<S: ChunkSource>(
        &self,
        name: &str,
        plan: &UploadPlan,
        source: &S,
        resume: Option<&str>,
        mode: PutMode,
        observer: &dyn Observer,
    ) -> Result<UploadReport, ClientError> {
        let file_name = normalize(name)?;
        let mut session = None;
        if let Some(id) = resume.filter(|id| !id.is_empty()) {
            let req = StartUploadRequest {
                upload_id: id.to_string(),
                ..Default::default()
            };
            match self.start(req).await {
                Ok(r) if r.content_hash == plan.content_hash => session = Some((r, true)),
                // The file changed since that session began (same size and
                // modification time are no proof): abandon it, so it stops
                // counting against the open sessions, and start afresh.
                Ok(_) => {
                    let _ = self.abort_upload(id).await;
                }
                // The session expired or was committed: start afresh.
                Err(ClientError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let (start, resumed) = match session {
            Some(s) => s,
            None => {
                let req = StartUploadRequest {
                    file_name,
                    size: plan.size,
                    chunks: plan
                        .chunks
                        .iter()
                        .map(|c| ChunkRef {
                            id: c.id.clone(),
                            size: c.size,
                        })
                        .collect(),
                    content_hash: plan.content_hash.clone(),
                    upload_id: String::new(),
                    modified_time: plan.modified.clone().unwrap_or_default(),
                };
                let planned = req.chunks.len();
                let r = self
                    .batches
                    .start
                    .call(req, planned, |batch| self.start_many(batch))
                    .await?;
                (r, false)
            }
        };
        let upload_id = start.upload_id;
        observer.session(&upload_id, resumed);

        let missing: HashSet<String> = start.missing_chunks.into_iter().collect();
        let mut seen = HashSet::new();
        let to_send: Vec<&PlannedChunk> = plan
            .chunks
            .iter()
            .filter(|c| missing.contains(&c.id) && seen.insert(c.id.as_str()))
            .collect();
        if to_send.len() != missing.len() {
            return Err(ClientError::Protocol(format!(
                "the server asks for {} chunks this file does not have",
                missing.len() - to_send.len()
            )));
        }
        let bytes_sent: u64 = to_send.iter().map(|c| c.size as u64).sum();
        observer.start(bytes_sent);
        futures::stream::iter(to_send.iter().map(|c| self.send(&upload_id, c, source)))
            .buffer_unordered(PARALLEL_CHUNKS)
            .try_for_each(|size| {
                observer.advance(size as u64);
                async { Ok(()) }
            })
            .await?;

        let req = FinishUploadRequest {
            upload_id: upload_id.clone(),
            base_version: mode.base(),
        };
        let metadata = self
            .batches
            .finish
            .call(req, 1, |batch| self.finish_many(batch))
            .await?;
        if metadata.content_hash != plan.content_hash {
            return Err(ClientError::Protocol(format!(
                "the server committed content {}, not this file's {}",
                metadata.content_hash, plan.content_hash
            )));
        }
        Ok(UploadReport {
            metadata,
            upload_id,
            resumed,
            bytes_total: plan.size,
            chunks_total: plan.chunks.len() as u64,
            bytes_sent,
            chunks_sent: to_send.len() as u64,
        })
    }

    /// Abandons the unfinished session `id` (see `AbortUpload`).
    pub async fn abort_upload(&self, id: &str) -> Result<(), ClientError> {
        let req = self.request(AbortUploadRequest {
            upload_id: id.to_string(),
        });
        self.files.clone().abort_upload(req).await?;
        Ok(())
    }

    async fn start(
        &self,
        req: StartUploadRequest,
    ) -> Result<coffer_proto::pb::StartUploadResponse, ClientError> {
        let r = with_backoff(|| {
            let (mut files, req) = (self.files.clone(), self.request(req.clone()));
            async move { files.start_upload(req).await }
        })
        .await?;
        Ok(r.into_inner())
    }

    /// Reads one chunk and puts it, retrying transient failures.
    async fn send<S: ChunkSource>(
        &self,
        upload_id: &str,
        chunk: &PlannedChunk,
        source: &S,
    ) -> Result<u32, ClientError> {
        let data = source.read(chunk.offset, chunk.size).await?;
        if data.len() != chunk.size as usize || chunk_id(&data) != chunk.id {
            return Err(ClientError::io(
                "the content changed while uploading",
                std::io::Error::other("chunk bytes differ from the plan"),
            ));
        }
        let req = PutChunkRequest {
            upload_id: upload_id.to_string(),
            chunk_id: chunk.id.clone(),
            data,
        };
        if chunk.size < SMALL_CHUNK {
            let size = chunk.size as usize;
            self.batches
                .put
                .call(req, size, |batch| self.put_many(batch))
                .await?;
        } else {
            with_backoff(|| {
                let (mut files, req) = (self.files.clone(), self.request(req.clone()));
                async move { files.put_chunk(req).await }
            })
            .await?;
        }
        Ok(chunk.size)
    }

    /// Opens a batch of sessions (see [`Batches`]).
    async fn start_many(
        &self,
        files: Vec<StartUploadRequest>,
    ) -> Result<Vec<Result<StartUploadResponse, Status>>, Status> {
        use start_upload_result::Result as Answer;
        let req = StartUploadsRequest { files };
        let r = with_backoff(|| {
            let (mut files, req) = (self.files.clone(), self.request(req.clone()));
            async move { files.start_uploads(req).await }
        })
        .await?;
        Ok(r.into_inner()
            .files
            .into_iter()
            .map(|f| match f.result {
                Some(Answer::Session(s)) => Ok(s),
                Some(Answer::Refused(r)) => Err(reason::refused(&r)),
                None => Err(Status::internal("the server answered a file with nothing")),
            })
            .collect())
    }

    /// Puts a batch of small chunks (see [`Batches`]).
    async fn put_many(
        &self,
        chunks: Vec<PutChunkRequest>,
    ) -> Result<Vec<Result<u32, Status>>, Status> {
        let req = PutChunksRequest { chunks };
        let r = with_backoff(|| {
            let (mut files, req) = (self.files.clone(), self.request(req.clone()));
            async move { files.put_chunks(req).await }
        })
        .await?;
        Ok(r.into_inner().remaining.into_iter().map(Ok).collect())
    }

    /// Commits a batch of sessions (see [`Batches`]).
    async fn finish_many(
        &self,
        files: Vec<FinishUploadRequest>,
    ) -> Result<Vec<Result<Metadata, Status>>, Status> {
        use finish_upload_result::Result as Answer;
        let req = FinishUploadsRequest { files };
        let r = with_backoff(|| {
            let (mut files, req) = (self.files.clone(), self.request(req.clone()));
            async move { files.finish_uploads(req).await }
        })
        .await?;
        Ok(r.into_inner()
            .files
            .into_iter()
            .map(|f| match f.result {
                Some(Answer::Metadata(m)) => Ok(m),
                Some(Answer::Refused(r)) => Err(reason::refused(&r)),
                None => Err(Status::internal("the server answered a file with nothing")),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` bytes of BLAKE3's output stream for `seed`: incompressible,
    /// and different for every seed.
    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut data = vec![0; len];
        let mut hasher = blake3::Hasher::new();
        hasher.update(&seed.to_le_bytes());
        hasher.finalize_xof().fill(&mut data);
        data
    }

    #[test]
    fn plan_matches_the_shared_chunking_in_any_piece_size() {
        let data = pseudo_random(9 * 1024 * 1024 + 17, 5);
        let whole: Vec<(u64, u32, String)> = coffer_proto::chunking::chunk_spans(&data)
            .into_iter()
            .map(|(o, l)| (o as u64, l as u32, chunk_id(&data[o..o + l])))
            .collect();
        for piece in [1000, 64 * 1024, 5 * 1024 * 1024] {
            let mut p = Planner::new();
            data.chunks(piece).for_each(|b| p.push(b));
            let plan = p.finish();
            let got: Vec<(u64, u32, String)> = plan
                .chunks
                .iter()
                .map(|c| (c.offset, c.size, c.id.clone()))
                .collect();
            assert_eq!(got, whole, "piece size {piece}");
            assert_eq!(plan.size, data.len() as u64);
            assert_eq!(
                plan.content_hash,
                coffer_proto::chunking::content_hash_of(&data)
            );
        }
    }

    #[test]
    fn empty_content_has_no_chunks() {
        let plan = UploadPlan::of(&[]);
        assert!(plan.chunks.is_empty());
        assert_eq!(plan.size, 0);
        assert_eq!(
            plan.content_hash,
            coffer_proto::chunking::content_hash_of(&[])
        );
    }
}
