//! Upload sessions and streamed uploads: opening one (within the owner's
//! limits), the chunks it lacks, finishing it once, and dropping it.

use super::tx::{list, rows, Tx};
use super::{chunks, files, limits, ms};
use crate::meta::{
    finished_again, random_id, ChunkSlot, HealthCounts, MetaError, NewSession, NewVersion, Opened,
    OwnerId, PerFile, SessionRow, VersionRow,
};
use coffer_proto::put::PutMode;
use std::time::Duration;

/// Whether `e` refuses one file of a batch (the others go on), rather
/// than failing the whole transaction.
fn refuses_one(e: &MetaError) -> bool {
    matches!(
        e,
        MetaError::Stale(_)
            | MetaError::PathConflict(_)
            | MetaError::Limit(_)
            | MetaError::MissingChunks(_)
            | MetaError::ChunkSize { .. }
            | MetaError::CommittedVersionGone { .. }
    )
}

/// `r`, unless it fails the whole batch.
fn one<T>(r: Result<T, MetaError>) -> Result<PerFile<T>, MetaError> {
    match r {
        Err(e) if !refuses_one(&e) => Err(e),
        r => Ok(r),
    }
}

/// See [`crate::meta::MetaStore::open_session`].
pub fn open(tx: &dyn Tx, s: &NewSession) -> Result<(SessionRow, Vec<String>), MetaError> {
    let quota = limits::lock_owner(tx, s.owner)?;
    limits::check_open(tx, s.owner, s.max_open)?;
    open_checked(tx, s, quota, None)
}

/// See [`crate::meta::MetaStore::open_sessions`].
pub fn open_many(tx: &dyn Tx, batch: &[NewSession]) -> Result<Vec<PerFile<Opened>>, MetaError> {
    let Some(first) = batch.first() else {
        return Ok(Vec::new());
    };
    if batch.iter().any(|s| s.owner != first.owner) {
        return Err(MetaError::Backend(
            "a batch of uploads has one owner".into(),
        ));
    }
    let quota = limits::lock_owner(tx, first.owner)?;
    limits::check_open(tx, first.owner, first.max_open)?;
    let tag = random_id();
    batch
        .iter()
        .map(|s| one(open_checked(tx, s, quota, Some(&tag))))
        .collect()
}

/// Opens one session once the owner is locked and may open one; those
/// of one `batch` count as one open upload.
fn open_checked(
    tx: &dyn Tx,
    s: &NewSession,
    quota: Option<u64>,
    batch: Option<&str>,
) -> Result<(SessionRow, Vec<String>), MetaError> {
    limits::check_path_free(tx, s.owner, &s.path)?;
    limits::check_quota(tx, s.owner, quota, s.size, None)?;
    let missing = chunks::owner_unknown(tx, s.owner, &s.chunks, true)?;
    let id = random_id();
    let expires = tx
        .query_one(
            "INSERT INTO upload_sessions
                 (id, owner_id, path, size, hash, created_at, expires_at, missing, modified_at,
                  batch_id)
             VALUES ($1, $2, $3, $4, $5, now_ms(), now_ms() + $6, $7, $8, $9)
             RETURNING expires_at",
            &[
                &id,
                &s.owner,
                &s.path,
                &s.size,
                &s.hash,
                &ms(s.ttl),
                &missing.len(),
                &s.modified,
                &batch,
            ],
        )?
        .time(0);
    if !missing.is_empty() {
        tx.execute(
            "INSERT INTO session_missing (session_id, chunk_id)
             SELECT CAST($1 AS TEXT), t.value FROM list_of($2) AS t WHERE true
             ON CONFLICT DO NOTHING",
            &[&id, &list(&missing)],
        )?;
    }
    if !s.chunks.is_empty() {
        let planned = rows(
            s.chunks
                .iter()
                .enumerate()
                .map(|(i, c)| vec![i.into(), c.id.as_str().into(), c.size.into()]),
        );
        tx.execute(
            "INSERT INTO session_chunks (session_id, idx, chunk_id, size)
             SELECT CAST($1 AS TEXT), CAST(t.value ->> 0 AS INTEGER), t.value ->> 1,
                    CAST(t.value ->> 2 AS INTEGER)
             FROM rows_of($2) AS t",
            &[&id, &planned],
        )?;
    }
    let row = SessionRow {
        id,
        owner: s.owner,
        path: s.path.clone(),
        size: s.size,
        hash: s.hash.clone(),
        expires_at: expires,
        chunks: s.chunks.clone(),
        modified: s.modified.clone(),
    };
    Ok((row, missing))
}

