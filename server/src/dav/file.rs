//! What WebDAV reads and writes through: a file version opened for
//! reading (chunks fetched a few ahead, from wherever a Range starts), an
//! upload streamed through the chunker into one new version, and the
//! metadata of files and folders as WebDAV shows them.

use crate::caller::Caller;
use crate::files::{Admitted, FileError, FileVersion, Files, HeldChunk, StreamUpload};
use crate::meta::ChunkRef;
use bytes::{Buf, Bytes};
use coffer_proto::put::PutMode;
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture, FsResult};
use futures::{Stream, StreamExt};
use md5::Digest;
use std::io::SeekFrom;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A file or folder as WebDAV sees it.
#[derive(Debug, Clone)]
pub struct Meta {
    pub len: u64,
    pub modified: SystemTime,
    pub dir: bool,
    /// The content hash, for files: the same content, the same ETag.
    pub etag: Option<String>,
}

impl Meta {
    /// A folder. Folders keep no times of their own.
    pub fn folder() -> Self {
        Self {
            len: 0,
            modified: UNIX_EPOCH,
            dir: true,
            etag: None,
        }
    }

    /// An empty file with no times of its own.
    pub fn empty_file() -> Self {
        Self {
            dir: false,
            ..Self::folder()
        }
    }

    /// A file's latest version: its client's modification time if it gave
    /// one, else when it was stored.
    pub fn file(v: &FileVersion) -> Self {
        let when = v.modified.as_deref().unwrap_or(&v.created_at);
        Self {
            len: v.size,
            modified: rfc3339_time(when).unwrap_or(UNIX_EPOCH),
            dir: false,
            etag: Some(etag(&v.hash)),
        }
    }
}

/// A file's ETag: the first 128 bits of its content hash (the same content,
/// the same tag). Short, because clients echo ETags into `If` headers of
/// their own fixed size: litmus's holds 200 bytes.
pub fn etag(content_hash: &str) -> String {
    content_hash.get(..32).unwrap_or(content_hash).to_string()
}

fn rfc3339_time(t: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    let nanos = t.unix_timestamp_nanos();
    let nanos = u64::try_from(nanos).ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }

    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.modified)
    }

    fn is_dir(&self) -> bool {
        self.dir
    }

    fn etag(&self) -> Option<String> {
        self.etag.clone()
    }
}

type Chunks = Pin<Box<dyn Stream<Item = Result<HeldChunk, FileError>> + Send>>;

/// A version opened for reading.
pub struct Reader {
    files: Files,
    meta: Meta,
    chunks: Vec<ChunkRef>,
    /// Where each chunk starts in the content.
    starts: Vec<u64>,
    pos: u64,
    /// The chunk being read, by index.
    current: Option<(usize, HeldChunk)>,
    /// The chunks from the next index on, fetched a few ahead.
    ahead: std::sync::Mutex<Option<(usize, Chunks)>>,
    _admitted: Admitted,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("meta", &self.meta)
            .field("pos", &self.pos)
            .finish()
    }
}

impl Reader {
    pub fn new(files: Files, v: &FileVersion, chunks: Vec<ChunkRef>, admitted: Admitted) -> Self {
        let mut starts = Vec::with_capacity(chunks.len());
        let mut at = 0u64;
        for c in &chunks {
            starts.push(at);
            at += u64::from(c.size);
        }
        Self {
            files,
            meta: Meta::file(v),
            chunks,
            starts,
            pos: 0,
            current: None,
            ahead: std::sync::Mutex::new(None),
            _admitted: admitted,
        }
    }

    /// Chunk `idx`, from the read-ahead if it is next there, else from a
    /// new read-ahead starting at it (after a seek).
    async fn fetch(&mut self, idx: usize) -> FsResult<HeldChunk> {
        let ahead = self.ahead.get_mut().unwrap_or_else(|e| e.into_inner());
        if ahead.as_ref().is_none_or(|(next, _)| *next != idx) {
            let rest = self.chunks[idx..].to_vec();
            *ahead = Some((idx, Box::pin(self.files.read_chunks(rest))));
        }
        let (next, stream) = ahead.as_mut().expect("set above");
        let chunk = stream
            .next()
            .await
            .ok_or(FsError::GeneralFailure)?
            .map_err(super::fs::fs_error)?;
        *next += 1;
        Ok(chunk)
    }
}

