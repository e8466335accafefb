//! Queries on chunked upload sessions.

use super::files::{insert_version, NewVersion};
use super::{ChunkRef, MetaError, OwnerId, VersionRow};
use rusqlite::{params, Connection, OptionalExtension};

/// An open upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub owner: OwnerId,
    pub path: String,
    pub size: u64,
    pub hash: String,
    pub expires_at: String,
    pub chunks: Vec<ChunkRef>,
}

/// Creates a session.
pub fn create(c: &mut Connection, s: &SessionRow, now: &str) -> Result<(), MetaError> {
    let tx = c.transaction()?;
    tx.execute(
        "INSERT INTO upload_sessions (id, owner_id, path, size, hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            s.id,
            s.owner,
            s.path,
            s.size as i64,
            s.hash,
            now,
            s.expires_at
        ],
    )?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO session_chunks (session_id, idx, chunk_id, size) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (i, ch) in s.chunks.iter().enumerate() {
            stmt.execute(params![s.id, i as i64, ch.id, ch.size])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The session `id` of `owner`, if it exists and has not expired at `now`.
pub fn get(
    c: &Connection,
    id: &str,
    owner: OwnerId,
    now: &str,
) -> Result<Option<SessionRow>, MetaError> {
    let head = c
        .query_row(
            "SELECT path, size, hash, expires_at FROM upload_sessions
             WHERE id = ?1 AND owner_id = ?2 AND expires_at > ?3",
            params![id, owner, now],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((path, size, hash, expires_at)) = head else {
        return Ok(None);
    };
    let mut stmt = c.prepare_cached(
        "SELECT chunk_id, size FROM session_chunks WHERE session_id = ?1 ORDER BY idx",
    )?;
    let chunks = stmt
        .query_map([id], |r| {
            Ok(ChunkRef {
                id: r.get(0)?,
                size: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(SessionRow {
        id: id.to_string(),
        owner,
        path,
        size: size as u64,
        hash,
        expires_at,
        chunks,
    }))
}

/// Where a chunk stands in an upload session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkSlot {
    /// The session is not open (unknown, expired, or another owner's).
    NoSession,
    /// The session is open but does not list this chunk.
    NotListed,
    /// The session lists this chunk with this size.
    Declared(u32),
}

/// Whether `chunk` belongs to the open session `id` of `owner`, and its
/// declared size. Two index lookups, whatever the session's length.
pub fn chunk_slot(
    c: &Connection,
    id: &str,
    owner: OwnerId,
    chunk: &str,
    now: &str,
) -> Result<ChunkSlot, MetaError> {
    let open = c
        .prepare_cached(
            "SELECT 1 FROM upload_sessions WHERE id = ?1 AND owner_id = ?2 AND expires_at > ?3",
        )?
        .exists(params![id, owner, now])?;
    if !open {
        return Ok(ChunkSlot::NoSession);
    }
    let size: Option<u32> = c
        .prepare_cached(
            "SELECT size FROM session_chunks WHERE session_id = ?1 AND chunk_id = ?2 LIMIT 1",
        )?
        .query_row(params![id, chunk], |r| r.get(0))
        .optional()?;
    Ok(size.map_or(ChunkSlot::NotListed, ChunkSlot::Declared))
}

/// How many distinct chunks of session `id` the cluster does not hold yet.
pub fn remaining(c: &Connection, id: &str) -> Result<u64, MetaError> {
    let n: i64 = c
        .prepare_cached(
            "SELECT COUNT(DISTINCT s.chunk_id) FROM session_chunks s
             WHERE s.session_id = ?1 AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = s.chunk_id)",
        )?
        .query_row([id], |r| r.get(0))?;
    Ok(n as u64)
}

/// Commits the session as a new version, in one transaction, and marks it
/// committed. Finishing a committed session again returns the version it
/// committed, so a client whose answer was lost can safely retry.
pub fn finish(
    c: &mut Connection,
    s: &SessionRow,
    uploader: &str,
    now: &str,
) -> Result<VersionRow, MetaError> {
    let tx = c.transaction()?;
    let committed: Option<i64> = tx
        .query_row(
            "SELECT committed_version FROM upload_sessions WHERE id = ?1",
            [&s.id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    if let Some(number) = committed {
        // Only the very version it committed: retention may have removed
        // it, and a purged file's path may hold other content by now.
        // Committing again would put stale content on top.
        return match super::files::version(&tx, s.owner, &s.path, Some(number as u64))? {
            Some(row) if row.hash == s.hash && row.size == s.size => Ok(row),
            _ => Err(MetaError::CommittedVersionGone {
                session: s.id.clone(),
                path: s.path.clone(),
                version: number as u64,
            }),
        };
    }
    let row = insert_version(
        &tx,
        &NewVersion {
            owner: s.owner,
            path: &s.path,
            size: s.size,
            hash: &s.hash,
            chunks: &s.chunks,
            uploader,
            restored_from: None,
            now,
        },
    )?;
    tx.execute(
        "UPDATE upload_sessions SET committed_version = ?2 WHERE id = ?1",
        params![s.id, row.number as i64],
    )?;
    tx.commit()?;
    Ok(row)
}

/// Deletes sessions that expired before `now`; returns how many.
pub fn delete_expired(c: &Connection, now: &str) -> Result<usize, MetaError> {
    Ok(c.execute("DELETE FROM upload_sessions WHERE expires_at <= ?1", [now])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{chunks, Meta, DEFAULT_OWNER};

    fn chunk(ch: char, size: u32) -> ChunkRef {
        ChunkRef {
            id: ch.to_string().repeat(64),
            size,
        }
    }

    #[test]
    fn slots_and_remaining_follow_the_chunks_table() {
        let meta = Meta::open_in_memory().unwrap();
        let mut c = meta.conn.lock().unwrap();
        let s = SessionRow {
            id: "s1".into(),
            owner: DEFAULT_OWNER,
            path: "f".into(),
            size: 7,
            hash: "h".into(),
            expires_at: "2026-12-01T00:00:00.000Z".into(),
            // `a` twice: a repeated chunk is missing once.
            chunks: vec![chunk('a', 3), chunk('b', 1), chunk('a', 3)],
        };
        let now = "2026-11-01T00:00:00.000Z";
        create(&mut c, &s, now).unwrap();
        let a = "a".repeat(64);
        assert_eq!(
            chunk_slot(&c, "s1", DEFAULT_OWNER, &a, now).unwrap(),
            ChunkSlot::Declared(3)
        );
        assert_eq!(
            chunk_slot(&c, "s1", DEFAULT_OWNER, &"c".repeat(64), now).unwrap(),
            ChunkSlot::NotListed
        );
        assert_eq!(
            chunk_slot(&c, "s1", 2, &a, now).unwrap(),
            ChunkSlot::NoSession
        );
        let later = "2026-12-02T00:00:00.000Z";
        assert_eq!(
            chunk_slot(&c, "s1", DEFAULT_OWNER, &a, later).unwrap(),
            ChunkSlot::NoSession
        );
        assert_eq!(remaining(&c, "s1").unwrap(), 2);
        chunks::record_chunk(&c, &a, 3, &[], now).unwrap();
        assert_eq!(remaining(&c, "s1").unwrap(), 1);
        chunks::record_chunk(&c, &"b".repeat(64), 1, &[], now).unwrap();
        assert_eq!(remaining(&c, "s1").unwrap(), 0);
    }

    fn session(id: &str, hash: &str, chunks: Vec<ChunkRef>) -> SessionRow {
        SessionRow {
            id: id.into(),
            owner: DEFAULT_OWNER,
            path: "f".into(),
            size: chunks.iter().map(|c| c.size as u64).sum(),
            hash: hash.into(),
            expires_at: "2026-12-01T00:00:00.000Z".into(),
            chunks,
        }
    }

    #[test]
    fn finishing_again_returns_the_committed_version_and_never_recommits() {
        let meta = Meta::open_in_memory().unwrap();
        let mut c = meta.conn.lock().unwrap();
        let now = "2026-11-01T00:00:00.000Z";
        chunks::record_chunk(&c, &"a".repeat(64), 3, &[], now).unwrap();
        let old = session("s1", &"1".repeat(64), vec![chunk('a', 3)]);
        create(&mut c, &old, now).unwrap();
        let first = finish(&mut c, &old, "u", now).unwrap();
        assert_eq!(finish(&mut c, &old, "u", now).unwrap(), first);

        // A newer upload, then retention keeping one version removes the
        // first: finishing the old session again must not bring it back.
        let newer = session("s2", &"2".repeat(64), vec![chunk('a', 3)]);
        create(&mut c, &newer, now).unwrap();
        assert_eq!(finish(&mut c, &newer, "u", now).unwrap().number, 2);
        let keep_one = crate::meta::gc::Retention {
            keep_last: Some(1),
            ..Default::default()
        };
        assert_eq!(
            crate::meta::gc::apply_retention(&mut c, &keep_one).unwrap(),
            1
        );
        let err = finish(&mut c, &old, "u", now).unwrap_err();
        assert!(
            matches!(err, MetaError::CommittedVersionGone { version: 1, .. }),
            "{err}"
        );
        let versions = crate::meta::files::list_versions(&c, DEFAULT_OWNER, "f").unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0].hash, "2".repeat(64));
    }

    #[test]
    fn a_stored_chunk_listed_with_another_size_is_refused() {
        let meta = Meta::open_in_memory().unwrap();
        let mut c = meta.conn.lock().unwrap();
        let now = "2026-11-01T00:00:00.000Z";
        chunks::record_chunk(&c, &"a".repeat(64), 3_000_000, &[], now).unwrap();
        let lie = vec![chunk('a', 10), chunk('b', 1)];
        let err = chunks::unknown(&c, &lie).unwrap_err();
        assert!(
            matches!(
                err,
                MetaError::ChunkSize {
                    stored: 3_000_000,
                    declared: 10,
                    ..
                }
            ),
            "{err}"
        );
        // Committing such a list fails too, whatever path it comes by.
        let s = session("s1", &"1".repeat(64), vec![chunk('a', 10)]);
        create(&mut c, &s, now).unwrap();
        assert!(matches!(
            finish(&mut c, &s, "u", now).unwrap_err(),
            MetaError::ChunkSize { .. }
        ));
        assert!(crate::meta::files::list_versions(&c, DEFAULT_OWNER, "f")
            .unwrap()
            .is_empty());
        assert_eq!(
            chunks::unknown(&c, &[chunk('a', 3_000_000), chunk('b', 1)]).unwrap(),
            ["b".repeat(64)]
        );
    }
}
