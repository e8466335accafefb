//! Queries for garbage collection: version retention, purging deleted
//! files, and finding chunks nothing references any more.

use super::MetaError;
use rusqlite::{params, Connection};
use std::collections::HashSet;

/// What versions to keep. The newest version of a live file is always kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many versions per file (`None`: all).
    pub keep_last: Option<u32>,
    /// Keep versions created after this RFC 3339 time even beyond
    /// `keep_last` (`None`: no age rule).
    pub keep_newer_than: Option<String>,
    /// Files deleted before this RFC 3339 time are purged with all their
    /// versions (`None`: deleted files are kept).
    pub purge_deleted_before: Option<String>,
}

/// Applies `retention`; returns how many versions were removed.
pub fn apply_retention(c: &mut Connection, retention: &Retention) -> Result<usize, MetaError> {
    let tx = c.transaction()?;
    let mut removed = 0;
    if let Some(cutoff) = &retention.purge_deleted_before {
        tx.execute(
            "DELETE FROM version_chunks WHERE file_id IN (SELECT id FROM files WHERE deleted_at < ?1)",
            [cutoff],
        )?;
        removed += tx.execute(
            "DELETE FROM versions WHERE file_id IN (SELECT id FROM files WHERE deleted_at < ?1)",
            [cutoff],
        )?;
        tx.execute("DELETE FROM files WHERE deleted_at < ?1", [cutoff])?;
    }
    if let Some(keep) = retention.keep_last {
        // Versions ranked past `keep` (newest first), never the newest,
        // and not protected by the age rule.
        let doomed = "SELECT file_id, number FROM (
                SELECT file_id, number, created_at,
                       ROW_NUMBER() OVER (PARTITION BY file_id ORDER BY number DESC) AS rank
                FROM versions)
             WHERE rank > MAX(?1, 1) AND (?2 IS NULL OR created_at < ?2)";
        tx.execute(
            &format!("DELETE FROM version_chunks WHERE (file_id, number) IN ({doomed})"),
            params![keep, retention.keep_newer_than],
        )?;
        removed += tx.execute(
            &format!("DELETE FROM versions WHERE (file_id, number) IN ({doomed})"),
            params![keep, retention.keep_newer_than],
        )?;
    }
    tx.commit()?;
    Ok(removed)
}

