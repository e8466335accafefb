//! The metadata store: owners, files, versions, chunk lists, chunks,
//! replicas and upload sessions, in SQLite.
//!
//! [`Meta`] owns one writing connection behind a mutex and runs every query
//! on tokio's blocking pool ([`Meta::call`]), so the async server never
//! blocks on disk; long read-only reports use a second connection
//! ([`Meta::read`]). Queries live in [`files`], [`chunks`] and
//! [`sessions`]; [`schema`] holds the migrations.
//!
//! Architecture Invariant: a version row, its chunk list and its file's
//! "not deleted" state are written in one transaction, and only after every
//! chunk it lists is recorded in `chunks`, i.e. stored on at least W nodes.

pub mod chunks;
pub mod files;
pub mod gc;
pub mod schema;
pub mod sessions;

use rusqlite::{Connection, Transaction};
use std::path::Path;
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Owner ids. Until accounts exist every file belongs to [`DEFAULT_OWNER`].
pub type OwnerId = i64;
pub const DEFAULT_OWNER: OwnerId = 1;

#[derive(Debug, Error)]
pub enum MetaError {
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metadata store: background task failed: {0}")]
    Task(String),
    /// A commit named chunks that are not stored.
    #[error("{0} chunk(s) of the upload are not stored yet")]
    MissingChunks(usize),
    /// A chunk was listed with another size than the stored one.
    #[error("chunk {id} is {stored} bytes, not {declared}")]
    ChunkSize {
        id: String,
        stored: u32,
        declared: u32,
    },
    /// A finished upload's version is gone (removed by retention, or the
    /// file purged), so finishing it again cannot return it.
    #[error(
        "upload {session} was committed as version {version} of {path:?}, which no longer exists"
    )]
    CommittedVersionGone {
        session: String,
        path: String,
        version: u64,
    },
}

/// A chunk in a file's ordered chunk list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    pub id: String,
    pub size: u32,
}

/// One version of one file, as listings and metadata show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    pub file_id: i64,
    pub path: String,
    pub number: u64,
    pub size: u64,
    pub hash: String,
    pub created_at: String,
    pub deleted: bool,
    pub chunk_count: u32,
}

/// Handle to the metadata database; cheap to clone.
#[derive(Clone)]
pub struct Meta {
    // A std mutex: it is only ever taken on the blocking pool, never held
    // across an await.
    conn: Arc<Mutex<Connection>>,
    /// A second, read-only connection for reports that scan whole tables
    /// (cluster status, metrics): under WAL it reads a snapshot and holds
    /// up no writer. An in-memory database has only the one connection.
    reader: Arc<Mutex<Connection>>,
}

impl Meta {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        let conn = Arc::new(Mutex::new(Self::setup(Connection::open(path)?)?));
        let reader = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        reader.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Self {
            conn,
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// An in-memory database, for tests of pure logic.
    pub fn open_in_memory() -> Result<Self, MetaError> {
        let conn = Arc::new(Mutex::new(Self::setup(Connection::open_in_memory()?)?));
        Ok(Self {
            reader: conn.clone(),
            conn,
        })
    }

    fn setup(mut conn: Connection) -> Result<Connection, MetaError> {
        // WAL keeps readers off the writer's back; FULL syncs every commit so
        // an acknowledged version survives power loss, not just a crash.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        schema::migrate(&mut conn)?;
        Ok(conn)
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<R, F>(&self, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, MetaError> + Send + 'static,
    {
        Self::on(self.conn.clone(), f).await
    }

    /// Runs the read-only `f` on the reader connection, beside whatever
    /// [`Meta::call`] is doing. For long reports; anything that must see
    /// its own writes uses `call`.
    pub async fn read<R, F>(&self, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, MetaError> + Send + 'static,
    {
        Self::on(self.reader.clone(), |c| f(c)).await
    }

    async fn on<R, F>(conn: Arc<Mutex<Connection>>, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, MetaError> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|e| MetaError::Task(e.to_string()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| MetaError::Task(e.to_string()))?
    }
}

/// Runs `f` in one transaction whose commit is not synced to disk.
///
/// For rows that only matter once a later, synced commit refers to them:
/// chunk records written before the version that lists them. WAL frames
/// reach the disk in order, so that version's synced commit makes them
/// durable with it; a power loss before it may forget them (their objects
/// are then orphans that gc collects), never tear them. Saves an fsync per
/// stored chunk, which otherwise bounds upload throughput.
pub fn unsynced<R>(
    c: &mut Connection,
    f: impl FnOnce(&Transaction) -> Result<R, MetaError>,
) -> Result<R, MetaError> {
    c.pragma_update(None, "synchronous", "NORMAL")?;
    let out = c.transaction().map_err(MetaError::from).and_then(|tx| {
        let r = f(&tx)?;
        tx.commit()?;
        Ok(r)
    });
    // Restored even when `f` failed: every other commit stays synced.
    let restored = c.pragma_update(None, "synchronous", "FULL");
    let r = out?;
    restored?;
    Ok(r)
}

/// Now, as RFC 3339 in UTC with millisecond precision.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// `t` as RFC 3339 in UTC with exactly three fractional digits, so that
/// timestamps compare correctly as text.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_read_beside_writes_and_see_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(&dir.path().join("coffer.db")).unwrap();
        let count = |c: &Connection| -> Result<i64, MetaError> {
            Ok(c.query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))?)
        };
        // A report that keeps the reader busy until told to finish.
        let (entered, wait_entered) = std::sync::mpsc::channel();
        let (release, wait_release) = std::sync::mpsc::channel::<()>();
        let report = tokio::spawn({
            let meta = meta.clone();
            async move {
                meta.read(move |c| {
                    entered.send(()).unwrap();
                    wait_release.recv().unwrap();
                    count(c)
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || wait_entered.recv().unwrap())
            .await
            .unwrap();
        // A write goes through meanwhile (a deadlock here fails the test).
        let write = meta
            .call(|c| chunks::record_chunk(c, &"a".repeat(64), 1, &[], "2026-11-01T00:00:00.000Z"));
        tokio::time::timeout(std::time::Duration::from_secs(60), write)
            .await
            .expect("the write waited for the report")
            .unwrap();
        release.send(()).unwrap();
        report.await.unwrap().unwrap();
        assert_eq!(meta.read(count).await.unwrap(), 1, "a new report sees it");
    }

    fn synchronous(c: &Connection) -> i64 {
        c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn unsynced_commits_and_restores_full_sync_even_on_error() {
        let meta = Meta::open_in_memory().unwrap();
        let mut c = meta.conn.lock().unwrap();
        assert_eq!(synchronous(&c), 2, "FULL by default");
        let failed: Result<(), MetaError> = unsynced(&mut c, |tx| {
            chunks::record_chunk(tx, &"a".repeat(64), 1, &[], "t")?;
            Err(MetaError::MissingChunks(1))
        });
        assert!(failed.is_err());
        assert_eq!(synchronous(&c), 2);
        assert!(
            !chunks::touch_if_stored(&c, &"a".repeat(64), "u").unwrap(),
            "rolled back"
        );
        unsynced(&mut c, |tx| {
            chunks::record_chunk(tx, &"b".repeat(64), 1, &[], "t")
        })
        .unwrap();
        assert_eq!(synchronous(&c), 2);
        assert!(
            chunks::touch_if_stored(&c, &"b".repeat(64), "u").unwrap(),
            "committed"
        );
    }
}
