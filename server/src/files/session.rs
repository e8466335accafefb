//! Upload sessions: the client cuts and hashes, the server checks the
//! plan, takes only the chunks the cluster lacks, and commits once; one
//! at a time, or many files in one call and one transaction (batches).

use super::*;

/// What a client declares when it opens an upload session.
#[derive(Debug, Clone)]
pub struct UploadPlan {
    pub path: String,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
    pub hash: String,
    /// The content's modification time as the client gave it, if it
    /// did; checked (RFC 3339) with the rest of the plan, see
    /// [`modified_time`].
    pub modified: Option<String>,
}

/// A client's modification time, checked and written the one way the
/// server stores it: RFC 3339 in UTC, with as many fractional digits as
/// the client gave (up to nanoseconds). Empty means none.
pub fn modified_time(t: &str) -> Result<Option<String>, FileError> {
    use time::format_description::well_known::Rfc3339;
    if t.is_empty() {
        return Ok(None);
    }
    let parsed = time::OffsetDateTime::parse(t, &Rfc3339).map_err(|_| {
        FileError::InvalidArgument(format!(
            "modification time {t:?} is not RFC 3339 (e.g. 2026-11-27T10:15:00.123456789Z)"
        ))
    })?;
    parsed
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map(Some)
        .map_err(|e| FileError::InvalidArgument(format!("modification time {t:?}: {e}")))
}

/// An open upload session, as returned to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    pub id: String,
    /// Chunk ids the cluster still lacks, each once, in file order.
    pub missing: Vec<String>,
    pub expires_at: String,
    /// The content the session uploads (BLAKE3, hex).
    pub hash: String,
}

impl SessionStatus {
    fn of((session, missing): crate::meta::Opened) -> Self {
        SessionStatus {
            id: session.id,
            missing,
            expires_at: session.expires_at,
            hash: session.hash,
        }
    }
}

impl Files {
    /// Opens an upload session for `plan` and says which chunks to send.
    pub async fn start_upload(
        &self,
        caller: &Caller,
        plan: UploadPlan,
    ) -> Result<SessionStatus, FileError> {
        let opened = self
            .meta
            .open_session(&self.new_session(caller, plan)?)
            .await?;
        Ok(SessionStatus::of(opened))
    }

    /// The session `plan` asks for, once its name and plan are checked.
    fn new_session(&self, caller: &Caller, plan: UploadPlan) -> Result<NewSession, FileError> {
        let path = paths::normalize(&plan.path)?;
        validate_plan(&plan)?;
        let modified = match &plan.modified {
            Some(t) => modified_time(t)?,
            None => None,
        };
        Ok(NewSession {
            owner: caller.owner,
            path,
            size: plan.size,
            hash: plan.hash,
            chunks: plan.chunks,
            ttl: self.cfg.session_ttl,
            max_open: self.cfg.max_open_sessions,
            modified,
        })
    }

    async fn session(&self, caller: &Caller, id: &str) -> Result<SessionRow, FileError> {
        self.meta
            .session(id, caller.owner)
            .await?
            .ok_or_else(|| FileError::SessionNotFound(id.to_string()))
    }

