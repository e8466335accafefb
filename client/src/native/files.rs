//! Local files: planning an upload from a file, reading its chunks back
//! (optionally at a limited rate), and downloads that appear only once
//! complete and verified.

use crate::download::StreamContentHasher;
use crate::upload::{ChunkSource, Planner, UploadPlan};
use crate::{ClientError, Coffer, Metadata, Observer, Transport};
use bytes::Bytes;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes read at a time while planning.
const READ_BLOCK: usize = 1024 * 1024;

/// Reads `path` once, chunking and hashing it.
pub async fn plan_file(path: &Path) -> Result<UploadPlan, ClientError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let fail = |e| ClientError::io(format!("cannot read {}", path.display()), e);
        let mut f = std::fs::File::open(&path).map_err(fail)?;
        // The time before the read: a write during it shows as a change.
        let modified = f.metadata().and_then(|m| m.modified()).ok();
        let mut planner = Planner::new();
        let mut buf = vec![0u8; READ_BLOCK];
        loop {
            let n = f.read(&mut buf).map_err(fail)?;
            if n == 0 {
                let mut plan = planner.finish();
                plan.modified = modified.and_then(rfc3339);
                return Ok(plan);
            }
            planner.push(&buf[..n]);
        }
    })
    .await
    .map_err(|e| ClientError::io("planning the upload", std::io::Error::other(e)))?
}

/// `t` as RFC 3339 in UTC, to the nanosecond.
pub fn rfc3339(t: std::time::SystemTime) -> Option<String> {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The time a version's `modifiedTime` names, if it names one.
pub fn parse_rfc3339(t: &str) -> Option<std::time::SystemTime> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(Into::into)
}

/// The chunks of a local file, read back when they are sent.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    limit: Option<RateLimit>,
}

impl FileSource {
    pub fn new(path: &Path) -> Self {
        FileSource {
            path: path.to_path_buf(),
            limit: None,
        }
    }

    /// Hands out at most `bytes_per_sec` bytes per second (a bandwidth cap).
    pub fn with_rate_limit(mut self, bytes_per_sec: u64) -> Self {
        self.limit = Some(RateLimit {
            bytes_per_sec: bytes_per_sec.max(1),
            state: Mutex::new((Instant::now(), 0)),
        });
        self
    }
}

impl ChunkSource for FileSource {
    async fn read(&self, offset: u64, len: u32) -> Result<Bytes, ClientError> {
        if let Some(l) = &self.limit {
            tokio::time::sleep_until(l.grant(len as u64).into()).await;
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let fail = |e| ClientError::io(format!("cannot read {}", path.display()), e);
            let mut f = std::fs::File::open(&path).map_err(fail)?;
            f.seek(SeekFrom::Start(offset)).map_err(fail)?;
            let mut buf = vec![0u8; len as usize];
            f.read_exact(&mut buf).map_err(fail)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|e| ClientError::io("reading a chunk", std::io::Error::other(e)))?
    }
}

/// A token bucket without burst: the n-th byte is due n / rate seconds
/// after the first read.
#[derive(Debug)]
struct RateLimit {
    bytes_per_sec: u64,
    /// When the first read happened, and bytes granted since.
    state: Mutex<(Instant, u64)>,
}

impl RateLimit {
    /// Grants `bytes` and returns when they may be used.
    fn grant(&self, bytes: u64) -> Instant {
        let mut s = self.state.lock().expect("rate limit lock");
        let due = s.0 + Duration::from_secs_f64(s.1 as f64 / self.bytes_per_sec as f64);
        s.1 += bytes;
        due
    }
}

/// Downloads `version` of `name` (0: the latest) to `dest`. The bytes go to
/// a temporary file next to `dest`, renamed over it only after their BLAKE3
/// matches the version's content hash; on any failure nothing is left.
pub async fn download_file<T: Transport>(
    coffer: &Coffer<T>,
    name: &str,
    version: u64,
    dest: &Path,
    observer: &dyn Observer,
) -> Result<Metadata, ClientError> {
    let meta =
        download_file_if(coffer, name, version, dest, observer, &|| true, &|_| Ok(())).await?;
    Ok(meta.expect("always renamed into place").0)
}

