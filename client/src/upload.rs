//! Delta uploads through the chunked session: plan locally, send only what
//! the cluster lacks, a few chunks in flight, each retried with back-off.
//!
//! [`UploadPlan`] cuts and hashes content with the shared scheme
//! (`coffer_proto::chunking`), so the ids match the server's. A
//! [`ChunkSource`] gives the bytes of one chunk back when it has to be sent,
//! so a file is never held whole.

use crate::client::{normalize, Coffer, Transport};
use crate::error::ClientError;
use crate::observer::Observer;
use crate::retry::with_backoff;
use crate::Metadata;
use bytes::Bytes;
use coffer_proto::chunking::{chunk_id, Chunker, ContentHasher};
use coffer_proto::pb::{
    AbortUploadRequest, ChunkRef, FinishUploadRequest, PutChunkRequest, StartUploadRequest,
};
use coffer_proto::put::PutMode;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::future::Future;

/// Chunks sent at the same time.
pub const PARALLEL_CHUNKS: usize = 4;

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
                (self.start(req).await?, false)
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

        let req = self.request(FinishUploadRequest {
            upload_id: upload_id.clone(),
            base_version: mode.base(),
        });
        let metadata = self.files.clone().finish_upload(req).await?.into_inner();
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
        with_backoff(|| {
            let (mut files, req) = (self.files.clone(), self.request(req.clone()));
            async move { files.put_chunk(req).await }
        })
        .await?;
        Ok(chunk.size)
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
