//! The sync state: what both sides held when they last agreed on each
//! path, with the local file's size, time and chunk list then, in a
//! SQLite database in the state directory (never in the synced folder).
//!
//! The whole table is read at start (a pass plans from all of it); changes
//! are kept in memory and written in one transaction per [`Store::save`],
//! so a pass of 10,000 steps makes a few hundred small commits, not a
//! rewrite of the whole state each time.

use anyhow::Context;
use coffer_client::upload::PlannedChunk;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What both sides held when they last agreed on a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub version: u64,
    pub hash: String,
    pub size: u64,
    /// Nanoseconds since the epoch; 0 if unknown (the file is read again).
    pub mtime: u64,
    /// The content's chunks, when this client chunked it (empty after a
    /// download): an upload of the unchanged file reuses them instead of
    /// reading it twice.
    pub chunks: Vec<PlannedChunk>,
}

impl Synced {
    /// Whether the file found on disk is still the one synced: same size
    /// and modification time (an unknown time never matches).
    pub fn describes(&self, found: &super::scan::Found) -> bool {
        self.size == found.size && self.mtime == found.mtime && self.mtime != 0
    }
}

pub struct Store {
    db: Connection,
    files: BTreeMap<String, Synced>,
    /// Paths changed (or removed) since the last save.
    dirty: BTreeSet<String>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS synced (
    path    TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    hash    TEXT NOT NULL,
    size    INTEGER NOT NULL,
    mtime   INTEGER NOT NULL,
    chunks  BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS partials (
    path TEXT PRIMARY KEY
) WITHOUT ROWID;
";

impl Store {
    /// Opens (or creates) the state at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let damaged = || format!("the sync state {} is damaged", path.display());
        let db =
            Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // WAL with NORMAL sync: a commit survives a killed process; a
        // power cut may lose the last commits, which only makes the next
        // pass compare those files again.
        db.pragma_update(None, "journal_mode", "WAL")
            .with_context(damaged)?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .with_context(damaged)?;
        db.execute_batch(SCHEMA).with_context(damaged)?;
        let mut files = BTreeMap::new();
        {
            let mut rows = db
                .prepare("SELECT path, version, hash, size, mtime, chunks FROM synced")
                .with_context(damaged)?;
            let rows = rows
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                    ))
                })
                .with_context(damaged)?;
            for row in rows {
                let (p, version, hash, size, mtime, chunks) = row.with_context(damaged)?;
                let chunks = decode_chunks(&chunks).with_context(damaged)?;
                files.insert(
                    p,
                    Synced {
                        version: version as u64,
                        hash,
                        size: size as u64,
                        mtime: mtime as u64,
                        chunks,
                    },
                );
            }
        }
        Ok(Store {
            db,
            files,
            dirty: BTreeSet::new(),
        })
    }

    pub fn files(&self) -> &BTreeMap<String, Synced> {
        &self.files
    }

    pub fn get(&self, path: &str) -> Option<&Synced> {
        self.files.get(path)
    }

    pub fn insert(&mut self, path: String, s: Synced) {
        self.dirty.insert(path.clone());
        self.files.insert(path, s);
    }

    pub fn remove(&mut self, path: &str) {
        if self.files.remove(path).is_some() {
            self.dirty.insert(path.to_string());
        }
    }

    /// Writes what changed since the last save, in one transaction.
    pub fn save(&mut self) -> anyhow::Result<()> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let tx = self.db.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO synced (path, version, hash, size, mtime, chunks)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (path) DO UPDATE SET version = ?2, hash = ?3,
                     size = ?4, mtime = ?5, chunks = ?6",
            )?;
            let mut del = tx.prepare_cached("DELETE FROM synced WHERE path = ?1")?;
            for p in &self.dirty {
                match self.files.get(p) {
                    Some(s) => {
                        put.execute(params![
                            p,
                            s.version as i64,
                            s.hash,
                            s.size as i64,
                            s.mtime as i64,
                            encode_chunks(&s.chunks),
                        ])?;
                    }
                    None => {
                        del.execute([p])?;
                    }
                }
            }
        }
        tx.commit().context("cannot write the sync state")?;
        self.dirty.clear();
        Ok(())
    }

    /// The change-feed cursor saved under `name`.
    pub fn cursor(&self, name: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .db
            .query_row("SELECT value FROM cursors WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Saves `value` as the only cursor, under `name`.
    pub fn set_cursor(&mut self, name: &str, value: &str) -> anyhow::Result<()> {
        let tx = self.db.transaction()?;
        tx.execute("DELETE FROM cursors", [])?;
        tx.execute(
            "INSERT INTO cursors (name, value) VALUES (?1, ?2)",
            [name, value],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets the saved cursor (the state is about to change).
    pub fn clear_cursor(&self) -> anyhow::Result<()> {
        self.db.execute("DELETE FROM cursors", [])?;
        Ok(())
    }

    /// Records a temporary download file before it is made (committed at
    /// once: a killed run's leftover is then known to be this client's,
    /// and only such a file is ever removed as one).
    pub fn claim_partial(&self, path: &Path) -> std::io::Result<()> {
        let text = path.to_str().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a UTF-8 path")
        })?;
        self.db
            .execute("INSERT OR IGNORE INTO partials (path) VALUES (?1)", [text])
            .map_err(std::io::Error::other)?;
        Ok(())
    }

    /// The temporary download files this client made and has not seen
    /// gone yet.
    pub fn partials(&self) -> anyhow::Result<BTreeSet<PathBuf>> {
        let mut q = self.db.prepare_cached("SELECT path FROM partials")?;
        let rows = q.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows
            .map(|r| r.map(PathBuf::from))
            .collect::<Result<_, _>>()?)
    }

    /// Forgets the recorded temporary files no longer on disk.
    pub fn forget_gone_partials(&self) -> anyhow::Result<()> {
        for p in self.partials()? {
            if std::fs::symlink_metadata(&p).is_err() {
                let text = p.to_str().expect("recorded as UTF-8");
                self.db
                    .execute("DELETE FROM partials WHERE path = ?1", [text])?;
            }
        }
        Ok(())
    }
}