    /// What an open session still lacks (resume after a dropped connection).
    pub async fn resume_upload(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<SessionStatus, FileError> {
        let s = self.session(caller, id).await?;
        let missing = self.meta.unknown_chunks(caller.owner, &s.chunks).await?;
        Ok(SessionStatus {
            id: s.id,
            missing,
            expires_at: s.expires_at,
            hash: s.hash,
        })
    }

    /// Stores one chunk of a session after checking it is one of the
    /// session's and that its bytes hash to its id. Returns how many of the
    /// session's chunks are still missing.
    pub async fn put_chunk(
        &self,
        caller: &Caller,
        id: &str,
        chunk: &str,
        data: Bytes,
    ) -> Result<usize, FileError> {
        let slot = self.meta.chunk_slot(id, caller.owner, chunk).await?;
        check_chunk(id, chunk, &data, slot)?;
        // The session references the chunk already. Stored before or not,
        // the caller has shown they have it.
        let mut memory = self.uploads.room();
        self.cover(&mut memory, data.len() as u64).await?;
        self.store_chunk(data, None).await?;
        drop(memory);
        let left = self.meta.chunk_sent(id, caller.owner, chunk).await?;
        Ok(left as usize)
    }

    /// Abandons the caller's session `id`: it no longer counts against
    /// their open sessions, and chunks only it held become garbage.
    pub async fn abort_upload(&self, caller: &Caller, id: &str) -> Result<(), FileError> {
        let s = self.session(caller, id).await?;
        self.meta.drop_session(&s.id).await?;
        Ok(())
    }

    /// Commits a session whose chunks are all stored as a new version, if
    /// `mode` holds.
    pub async fn finish_upload(
        &self,
        caller: &Caller,
        id: &str,
        mode: PutMode,
    ) -> Result<FileVersion, FileError> {
        let s = self.session(caller, id).await?;
        let row = self.meta.finish_session(&s, &caller.name, mode).await?;
        self.feed.changed(caller.owner);
        self.with_health(row).await
    }
}

/// The most files one batch call (StartUploads, FinishUploads) takes, and
/// the most chunks one PutChunks does.
pub const MAX_BATCH: usize = 1000;

/// One file's answer in a batch: what it made, or its own refusal.
pub type Answer<T> = Result<T, FileError>;

impl Files {
    /// Opens a session for each plan, in one transaction, counting as one
    /// open upload. A plan refused (a bad name or plan, a name that is a
    /// folder, the quota) gets its own error; the others open.
    pub async fn start_uploads(
        &self,
        caller: &Caller,
        plans: Vec<UploadPlan>,
    ) -> Result<Vec<Answer<SessionStatus>>, FileError> {
        check_batch("StartUploads", "files", plans.len())?;
        let mut answers: Vec<Option<Answer<SessionStatus>>> = Vec::with_capacity(plans.len());
        let mut batch = Vec::new();
        for plan in plans {
            match self.new_session(caller, plan) {
                Ok(s) => {
                    answers.push(None);
                    batch.push(s);
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        let opened = if batch.is_empty() {
            Vec::new()
        } else {
            self.meta.open_sessions(&batch).await?
        };
        let mut opened = opened.into_iter();
        Ok(answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    let opened = opened.next().expect("one answer per session")?;
                    Ok(SessionStatus::of(opened))
                })
            })
            .collect())
    }

    /// Stores chunks of the caller's sessions (any number of them), at
    /// most [`MAX_CHUNK`] bytes in all, each checked as
    /// [`Files::put_chunk`] checks one; any bad chunk refuses the call.
    /// They are stored at once, so small ones share a pack. Returns, per
    /// chunk, how many chunks its session still lacks.
    pub async fn put_chunks(
        &self,
        caller: &Caller,
        chunks: Vec<(String, String, Bytes)>,
    ) -> Result<Vec<usize>, FileError> {
        check_batch("PutChunks", "chunks", chunks.len())?;
        let total: usize = chunks.iter().map(|c| c.2.len()).sum();
        if total > MAX_CHUNK {
            return Err(FileError::InvalidArgument(format!(
                "PutChunks carries {total} bytes; at most {MAX_CHUNK} in one call"
            )));
        }
        let keys: Vec<(String, String)> = chunks
            .iter()
            .map(|(id, chunk, _)| (id.clone(), chunk.clone()))
            .collect();
        let slots = self.meta.chunk_slots(caller.owner, &keys).await?;
        for ((id, chunk, data), slot) in chunks.iter().zip(&slots) {
            check_chunk(id, chunk, data, *slot)?;
        }
        let mut memory = self.uploads.room();
        self.cover(&mut memory, total as u64).await?;
        futures::future::try_join_all(
            chunks
                .into_iter()
                .map(|(_, _, data)| self.store_chunk(data, None)),
        )
        .await?;
        drop(memory);
        let left = self.meta.chunks_sent(caller.owner, &keys).await?;
        Ok(left.into_iter().map(|n| n as usize).collect())
    }