/// See [`crate::meta::MetaStore::session`].
pub fn get(tx: &dyn Tx, id: &str, owner: OwnerId) -> Result<Option<SessionRow>, MetaError> {
    let Some(head) = tx.query_opt(
        "SELECT path, size, hash, expires_at, modified_at FROM upload_sessions
         WHERE id = $1 AND owner_id = $2 AND expires_at > now_ms() AND stream = 0",
        &[&id, &owner],
    )?
    else {
        return Ok(None);
    };
    let chunks = tx
        .query(
            "SELECT chunk_id, size FROM session_chunks WHERE session_id = $1 ORDER BY idx",
            &[&id],
        )?
        .iter()
        .map(chunks::chunk_ref)
        .collect();
    Ok(Some(SessionRow {
        id: id.to_string(),
        owner,
        path: head.get(0),
        size: head.get(1),
        hash: head.get(2),
        expires_at: head.time(3),
        chunks,
        modified: head.get(4),
    }))
}

/// See [`crate::meta::MetaStore::chunk_slot`].
pub fn chunk_slot(
    tx: &dyn Tx,
    id: &str,
    owner: OwnerId,
    chunk: &str,
) -> Result<ChunkSlot, MetaError> {
    let open = tx
        .query_opt(
            "SELECT 1 FROM upload_sessions
             WHERE id = $1 AND owner_id = $2 AND expires_at > now_ms() AND stream = 0",
            &[&id, &owner],
        )?
        .is_some();
    if !open {
        return Ok(ChunkSlot::NoSession);
    }
    let size = tx
        .query_opt(
            "SELECT size FROM session_chunks WHERE session_id = $1 AND chunk_id = $2 LIMIT 1",
            &[&id, &chunk],
        )?
        .map(|r| r.get::<u32>(0));
    Ok(size.map_or(ChunkSlot::NotListed, ChunkSlot::Declared))
}

/// See [`crate::meta::MetaStore::chunk_slots`].
pub fn chunk_slots(
    tx: &dyn Tx,
    owner: OwnerId,
    wanted: &[(String, String)],
) -> Result<Vec<ChunkSlot>, MetaError> {
    wanted
        .iter()
        .map(|(id, chunk)| chunk_slot(tx, id, owner, chunk))
        .collect()
}

/// See [`crate::meta::MetaStore::chunks_sent`].
pub fn chunks_sent(
    tx: &dyn Tx,
    owner: OwnerId,
    sent: &[(String, String)],
) -> Result<Vec<u64>, MetaError> {
    sent.iter()
        .map(|(id, chunk)| chunk_sent(tx, id, owner, chunk))
        .collect()
}

/// See [`crate::meta::MetaStore::chunk_sent`].
pub fn chunk_sent(tx: &dyn Tx, id: &str, owner: OwnerId, chunk: &str) -> Result<u64, MetaError> {
    chunks::grant(tx, owner, &[chunk])?;
    // What the session lacked when it opened, less what was sent since.
    let first = tx.execute(
        "DELETE FROM session_missing WHERE session_id = $1 AND chunk_id = $2",
        &[&id, &chunk],
    )?;
    Ok(tx
        .query_opt(
            "UPDATE upload_sessions
             SET missing = CASE WHEN missing > $2 THEN missing - $2 ELSE 0 END
             WHERE id = $1 RETURNING missing",
            &[&id, &first],
        )?
        .map_or(0, |r| r.get::<u64>(0)))
}