/// [`download_file`], but the verified file is renamed into place only if
/// `still()` says so just before (a sync checks that the file it replaces
/// was not edited during the download); `None` if it was not, and
/// nothing is left. `claim` is told the temporary file's path before the
/// file is made (a sync records it, so that only a file it made is ever
/// taken for its leftover); an error from it stops the download.
///
/// Also returns the file system's metadata of the file as written, read
/// before it was renamed into place: a sync records that, never a stat of
/// `dest` afterwards, which may already be someone's newer edit.
pub async fn download_file_if<T: Transport>(
    coffer: &Coffer<T>,
    name: &str,
    version: u64,
    dest: &Path,
    observer: &dyn Observer,
    still: &dyn Fn() -> bool,
    claim: &dyn Fn(&Path) -> std::io::Result<()>,
) -> Result<Option<(Metadata, std::fs::Metadata)>, ClientError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .make_in(&dir, |path| {
            claim(path)?;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
        })
        .map_err(|e| ClientError::io(format!("cannot write in {}", dir.display()), e))?;
    let written = tmp
        .as_file()
        .try_clone()
        .map_err(|e| ClientError::io("writing the download", e))?;
    let mut download = coffer.open_download(name, version).await?;
    observer.start(download.meta.size);
    // Hashing and writing run on their own thread, so the network keeps
    // flowing while the disk or the hash catches up.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_PIECES);
    let sink = std::thread::spawn(move || write_and_hash(WriteBehind::new(written), rx));
    let mut received = Ok(());
    loop {
        match download.next().await {
            Ok(Some(piece)) => {
                let n = piece.len() as u64;
                if tx.send(piece).await.is_err() {
                    break; // The writer failed: its error is reported below.
                }
                observer.advance(n);
            }
            Ok(None) => break,
            Err(e) => {
                received = Err(e);
                break;
            }
        }
    }
    drop(tx);
    let written = sink.join().map_err(|_| {
        ClientError::io(
            "writing the download",
            std::io::Error::other("writer panicked"),
        )
    })?;
    received?;
    let (out, hasher) = written.map_err(|e| ClientError::io("writing the download", e))?;
    download.check(hasher)?;
    // The version's modification time, as its uploader's file had it.
    if let Some(t) = parse_rfc3339(&download.meta.modified_time) {
        tmp.as_file()
            .set_modified(t)
            .map_err(|e| ClientError::io("writing the download", e))?;
    }
    // Only a complete, verified file is worth syncing.
    out.finish()
        .map_err(|e| ClientError::io("writing the download", e))?;
    let stamp = tmp
        .as_file()
        .metadata()
        .map_err(|e| ClientError::io("writing the download", e))?;
    if !still() {
        return Ok(None); // the temporary file goes with `tmp`
    }
    tmp.persist(dest)
        .map_err(|e| ClientError::io(format!("cannot write {}", dest.display()), e.error))?;
    Ok(Some((download.meta, stamp)))
}

/// How a temporary download file is named: `.coffer-XXXXXX.part`.
pub const TEMP_PREFIX: &str = ".coffer-";
pub const TEMP_SUFFIX: &str = ".part";

/// Makes the folders of `rel` (a relative path of plain segments) under
/// `root`, one segment at a time, passing only through real folders: a
/// symbolic link on the way, by whatever spelling the disk takes for its
/// name (a case-insensitive disk finds `Link` for `link`), or a file, is
/// refused, so nothing is ever written through a link the user left in
/// the folder.
pub fn create_folders_below(root: &Path, rel: &Path) -> std::io::Result<()> {
    let mut at = root.to_path_buf();
    for c in rel.components() {
        let std::path::Component::Normal(segment) = c else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a plain relative path", rel.display()),
            ));
        };
        at.push(segment);
        let made = match std::fs::create_dir(&at) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        if !made && !std::fs::symlink_metadata(&at)?.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} is a link or a file, not a folder; nothing is written through it",
                    at.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Pieces (up to 1 MiB each) queued between the network and the disk.
const PIPELINE_PIECES: usize = 32;