    /// Commits each of the caller's sessions whose chunks are all stored
    /// as a new version if its mode holds, all in one transaction; each is
    /// a version and a change of its own, and a file refused (stale,
    /// chunks missing, no such session, a name taken, a limit) gets its
    /// own error while the others commit. Finishing a committed session
    /// again answers its version, as [`Files::finish_upload`] does.
    pub async fn finish_uploads(
        &self,
        caller: &Caller,
        batch: Vec<(String, PutMode)>,
    ) -> Result<Vec<Answer<FileVersion>>, FileError> {
        check_batch("FinishUploads", "files", batch.len())?;
        let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        let found = self.meta.sessions(&ids, caller.owner).await?;
        let mut answers = Vec::with_capacity(batch.len());
        let mut open = Vec::new();
        for ((id, mode), session) in batch.into_iter().zip(found) {
            match session {
                Some(s) => {
                    answers.push(None);
                    open.push((s, mode));
                }
                None => answers.push(Some(Err(FileError::SessionNotFound(id)))),
            }
        }
        let r = self.cluster.config().replication;
        let done = if open.is_empty() {
            Vec::new()
        } else {
            self.meta.finish_sessions(&open, &caller.name, r).await?
        };
        if done.iter().any(Result::is_ok) {
            self.feed.changed(caller.owner);
        }
        let mut done = done.into_iter();
        Ok(answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    let (row, health) = done.next().expect("one answer per session")?;
                    Ok(self.with_health_counts(row, health))
                })
            })
            .collect())
    }
}

/// Refuses an empty batch or one of more than [`MAX_BATCH`].
fn check_batch(call: &str, what: &str, n: usize) -> Result<(), FileError> {
    if n == 0 || n > MAX_BATCH {
        return Err(FileError::InvalidArgument(format!(
            "{call} takes 1 to {MAX_BATCH} {what}, not {n}"
        )));
    }
    Ok(())
}

/// Checks one chunk sent for session `id` against the session's plan.
fn check_chunk(id: &str, chunk: &str, data: &Bytes, slot: ChunkSlot) -> Result<(), FileError> {
    let declared = match slot {
        ChunkSlot::NoSession => return Err(FileError::SessionNotFound(id.to_string())),
        ChunkSlot::NotListed => {
            return Err(FileError::InvalidArgument(format!(
                "chunk {chunk:?} is not part of upload {id}"
            )))
        }
        ChunkSlot::Declared(size) => size,
    };
    if data.len() != declared as usize {
        return Err(FileError::InvalidArgument(format!(
            "chunk {chunk} has {} bytes; the upload declared {declared}",
            data.len(),
        )));
    }
    if chunk_id(data) != chunk {
        return Err(FileError::InvalidArgument(format!(
            "chunk data does not match its id {chunk} (BLAKE3 mismatch)"
        )));
    }
    Ok(())
}

fn validate_plan(plan: &UploadPlan) -> Result<(), FileError> {
    let bad = |m: String| Err(FileError::InvalidArgument(m));
    if !is_chunk_id(&plan.hash) {
        return bad(
            "contentHash must be the content hash (over the chunk ids): 64 lowercase hex digits"
                .into(),
        );
    }
    let last = plan.chunks.len().saturating_sub(1);
    let mut total = 0u64;
    let mut sizes = std::collections::HashMap::new();
    for (i, c) in plan.chunks.iter().enumerate() {
        if !is_chunk_id(&c.id) {
            return bad(format!(
                "chunk {i}: id must be 64 lowercase hex digits (BLAKE3)"
            ));
        }
        if c.size == 0 || c.size as usize > MAX_CHUNK {
            return bad(format!(
                "chunk {i}: size {} is outside 1..={MAX_CHUNK}",
                c.size
            ));
        }
        // FastCDC cuts no chunk shorter than the minimum but the last, so
        // the number of chunks (and the session's bookkeeping) is bounded
        // by the size.
        if i < last && (c.size as usize) < MIN_CHUNK {
            return bad(format!(
                "chunk {i}: size {} is below the chunking minimum of {MIN_CHUNK} bytes \
                 (only the last chunk may be shorter)",
                c.size
            ));
        }
        if let Some(earlier) = sizes.insert(c.id.as_str(), c.size) {
            if earlier != c.size {
                return bad(format!(
                    "chunk {i}: id {} was listed before with size {earlier}, now {}",
                    c.id, c.size
                ));
            }
        }
        total += c.size as u64;
    }
    if total != plan.size {
        return bad(format!(
            "chunk sizes add up to {total} bytes, but the file size is {}",
            plan.size
        ));
    }
    // The server computes the content hash itself; a claim that differs
    // is refused rather than served as the version's hash.
    let hash = content_hash(plan.chunks.iter().map(|c| c.id.as_str()))
        .map_err(|e| FileError::InvalidArgument(e.to_string()))?;
    if hash != plan.hash {
        return bad(format!(
            "contentHash {} is not the hash of the listed chunks ({hash}): it is \
             BLAKE3 (derive-key \"{CONTENT_HASH_CONTEXT}\") over the chunk ids in order",
            plan.hash
        ));
    }
    Ok(())
}