/// See [`crate::meta::MetaStore::finish_session`].
pub fn finish(
    tx: &dyn Tx,
    s: &SessionRow,
    uploader: &str,
    mode: PutMode,
) -> Result<VersionRow, MetaError> {
    // Locks the session: two finishes of it commit one version.
    let committed = tx
        .query_opt(
            "SELECT committed_version FROM upload_sessions WHERE id = $1 FOR UPDATE",
            &[&s.id],
        )?
        .and_then(|r| r.get::<Option<u64>>(0));
    if let Some(number) = committed {
        let now_there = files::version(tx, s.owner, &s.path, Some(number))?;
        return finished_again(s, number, now_there);
    }
    let mut v = NewVersion::of_session(s, uploader);
    v.mode = mode;
    let row = files::insert_version(tx, &v, None)?;
    tx.execute(
        "UPDATE upload_sessions SET committed_version = $2 WHERE id = $1",
        &[&s.id, &row.number],
    )?;
    Ok(row)
}

/// See [`crate::meta::MetaStore::sessions`].
pub fn get_many(
    tx: &dyn Tx,
    ids: &[String],
    owner: OwnerId,
) -> Result<Vec<Option<SessionRow>>, MetaError> {
    ids.iter().map(|id| get(tx, id, owner)).collect()
}

/// See [`crate::meta::MetaStore::finish_sessions`].
pub fn finish_many(
    tx: &dyn Tx,
    batch: &[(SessionRow, PutMode)],
    uploader: &str,
    r: usize,
) -> Result<Vec<PerFile<(VersionRow, HealthCounts)>>, MetaError> {
    let done = batch
        .iter()
        .map(|(s, mode)| one(finish(tx, s, uploader, *mode)))
        .collect::<Result<Vec<_>, _>>()?;
    let committed: Vec<VersionRow> = done
        .iter()
        .filter_map(|d| d.as_ref().ok())
        .cloned()
        .collect();
    let mut healthy = files::with_health(tx, committed, r)?.into_iter();
    Ok(done
        .into_iter()
        .map(|d| d.map(|_| healthy.next().expect("one health per commit")))
        .collect())
}

/// See [`crate::meta::MetaStore::open_stream`].
pub fn open_stream(
    tx: &dyn Tx,
    owner: OwnerId,
    ttl: Duration,
    max_open: u32,
) -> Result<String, MetaError> {
    limits::lock_owner(tx, owner)?;
    limits::check_open(tx, owner, max_open)?;
    let id = random_id();
    tx.execute(
        "INSERT INTO upload_sessions (id, owner_id, path, size, hash, created_at, expires_at, stream)
         VALUES ($1, $2, '', 0, '', now_ms(), now_ms() + $3, 1)",
        &[&id, &owner, &ms(ttl)],
    )?;
    Ok(id)
}

/// Drops a session or stream and its references.
pub fn drop(tx: &dyn Tx, id: &str) -> Result<(), MetaError> {
    tx.execute("DELETE FROM session_chunks WHERE session_id = $1", &[&id])?;
    tx.execute("DELETE FROM session_missing WHERE session_id = $1", &[&id])?;
    tx.execute("DELETE FROM upload_sessions WHERE id = $1", &[&id])?;
    Ok(())
}

/// See [`crate::meta::MetaStore::delete_expired_sessions`].
pub fn delete_expired(tx: &dyn Tx) -> Result<u64, MetaError> {
    tx.execute(
        "DELETE FROM session_chunks WHERE session_id IN
             (SELECT id FROM upload_sessions WHERE expires_at <= now_ms())",
        &[],
    )?;
    tx.execute(
        "DELETE FROM session_missing WHERE session_id IN
             (SELECT id FROM upload_sessions WHERE expires_at <= now_ms())",
        &[],
    )?;
    tx.execute(
        "DELETE FROM upload_sessions WHERE expires_at <= now_ms()",
        &[],
    )
}
