//! [`StreamUpload`]: the server cuts an incoming byte stream into chunks
//! (the seed's `UploadFile`), storing a few at a time within the upload
//! budget, and commits one version at the end.

use super::*;

/// A streamed upload keeps its place among the user's open uploads this
/// many idle time-outs after its last chunk. Past that its server is taken
/// for dead (a crash leaves no one to close it) and the place is free.
const STREAM_WINDOW: u32 = 10;

impl Files {
    /// Starts a streamed upload; the name is given at the end.
    pub fn begin_stream(&self, caller: &Caller) -> StreamUpload {
        StreamUpload {
            files: self.clone(),
            caller: caller.clone(),
            stream: None,
            chunker: Chunker::new(),
            room: None,
            checksums: None,
            memory: self.uploads.room(),
            held: 0,
            size: 0,
            chunks: Vec::new(),
            inflight: VecDeque::new(),
        }
    }
}

/// A streamed upload: bytes in, chunks stored as they are cut (a few at a
/// time), one version committed by [`StreamUpload::finish`]. Its chunks
/// are referenced from the metadata as they are stored, so gc spares them
/// however long the stream takes. Dropping it commits nothing.
pub struct StreamUpload {
    files: Files,
    caller: Caller,
    /// The metadata's handle on this upload's chunk references, opened
    /// with the first chunk.
    stream: Option<String>,
    chunker: Chunker,
    /// What the caller's quota leaves (`Some(None)`: no quota), read at
    /// the first bytes: an upload that will not fit stops early, before it
    /// stores much. Each chunk's reference is checked against the quota as
    /// it is stored, and the commit checks again.
    room: Option<Option<(u64, u64)>>,
    /// Checksums of the content computed as it came (see
    /// [`crate::meta::VersionRow::checksums`]), recorded with the version.
    checksums: Option<String>,
    /// The upload's room in the server-wide upload budget, covering
    /// `held`.
    memory: UploadRoom,
    /// Bytes received and not yet stored (counted in the server's gauge).
    held: u64,
    size: u64,
    chunks: Vec<ChunkRef>,
    inflight: VecDeque<JoinHandle<Result<ChunkRef, FileError>>>,
}

impl StreamUpload {
    /// Adds the next bytes of the file.
    pub async fn push(&mut self, data: &[u8]) -> Result<(), FileError> {
        if self.room.is_none() {
            // The upload counts against the caller's open uploads from its
            // first bytes.
            self.stream().await?;
            let u = self.files.meta.usage(self.caller.owner).await?;
            self.room = Some(u.quota.map(|q| (u.used.saturating_add(u.reserved), q)));
        }
        self.size += data.len() as u64;
        self.hold(data.len() as u64).await?;
        if let Some(Some((used, quota))) = self.room {
            if used.saturating_add(self.size) > quota {
                return Err(FileError::Limit(crate::meta::Limit::Quota {
                    used,
                    more: self.size,
                    quota,
                }));
            }
        }
        for chunk in self.chunker.push(data) {
            self.submit(chunk).await?;
        }
        Ok(())
    }

    async fn submit(&mut self, chunk: Bytes) -> Result<(), FileError> {
        while self.inflight.len() >= self.files.cfg.upload_parallelism.max(1) {
            self.collect_one().await?;
        }
        let stream = self.stream().await?;
        let index = (self.chunks.len() + self.inflight.len()) as u32;
        let files = self.files.clone();
        self.inflight.push_back(tokio::spawn(async move {
            files
                .store_chunk(chunk, Some(StreamRef { stream, index }))
                .await
        }));
        Ok(())
    }

    /// The metadata's handle on this upload, opened on first use.
    async fn stream(&mut self) -> Result<String, FileError> {
        if let Some(s) = &self.stream {
            return Ok(s.clone());
        }
        let cfg = &self.files.cfg;
        let s = (self.files.meta)
            .open_stream(
                self.caller.owner,
                cfg.idle_timeout * STREAM_WINDOW,
                cfg.max_open_sessions,
            )
            .await?;
        self.stream = Some(s.clone());
        Ok(s)
    }

    async fn collect_one(&mut self) -> Result<(), FileError> {
        if let Some(handle) = self.inflight.pop_front() {
            let chunk = handle
                .await
                .map_err(|e| FileError::Internal(e.to_string()))??;
            self.release(chunk.size as u64);
            self.chunks.push(chunk);
        }
        Ok(())
    }