/// A chunk as stored: its 32-byte id, then its size (u32, little-endian).
const CHUNK_BYTES: usize = 36;

fn encode_chunks(chunks: &[PlannedChunk]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * CHUNK_BYTES);
    for c in chunks {
        match blake3::Hash::from_hex(&c.id) {
            Ok(id) => out.extend_from_slice(id.as_bytes()),
            // Not an id this client makes: the list is not kept.
            Err(_) => return Vec::new(),
        }
        out.extend_from_slice(&c.size.to_le_bytes());
    }
    out
}

fn decode_chunks(raw: &[u8]) -> anyhow::Result<Vec<PlannedChunk>> {
    anyhow::ensure!(
        raw.len().is_multiple_of(CHUNK_BYTES),
        "a chunk list is cut short"
    );
    let mut offset = 0;
    Ok(raw
        .chunks_exact(CHUNK_BYTES)
        .map(|c| {
            let id: [u8; 32] = c[..32].try_into().expect("32 bytes");
            let size = u32::from_le_bytes(c[32..].try_into().expect("4 bytes"));
            let chunk = PlannedChunk {
                id: blake3::Hash::from_bytes(id).to_hex().to_string(),
                offset,
                size,
            };
            offset += u64::from(size);
            chunk
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synced(version: u64, chunks: Vec<PlannedChunk>) -> Synced {
        Synced {
            version,
            hash: format!("h{version}"),
            size: chunks.iter().map(|c| u64::from(c.size)).sum(),
            mtime: 7,
            chunks,
        }
    }

    #[test]
    fn what_is_saved_is_read_back_and_what_is_removed_stays_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let chunks = vec![
            PlannedChunk {
                id: blake3::hash(b"a").to_hex().to_string(),
                offset: 0,
                size: 300_000,
            },
            PlannedChunk {
                id: blake3::hash(b"b").to_hex().to_string(),
                offset: 300_000,
                size: 5,
            },
        ];
        {
            let mut s = Store::open(&path).unwrap();
            s.insert("a/x.txt".into(), synced(3, chunks.clone()));
            s.insert("gone.txt".into(), synced(1, vec![]));
            s.save().unwrap();
            s.remove("gone.txt");
            s.insert("late.txt".into(), synced(2, vec![]));
            // Not saved: a killed run loses only this.
            s.set_cursor("old", "c1").unwrap();
            s.set_cursor("feed", "c42").unwrap();
        }
        {
            let mut s = Store::open(&path).unwrap();
            assert_eq!(s.get("a/x.txt"), Some(&synced(3, chunks)));
            assert!(s.get("gone.txt").is_some(), "the remove was never saved");
            assert!(s.get("late.txt").is_none());
            assert_eq!(s.cursor("feed").unwrap().as_deref(), Some("c42"));
            assert_eq!(s.cursor("old").unwrap(), None, "one cursor at a time");
            s.clear_cursor().unwrap();
            assert_eq!(s.cursor("feed").unwrap(), None);
            s.remove("gone.txt");
            s.save().unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.files().keys().collect::<Vec<_>>(),
            vec!["a/x.txt"],
            "the saved remove holds"
        );
    }

    #[test]
    fn a_cut_chunk_list_is_reported_as_damage() {
        assert!(decode_chunks(&[0u8; 35]).is_err());
        assert_eq!(decode_chunks(&[]).unwrap(), vec![]);
    }
}