/// Chunks created before `cutoff` that no version and no open upload
/// session references, at most `limit`.
pub fn unreferenced_chunks(
    c: &Connection,
    cutoff: &str,
    limit: u32,
) -> Result<Vec<String>, MetaError> {
    let mut stmt = c.prepare_cached(
        "SELECT id FROM chunks c WHERE created_at < ?1
           AND NOT EXISTS (SELECT 1 FROM version_chunks vc WHERE vc.chunk_id = c.id)
           AND NOT EXISTS (SELECT 1 FROM session_chunks sc WHERE sc.chunk_id = c.id)
         LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![cutoff, limit], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Forgets chunk `id` if it is still unreferenced and older than `cutoff`,
/// in one transaction; returns whether it did. After this, an upload that
/// names the chunk must store it again (its commit checks, so a race with
/// gc fails cleanly instead of committing a missing chunk).
pub fn forget_chunk_if_unreferenced(
    c: &mut Connection,
    id: &str,
    cutoff: &str,
) -> Result<bool, MetaError> {
    let tx = c.transaction()?;
    let n = tx.execute(
        "DELETE FROM chunks WHERE id = ?1 AND created_at < ?2
           AND NOT EXISTS (SELECT 1 FROM version_chunks vc WHERE vc.chunk_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM session_chunks sc WHERE sc.chunk_id = ?1)",
        params![id, cutoff],
    )?;
    if n > 0 {
        tx.execute("DELETE FROM replicas WHERE chunk_id = ?1", [id])?;
    }
    tx.commit()?;
    Ok(n > 0)
}

/// Notes objects on `node` that no chunk row names; returns those first
/// seen before `cutoff` (safe to delete), and forgets notes about objects
/// that are no longer orphans.
pub fn note_orphans(
    c: &mut Connection,
    node: &str,
    found: &[String],
    now: &str,
    cutoff: &str,
) -> Result<Vec<String>, MetaError> {
    let tx = c.transaction()?;
    let mut ripe = Vec::new();
    {
        let mut note = tx.prepare_cached(
            "INSERT INTO gc_orphans (node, chunk_id, first_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT (node, chunk_id) DO UPDATE SET first_seen = first_seen RETURNING first_seen",
        )?;
        for id in found {
            if super::chunks::is_stored(&tx, id)? {
                continue;
            }
            let first_seen: String = note.query_row(params![node, id, now], |r| r.get(0))?;
            if first_seen.as_str() < cutoff {
                ripe.push(id.clone());
            }
        }
    }
    tx.execute(
        "DELETE FROM gc_orphans WHERE node = ?1 AND chunk_id IN (SELECT id FROM chunks)",
        [node],
    )?;
    // Notes about objects that are gone: should one appear again, its
    // grace period starts afresh.
    let found: HashSet<&str> = found.iter().map(String::as_str).collect();
    let noted: Vec<String> = tx
        .prepare_cached("SELECT chunk_id FROM gc_orphans WHERE node = ?1")?
        .query_map([node], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in noted.iter().filter(|id| !found.contains(id.as_str())) {
        forget_orphan(&tx, node, id)?;
    }
    tx.commit()?;
    Ok(ripe)
}

/// Forgets the note about an orphan that was deleted.
pub fn forget_orphan(c: &Connection, node: &str, id: &str) -> Result<(), MetaError> {
    c.execute(
        "DELETE FROM gc_orphans WHERE node = ?1 AND chunk_id = ?2",
        params![node, id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::files::{commit_version, delete_file, list_versions, NewVersion};
    use super::super::{chunks, Meta, DEFAULT_OWNER};
    use super::*;

    fn setup(c: &mut Connection) {
        chunks::record_chunk(c, &"a".repeat(64), 1, &[], "2026-01-01T00:00:00.000Z").unwrap();
        chunks::record_chunk(c, &"b".repeat(64), 1, &[], "2026-01-01T00:00:00.000Z").unwrap();
        for (path, chunk, at) in [
            ("f", "a", "2026-01-01T00:00:00.000Z"),
            ("f", "a", "2026-01-02T00:00:00.000Z"),
            ("f", "a", "2026-01-03T00:00:00.000Z"),
            ("g", "b", "2026-01-01T00:00:00.000Z"),
        ] {
            let refs = [super::super::ChunkRef {
                id: chunk.repeat(64),
                size: 1,
            }];
            commit_version(
                c,
                &NewVersion {
                    owner: DEFAULT_OWNER,
                    path,
                    size: 1,
                    hash: "h",
                    chunks: &refs,
                    uploader: "t",
                    restored_from: None,
                    now: at,
                },
            )
            .unwrap();
        }
    }

    #[test]
    fn keep_last_trims_old_versions_but_the_age_rule_protects_young_ones() {
        let meta = Meta::open_in_memory().unwrap();
        let mut c = meta.conn.lock().unwrap();
        setup(&mut c);
        let keep_young = Retention {
            keep_last: Some(1),
            keep_newer_than: Some("2026-01-01T12:00:00.000Z".into()),
            purge_deleted_before: None,
        };
        assert_eq!(apply_retention(&mut c, &keep_young).unwrap(), 1);
        assert_eq!(list_versions(&c, DEFAULT_OWNER, "f").unwrap().len(), 2);
        let keep_one = Retention {
            keep_last: Some(1),
            ..Default::default()
        };
        assert_eq!(apply_retention(&mut c, &keep_one).unwrap(), 1);
        let left = list_versions(&c, DEFAULT_OWNER, "f").unwrap();
        assert_eq!(left.iter().map(|v| v.number).collect::<Vec<_>>(), [3]);
        // keep_last 0 still keeps the newest version.
        let zero = Retention {
            keep_last: Some(0),
            ..Default::default()
        };
        apply_retention(&mut c, &zero).unwrap();
        assert_eq!(list_versions(&c, DEFAULT_OWNER, "f").unwrap().len(), 1);
    }

    #[test]
    fn deleted_files_are_purged_and_their_chunks_become_collectable() {
        let meta = Meta::open_in_memory().unwrap();
        let mut c = meta.conn.lock().unwrap();
        setup(&mut c);
        delete_file(&c, DEFAULT_OWNER, "g", "2026-02-01T00:00:00.000Z").unwrap();
        let late = "2026-03-01T00:00:00.000Z";
        assert!(unreferenced_chunks(&c, late, 10).unwrap().is_empty());
        let purge = Retention {
            purge_deleted_before: Some(late.into()),
            ..Default::default()
        };
        assert_eq!(apply_retention(&mut c, &purge).unwrap(), 1);
        assert!(list_versions(&c, DEFAULT_OWNER, "g").unwrap().is_empty());
        assert_eq!(
            unreferenced_chunks(&c, late, 10).unwrap(),
            vec!["b".repeat(64)]
        );
        // Too young for the cutoff: kept.
        assert!(
            !forget_chunk_if_unreferenced(&mut c, &"b".repeat(64), "2025-01-01T00:00:00.000Z")
                .unwrap()
        );
        assert!(forget_chunk_if_unreferenced(&mut c, &"b".repeat(64), late).unwrap());
        // A referenced chunk is never forgotten.
        assert!(!forget_chunk_if_unreferenced(&mut c, &"a".repeat(64), late).unwrap());
    }

    #[test]
    fn orphans_ripen_only_after_being_seen_before_the_cutoff() {
        let meta = Meta::open_in_memory().unwrap();
        let mut c = meta.conn.lock().unwrap();
        setup(&mut c);
        let found = vec!["a".repeat(64), "c".repeat(64)];
        let first = note_orphans(
            &mut c,
            "n1",
            &found,
            "2026-01-05T00:00:00.000Z",
            "2026-01-04T00:00:00.000Z",
        );
        assert!(first.unwrap().is_empty(), "a fresh orphan is not ripe");
        let later = note_orphans(
            &mut c,
            "n1",
            &found,
            "2026-01-09T00:00:00.000Z",
            "2026-01-06T00:00:00.000Z",
        );
        assert_eq!(
            later.unwrap(),
            vec!["c".repeat(64)],
            "a known chunk is never an orphan"
        );

        // `c` disappears from the node, then comes back: it is a fresh
        // orphan again, not ripe on sight.
        note_orphans(
            &mut c,
            "n1",
            &[],
            "2026-01-10T00:00:00.000Z",
            "2026-01-07T00:00:00.000Z",
        )
        .unwrap();
        let back = note_orphans(
            &mut c,
            "n1",
            &found,
            "2026-01-11T00:00:00.000Z",
            "2026-01-08T00:00:00.000Z",
        );
        assert!(back.unwrap().is_empty(), "a returning orphan starts afresh");
    }
}