/// Hashes and writes every piece from `rx`; returns the writer (not yet
/// finally synced) and the hasher. Stops at the first write error.
fn write_and_hash(
    mut out: WriteBehind,
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> std::io::Result<(WriteBehind, StreamContentHasher)> {
    let mut hasher = StreamContentHasher::new();
    while let Some(piece) = rx.blocking_recv() {
        hasher.update(&piece);
        out.write_all(&piece)?;
    }
    Ok((out, hasher))
}

/// Bytes written between two background syncs of a download.
const SYNC_EVERY: u64 = 64 * 1024 * 1024;

/// A file writer that keeps the disk busy while the download runs: every
/// [`SYNC_EVERY`] bytes it starts an `fdatasync` on a helper thread, so the
/// sync before the final rename has at most a few MiB left to wait for
/// instead of the whole file.
struct WriteBehind {
    file: File,
    since_sync: u64,
    syncing: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl WriteBehind {
    fn new(file: File) -> Self {
        Self {
            file,
            since_sync: 0,
            syncing: None,
        }
    }

    fn start_sync(&mut self) -> std::io::Result<()> {
        if let Some(h) = &self.syncing {
            if !h.is_finished() {
                return Ok(()); // The next turn catches up.
            }
        }
        if let Some(h) = self.syncing.take() {
            h.join()
                .map_err(|_| std::io::Error::other("sync thread panicked"))??;
        }
        let file = self.file.try_clone()?;
        self.syncing = Some(std::thread::spawn(move || file.sync_data()));
        self.since_sync = 0;
        Ok(())
    }

    /// Waits for the background sync, then syncs everything: after this
    /// the bytes and the file's size are on disk.
    fn finish(mut self) -> std::io::Result<()> {
        if let Some(h) = self.syncing.take() {
            h.join()
                .map_err(|_| std::io::Error::other("sync thread panicked"))??;
        }
        self.file.sync_all()
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since_sync += n as u64;
        if self.since_sync >= SYNC_EVERY {
            self.start_sync()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn folders_are_made_only_through_real_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("docs/link")).unwrap();
        std::fs::write(root.join("file"), b"f").unwrap();

        create_folders_below(&root, Path::new("docs/new/deeper")).unwrap();
        assert!(root.join("docs/new/deeper").is_dir());
        create_folders_below(&root, Path::new("docs/new")).unwrap();

        let through = create_folders_below(&root, Path::new("docs/link/x")).unwrap_err();
        assert!(through.to_string().contains("link"), "{through}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert!(create_folders_below(&root, Path::new("file/x")).is_err());
        assert!(create_folders_below(&root, Path::new("../x")).is_err());
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn rate_limit_spaces_grants_by_size() {
        let l = RateLimit {
            bytes_per_sec: 1000,
            state: Mutex::new((Instant::now(), 0)),
        };
        let start = l.state.lock().unwrap().0;
        assert_eq!(l.grant(500), start);
        assert_eq!(l.grant(500), start + Duration::from_millis(500));
        assert_eq!(l.grant(1), start + Duration::from_secs(1));
    }

    #[test]
    fn write_behind_writes_every_byte_across_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut w = WriteBehind::new(File::create(&path).unwrap());
        let block: Vec<u8> = (0..1_000_003u32).map(|i| (i % 253) as u8).collect();
        let mut expected = Vec::new();
        // Past SYNC_EVERY more than once, so background syncs overlap writes.
        while (expected.len() as u64) < 2 * SYNC_EVERY + 17 {
            w.write_all(&block).unwrap();
            expected.extend_from_slice(&block);
        }
        w.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[tokio::test]
    async fn file_plan_and_source_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut plan = plan_file(&path).await.unwrap();
        let on_disk = std::fs::metadata(&path).unwrap().modified().unwrap();
        let modified = plan.modified.take().expect("the file's modification time");
        assert_eq!(parse_rfc3339(&modified), Some(on_disk), "{modified}");
        assert_eq!(plan, UploadPlan::of(&data));
        let src = FileSource::new(&path);
        for c in &plan.chunks {
            let got = src.read(c.offset, c.size).await.unwrap();
            assert_eq!(coffer_proto::chunking::chunk_id(&got), c.id);
        }
    }
}
