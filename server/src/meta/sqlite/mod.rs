//! The SQLite engine: the embedded default, one file under the data dir.
//!
//! [`SqliteEngine`] owns one writing connection and runs every operation
//! on tokio's blocking pool, so the async server never blocks on disk;
//! whole-table reports use a second, read-only connection, and the short
//! lookup every request makes a third. One writer at a time: row locks
//! (`FOR UPDATE`, [`Tx::lock_table`]) have nothing to add. The database's
//! clock is this process's clock: only one server process may use the
//! file (the data dir lock). [`schema`] holds the migrations.

pub mod schema;

use super::sql::tx::{Params, Row, Value};
use super::sql::{ops, Engine, Mode, Tx, Work};
use super::{MetaError, MetaStore};
use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, msg) => {
                let msg = msg.clone().unwrap_or_else(|| f.to_string());
                match f.code {
                    rusqlite::ErrorCode::DiskFull => MetaError::Full(msg),
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                        MetaError::Busy(msg)
                    }
                    rusqlite::ErrorCode::CannotOpen => MetaError::Unreachable(msg),
                    _ => MetaError::Backend(msg),
                }
            }
            _ => MetaError::Backend(e.to_string()),
        }
    }
}

/// One connection and the clock its `now_ms()` reads: set when an
/// operation starts, so every statement of a transaction sees one time.
struct Conn {
    c: Connection,
    now: Arc<AtomicI64>,
}

/// Statements kept prepared per connection: every statement the policy
/// has, so none is parsed and planned twice (rusqlite keeps 16).
const PREPARED: usize = 256;

impl Conn {
    fn new(c: Connection) -> Result<Self, MetaError> {
        c.set_prepared_statement_cache_capacity(PREPARED);
        let now = Arc::new(AtomicI64::new(0));
        let clock = now.clone();
        c.create_scalar_function(
            "now_ms",
            0,
            rusqlite::functions::FunctionFlags::SQLITE_UTF8,
            move |_| Ok(clock.load(Ordering::Relaxed)),
        )?;
        Ok(Self { c, now })
    }
}

type Shared = Arc<Mutex<Conn>>;

/// The SQLite engine; see the module's documentation.
pub struct SqliteEngine {
    writer: Shared,
    /// Read-only, for reports that scan whole tables (cluster status,
    /// metrics): under WAL it reads a snapshot and holds up no writer. An
    /// in-memory database has only the one connection.
    reader: Shared,
    /// Read-only, for the short lookup every request makes (is its login
    /// live?), so neither a long report nor a busy writer holds it up.
    lookups: Shared,
}

/// Opens (creating if needed) the database at `path` and migrates it.
pub fn open(path: &Path) -> Result<MetaStore, MetaError> {
    Ok(MetaStore::new(Arc::new(SqliteEngine::open(path)?)))
}

/// An in-memory database, for tests of pure logic.
pub fn open_in_memory() -> Result<MetaStore, MetaError> {
    Ok(MetaStore::new(Arc::new(SqliteEngine::open_in_memory()?)))
}

impl SqliteEngine {
    fn open(path: &Path) -> Result<Self, MetaError> {
        let writer = Arc::new(Mutex::new(Conn::new(setup(Connection::open(path)?)?)?));
        let read_only = || -> Result<Shared, MetaError> {
            let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            c.busy_timeout(Duration::from_secs(10))?;
            Ok(Arc::new(Mutex::new(Conn::new(c)?)))
        };
        Ok(SqliteEngine {
            writer,
            reader: read_only()?,
            lookups: read_only()?,
        })
    }

    fn open_in_memory() -> Result<Self, MetaError> {
        let c = Arc::new(Mutex::new(Conn::new(
            setup(Connection::open_in_memory()?)?,
        )?));
        Ok(SqliteEngine {
            writer: c.clone(),
            reader: c.clone(),
            lookups: c,
        })
    }
}