    /// Counts `n` more bytes held, once the upload budget has room for
    /// them.
    async fn hold(&mut self, n: u64) -> Result<(), FileError> {
        let files = self.files.clone();
        files.cover(&mut self.memory, self.held + n).await?;
        self.held += n;
        self.files
            .upload_held
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn release(&mut self, n: u64) {
        let n = n.min(self.held);
        self.held -= n;
        self.memory.shrink(self.held);
        self.files
            .upload_held
            .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records `checksums` of the content with the version (given before
    /// [`StreamUpload::finish`]).
    pub fn set_checksums(&mut self, checksums: String) {
        self.checksums = Some(checksums);
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Stores the rest and commits the file as a new version of `path`, if
    /// `mode` holds, carrying the client's
    /// modification time (checked with [`modified_time`]).
    pub async fn finish(
        self,
        path: &str,
        mode: PutMode,
        modified: Option<String>,
    ) -> Result<FileVersion, FileError> {
        Ok(self.finish_as(path, mode, modified, false).await?.0)
    }

    /// [`StreamUpload::finish`], except that when `mode` overwrites and
    /// the file's latest version has this very content (and modification
    /// time, if one is given), nothing is committed: that version comes
    /// back, with `false` for "no new version".
    pub async fn finish_if_changed(
        self,
        path: &str,
        mode: PutMode,
        modified: Option<String>,
    ) -> Result<(FileVersion, bool), FileError> {
        self.finish_as(path, mode, modified, true).await
    }

    async fn finish_as(
        mut self,
        path: &str,
        mode: PutMode,
        modified: Option<String>,
        unless_same: bool,
    ) -> Result<(FileVersion, bool), FileError> {
        let path = paths::normalize(path)?;
        let chunker = std::mem::take(&mut self.chunker);
        for chunk in chunker.finish() {
            self.submit(chunk).await?;
        }
        while !self.inflight.is_empty() {
            self.collect_one().await?;
        }
        let hash = content_hash(self.chunks.iter().map(|c| c.id.as_str()))
            .map_err(|e| FileError::Internal(e.to_string()))?;
        if unless_same && mode == PutMode::Overwrite {
            let latest = self
                .files
                .meta
                .version(self.caller.owner, &path, None)
                .await?;
            if let Some(row) = latest.filter(|r| {
                !r.deleted
                    && r.hash == hash
                    && r.size == self.size
                    && (modified.is_none() || modified == r.modified)
            }) {
                // Dropping the upload releases its references.
                return Ok((self.files.with_health(row).await?, false));
            }
        }
        let v = NewVersion {
            owner: self.caller.owner,
            path,
            size: self.size,
            hash,
            chunks: std::mem::take(&mut self.chunks),
            uploader: self.caller.name.clone(),
            // The commit replaces the stream's references.
            stream: self.stream.clone(),
            session: None,
            mode,
            modified,
            checksums: self.checksums.take(),
        };
        let row = match self.files.meta.commit_version(&v).await {
            Ok(row) => row,
            Err(e) => {
                // A refused commit (stale, a name taken, the quota) frees
                // the upload's place before the refusal is answered.
                if let Some(stream) = &self.stream {
                    if self.files.meta.drop_session(stream).await.is_ok() {
                        self.stream = None;
                    }
                }
                return Err(e.into());
            }
        };
        self.stream = None;
        self.files.feed.changed(self.caller.owner);
        Ok((self.files.with_health(row).await?, true))
    }
}

impl Drop for StreamUpload {
    fn drop(&mut self) {
        // An abandoned upload stops storing; what it stored is left
        // unreferenced, to garbage collection.
        for h in &self.inflight {
            h.abort();
        }
        let held = self.held;
        self.release(held);
        if let (Some(stream), Ok(rt)) = (self.stream.take(), tokio::runtime::Handle::try_current())
        {
            let meta = self.files.meta.clone();
            rt.spawn(async move {
                if let Err(e) = meta.drop_session(&stream).await {
                    // It expires on its own.
                    tracing::debug!(error = %e, "cannot drop an abandoned stream's references");
                }
            });
        }
    }
}
