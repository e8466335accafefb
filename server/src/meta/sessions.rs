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
        if let Some(row) = super::files::version(&tx, s.owner, &s.path, Some(number as u64))? {
            return Ok(row);
        }
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