/// Checks a database file unpacked from a snapshot and readies it to be
/// the server's: SQLite finds it intact and it belongs to `cluster`.
/// Orphan sightings are forgotten, so every chunk stored after the
/// snapshot gets a full grace period from the restart, and worker leases
/// are dropped.
pub fn prepare_restored(path: &Path, cluster: &str) -> Result<(), MetaError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(MetaError::Backend(format!("damaged database: {check}")));
    }
    let conn = Conn::new(conn)?;
    let tx = SqliteTx(&conn.c);
    match ops::setting(&tx, ops::CLUSTER_ID)? {
        Some(id) if id == cluster => {}
        other => {
            return Err(MetaError::Backend(format!(
                "the database belongs to cluster {}, not {cluster}",
                other.unwrap_or_else(|| "(none)".into())
            )))
        }
    }
    // Every login ends: the snapshot cannot know which were ended
    // after it was taken.
    conn.c
        .execute_batch("DELETE FROM gc_orphans; DELETE FROM leases; DELETE FROM logins;")?;
    // Chunks stored after the snapshot are orphans now; gc leaves them
    // for the restore hold so a restore of the wrong snapshot can be
    // undone.
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    ops::set_setting(&tx, ops::RESTORED_AT, &now.to_string())
}

fn setup(mut conn: Connection) -> Result<Connection, MetaError> {
    // WAL keeps readers off the writer's back; FULL syncs every commit so
    // an acknowledged version survives power loss, not just a crash.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(10))?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// Runs `f` in one transaction whose commit is not synced to disk (see
/// [`Mode::Unsynced`]). WAL frames reach the disk in order, so a later
/// synced commit makes it durable too. Saves an fsync per stored chunk,
/// which otherwise bounds upload throughput.
fn unsynced<R>(
    c: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<R, MetaError>,
) -> Result<R, MetaError> {
    c.pragma_update(None, "synchronous", "NORMAL")?;
    let out = in_transaction(c, f);
    // Restored even when `f` failed: every other commit stays synced.
    let restored = c.pragma_update(None, "synchronous", "FULL");
    let r = out?;
    restored?;
    Ok(r)
}

fn in_transaction<R>(
    c: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<R, MetaError>,
) -> Result<R, MetaError> {
    let tx = c.transaction()?;
    let r = f(&tx)?;
    tx.commit()?;
    Ok(r)
}

#[async_trait]
impl Engine for SqliteEngine {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn run(&self, mode: Mode, f: Work) -> Result<Box<dyn std::any::Any + Send>, MetaError> {
        let conn = match mode {
            Mode::Lookup => self.lookups.clone(),
            Mode::Report => self.reader.clone(),
            Mode::Read | Mode::Write | Mode::Unsynced | Mode::Claim => self.writer.clone(),
        };
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|e| MetaError::Backend(e.to_string()))?;
            let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
            guard.now.store(now, Ordering::Relaxed);
            let c = &mut guard.c;
            match mode {
                Mode::Read | Mode::Lookup => f(&SqliteTx(c)),
                Mode::Report | Mode::Write | Mode::Claim => in_transaction(c, |c| f(&SqliteTx(c))),
                Mode::Unsynced => unsynced(c, |c| f(&SqliteTx(c))),
            }
        })
        .await
        .map_err(|e| MetaError::Backend(e.to_string()))?
    }

    async fn snapshot_into(&self, dest: &Path) -> Result<(), MetaError> {
        let dest = dest
            .to_str()
            .ok_or_else(|| MetaError::Backend(format!("not a UTF-8 path: {}", dest.display())))?
            .to_string();
        // On the reader, outside a transaction (VACUUM takes none): it
        // reads a snapshot under WAL, so writers go on.
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let guard = reader
                .lock()
                .map_err(|e| MetaError::Backend(e.to_string()))?;
            guard.c.execute("VACUUM INTO ?1", [dest])?;
            Ok(())
        })
        .await
        .map_err(|e| MetaError::Backend(e.to_string()))?
    }
}

