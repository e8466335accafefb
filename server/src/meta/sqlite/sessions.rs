//! Queries on chunked upload sessions (and the sessions that hold a
//! streamed upload's chunks).

use super::files::insert_version;
use crate::meta::{
    random_id, ChunkRef, ChunkSlot, MetaError, NewSession, NewVersion, OwnerId, SessionRow,
    VersionRow,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// Creates a session; returns it and the chunks it must send. Checked
/// first: a stored chunk of another size rejects the plan before any
/// session exists. Stored chunks are touched, so gc spares them.
pub fn create(
    tx: &Transaction,
    s: &NewSession,
    expires_at: &str,
    now: &str,
) -> Result<(SessionRow, Vec<String>), MetaError> {
    check_open(tx, s.owner, s.max_open, now)?;
    super::files::check_path_free(tx, s.owner, &s.path)?;
    super::files::check_quota(tx, s.owner, s.size, None, now)?;
    let missing = super::chunks::unknown_touching(tx, s.owner, &s.chunks, Some(now))?;
    let id = random_id();
    tx.execute(
        "INSERT INTO upload_sessions
             (id, owner_id, path, size, hash, created_at, expires_at, missing)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            s.owner,
            s.path,
            s.size as i64,
            s.hash,
            now,
            expires_at,
            missing.len() as i64
        ],
    )?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO session_missing (session_id, chunk_id) VALUES (?1, ?2)",
        )?;
        for chunk in &missing {
            stmt.execute(params![id, chunk])?;
        }
    }
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO session_chunks (session_id, idx, chunk_id, size) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (i, ch) in s.chunks.iter().enumerate() {
            stmt.execute(params![id, i as i64, ch.id, ch.size])?;
        }
    }
    if s.modified.is_some() {
        tx.execute(
            "UPDATE upload_sessions SET modified_at = ?2 WHERE id = ?1",
            params![id, s.modified],
        )?;
    }
    let row = SessionRow {
        id,
        owner: s.owner,
        path: s.path.clone(),
        size: s.size,
        hash: s.hash.clone(),
        expires_at: expires_at.to_string(),
        chunks: s.chunks.clone(),
        modified: s.modified.clone(),
    };
    Ok((row, missing))
}

/// Fails with [`MetaError::Limit`] if `owner` has `max_open` uploads open
/// (sessions and streams alike).
fn check_open(c: &Connection, owner: OwnerId, max_open: u32, now: &str) -> Result<(), MetaError> {
    let open: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM upload_sessions
             WHERE owner_id = ?1 AND expires_at > ?2 AND committed_version IS NULL",
        )?
        .query_row(params![owner, now], |r| r.get(0))?;
    if open >= max_open as i64 {
        return Err(MetaError::Limit(crate::meta::sessions_message(max_open)));
    }
    Ok(())
}

/// Opens a streamed upload's session (no plan; chunks are added as they
/// are stored), if `owner` has fewer than `max_open` uploads open.
pub fn open_stream(
    tx: &Transaction,
    owner: OwnerId,
    max_open: u32,
    expires_at: &str,
    now: &str,
) -> Result<String, MetaError> {
    check_open(tx, owner, max_open, now)?;
    let id = random_id();
    tx.execute(
        "INSERT INTO upload_sessions (id, owner_id, path, size, hash, created_at, expires_at, stream)
         VALUES (?1, ?2, '', 0, '', ?3, ?4, 1)",
        params![id, owner, now, expires_at],
    )?;
    Ok(id)
}

/// Drops a session and its chunk references.
pub fn drop(tx: &Transaction, id: &str) -> Result<(), MetaError> {
    tx.execute("DELETE FROM session_chunks WHERE session_id = ?1", [id])?;
    tx.execute("DELETE FROM session_missing WHERE session_id = ?1", [id])?;
    tx.execute("DELETE FROM upload_sessions WHERE id = ?1", [id])?;
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
            "SELECT path, size, hash, expires_at, modified_at FROM upload_sessions
             WHERE id = ?1 AND owner_id = ?2 AND expires_at > ?3 AND stream = 0",
            params![id, owner, now],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((path, size, hash, expires_at, modified)) = head else {
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
        modified,
    }))
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
            "SELECT 1 FROM upload_sessions
             WHERE id = ?1 AND owner_id = ?2 AND expires_at > ?3 AND stream = 0",
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

/// Records that the owner of session `id` sent `chunk`, and returns how
/// many distinct chunks of the session are still missing for them.
pub fn chunk_sent(
    tx: &Transaction,
    id: &str,
    owner: OwnerId,
    chunk: &str,
) -> Result<u64, MetaError> {
    super::chunks::grant(tx, owner, [chunk])?;
    // What the session lacked when it opened, less what was sent since.
    let first = tx
        .prepare_cached("DELETE FROM session_missing WHERE session_id = ?1 AND chunk_id = ?2")?
        .execute(params![id, chunk])?;
    let n: Option<i64> = tx
        .prepare_cached(
            "UPDATE upload_sessions SET missing = MAX(missing - ?2, 0) WHERE id = ?1
             RETURNING missing",
        )?
        .query_row(params![id, first as i64], |r| r.get(0))
        .optional()?;
    Ok(n.unwrap_or(0) as u64)
}

/// Commits the session as a new version and marks it committed.
/// Finishing a committed session again returns the version it committed,
/// so a client whose answer was lost can safely retry.
pub fn finish(
    tx: &Transaction,
    s: &SessionRow,
    uploader: &str,
    base: Option<u64>,
    now: &str,
) -> Result<VersionRow, MetaError> {
    let committed: Option<i64> = tx
        .query_row(
            "SELECT committed_version FROM upload_sessions WHERE id = ?1",
            [&s.id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    if let Some(number) = committed {
        let number = number as u64;
        let now_there = super::files::version(tx, s.owner, &s.path, Some(number))?;
        return crate::meta::finished_again(s, number, now_there);
    }
    let mut v = NewVersion::of_session(s, uploader);
    v.base = base;
    let row = insert_version(tx, &v, None, now)?;
    tx.execute(
        "UPDATE upload_sessions SET committed_version = ?2 WHERE id = ?1",
        params![s.id, row.number as i64],
    )?;
    Ok(row)
}

/// Deletes sessions that expired before `now`; returns how many.
pub fn delete_expired(tx: &Transaction, now: &str) -> Result<u64, MetaError> {
    tx.execute(
        "DELETE FROM session_chunks WHERE session_id IN
             (SELECT id FROM upload_sessions WHERE expires_at <= ?1)",
        [now],
    )?;
    tx.execute(
        "DELETE FROM session_missing WHERE session_id IN
             (SELECT id FROM upload_sessions WHERE expires_at <= ?1)",
        [now],
    )?;
    Ok(tx.execute("DELETE FROM upload_sessions WHERE expires_at <= ?1", [now])? as u64)
}