impl DavFile for Reader {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.meta.clone();
        Box::pin(async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) })
    }

    fn write_buf(&mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        Box::pin(async move {
            if self.pos >= self.meta.len || count == 0 {
                return Ok(Bytes::new());
            }
            let idx = match self.starts.binary_search(&self.pos) {
                Ok(i) => i,
                Err(i) => i - 1,
            };
            if self.current.as_ref().is_none_or(|(i, _)| *i != idx) {
                // The chunk before is let go first: its room in the
                // budget goes to the read-ahead.
                self.current = None;
                let chunk = self.fetch(idx).await?;
                self.current = Some((idx, chunk));
            }
            let (_, held) = self.current.as_ref().expect("set above");
            let off = (self.pos - self.starts[idx]) as usize;
            let n = count.min(held.data.len() - off);
            self.pos += n as u64;
            Ok(held.data.slice(off..off + n))
        })
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        Box::pin(async move {
            let to = match pos {
                SeekFrom::Start(n) => Some(n),
                SeekFrom::Current(d) => self.pos.checked_add_signed(d),
                SeekFrom::End(d) => self.meta.len.checked_add_signed(d),
            };
            self.pos = to.ok_or(FsError::GeneralFailure)?;
            Ok(self.pos)
        })
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// An upload: bytes through the chunker as they come, committed as one
/// new version by `flush` (unless the content is what the file holds
/// already). Dropped before that, it commits nothing. Its SHA-1 and MD5
/// are computed on the way, checked against the client's `OC-Checksum`
/// and kept with the version, for clients that compare them.
pub struct Writer {
    upload: std::sync::Mutex<Option<StreamUpload>>,
    path: String,
    mode: PutMode,
    modified: Option<String>,
    sha1: sha1::Sha1,
    md5: md5::Md5,
    /// The client's `OC-Checksum` (`SHA1:hex`, `MD5:hex`...).
    expected: Option<String>,
    /// Set when the content does not match `expected`.
    mismatch: Arc<AtomicBool>,
    done: Option<Meta>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("path", &self.path).finish()
    }
}

/// What a PUT names its content by: its modification time (RFC 3339) and
/// the checksum its client computed (`OC-Checksum`).
#[derive(Debug, Clone, Default)]
pub struct Stamps {
    pub modified: Option<String>,
    pub checksum: Option<String>,
}

impl Writer {
    pub fn new(
        files: &Files,
        caller: &Caller,
        path: String,
        mode: PutMode,
        stamps: Stamps,
        mismatch: Arc<AtomicBool>,
    ) -> Self {
        Self {
            upload: std::sync::Mutex::new(Some(files.begin_stream(caller))),
            path,
            mode,
            modified: stamps.modified,
            sha1: sha1::Sha1::new(),
            md5: md5::Md5::new(),
            expected: stamps.checksum,
            mismatch,
            done: None,
        }
    }

    /// The content's checksums, as ownCloud spells them; `Err` if the
    /// client's `OC-Checksum` names one of them with another value.
    fn checksums(&self) -> Result<String, ()> {
        let sha1 = hex::encode(self.sha1.clone().finalize());
        let md5 = hex::encode(self.md5.clone().finalize());
        if let Some((alg, want)) = self.expected.as_deref().and_then(|e| e.split_once(':')) {
            let ours = match alg.trim().to_ascii_uppercase().as_str() {
                "SHA1" => Some(&sha1),
                "MD5" => Some(&md5),
                // Others (ADLER32...) are not computed, so not checked.
                _ => None,
            };
            if ours.is_some_and(|o| !o.eq_ignore_ascii_case(want.trim())) {
                return Err(());
            }
        }
        Ok(format!("SHA1:{sha1} MD5:{md5}"))
    }

    fn upload(&mut self) -> FsResult<&mut StreamUpload> {
        self.upload
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .ok_or(FsError::GeneralFailure)
    }
}

impl DavFile for Writer {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        Box::pin(async move {
            let meta = match &self.done {
                Some(m) => m.clone(),
                None => Meta {
                    len: self.upload()?.size(),
                    modified: SystemTime::now(),
                    dir: false,
                    etag: None,
                },
            };
            Ok(Box::new(meta) as Box<dyn DavMetaData>)
        })
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        self.write_bytes(bytes)
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        self.sha1.update(&buf);
        self.md5.update(&buf);
        Box::pin(async move { self.upload()?.push(&buf).await.map_err(super::fs::fs_error) })
    }

    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn seek(&mut self, _pos: SeekFrom) -> FsFuture<'_, u64> {
        // Uploads are whole files: no PUT with a Content-Range.
        Box::pin(async { Err(FsError::NotImplemented) })
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(async move {
            let upload = self
                .upload
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let Some(mut upload) = upload else {
                return Ok(());
            };
            let Ok(sums) = self.checksums() else {
                // Dropping the upload commits nothing.
                self.mismatch.store(true, Ordering::Relaxed);
                return Err(FsError::GeneralFailure);
            };
            upload.set_checksums(sums);
            let (v, _) = upload
                .finish_if_changed(&self.path, self.mode, self.modified.clone())
                .await
                .map_err(super::fs::fs_error)?;
            self.done = Some(Meta::file(&v));
            Ok(())
        })
    }
}