/// A statement in SQLite's spelling: `?n` placeholders, no row locks, and
/// JSON arrays read with `json_each`.
fn dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(['$', ' ', 'l', 'r']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (to, skip) =
            if rest.starts_with('$') && rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
                ("?", 1)
            } else if rest.starts_with(" FOR UPDATE") {
                ("", " FOR UPDATE".len())
            } else if rest.starts_with("list_of(") || rest.starts_with("rows_of(") {
                ("json_each(", "list_of(".len())
            } else {
                (&rest[..1], 1)
            };
        out.push_str(to);
        rest = &rest[skip..];
    }
    out.push_str(rest);
    out
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn value(v: ValueRef) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Int(f as i64),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(String::from_utf8_lossy(t).into()),
    }
}

/// A connection, in a transaction or not, as a [`Tx`].
struct SqliteTx<'a>(&'a Connection);

impl SqliteTx<'_> {
    fn bound(params: Params) -> Vec<Value> {
        params.iter().map(|p| p.to_value()).collect()
    }
}

impl Tx for SqliteTx<'_> {
    fn query(&self, sql: &str, params: Params) -> Result<Vec<Row>, MetaError> {
        let mut stmt = self.0.prepare_cached(&dialect(sql))?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(Self::bound(params)))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Row((0..n)
                .map(|i| r.get_ref(i).map(value))
                .collect::<Result<_, _>>()?));
        }
        Ok(out)
    }

    fn execute(&self, sql: &str, params: Params) -> Result<u64, MetaError> {
        let mut stmt = self.0.prepare_cached(&dialect(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(Self::bound(params)))? as u64)
    }

    fn lock_table(&self, _table: &str) -> Result<(), MetaError> {
        // One writer at a time already.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::sql::gc::RESTORE_HOLD;
    use crate::meta::Role;
    use std::mem::discriminant;

    #[test]
    fn sqlite_failures_become_kinds() {
        let failure = |code| {
            MetaError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        use rusqlite::ffi::{SQLITE_BUSY, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_LOCKED};
        let kind = |code, of: MetaError| {
            let got = failure(code);
            assert_eq!(discriminant(&got), discriminant(&of), "{code}: {got:?}");
        };
        kind(SQLITE_FULL, MetaError::Full(String::new()));
        kind(SQLITE_BUSY, MetaError::Busy(String::new()));
        kind(SQLITE_LOCKED, MetaError::Busy(String::new()));
        kind(SQLITE_CORRUPT, MetaError::Backend(String::new()));
    }

    #[test]
    fn statements_are_spelled_for_sqlite() {
        assert_eq!(
            dialect(
                "SELECT a FROM t WHERE b = $1 AND c IN (SELECT value FROM list_of($12)) FOR UPDATE"
            ),
            "SELECT a FROM t WHERE b = ?1 AND c IN (SELECT value FROM json_each(?12))"
        );
    }

    #[tokio::test]
    async fn a_restored_database_keeps_its_orphans_for_the_restore_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.db");
        let found = vec!["a".repeat(64)];
        // Noted once, then ripe on the next pass under a zero grace period.
        let ripe = |meta: MetaStore| {
            let found = found.clone();
            async move {
                meta.note_orphans("n1", &found, Duration::ZERO)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                meta.note_orphans("n1", &found, Duration::ZERO)
                    .await
                    .unwrap()
            }
        };
        let meta = open(&path).unwrap();
        meta.init_cluster_id("c1").await.unwrap();
        assert_eq!(ripe(meta.clone()).await, found, "no restore: ripe at once");
        drop(meta);

        assert!(prepare_restored(&path, "c2").is_err());
        prepare_restored(&path, "c1").unwrap();
        let meta = open(&path).unwrap();
        assert!(
            ripe(meta.clone()).await.is_empty(),
            "orphans wait out the restore hold"
        );
        // A restore recorded before times were milliseconds, long ago.
        let long_ago = crate::meta::rfc3339(
            time::OffsetDateTime::now_utc() - RESTORE_HOLD - Duration::from_secs(60),
        );
        meta.set_setting(ops::RESTORED_AT, &long_ago).await.unwrap();
        assert_eq!(ripe(meta).await, found, "after the hold, the grace period");
    }

    #[test]
    fn a_damaged_database_is_not_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.db");
        std::fs::write(&path, b"not a database at all").unwrap();
        assert!(prepare_restored(&path, "c1").is_err());
    }

    fn synchronous(c: &Connection) -> i64 {
        c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn unsynced_commits_and_restores_full_sync_even_on_error() {
        let engine = SqliteEngine::open_in_memory().unwrap();
        let mut g = engine.writer.lock().unwrap();
        let c = &mut g.c;
        assert_eq!(synchronous(c), 2, "FULL by default");
        let failed: Result<(), MetaError> = unsynced(c, |c| {
            c.execute("INSERT INTO settings (key, value) VALUES ('a', '1')", [])?;
            Err(MetaError::MissingChunks(1))
        });
        assert!(failed.is_err());
        assert_eq!(synchronous(c), 2);
        assert_eq!(
            ops::setting(&SqliteTx(c), "a").unwrap(),
            None,
            "rolled back"
        );
        unsynced(c, |c| {
            c.execute("INSERT INTO settings (key, value) VALUES ('b', '1')", [])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(synchronous(c), 2);
        assert_eq!(
            ops::setting(&SqliteTx(c), "b").unwrap().as_deref(),
            Some("1")
        );
    }

    /// Holds the connection `mode` runs on until released; returns once
    /// it holds it.
    async fn hold(
        engine: &Arc<SqliteEngine>,
        mode: Mode,
    ) -> (
        tokio::task::JoinHandle<Result<(), MetaError>>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (entered, wait_entered) = std::sync::mpsc::channel();
        let (release, wait_release) = std::sync::mpsc::channel::<()>();
        let engine = engine.clone();
        let held = tokio::spawn(async move {
            let work: Work = Box::new(move |_| {
                entered.send(()).unwrap();
                wait_release.recv().unwrap();
                Ok(Box::new(()))
            });
            engine.run(mode, work).await.map(|_| ())
        });
        tokio::task::spawn_blocking(move || wait_entered.recv().unwrap())
            .await
            .unwrap();
        (held, release)
    }

    #[tokio::test]
    async fn reports_read_beside_writes_and_see_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(SqliteEngine::open(&dir.path().join("coffer.db")).unwrap());
        let meta = MetaStore::new(engine.clone());
        let (report, release) = hold(&engine, Mode::Report).await;
        // A write goes through meanwhile (a deadlock here fails the test).
        let write = meta.init_cluster_id("c1");
        tokio::time::timeout(Duration::from_secs(60), write)
            .await
            .expect("the write waited for the report")
            .unwrap();
        release.send(()).unwrap();
        report.await.unwrap().unwrap();
        let seen = engine
            .run(
                Mode::Report,
                Box::new(|tx| Ok(Box::new(ops::setting(tx, ops::CLUSTER_ID)?))),
            )
            .await
            .unwrap();
        assert_eq!(
            seen.downcast_ref::<Option<String>>().unwrap().as_deref(),
            Some("c1"),
            "a new report sees it"
        );
    }

    #[tokio::test]
    async fn login_lookups_go_on_while_a_report_and_a_write_hold_their_connections() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(SqliteEngine::open(&dir.path().join("coffer.db")).unwrap());
        let meta = MetaStore::new(engine.clone());
        let user = meta.add_user("u", "h", Role::User).await.unwrap();
        let (id, _) = meta
            .open_login(user.id, "t", Duration::from_secs(60))
            .await
            .unwrap();
        let (report, release) = hold(&engine, Mode::Report).await;
        let (write, release_w) = hold(&engine, Mode::Write).await;
        let login = tokio::time::timeout(Duration::from_secs(60), meta.login(&id))
            .await
            .expect("the lookup waited for another connection")
            .unwrap();
        assert_eq!(login.unwrap().user.name, "u");
        release.send(()).unwrap();
        release_w.send(()).unwrap();
        report.await.unwrap().unwrap();
        write.await.unwrap().unwrap();
    }
}
