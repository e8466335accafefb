//! The conformance suite of [`MetaStore`]: every backend must pass every
//! function here. Each checks one property and is named after it, so a
//! failure says what broke; the end-to-end suite runs each on SQLite and on
//! a real PostgreSQL. Built with the `conformance` feature.

use super::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

fn chunk(ch: char, size: u32) -> ChunkRef {
    ChunkRef {
        id: ch.to_string().repeat(64),
        size,
    }
}

/// Stores `c` as an upload of [`DEFAULT_OWNER`]'s would: hold, record,
/// and note that the owner sent it.
pub async fn store(meta: &Meta, c: &ChunkRef) {
    store_unowned(meta, c).await;
    // No session: only the note that the owner sent the chunk is made.
    meta.chunk_sent("", DEFAULT_OWNER, &c.id).await.unwrap();
}

/// Stores `c` as nobody's: hold, then record.
pub async fn store_unowned(meta: &Meta, c: &ChunkRef) {
    match meta.hold_chunk(c, None).await.unwrap() {
        ChunkHold::Stored => {}
        ChunkHold::Write(hold) => meta
            .record_chunk(c, &hold, &["n1".to_string()])
            .await
            .unwrap(),
        ChunkHold::Deleting => panic!("chunk {} is being deleted", c.id),
    }
}

/// Which of the one chunk `c` `owner` must send.
async fn unknown(meta: &Meta, owner: OwnerId, c: &ChunkRef) -> Vec<String> {
    meta.unknown_chunks(owner, std::slice::from_ref(c))
        .await
        .unwrap()
}

/// Deletes the default owner's `path`; its latest version, if it was live.
async fn delete(meta: &Meta, path: &str) -> Option<u64> {
    meta.delete_file(DEFAULT_OWNER, path, PutMode::Overwrite)
        .await
        .unwrap()
}

/// Commits `chunks` as the next version of `path`.
async fn commit(meta: &Meta, path: &str, chunks: &[ChunkRef]) -> VersionRow {
    meta.commit_version(&new_version(path, chunks))
        .await
        .unwrap()
}

fn new_version(path: &str, chunks: &[ChunkRef]) -> NewVersion {
    NewVersion {
        owner: DEFAULT_OWNER,
        path: path.to_string(),
        size: chunks.iter().map(|c| c.size as u64).sum(),
        hash: "h".repeat(64),
        chunks: chunks.to_vec(),
        uploader: "test".into(),
        stream: None,
        session: None,
        mode: PutMode::Overwrite,
        modified: None,
        checksums: None,
    }
}

fn new_session(path: &str, hash: &str, chunks: Vec<ChunkRef>) -> NewSession {
    NewSession {
        owner: DEFAULT_OWNER,
        path: path.to_string(),
        size: chunks.iter().map(|c| c.size as u64).sum(),
        hash: hash.to_string(),
        chunks,
        ttl: Duration::from_secs(3600),
        max_open: 100,
        modified: None,
    }
}

/// Lets the clock move past the stamps just written, so a grace period of
/// zero has run out for them (stamps have millisecond precision).
async fn tick() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

pub async fn versions_number_up_and_restore_appends(meta: Meta) {
    let (a, b) = (chunk('a', 3), chunk('b', 5));
    store(&meta, &a).await;
    store(&meta, &b).await;
    let v1 = commit(&meta, "x", std::slice::from_ref(&a)).await;
    let v2 = commit(&meta, "x", &[a.clone(), b.clone()]).await;
    assert_eq!((v1.number, v2.number), (1, 2));
    assert_eq!(v2.chunk_count, 2);
    let v3 = meta
        .restore_version(DEFAULT_OWNER, "x", 1, "test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((v3.number, v3.size), (3, 3));
    assert_eq!(
        meta.version_chunks(v3.file_id, 3).await.unwrap(),
        vec![a.clone()]
    );
    let all = meta
        .list_versions(DEFAULT_OWNER, "x", None, 1000, 1)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|(v, _)| v.number).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    assert!(meta
        .restore_version(DEFAULT_OWNER, "x", 9, "test")
        .await
        .unwrap()
        .is_none());
    let latest = meta
        .version(DEFAULT_OWNER, "x", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest, v3);
    assert!(latest.created_at.ends_with('Z') && latest.created_at.len() == 24);
}

pub async fn a_version_with_unstored_chunks_is_refused_whole(meta: Meta) {
    let err = meta
        .commit_version(&new_version("y", &[chunk('c', 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::MissingChunks(1)), "{err}");
    assert!(meta
        .version(DEFAULT_OWNER, "y", None)
        .await
        .unwrap()
        .is_none());
    // A chunk being written (held, not recorded) is not stored either.
    let c = chunk('d', 1);
    assert!(matches!(
        meta.hold_chunk(&c, None).await.unwrap(),
        ChunkHold::Write(_)
    ));
    let err = meta
        .commit_version(&new_version("y", &[c]))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::MissingChunks(1)), "{err}");
}

pub async fn delete_hides_from_listing_and_a_new_version_undeletes(meta: Meta) {
    for p in ["d/one", "d/two", "e"] {
        commit(&meta, p, &[]).await;
    }
    let under_d = meta
        .list_files(DEFAULT_OWNER, "d/", "", 10, 1)
        .await
        .unwrap();
    assert_eq!(under_d.len(), 2);
    assert_eq!(delete(&meta, "d/one").await, Some(1));
    assert_eq!(delete(&meta, "d/one").await, None);
    let live = meta.list_files(DEFAULT_OWNER, "", "", 10, 1).await.unwrap();
    assert_eq!(
        live.iter()
            .map(|(v, _)| v.path.as_str())
            .collect::<Vec<_>>(),
        ["d/two", "e"]
    );
    let gone = meta
        .version(DEFAULT_OWNER, "d/one", None)
        .await
        .unwrap()
        .unwrap();
    assert!(gone.deleted);
    meta.restore_version(DEFAULT_OWNER, "d/one", 1, "t")
        .await
        .unwrap();
    assert_eq!(
        meta.list_files(DEFAULT_OWNER, "", "", 10, 1)
            .await
            .unwrap()
            .len(),
        3
    );
}

pub async fn listing_pages_in_byte_order_with_health(meta: Meta) {
    let a = chunk('a', 3);
    store(&meta, &a).await;
    // Byte order: upper case before lower case, 'Z' < 'a' < 'é'.
    for p in ["b", "Z", "a.txt", "é", "a/b"] {
        commit(&meta, p, std::slice::from_ref(&a)).await;
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = meta
            .list_files(DEFAULT_OWNER, "", &after, 2, 1)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        for (v, h) in &page {
            assert_eq!(h.chunks, 1, "{}", v.path);
            assert_eq!(h.fully_replicated, 1, "recorded on one node, R = 1");
            seen.push(v.path.clone());
        }
        after = seen.last().unwrap().clone();
    }
    assert_eq!(seen, ["Z", "a.txt", "a/b", "b", "é"]);
    // Against R = 2 the one copy is too few.
    let page = meta.list_files(DEFAULT_OWNER, "", "", 10, 2).await.unwrap();
    assert!(page.iter().all(|(_, h)| h.under_replicated == 1));
}

pub async fn sessions_report_missing_chunks_and_slots(meta: Meta) {
    let (a, b) = (chunk('a', 3), chunk('b', 1));
    // `a` twice: a repeated chunk is missing once.
    let (s, missing) = meta
        .open_session(&new_session(
            "f",
            &"1".repeat(64),
            vec![a.clone(), b.clone(), a.clone()],
        ))
        .await
        .unwrap();
    assert_eq!(missing, vec![a.id.clone(), b.id.clone()]);
    assert_eq!(
        meta.chunk_slot(&s.id, DEFAULT_OWNER, &a.id).await.unwrap(),
        ChunkSlot::Declared(3)
    );
    assert_eq!(
        meta.chunk_slot(&s.id, DEFAULT_OWNER, &"c".repeat(64))
            .await
            .unwrap(),
        ChunkSlot::NotListed
    );
    assert_eq!(
        meta.chunk_slot(&s.id, 2, &a.id).await.unwrap(),
        ChunkSlot::NoSession,
        "another owner's session"
    );
    assert!(meta.session(&s.id, 2).await.unwrap().is_none());
    assert_eq!(meta.chunk_sent(&s.id, DEFAULT_OWNER, "").await.unwrap(), 2);
    let err = meta
        .finish_session(&s, "u", PutMode::Overwrite)
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::MissingChunks(2)), "{err}");
    store(&meta, &a).await;
    assert_eq!(
        meta.chunk_sent(&s.id, DEFAULT_OWNER, &a.id).await.unwrap(),
        1
    );
    store(&meta, &b).await;
    assert_eq!(
        meta.chunk_sent(&s.id, DEFAULT_OWNER, &b.id).await.unwrap(),
        0
    );
    let again = meta.session(&s.id, DEFAULT_OWNER).await.unwrap().unwrap();
    assert_eq!(again, s);
    let v = meta
        .finish_session(&s, "u", PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!((v.number, v.size, v.chunk_count), (1, 7, 3));
}

pub async fn finishing_again_returns_the_committed_version_and_never_recommits(meta: Meta) {
    let a = chunk('a', 3);
    store(&meta, &a).await;
    let (old, _) = meta
        .open_session(&new_session("f", &"1".repeat(64), vec![a.clone()]))
        .await
        .unwrap();
    let first = meta
        .finish_session(&old, "u", PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(
        meta.finish_session(&old, "u", PutMode::Overwrite)
            .await
            .unwrap(),
        first
    );
    // A newer upload, then retention keeping one version removes the
    // first: finishing the old session again must not bring it back.
    let (newer, _) = meta
        .open_session(&new_session("f", &"2".repeat(64), vec![a.clone()]))
        .await
        .unwrap();
    assert_eq!(
        meta.finish_session(&newer, "u", PutMode::Overwrite)
            .await
            .unwrap()
            .number,
        2
    );
    let keep_one = Retention {
        keep_last: Some(1),
        ..Default::default()
    };
    assert_eq!(meta.apply_retention(&keep_one).await.unwrap(), 1);
    let err = meta
        .finish_session(&old, "u", PutMode::Overwrite)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetaError::CommittedVersionGone { version: 1, .. }),
        "{err}"
    );
    let versions = meta
        .list_versions(DEFAULT_OWNER, "f", None, 1000, 1)
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].0.hash, "2".repeat(64));
}

pub async fn a_stored_chunk_listed_with_another_size_is_refused(meta: Meta) {
    let a = chunk('a', 3_000_000);
    store(&meta, &a).await;
    let lie = vec![chunk('a', 10), chunk('b', 1)];
    let err = meta.unknown_chunks(DEFAULT_OWNER, &lie).await.unwrap_err();
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
    let err = meta
        .open_session(&new_session("f", &"1".repeat(64), lie.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::ChunkSize { .. }), "{err}");
    let err = meta
        .commit_version(&new_version("f", &lie[..1]))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::ChunkSize { .. }), "{err}");
    assert!(meta
        .list_versions(DEFAULT_OWNER, "f", None, 1000, 1)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        meta.unknown_chunks(DEFAULT_OWNER, &[a.clone(), chunk('b', 1)])
            .await
            .unwrap(),
        ["b".repeat(64)]
    );
}

pub async fn keep_last_trims_old_versions_but_the_age_rule_protects_young_ones(meta: Meta) {
    let a = chunk('a', 1);
    store(&meta, &a).await;
    for _ in 0..3 {
        commit(&meta, "f", std::slice::from_ref(&a)).await;
    }
    let keep_young = Retention {
        keep_last: Some(1),
        keep_younger_than: Some(Duration::from_secs(3600)),
        purge_deleted_after: None,
    };
    assert_eq!(meta.apply_retention(&keep_young).await.unwrap(), 0);
    let keep_two = Retention {
        keep_last: Some(2),
        ..Default::default()
    };
    assert_eq!(meta.apply_retention(&keep_two).await.unwrap(), 1);
    // keep_last 0 still keeps the newest version.
    let zero = Retention {
        keep_last: Some(0),
        ..Default::default()
    };
    assert_eq!(meta.apply_retention(&zero).await.unwrap(), 1);
    let left = meta
        .list_versions(DEFAULT_OWNER, "f", None, 1000, 1)
        .await
        .unwrap();
    assert_eq!(left.iter().map(|(v, _)| v.number).collect::<Vec<_>>(), [3]);
}

pub async fn deleted_files_are_purged_and_their_chunks_become_collectable(meta: Meta) {
    let (a, b) = (chunk('a', 1), chunk('b', 1));
    store(&meta, &a).await;
    store(&meta, &b).await;
    commit(&meta, "f", std::slice::from_ref(&a)).await;
    commit(&meta, "g", std::slice::from_ref(&b)).await;
    delete(&meta, "g").await;
    tick().await;
    assert!(
        meta.claim_unreferenced(Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty(),
        "a deleted file's versions still reference its chunks"
    );
    let purge = Retention {
        purge_deleted_after: Some(Duration::ZERO),
        ..Default::default()
    };
    assert_eq!(meta.apply_retention(&purge).await.unwrap(), 1);
    assert!(meta
        .version(DEFAULT_OWNER, "g", None)
        .await
        .unwrap()
        .is_none());
    // Too young for an hour's grace: kept.
    assert!(meta
        .claim_unreferenced(Duration::from_secs(3600), 10)
        .await
        .unwrap()
        .is_empty());
    let claimed = meta.claim_unreferenced(Duration::ZERO, 10).await.unwrap();
    assert_eq!(claimed, vec![b.id.clone()], "only the purged file's chunk");
    // Claimed: no longer stored for anyone, and uploads of it must wait.
    assert_eq!(unknown(&meta, DEFAULT_OWNER, &b).await, vec![b.id.clone()]);
    assert_eq!(
        meta.hold_chunk(&b, None).await.unwrap(),
        ChunkHold::Deleting
    );
    meta.forget_chunk(&b.id).await.unwrap();
    assert!(matches!(
        meta.hold_chunk(&b, None).await.unwrap(),
        ChunkHold::Write(_)
    ));
}

pub async fn a_hold_lost_to_gc_refuses_the_record(meta: Meta) {
    let a = chunk('a', 1);
    let ChunkHold::Write(hold) = meta.hold_chunk(&a, None).await.unwrap() else {
        panic!("a new chunk must be written");
    };
    // A second writer of the same chunk shares the hold.
    assert_eq!(
        meta.hold_chunk(&a, None).await.unwrap(),
        ChunkHold::Write(hold.clone())
    );
    // A pending hold is not collected within its floor, whatever the grace.
    tick().await;
    assert!(meta
        .claim_unreferenced(Duration::ZERO, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(!meta.claim_orphan(&a.id).await.unwrap(), "held, not orphan");
    // A record under another hold is refused: the writer must start over.
    let err = meta
        .record_chunk(&a, "not-the-hold", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::ChunkDeleting(_)), "{err}");
    meta.record_chunk(&a, &hold, &["n1".into()]).await.unwrap();
    assert_eq!(meta.hold_chunk(&a, None).await.unwrap(), ChunkHold::Stored);
    // Recording again (a second writer finishing) is harmless.
    meta.record_chunk(&a, &hold, &["n2".into()]).await.unwrap();
}

pub async fn orphans_ripen_only_on_a_later_pass(meta: Meta) {
    let a = chunk('a', 1);
    store(&meta, &a).await;
    let found = vec![a.id.clone(), "c".repeat(64)];
    let first = meta
        .note_orphans("n1", &found, Duration::ZERO)
        .await
        .unwrap();
    assert!(first.is_empty(), "a fresh orphan is not ripe: {first:?}");
    tick().await;
    let later = meta
        .note_orphans("n1", &found, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(later, vec!["c".repeat(64)], "a stored chunk is no orphan");
    // Gone from the node, then back: a fresh orphan again.
    meta.note_orphans("n1", &[], Duration::ZERO).await.unwrap();
    tick().await;
    let back = meta
        .note_orphans("n1", &found, Duration::ZERO)
        .await
        .unwrap();
    assert!(back.is_empty(), "a returning orphan starts afresh");
    // Claimed for deletion, then forgotten with its notes.
    assert!(meta.claim_orphan(&"c".repeat(64)).await.unwrap());
    assert!(!meta.claim_orphan(&"c".repeat(64)).await.unwrap());
    meta.forget_chunk(&"c".repeat(64)).await.unwrap();
    assert!(!meta.claim_orphan(&a.id).await.unwrap(), "a stored chunk");
}

pub async fn streams_protect_their_chunks_until_commit_or_drop(meta: Meta) {
    let (a, b) = (chunk('a', 2), chunk('b', 3));
    let stream = meta
        .open_stream(DEFAULT_OWNER, Duration::from_secs(3600), 100)
        .await
        .unwrap();
    for (i, c) in [&a, &b].into_iter().enumerate() {
        let r = StreamRef {
            stream: stream.clone(),
            index: i as u32,
        };
        if let ChunkHold::Write(hold) = meta.hold_chunk(c, Some(&r)).await.unwrap() {
            meta.record_chunk(c, &hold, &[]).await.unwrap();
        }
    }
    tick().await;
    assert!(
        meta.claim_unreferenced(Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty(),
        "a stream's chunks were claimed"
    );
    let mut v = new_version("s", &[a.clone(), b.clone()]);
    v.stream = Some(stream.clone());
    meta.commit_version(&v).await.unwrap();
    // The stream is closed by the commit, and cannot be used as a session.
    assert!(meta
        .session(&stream, DEFAULT_OWNER)
        .await
        .unwrap()
        .is_none());

    // An abandoned stream, dropped: its chunk is collectable.
    let c = chunk('c', 1);
    let s2 = meta
        .open_stream(DEFAULT_OWNER, Duration::from_secs(3600), 100)
        .await
        .unwrap();
    let r = StreamRef {
        stream: s2.clone(),
        index: 0,
    };
    if let ChunkHold::Write(hold) = meta.hold_chunk(&c, Some(&r)).await.unwrap() {
        meta.record_chunk(&c, &hold, &[]).await.unwrap();
    }
    meta.drop_session(&s2).await.unwrap();
    tick().await;
    assert_eq!(
        meta.claim_unreferenced(Duration::ZERO, 10).await.unwrap(),
        vec![c.id.clone()]
    );
}

pub async fn expired_sessions_are_deleted_and_release_their_chunks(meta: Meta) {
    let a = chunk('a', 1);
    store(&meta, &a).await;
    let mut s = new_session("f", &"1".repeat(64), vec![a.clone()]);
    s.ttl = Duration::ZERO;
    let (row, _) = meta.open_session(&s).await.unwrap();
    tick().await;
    assert!(meta
        .session(&row.id, DEFAULT_OWNER)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        meta.chunk_slot(&row.id, DEFAULT_OWNER, &a.id)
            .await
            .unwrap(),
        ChunkSlot::NoSession
    );
    assert_eq!(meta.delete_expired_sessions().await.unwrap(), 1);
    assert_eq!(
        meta.claim_unreferenced(Duration::ZERO, 10).await.unwrap(),
        vec![a.id.clone()]
    );
}

pub async fn replica_outcomes_drive_health_and_repair_hints(meta: Meta) {
    let a = chunk('a', 10);
    store(&meta, &a).await; // good on n1
    let v = commit(&meta, "f", std::slice::from_ref(&a)).await;
    let outcome = |node: &str, state| ReplicaOutcome {
        chunk_id: a.id.clone(),
        node: node.into(),
        state,
    };
    meta.record_replicas(&[
        outcome("n2", ReplicaHealth::Ok),
        outcome("n3", ReplicaHealth::Ok),
        outcome("n3", ReplicaHealth::Corrupt),
    ])
    .await
    .unwrap();
    let h = meta.version_health(v.file_id, v.number, 3).await.unwrap();
    assert_eq!((h.chunks, h.under_replicated), (1, 1), "{h:?}");
    assert_eq!(
        meta.replicas_needing_repair(10).await.unwrap(),
        vec![(a.id.clone(), "n3".to_string())]
    );
    let report = meta.report(3).await.unwrap();
    assert_eq!((report.chunks, report.under_replicated), (1, 1));
    let mut usage = report.usage.clone();
    usage.sort();
    assert_eq!(
        usage,
        vec![("n1".to_string(), 1, 10), ("n2".to_string(), 1, 10)]
    );
    meta.forget_replica(&a.id, "n3").await.unwrap();
    assert!(meta.replicas_needing_repair(10).await.unwrap().is_empty());
    // Two good copies recorded, on n1 and n2: short of three, not of two.
    let short = meta.short_of_copies(3).await.unwrap();
    assert_eq!(short.len(), 1, "{short:?}");
    let on: std::collections::HashSet<String> = ["n1", "n2"].map(String::from).into();
    assert_eq!(short[&a.id], on);
    assert!(meta.short_of_copies(2).await.unwrap().is_empty());
    assert_eq!(
        meta.chunks_page("", 10).await.unwrap(),
        vec![a.clone()],
        "pages list stored chunks"
    );
    assert!(meta.chunks_page(&a.id, 10).await.unwrap().is_empty());
}

pub async fn concurrent_commits_to_one_path_number_versions_once_each(meta: Meta) {
    let a = chunk('a', 1);
    store(&meta, &a).await;
    let commits = (0..10).map(|_| {
        let meta = meta.clone();
        let v = new_version("hot", std::slice::from_ref(&a));
        tokio::spawn(async move { meta.commit_version(&v).await.unwrap().number })
    });
    let mut numbers: Vec<u64> = futures::future::join_all(commits)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>());
}

pub async fn gc_never_claims_a_chunk_a_racing_commit_references(meta: Meta) {
    for round in 0..30u32 {
        let c = ChunkRef {
            id: format!("{round:064x}"),
            size: 1,
        };
        store(&meta, &c).await;
        tick().await;
        let path = format!("race/{round}");
        let commit = {
            let meta = meta.clone();
            let v = new_version(&path, std::slice::from_ref(&c));
            tokio::spawn(async move { meta.commit_version(&v).await })
        };
        let claim = {
            let meta = meta.clone();
            tokio::spawn(async move { meta.claim_unreferenced(Duration::ZERO, 100).await })
        };
        let committed = commit.await.unwrap();
        let claimed = claim.await.unwrap().unwrap();
        match committed {
            Ok(_) => {
                assert!(
                    !claimed.contains(&c.id),
                    "round {round}: gc claimed a chunk a committed version names"
                );
                assert!(unknown(&meta, DEFAULT_OWNER, &c).await.is_empty());
            }
            Err(MetaError::MissingChunks(1)) => {
                assert!(
                    claimed.contains(&c.id),
                    "round {round}: refused for nothing"
                );
            }
            Err(e) => panic!("round {round}: {e}"),
        }
        for id in claimed {
            meta.forget_chunk(&id).await.unwrap();
        }
    }
}

pub async fn leases_have_one_holder_and_pass_on_after_expiry(meta: Meta) {
    let ttl = Duration::from_millis(300);
    assert!(meta.try_lease("gc", "a", ttl).await.unwrap());
    assert!(!meta.try_lease("gc", "b", ttl).await.unwrap());
    assert!(meta.try_lease("gc", "a", ttl).await.unwrap(), "renewal");
    assert!(meta.try_lease("repair", "b", ttl).await.unwrap());
    let leases = meta.leases().await.unwrap();
    assert_eq!(
        leases
            .iter()
            .map(|l| (l.name.as_str(), l.holder.as_str()))
            .collect::<Vec<_>>(),
        [("gc", "a"), ("repair", "b")]
    );
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert!(meta.try_lease("gc", "b", ttl).await.unwrap(), "expired");
    assert!(!meta.try_lease("gc", "a", ttl).await.unwrap());
    meta.release_lease("gc", "a").await.unwrap();
    assert!(!meta.try_lease("gc", "a", ttl).await.unwrap(), "not a's");
    meta.release_lease("gc", "b").await.unwrap();
    assert!(meta.try_lease("gc", "a", ttl).await.unwrap(), "released");
}

pub async fn the_cluster_identity_is_set_once(meta: Meta) {
    assert_eq!(meta.cluster_id().await.unwrap(), None);
    assert!(!meta.has_chunks().await.unwrap());
    assert_eq!(meta.init_cluster_id("one").await.unwrap(), "one");
    assert_eq!(meta.init_cluster_id("two").await.unwrap(), "one");
    assert_eq!(meta.cluster_id().await.unwrap().as_deref(), Some("one"));
    store(&meta, &chunk('a', 1)).await;
    assert!(meta.has_chunks().await.unwrap());
    meta.ping().await.unwrap();
}

pub async fn dedup_answers_only_for_the_owners_own_chunks(meta: Meta) {
    let alice = meta.add_user("alice", "hash-a", Role::User).await.unwrap();
    let bob = meta.add_user("bob", "hash-b", Role::User).await.unwrap();
    assert_eq!(
        alice.id, DEFAULT_OWNER,
        "the first user takes the default owner"
    );
    assert_ne!(bob.id, alice.id);
    let a = chunk('a', 3_000);
    store(&meta, &a).await; // alice's
    assert!(unknown(&meta, alice.id, &a).await.is_empty());
    // Bob learns nothing: not that it exists, nor its size.
    assert_eq!(unknown(&meta, bob.id, &a).await, vec![a.id.clone()]);
    assert_eq!(
        meta.unknown_chunks(bob.id, &[chunk('a', 10)])
            .await
            .unwrap(),
        vec![a.id.clone()],
        "another owner's chunk has no size to disagree with"
    );
    let mut plan = new_session("b.bin", &"1".repeat(64), vec![a.clone()]);
    plan.owner = bob.id;
    let (s, missing) = meta.open_session(&plan).await.unwrap();
    assert_eq!(missing, vec![a.id.clone()]);
    // Naming alice's chunk without sending it commits nothing.
    let err = meta
        .finish_session(&s, "bob", PutMode::Overwrite)
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::MissingChunks(1)), "{err}");
    assert!(meta
        .list_versions(bob.id, "b.bin", None, 1000, 1)
        .await
        .unwrap()
        .is_empty());
    // Once he has sent it, it is his too.
    assert_eq!(meta.chunk_sent(&s.id, bob.id, &a.id).await.unwrap(), 0);
    let v = meta
        .finish_session(&s, "bob", PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(v.size, 3_000);
    assert!(unknown(&meta, bob.id, &a).await.is_empty());
    // A streamed upload's chunks were cut from the owner's bytes: theirs.
    let b = chunk('b', 5);
    store_unowned(&meta, &b).await;
    let mut v = new_version("c.bin", std::slice::from_ref(&b));
    v.owner = bob.id;
    meta.commit_version(&v).await.unwrap();
    assert!(unknown(&meta, bob.id, &b).await.is_empty());
    assert_eq!(unknown(&meta, alice.id, &b).await, vec![b.id.clone()]);
}

pub async fn accounts_logins_end_with_password_changes_and_removal(meta: Meta) {
    assert!(meta.users().await.unwrap().is_empty());
    let admin = meta.add_user("root", "h1", Role::Admin).await.unwrap();
    assert_eq!((admin.role, admin.id), (Role::Admin, DEFAULT_OWNER));
    let err = meta.add_user("root", "h2", Role::User).await.unwrap_err();
    assert!(matches!(err, MetaError::Conflict(_)), "{err}");
    let eve = meta.add_user("eve", "h3", Role::User).await.unwrap();
    let names: Vec<String> = meta
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["eve", "root"]);
    assert_eq!(meta.user("eve").await.unwrap().unwrap().password_hash, "h3");

    let (id, expires) = meta
        .open_login(eve.id, "token-hash", Duration::from_secs(600))
        .await
        .unwrap();
    assert!(!expires.is_empty());
    let login = meta.login(&id).await.unwrap().unwrap();
    assert_eq!(
        (login.user.name.as_str(), login.token_hash.as_str()),
        ("eve", "token-hash")
    );
    assert!(meta.set_password("eve", "h4").await.unwrap());
    assert!(
        meta.login(&id).await.unwrap().is_none(),
        "a new password ends logins"
    );
    assert_eq!(meta.user("eve").await.unwrap().unwrap().password_hash, "h4");

    let (id, _) = meta
        .open_login(eve.id, "t2", Duration::from_secs(600))
        .await
        .unwrap();
    assert!(meta.close_login(&id).await.unwrap());
    assert!(!meta.close_login(&id).await.unwrap());
    assert!(meta.login(&id).await.unwrap().is_none());
    let (expired, _) = meta
        .open_login(eve.id, "t3", Duration::from_millis(1))
        .await
        .unwrap();
    tick().await;
    assert!(meta.login(&expired).await.unwrap().is_none(), "expired");

    // Removal: logins end, files are deleted, the name is free again.
    let a = chunk('a', 1);
    store(&meta, &a).await;
    let mut v = new_version("mine", std::slice::from_ref(&a));
    v.owner = eve.id;
    meta.commit_version(&v).await.unwrap();
    let (id, _) = meta
        .open_login(eve.id, "t4", Duration::from_secs(600))
        .await
        .unwrap();
    assert!(meta.remove_user("eve").await.unwrap());
    assert!(!meta.remove_user("eve").await.unwrap());
    assert!(meta.login(&id).await.unwrap().is_none());
    assert!(meta.user("eve").await.unwrap().is_none());
    assert!(meta
        .list_files(eve.id, "", "", 10, 1)
        .await
        .unwrap()
        .is_empty());
    let again = meta.add_user("eve", "h5", Role::User).await.unwrap();
    assert_ne!(
        again.id, eve.id,
        "a new eve does not get the old one's files"
    );
    assert!(meta
        .set_password("nobody", "h")
        .await
        .is_ok_and(|changed| !changed));

    assert_eq!(meta.init_setting("k", "first").await.unwrap(), "first");
    assert_eq!(meta.init_setting("k", "second").await.unwrap(), "first");
}

pub async fn a_file_and_a_folder_never_share_a_name(meta: Meta) {
    let a = chunk('a', 1);
    store(&meta, &a).await;
    let one = std::slice::from_ref(&a);
    commit(&meta, "docs/report", one).await;
    for clash in ["docs", "docs/report/v2", "docs/report/v2/deep"] {
        let err = meta
            .commit_version(&new_version(clash, one))
            .await
            .unwrap_err();
        assert!(matches!(err, MetaError::PathConflict(_)), "{clash}: {err}");
        let err = meta
            .open_session(&new_session(clash, "h", one.to_vec()))
            .await
            .unwrap_err();
        assert!(matches!(err, MetaError::PathConflict(_)), "{clash}: {err}");
    }
    // Neighbours that only share a prefix are fine.
    for fine in ["docs/report2", "docs/repor", "docs-x", "docs/other/x"] {
        commit(&meta, fine, one).await;
    }
    // A deleted file frees its name for a folder; restoring it then clashes.
    delete(&meta, "docs/report").await;
    commit(&meta, "docs/report/v2", one).await;
    let err = meta
        .restore_version(DEFAULT_OWNER, "docs/report", 1, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::PathConflict(_)), "{err}");
    // Another owner's names are no clash. (The first user takes over the
    // default owner's files, so `root` comes first.)
    meta.add_user("root", "h", Role::Admin).await.unwrap();
    let bob = meta.add_user("bob", "h", Role::User).await.unwrap();
    let mut v = new_version("docs", one);
    v.owner = bob.id;
    meta.commit_version(&v).await.unwrap();
}

pub async fn quotas_count_every_retained_version_and_refuse_what_crosses(meta: Meta) {
    meta.add_user("root", "h", Role::Admin).await.unwrap();
    let alice = meta.add_user("alice", "h", Role::User).await.unwrap();
    let (a, b) = (chunk('a', 600), chunk('b', 500));
    store(&meta, &a).await;
    store(&meta, &b).await;
    let version_of = |path: &str, c: &ChunkRef| {
        let mut v = new_version(path, std::slice::from_ref(c));
        v.owner = alice.id;
        v
    };
    meta.commit_version(&version_of("x", &a)).await.unwrap();
    meta.commit_version(&version_of("x", &b)).await.unwrap();
    let u = meta.usage(alice.id).await.unwrap();
    assert_eq!((u.used, u.quota), (1100, None), "no quota: anything goes");
    assert!(meta.set_quota("alice", Some(1500)).await.unwrap());
    assert!(!meta.set_quota("nobody", Some(1)).await.unwrap());
    assert_eq!(meta.usage(alice.id).await.unwrap().quota, Some(1500));
    // 1100 + 500 > 1500: refused, and nothing is stored.
    let err = meta.commit_version(&version_of("y", &b)).await.unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    assert!(err.to_string().contains("1100"), "{err}");
    let err = meta
        .restore_version(alice.id, "x", 2, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    let mut s = new_session("y", "h", vec![b.clone()]);
    s.owner = alice.id;
    let err = meta.open_session(&s).await.unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    assert_eq!(meta.usage(alice.id).await.unwrap().used, 1100);
    // Deleted files still count (restorable); purging gives room back.
    meta.delete_file(alice.id, "x", PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(meta.usage(alice.id).await.unwrap().used, 1100);
    tick().await;
    meta.apply_retention(&Retention {
        purge_deleted_after: Some(Duration::ZERO),
        ..Retention::default()
    })
    .await
    .unwrap();
    assert_eq!(meta.usage(alice.id).await.unwrap().used, 0);
    meta.commit_version(&version_of("y", &b)).await.unwrap();
    assert!(meta.set_quota("alice", None).await.unwrap());
    assert_eq!(meta.usage(alice.id).await.unwrap().quota, None);
}

pub async fn open_sessions_are_capped_per_owner_and_bookkept_without_scans(meta: Meta) {
    let chunks: Vec<ChunkRef> = ['a', 'b', 'c'].iter().map(|&c| chunk(c, 10)).collect();
    let mut open = Vec::new();
    for i in 0..3 {
        let mut s = new_session(&format!("f{i}"), "h", chunks.clone());
        s.max_open = 3;
        open.push(meta.open_session(&s).await.unwrap().0);
    }
    let mut s = new_session("f3", "h", chunks.clone());
    s.max_open = 3;
    let err = meta.open_session(&s).await.unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    // Another owner has their own allowance.
    meta.add_user("root", "h", Role::Admin).await.unwrap();
    let bob = meta.add_user("bob", "h", Role::User).await.unwrap();
    let mut theirs = s.clone();
    theirs.owner = bob.id;
    meta.open_session(&theirs).await.unwrap();
    // Remaining counts down as chunks arrive, once per distinct chunk.
    let id = &open[0].id;
    for (c, left) in chunks.iter().zip([2u64, 1, 0]) {
        store(&meta, c).await;
        assert_eq!(
            meta.chunk_sent(id, DEFAULT_OWNER, &c.id).await.unwrap(),
            left
        );
        assert_eq!(
            meta.chunk_sent(id, DEFAULT_OWNER, &c.id).await.unwrap(),
            left
        );
    }
    // A finished session no longer counts against the cap.
    meta.finish_session(&open[0], "test", PutMode::Overwrite)
        .await
        .unwrap();
    meta.open_session(&s).await.unwrap();
}

pub async fn open_uploads_reserve_their_bytes_and_streams_count_as_sessions(meta: Meta) {
    meta.add_user("root", "h", Role::Admin).await.unwrap();
    let alice = meta.add_user("alice", "h", Role::User).await.unwrap();
    assert!(meta.set_quota("alice", Some(1000)).await.unwrap());
    let session = |path: &str, c: &ChunkRef| {
        let mut s = new_session(path, "h", vec![c.clone()]);
        s.owner = alice.id;
        s.max_open = 3;
        s
    };
    let (a, b, c) = (chunk('a', 600), chunk('b', 500), chunk('c', 300));
    // One session of 600 fits; a second of 500 would reserve 1,100.
    let (open_a, _) = meta.open_session(&session("a", &a)).await.unwrap();
    let u = meta.usage(alice.id).await.unwrap();
    assert_eq!((u.used, u.reserved), (0, 600));
    let err = meta.open_session(&session("b", &b)).await.unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    // A stream's chunks reserve as they are held: 300 fits, 300 more not.
    let stream = meta
        .open_stream(alice.id, Duration::from_secs(3600), 3)
        .await
        .unwrap();
    let held = |i: u32| StreamRef {
        stream: stream.clone(),
        index: i,
    };
    match meta.hold_chunk(&c, Some(&held(0))).await.unwrap() {
        ChunkHold::Write(hold) => meta.record_chunk(&c, &hold, &[]).await.unwrap(),
        other => panic!("{other:?}"),
    }
    assert_eq!(meta.usage(alice.id).await.unwrap().reserved, 900);
    let err = meta.hold_chunk(&c, Some(&held(1))).await.unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    assert_eq!(meta.usage(alice.id).await.unwrap().reserved, 900);
    // Streams count against the open uploads: 1 session + 2 streams = 3.
    let second = meta
        .open_stream(alice.id, Duration::from_secs(3600), 3)
        .await
        .unwrap();
    let err = meta
        .open_stream(alice.id, Duration::from_secs(3600), 3)
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    let err = meta.open_session(&session("d", &c)).await.unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    // A commit does not count its own reservation twice: 600 of its own
    // plus the stream's 300 fit in 1,000.
    store(&meta, &a).await;
    meta.chunk_sent(&open_a.id, alice.id, &a.id).await.unwrap();
    let v = meta
        .finish_session(&open_a, "alice", PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(v.size, 600);
    let u = meta.usage(alice.id).await.unwrap();
    assert_eq!(
        (u.used, u.reserved),
        (600, 300),
        "the commit ended its reservation"
    );
    // Dropping uploads frees their reservations and their places.
    meta.drop_session(&stream).await.unwrap();
    meta.drop_session(&second).await.unwrap();
    assert_eq!(meta.usage(alice.id).await.unwrap().reserved, 0);
    meta.open_stream(alice.id, Duration::from_secs(3600), 3)
        .await
        .unwrap();
}

pub async fn versions_count_against_the_per_owner_limit_empty_ones_too(meta: Meta) {
    meta.add_user("root", "h", Role::Admin).await.unwrap();
    let alice = meta.add_user("alice", "h", Role::User).await.unwrap();
    meta.set_setting(MAX_VERSIONS, "3").await.unwrap();
    let empty = |path: &str| {
        let mut v = new_version(path, &[]);
        v.owner = alice.id;
        v
    };
    meta.commit_version(&empty("a")).await.unwrap();
    meta.commit_version(&empty("a")).await.unwrap();
    meta.commit_version(&empty("b")).await.unwrap();
    let err = meta.commit_version(&empty("c")).await.unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    assert!(err.to_string().contains("at most 3"), "{err}");
    let err = meta
        .restore_version(alice.id, "a", 1, "alice")
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    // Someone else has their own count.
    commit(&meta, "c", &[]).await;
    // Deleted files' versions still count; purged ones and trimmed ones
    // give their places back.
    meta.delete_file(alice.id, "b", PutMode::Overwrite)
        .await
        .unwrap();
    let err = meta.commit_version(&empty("c")).await.unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    tick().await;
    meta.apply_retention(&Retention {
        purge_deleted_after: Some(Duration::ZERO),
        ..Retention::default()
    })
    .await
    .unwrap();
    meta.commit_version(&empty("c")).await.unwrap();
    let err = meta.commit_version(&empty("d")).await.unwrap_err();
    assert!(matches!(err, MetaError::Limit(_)), "{err}");
    meta.apply_retention(&Retention {
        keep_last: Some(1),
        ..Retention::default()
    })
    .await
    .unwrap();
    meta.commit_version(&empty("d")).await.unwrap();
    // No limit: anything goes.
    meta.set_setting(MAX_VERSIONS, "").await.unwrap();
    for i in 0..5 {
        meta.commit_version(&empty(&format!("e{i}"))).await.unwrap();
    }
}

pub async fn versions_page_newest_first(meta: Meta) {
    let a = chunk('a', 1);
    store(&meta, &a).await;
    for _ in 0..7 {
        commit(&meta, "f", std::slice::from_ref(&a)).await;
    }
    let numbers = |rows: Vec<(VersionRow, HealthCounts)>| -> Vec<u64> {
        rows.into_iter().map(|(v, _)| v.number).collect()
    };
    let first = meta
        .list_versions(DEFAULT_OWNER, "f", None, 3, 1)
        .await
        .unwrap();
    assert_eq!(numbers(first), [7, 6, 5]);
    let next = meta
        .list_versions(DEFAULT_OWNER, "f", Some(5), 3, 1)
        .await
        .unwrap();
    assert_eq!(numbers(next), [4, 3, 2]);
    let last = meta
        .list_versions(DEFAULT_OWNER, "f", Some(2), 3, 1)
        .await
        .unwrap();
    assert_eq!(numbers(last), [1]);
}

pub async fn share_links_name_one_version_and_end(meta: Meta) {
    let a = chunk('a', 1);
    store(&meta, &a).await;
    let one = std::slice::from_ref(&a);
    commit(&meta, "doc", one).await;
    commit(&meta, "doc", one).await;
    let share = |id: &str, number: Option<u64>, ttl: Duration| NewShare {
        id: id.to_string(),
        owner: DEFAULT_OWNER,
        path: "doc".into(),
        number,
        password_hash: None,
        ttl,
    };
    let latest = meta
        .create_share(&share("s1", None, Duration::from_secs(600)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((latest.path.as_str(), latest.number), ("doc", 2));
    let first = meta
        .create_share(&share("s2", Some(1), Duration::from_secs(600)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.number, 1);
    assert!(meta
        .create_share(&share("s3", Some(9), Duration::from_secs(600)))
        .await
        .unwrap()
        .is_none());
    // A later version does not move a link.
    commit(&meta, "doc", one).await;
    assert_eq!(meta.share("s1").await.unwrap().unwrap().number, 2);
    let ids: Vec<String> = meta
        .shares(DEFAULT_OWNER)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids.len(), 2);
    // Only the owner revokes.
    meta.add_user("root", "h", Role::Admin).await.unwrap();
    let bob = meta.add_user("bob", "h", Role::User).await.unwrap();
    assert!(!meta.revoke_share(bob.id, "s1").await.unwrap());
    assert!(!meta.share("s1").await.unwrap().unwrap().revoked);
    assert!(meta.revoke_share(DEFAULT_OWNER, "s1").await.unwrap());
    assert!(meta.share("s1").await.unwrap().unwrap().revoked);
    // Deleting the file ends its links; purging removes them.
    delete(&meta, "doc").await;
    assert!(meta.share("s2").await.unwrap().is_none());
    tick().await;
    // For good: the path made again (a new version, here; a restore or a
    // move back alike) does not bring a link back.
    commit(&meta, "doc", one).await;
    let after = meta.share("s2").await.unwrap().expect("version 1 is kept");
    assert!(after.revoked, "a deleted file's link came back");
    delete(&meta, "doc").await;
    tick().await;
    meta.apply_retention(&Retention {
        purge_deleted_after: Some(Duration::ZERO),
        ..Retention::default()
    })
    .await
    .unwrap();
    assert!(meta.shares(DEFAULT_OWNER).await.unwrap().is_empty());
    assert!(meta.share("nope").await.unwrap().is_none());
}

/// A commit of `path` conditional on `base`.
fn based(path: &str, chunks: &[ChunkRef], base: u64) -> NewVersion {
    NewVersion {
        mode: PutMode::from_base(Some(base)),
        ..new_version(path, chunks)
    }
}

pub async fn a_stale_base_version_changes_nothing(meta: Meta) {
    let (a, b) = (chunk('a', 1), chunk('b', 2));
    store(&meta, &a).await;
    store(&meta, &b).await;
    // Base 0: only where no live file is.
    meta.commit_version(&based("f", std::slice::from_ref(&a), 0))
        .await
        .unwrap();
    let stale = |e: MetaError| assert!(matches!(e, MetaError::Stale(_)), "{e:?}");
    stale(
        meta.commit_version(&based("f", std::slice::from_ref(&b), 0))
            .await
            .unwrap_err(),
    );
    // The right base commits; the same base again is stale.
    let v2 = meta
        .commit_version(&based("f", std::slice::from_ref(&b), 1))
        .await
        .unwrap();
    assert_eq!(v2.number, 2);
    stale(
        meta.commit_version(&based("f", std::slice::from_ref(&a), 1))
            .await
            .unwrap_err(),
    );
    // A session finished on a stale base commits nothing, and can finish
    // once the client has the right base.
    let (s, _) = meta
        .open_session(&new_session("f", "s".repeat(64).as_str(), vec![a.clone()]))
        .await
        .unwrap();
    stale(
        meta.finish_session(&s, "u", PutMode::Update(1))
            .await
            .unwrap_err(),
    );
    // Delete and move check their base too.
    stale(
        meta.delete_file(DEFAULT_OWNER, "f", PutMode::Update(1))
            .await
            .unwrap_err(),
    );
    stale(
        meta.move_file(DEFAULT_OWNER, "f", "g", PutMode::Update(1), "u")
            .await
            .unwrap_err(),
    );
    let latest = meta
        .version(DEFAULT_OWNER, "f", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.number, latest.deleted),
        (2, false),
        "nothing changed"
    );
    assert!(meta
        .version(DEFAULT_OWNER, "g", None)
        .await
        .unwrap()
        .is_none());
    let (changes, head) = meta.changes(DEFAULT_OWNER, 0, 100).await.unwrap();
    assert_eq!(
        (changes.len(), head),
        (2, 2),
        "refused writes record nothing"
    );
    // With the right bases all go through.
    assert_eq!(
        meta.finish_session(&s, "u", PutMode::Update(2))
            .await
            .unwrap()
            .number,
        3
    );
    assert_eq!(
        meta.delete_file(DEFAULT_OWNER, "f", PutMode::Update(3))
            .await
            .unwrap(),
        Some(3)
    );
    // A deleted file counts as none: base 0 recreates it.
    meta.commit_version(&based("f", std::slice::from_ref(&a), 0))
        .await
        .unwrap();
}

pub async fn a_move_deletes_the_old_name_and_versions_the_new(meta: Meta) {
    let (a, b) = (chunk('a', 1), chunk('b', 2));
    store(&meta, &a).await;
    store(&meta, &b).await;
    commit(&meta, "dir/old", std::slice::from_ref(&a)).await;
    commit(&meta, "taken", std::slice::from_ref(&b)).await;
    // Onto a live file: refused, nothing changes.
    let err = meta
        .move_file(DEFAULT_OWNER, "dir/old", "taken", PutMode::Overwrite, "u")
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::PathConflict(_)), "{err:?}");
    // Nothing at the source.
    assert!(meta
        .move_file(DEFAULT_OWNER, "nothing", "x", PutMode::Overwrite, "u")
        .await
        .unwrap()
        .is_none());
    let moved = meta
        .move_file(
            DEFAULT_OWNER,
            "dir/old",
            "new/place",
            PutMode::Update(1),
            "u",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((moved.path.as_str(), moved.number), ("new/place", 1));
    assert_eq!(
        meta.version_chunks(moved.file_id, 1).await.unwrap(),
        vec![a.clone()],
        "same content"
    );
    let old = meta
        .version(DEFAULT_OWNER, "dir/old", None)
        .await
        .unwrap()
        .unwrap();
    assert!(old.deleted, "the old name is deleted, its version kept");
    // The old name is free again: it can take the file back.
    meta.move_file(
        DEFAULT_OWNER,
        "new/place",
        "dir/old",
        PutMode::Overwrite,
        "u",
    )
    .await
    .unwrap()
    .unwrap();
    let back = meta
        .version(DEFAULT_OWNER, "dir/old", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((back.number, back.deleted), (2, false));
}

pub async fn the_change_feed_numbers_every_change_and_expires_old_cursors(meta: Meta) {
    let a = chunk('a', 1);
    store(&meta, &a).await;
    let (none, head) = meta.changes(DEFAULT_OWNER, 0, 100).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(head, 0);
    let one = std::slice::from_ref(&a);
    commit(&meta, "a", one).await;
    commit(&meta, "a", one).await;
    meta.restore_version(DEFAULT_OWNER, "a", 1, "u")
        .await
        .unwrap()
        .unwrap();
    meta.move_file(DEFAULT_OWNER, "a", "b", PutMode::Overwrite, "u")
        .await
        .unwrap()
        .unwrap();
    delete(&meta, "b").await;
    let (all, head) = meta.changes(DEFAULT_OWNER, 0, 100).await.unwrap();
    let seen: Vec<(u64, &str, bool, u64)> = all
        .iter()
        .map(|c| (c.seq, c.path.as_str(), c.deleted, c.version))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "a", false, 1),
            (2, "a", false, 2),
            (3, "a", false, 3),
            (4, "a", true, 3),
            (5, "b", false, 1),
            (6, "b", true, 1),
        ]
    );
    assert_eq!(head, 6);
    assert!(all.iter().all(|c| c.size == 1 && c.hash == "h".repeat(64)));
    // Pages continue where the last ended.
    let (page, _) = meta.changes(DEFAULT_OWNER, 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|c| c.seq).collect::<Vec<_>>(), [3, 4]);
    // Another owner's feed is their own. (The first user takes over the
    // default owner's files; the second is someone else.)
    meta.add_user("feed-first", "x", Role::Admin).await.unwrap();
    let other = meta.add_user("feed-other", "x", Role::User).await.unwrap();
    assert_ne!(other.id, DEFAULT_OWNER);
    let (theirs, their_head) = meta.changes(other.id, 0, 100).await.unwrap();
    assert!(theirs.is_empty());
    assert_eq!(their_head, 0);
    // A cursor ahead of the head is refused, so is one older than what is
    // kept; one at the head is fine, and the head alone is asked with 0.
    let gone = |e: MetaError| assert!(matches!(e, MetaError::CursorGone(_)), "{e:?}");
    gone(meta.changes(DEFAULT_OWNER, 7, 100).await.unwrap_err());
    tick().await;
    assert_eq!(meta.prune_changes(Duration::ZERO).await.unwrap(), 6);
    gone(meta.changes(DEFAULT_OWNER, 2, 100).await.unwrap_err());
    let (rest, head) = meta.changes(DEFAULT_OWNER, 6, 100).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(head, 6);
    assert_eq!(meta.changes(DEFAULT_OWNER, 0, 0).await.unwrap().1, 6);
    // Numbering goes on after a prune.
    commit(&meta, "c", one).await;
    let (after, _) = meta.changes(DEFAULT_OWNER, 6, 100).await.unwrap();
    assert_eq!(after.iter().map(|c| c.seq).collect::<Vec<_>>(), [7]);
}

pub async fn modification_times_travel_with_their_content(meta: Meta) {
    let (a, b) = (chunk('a', 1), chunk('b', 2));
    store(&meta, &a).await;
    store(&meta, &b).await;
    let t = "2026-01-02T03:04:05.123456789Z".to_string();
    let v = meta
        .commit_version(&NewVersion {
            modified: Some(t.clone()),
            checksums: Some("SHA1:ab MD5:cd".into()),
            ..new_version("m", std::slice::from_ref(&a))
        })
        .await
        .unwrap();
    assert_eq!(v.modified.as_deref(), Some(t.as_str()));
    assert_eq!(v.checksums.as_deref(), Some("SHA1:ab MD5:cd"));
    // A version without one has none, whatever came before.
    commit(&meta, "m", std::slice::from_ref(&b)).await;
    let latest = meta
        .version(DEFAULT_OWNER, "m", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.modified, None);
    // A restore and a move keep the content's time.
    let restored = meta
        .restore_version(DEFAULT_OWNER, "m", 1, "u")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restored.modified.as_deref(), Some(t.as_str()));
    assert_eq!(
        restored.checksums.as_deref(),
        Some("SHA1:ab MD5:cd"),
        "checksums travel with their content too"
    );
    meta.move_file(DEFAULT_OWNER, "m", "n", PutMode::Overwrite, "u")
        .await
        .unwrap()
        .unwrap();
    let (rows, _) = meta
        .list_files(DEFAULT_OWNER, "", "", 10, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|(v, _)| v)
        .partition::<Vec<_>, _>(|v| v.path == "n");
    assert_eq!(rows[0].modified.as_deref(), Some(t.as_str()));
    // A session carries its time to the version it commits.
    let later = "2026-03-04T05:06:07Z".to_string();
    let (s, _) = meta
        .open_session(&NewSession {
            modified: Some(later.clone()),
            ..new_session("s", &"s".repeat(64), vec![a.clone()])
        })
        .await
        .unwrap();
    assert_eq!(s.modified.as_deref(), Some(later.as_str()));
    let again = meta.session(&s.id, DEFAULT_OWNER).await.unwrap().unwrap();
    assert_eq!(again.modified.as_deref(), Some(later.as_str()));
    let committed = meta
        .finish_session(&again, "u", PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(committed.modified.as_deref(), Some(later.as_str()));
    // The feed says it too.
    let (changes, _) = meta.changes(DEFAULT_OWNER, 0, 100).await.unwrap();
    let last = changes.last().unwrap();
    assert_eq!(
        (last.path.as_str(), last.modified.as_deref()),
        ("s", Some(later.as_str()))
    );
    let moved_in = changes.iter().find(|c| c.path == "n").unwrap();
    assert_eq!(moved_in.modified.as_deref(), Some(t.as_str()));
}

pub async fn folders_are_made_empty_and_moved_or_deleted_with_what_is_inside(meta: Meta) {
    let o = DEFAULT_OWNER;
    let a = chunk('a', 1);
    store(&meta, &a).await;
    // A folder needs its parent; the root always exists.
    let err = meta.make_folder(o, "p/q").await.unwrap_err();
    assert!(
        matches!(err, MetaError::PathConflict(PathConflict::NoParent { .. })),
        "{err:?}"
    );
    meta.make_folder(o, "p").await.unwrap();
    meta.make_folder(o, "p/q").await.unwrap();
    let err = meta.make_folder(o, "p").await.unwrap_err();
    assert!(
        matches!(err, MetaError::PathConflict(PathConflict::Taken { .. })),
        "made twice: {err:?}"
    );
    assert!(meta.folder_exists(o, "p/q").await.unwrap());
    assert_eq!(meta.made_folders(o, "").await.unwrap(), vec!["p"]);
    assert_eq!(meta.made_folders(o, "p").await.unwrap(), vec!["p/q"]);
    // A file cannot take an empty folder's name, nor a folder a file's.
    let err = meta
        .commit_version(&new_version("p/q", std::slice::from_ref(&a)))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::PathConflict(_)), "{err:?}");
    commit(&meta, "p/q/f", std::slice::from_ref(&a)).await;
    commit(&meta, "top", std::slice::from_ref(&a)).await;
    let err = meta.make_folder(o, "top").await.unwrap_err();
    assert!(matches!(err, MetaError::PathConflict(_)), "{err:?}");
    // Implied by a live file alone.
    commit(&meta, "implied/x", std::slice::from_ref(&a)).await;
    assert!(meta.folder_exists(o, "implied").await.unwrap());
    assert!(!meta.folder_exists(o, "impl").await.unwrap());

    // A move takes everything inside, files (as new versions, in the
    // feed) and empty folders alike; onto a taken name it is refused.
    let err = meta.move_folder(o, "p", "top", "u").await.unwrap_err();
    assert!(matches!(err, MetaError::PathConflict(_)), "{err:?}");
    let err = meta.move_folder(o, "p", "p/q/in", "u").await.unwrap_err();
    assert!(
        matches!(err, MetaError::PathConflict(_)),
        "into itself: {err:?}"
    );
    let (_, before) = meta.changes(o, 0, 0).await.unwrap();
    assert_eq!(meta.move_folder(o, "p", "r", "u").await.unwrap(), Some(1));
    assert!(meta
        .version(o, "r/q/f", None)
        .await
        .unwrap()
        .is_some_and(|v| !v.deleted));
    assert!(meta
        .version(o, "p/q/f", None)
        .await
        .unwrap()
        .is_some_and(|v| v.deleted));
    assert!(!meta.folder_exists(o, "p").await.unwrap());
    assert_eq!(meta.made_folders(o, "r").await.unwrap(), vec!["r/q"]);
    let (_, after) = meta.changes(o, 0, 0).await.unwrap();
    assert_eq!(after, before + 2, "the move is a delete and a new version");

    // A delete takes everything inside, restorably.
    assert_eq!(meta.delete_folder(o, "r").await.unwrap(), Some(1));
    assert!(!meta.folder_exists(o, "r/q").await.unwrap());
    assert!(meta
        .version(o, "r/q/f", None)
        .await
        .unwrap()
        .is_some_and(|v| v.deleted));
    assert_eq!(meta.delete_folder(o, "r").await.unwrap(), None);

    // A copy is a new file with the same chunks; onto a live file refused.
    let copy = meta
        .copy_file(o, "top", "top2", "u")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.version_chunks(copy.file_id, 1).await.unwrap(), vec![a]);
    let err = meta.copy_file(o, "top", "top2", "u").await.unwrap_err();
    assert!(matches!(err, MetaError::PathConflict(_)), "{err:?}");
    assert!(meta.copy_file(o, "none", "x", "u").await.unwrap().is_none());
}

fn prop(name: &str, xml: Option<&str>) -> DeadProp {
    DeadProp {
        ns: "urn:x".into(),
        name: name.into(),
        prefix: Some("x".into()),
        xml: xml.map(str::to_string),
    }
}

pub async fn dead_properties_follow_their_file(meta: Meta) {
    let o = DEFAULT_OWNER;
    let a = chunk('a', 1);
    store(&meta, &a).await;
    commit(&meta, "d/f", std::slice::from_ref(&a)).await;
    meta.patch_props(
        o,
        "d/f",
        &[
            prop("one", Some("<x:one>1</x:one>")),
            prop("two", Some("2")),
        ],
    )
    .await
    .unwrap();
    meta.patch_props(o, "d/f", &[prop("two", None)])
        .await
        .unwrap();
    let got = meta.props(o, "d/f").await.unwrap();
    assert_eq!(got, vec![prop("one", Some("<x:one>1</x:one>"))]);
    // They move with the file, copy with it, and go when it is deleted.
    meta.move_file(o, "d/f", "d/g", PutMode::Overwrite, "u")
        .await
        .unwrap()
        .unwrap();
    assert!(meta.props(o, "d/f").await.unwrap().is_empty());
    assert_eq!(meta.props(o, "d/g").await.unwrap().len(), 1);
    meta.copy_file(o, "d/g", "d/h", "u").await.unwrap().unwrap();
    assert_eq!(meta.props(o, "d/h").await.unwrap().len(), 1);
    meta.move_folder(o, "d", "e", "u").await.unwrap().unwrap();
    assert_eq!(meta.props(o, "e/h").await.unwrap().len(), 1);
    delete(&meta, "e/h").await.unwrap();
    assert!(meta.props(o, "e/h").await.unwrap().is_empty());
}

fn new_lock(path: &str, shared: bool, deep: bool, secs: u64) -> NewLock {
    NewLock {
        owner: DEFAULT_OWNER,
        path: path.into(),
        principal: Some("ann".into()),
        owner_xml: Some("<D:href>ann</D:href>".into()),
        timeout: Some(Duration::from_secs(secs)),
        shared,
        deep,
    }
}

pub async fn locks_exclude_each_other_and_lapse(meta: Meta) {
    let o = DEFAULT_OWNER;
    let deep = meta
        .lock(&new_lock("d", false, true, 600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deep.owner_xml.as_deref(), Some("<D:href>ann</D:href>"));
    // Inside a deep exclusive lock: no other lock, no unlocked write.
    let held = meta.lock(&new_lock("d/f", true, false, 600)).await.unwrap();
    assert_eq!(held.unwrap_err().token, deep.token);
    let none: Option<String> = None;
    let stop = meta.check_locks(o, "d/f", &none, false, &[]).await.unwrap();
    assert_eq!(stop.map(|l| l.token), Some(deep.token.clone()));
    let ann = Some("ann".to_string());
    assert!(meta
        .check_locks(o, "d/f", &ann, false, std::slice::from_ref(&deep.token))
        .await
        .unwrap()
        .is_none());
    assert_eq!(meta.discover_locks(o, "d/f").await.unwrap().len(), 1);
    // Elsewhere: free.
    assert!(meta
        .check_locks(o, "e", &none, true, &[])
        .await
        .unwrap()
        .is_none());
    assert!(meta.unlock(o, "d/f", &deep.token).await.unwrap());
    assert!(!meta.unlock(o, "d/f", &deep.token).await.unwrap());

    // Shared locks admit each other; a deep request sees them below.
    let s1 = meta
        .lock(&new_lock("s/f", true, false, 600))
        .await
        .unwrap()
        .unwrap();
    meta.lock(&new_lock("s/f", true, false, 600))
        .await
        .unwrap()
        .unwrap();
    assert!(meta
        .lock(&new_lock("s", false, true, 600))
        .await
        .unwrap()
        .is_err());
    let refreshed = meta
        .refresh_lock(o, "s/f", &s1.token, Some(Duration::from_secs(1200)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refreshed.timeout_ms, Some(1_200_000));
    meta.drop_locks(o, "s").await.unwrap();
    assert!(meta.discover_locks(o, "s/f").await.unwrap().is_empty());

    // A lock lapses at its time-out, on the engine's clock.
    let short = NewLock {
        timeout: Some(Duration::from_millis(300)),
        ..new_lock("t", false, false, 0)
    };
    meta.lock(&short).await.unwrap().unwrap();
    assert!(meta
        .lock(&new_lock("t", false, false, 600))
        .await
        .unwrap()
        .is_err());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(meta
        .lock(&new_lock("t", false, false, 600))
        .await
        .unwrap()
        .is_ok());
}

pub async fn app_passwords_are_named_once_and_end_when_revoked(meta: Meta) {
    let u = meta.add_user("ann", "hash", Role::User).await.unwrap();
    let a = meta
        .add_app_password(u.id, "id1", "laptop", "h1")
        .await
        .unwrap();
    assert_eq!((a.id.as_str(), a.name.as_str()), ("id1", "laptop"));
    let err = meta
        .add_app_password(u.id, "id2", "laptop", "h2")
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::Conflict(_)), "{err:?}");
    meta.add_app_password(u.id, "id3", "phone", "h3")
        .await
        .unwrap();
    let names: Vec<String> = meta
        .app_passwords(u.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, vec!["laptop", "phone"]);
    let (found, user) = meta.app_password("id1").await.unwrap().unwrap();
    assert_eq!(
        (found.secret_hash.as_str(), user.name.as_str()),
        ("h1", "ann")
    );
    assert!(meta.revoke_app_password(u.id, "laptop").await.unwrap());
    assert!(!meta.revoke_app_password(u.id, "laptop").await.unwrap());
    assert!(meta.app_password("id1").await.unwrap().is_none());
    // A removed user's app passwords end with them.
    assert!(meta.remove_user("ann").await.unwrap());
    assert!(meta.app_password("id3").await.unwrap().is_none());
}

pub async fn searches_match_ignoring_ascii_case_and_escape_wildcards(meta: Meta) {
    use crate::meta::sql::files::contains_pattern;
    let o = DEFAULT_OWNER;
    let a = chunk('a', 1);
    store(&meta, &a).await;
    for p in [
        "Docs/Report 2026.PDF",
        "docs/report-draft.txt",
        "music/Grüße.mp3",
        "sale/50%_off.txt",
        "sale/50xyoff.txt",
        "zz/report",
    ] {
        commit(&meta, p, std::slice::from_ref(&a)).await;
    }
    delete(&meta, "zz/report").await;
    let found = |pattern: String, prefix: &'static str, after: &'static str, limit: u32| {
        let meta = meta.clone();
        async move {
            meta.search_files(o, prefix, &pattern, after, limit, 1)
                .await
                .unwrap()
                .into_iter()
                .map(|(v, _)| v.path)
                .collect::<Vec<_>>()
        }
    };
    // ASCII letters match either case; deleted files never.
    assert_eq!(
        found(contains_pattern("REPORT"), "", "", 10).await,
        vec!["Docs/Report 2026.PDF", "docs/report-draft.txt"]
    );
    // Pages, and a prefix.
    assert_eq!(
        found(contains_pattern("report"), "", "Docs/Report 2026.PDF", 10).await,
        vec!["docs/report-draft.txt"]
    );
    assert_eq!(found(contains_pattern("report"), "", "", 1).await.len(), 1);
    assert_eq!(
        found(contains_pattern("report"), "docs/", "", 10).await,
        vec!["docs/report-draft.txt"]
    );
    // LIKE's wildcards in a name are plain characters.
    assert_eq!(
        found(contains_pattern("50%_"), "", "", 10).await,
        vec!["sale/50%_off.txt"]
    );
    // Beyond ASCII, the store narrows by position; both engines agree.
    assert_eq!(
        found(contains_pattern("GRÜSSE"), "", "", 10).await,
        Vec::<String>::new()
    );
    assert_eq!(
        found(contains_pattern("grü"), "", "", 10).await,
        vec!["music/Grüße.mp3"]
    );
}

pub async fn sorted_listings_page_by_name_size_and_time_without_repeats(meta: Meta) {
    let o = DEFAULT_OWNER;
    let sizes = [('a', 3), ('b', 1), ('c', 2)];
    for (ch, size) in sizes {
        store(&meta, &chunk(ch, size)).await;
    }
    // Committed in this order, a tick apart: "3" first, "1" last.
    for (path, ch, size) in [
        ("f/3", 'c', 2),
        ("f/zz", 'a', 3),
        ("f/2", 'b', 1),
        ("f/1", 'a', 3),
    ] {
        commit(&meta, path, &[chunk(ch, size)]).await;
        tick().await;
    }
    commit(&meta, "f/sub/x", &[chunk('b', 1)]).await;
    commit(&meta, "f/sub2/deep/y", &[chunk('b', 1)]).await;
    commit(&meta, "f%_/odd", &[chunk('b', 1)]).await;
    meta.make_folder(o, "f/empty").await.unwrap();
    let list = |by: SortKey, descending: bool, key: i64, after: &'static str, limit: u32| {
        let meta = meta.clone();
        async move {
            let after = After {
                key,
                path: after.into(),
            };
            meta.list_sorted(o, "f", Sorted { by, descending }, &after, limit, 1)
                .await
                .unwrap()
                .into_iter()
                .map(|(v, _)| v.path)
                .collect::<Vec<_>>()
        }
    };
    // Only what is directly inside, by name; then the page after "f/2".
    assert_eq!(
        list(SortKey::Name, false, 0, "", 10).await,
        ["f/1", "f/2", "f/3", "f/zz"]
    );
    assert_eq!(
        list(SortKey::Name, false, 0, "f/2", 10).await,
        ["f/3", "f/zz"]
    );
    assert_eq!(list(SortKey::Name, true, 0, "", 2).await, ["f/zz", "f/3"]);
    // By size, ties by name, both ways; a page starts after (size, name).
    assert_eq!(
        list(SortKey::Size, false, 0, "", 10).await,
        ["f/2", "f/3", "f/1", "f/zz"]
    );
    assert_eq!(list(SortKey::Size, false, 3, "f/1", 10).await, ["f/zz"]);
    assert_eq!(
        list(SortKey::Size, true, 0, "", 10).await,
        ["f/zz", "f/1", "f/3", "f/2"]
    );
    assert_eq!(list(SortKey::Size, true, 2, "f/3", 10).await, ["f/2"]);
    // By upload time.
    assert_eq!(
        list(SortKey::Time, false, 0, "", 10).await,
        ["f/3", "f/zz", "f/2", "f/1"]
    );
    assert_eq!(list(SortKey::Time, true, 0, "", 1).await, ["f/1"]);
    // Sub-folders: implied by files and made on their own, once each; a
    // folder whose name holds LIKE's wildcards is nobody's child here.
    assert_eq!(
        meta.child_folders(o, "f").await.unwrap(),
        ["f/empty", "f/sub", "f/sub2"]
    );
    assert_eq!(meta.child_folders(o, "").await.unwrap(), ["f", "f%_"]);
}

pub async fn packed_chunks_name_their_pack_which_lives_while_they_do(meta: Meta) {
    let (a, b, c) = (chunk('a', 10), chunk('b', 20), chunk('c', 5));
    let pack = chunk('p', 100);
    let mut holds = Vec::new();
    for ch in [&a, &b, &c] {
        match meta.hold_chunk(ch, None).await.unwrap() {
            ChunkHold::Write(h) => holds.push(h),
            other => panic!("a new chunk must be written: {other:?}"),
        }
    }
    // `c` is stored on its own meanwhile: it stays where it is.
    meta.record_chunk(&c, &holds[2], &["n1".into()])
        .await
        .unwrap();
    let packed = [
        (&a, holds[0].clone(), 0),
        (&b, "not-the-hold".to_string(), 10),
        (&c, holds[2].clone(), 30),
    ]
    .map(|(ch, hold, offset)| Packed {
        chunk: ch.clone(),
        hold,
        offset,
    });
    let refused = meta
        .record_pack(&pack, &["n1".into(), "n2".into()], &packed)
        .await
        .unwrap();
    assert_eq!(refused, vec![b.id.clone()], "only the lost hold is refused");
    let ids = [a.id.clone(), b.id.clone(), c.id.clone()];
    let at = meta.pack_locations(&ids).await.unwrap();
    assert_eq!(
        at,
        HashMap::from([(
            a.id.clone(),
            PackedAt {
                pack: pack.id.clone(),
                offset: 0
            }
        )])
    );
    assert_eq!(
        meta.hold_chunk(&a, None).await.unwrap(),
        ChunkHold::Stored,
        "a packed chunk is stored"
    );

    // Workers walk objects: the pack and `c`, never a chunk inside a pack.
    let page: Vec<String> = meta
        .chunks_page("", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(page, vec![c.id.clone(), pack.id.clone()]);
    let short = meta.short_of_copies(2).await.unwrap();
    assert!(
        short.contains_key(&c.id) && !short.contains_key(&a.id) && !short.contains_key(&pack.id),
        "{short:?}"
    );
    // A version of packed chunks is as healthy as their pack.
    let f = commit(&meta, "f", std::slice::from_ref(&a)).await;
    let h = meta.version_health(f.file_id, f.number, 2).await.unwrap();
    assert_eq!((h.chunks, h.fully_replicated), (1, 1), "{h:?}");
    let h = meta.version_health(f.file_id, f.number, 3).await.unwrap();
    assert_eq!(h.under_replicated, 1, "{h:?}");

    // gc: the pack stays while a chunk names it, even one being deleted.
    tick().await;
    let claimed = meta.claim_unreferenced(Duration::ZERO, 10).await.unwrap();
    assert_eq!(claimed, vec![c.id.clone()], "nothing references `c`");
    meta.forget_chunk(&c.id).await.unwrap();
    // Mostly dead (10 of 100 bytes live): repacked into a new pack, the
    // old one then named by nothing.
    assert_eq!(meta.sparse_packs(5, 10).await.unwrap(), vec![]);
    assert_eq!(meta.sparse_packs(60, 10).await.unwrap(), vec![pack.clone()]);
    assert_eq!(
        meta.pack_members(&pack.id).await.unwrap(),
        vec![(a.clone(), 0)]
    );
    let fresh = chunk('q', 60);
    let moved = meta
        .repack(
            &pack.id,
            &fresh,
            &["n1".into(), "n2".into()],
            &[(a.id.clone(), 4)],
        )
        .await
        .unwrap();
    assert_eq!(moved, 1);
    assert_eq!(
        meta.pack_locations(std::slice::from_ref(&a.id))
            .await
            .unwrap()[&a.id],
        PackedAt {
            pack: fresh.id.clone(),
            offset: 4
        }
    );
    assert!(meta.pack_members(&pack.id).await.unwrap().is_empty());
    let h = meta.version_health(f.file_id, f.number, 2).await.unwrap();
    assert_eq!(h.fully_replicated, 1, "the new pack's copies count: {h:?}");
    tick().await;
    let claimed = meta.claim_unreferenced(Duration::ZERO, 10).await.unwrap();
    assert_eq!(claimed, vec![pack.id.clone()], "the emptied pack goes");
    meta.forget_chunk(&pack.id).await.unwrap();
    let pack = fresh;

    delete(&meta, "f").await;
    // Past the deletion's millisecond, so a retention of zero purges it.
    tick().await;
    let purge = Retention {
        purge_deleted_after: Some(Duration::ZERO),
        ..Default::default()
    };
    assert_eq!(meta.apply_retention(&purge).await.unwrap(), 1);
    tick().await;
    let claimed = meta.claim_unreferenced(Duration::ZERO, 10).await.unwrap();
    assert_eq!(
        claimed,
        vec![a.id.clone()],
        "the pack outlives its chunk's claim"
    );
    meta.forget_chunk(&a.id).await.unwrap();
    tick().await;
    let claimed = meta.claim_unreferenced(Duration::ZERO, 10).await.unwrap();
    assert_eq!(claimed, vec![pack.id.clone()], "then the pack goes");
}

/// Rebuilding where packed chunks are from packs found on the nodes: a
/// chunk a version holds whose pack is gone is pointed at the found pack (recorded with its copies); one whose pack
/// was found, or whose own object is there, stays; one no version holds
/// gets no row.
pub async fn packs_found_on_the_nodes_rebuild_where_chunks_are(meta: Meta) {
    let (a, b, c) = (chunk('a', 10), chunk('b', 20), chunk('c', 5));
    let (gone, kept) = (chunk('p', 100), chunk('k', 50));
    let mut holds = Vec::new();
    for ch in [&a, &b] {
        match meta.hold_chunk(ch, None).await.unwrap() {
            ChunkHold::Write(h) => holds.push(h),
            other => panic!("a new chunk must be written: {other:?}"),
        }
    }
    // `a` and `b` in pack `gone`; `c` an object of its own.
    let packed: Vec<Packed> = [(&a, 0), (&b, 10)]
        .iter()
        .zip(&holds)
        .map(|((ch, offset), hold)| Packed {
            chunk: (*ch).clone(),
            hold: hold.clone(),
            offset: *offset,
        })
        .collect();
    meta.record_pack(&gone, &["n1".into()], &packed)
        .await
        .unwrap();
    store(&meta, &c).await;
    commit(&meta, "f", &[a.clone(), b.clone(), c.clone()]).await;
    let e = chunk('e', 3);
    let found = [FoundPack {
        pack: kept.clone(),
        nodes: vec!["n1".into(), "n2".into()],
        // `a` and `b` moved here; `c` too, but its own object is there;
        // `e` is held by no version.
        entries: vec![
            (a.id.clone(), 0, 10, false),
            (b.id.clone(), 10, 20, false),
            (c.id.clone(), 30, 5, true),
            (e.id.clone(), 35, 3, false),
        ],
    }];
    assert_eq!(meta.reindex_packs(&found).await.unwrap(), 2);
    let at = meta
        .pack_locations(&[a.id.clone(), b.id.clone(), c.id.clone(), e.id.clone()])
        .await
        .unwrap();
    let place = |offset| PackedAt {
        pack: kept.id.clone(),
        offset,
    };
    assert_eq!(
        at,
        HashMap::from([(a.id.clone(), place(0)), (b.id.clone(), place(10))])
    );
    // The found pack is recorded with its copies; the standalone `c` is
    // still one of the objects workers walk.
    let standalone = meta
        .standalone_chunks(&[c.id.clone(), kept.id.clone(), a.id.clone()])
        .await
        .unwrap();
    assert_eq!(standalone, HashSet::from([c.id.clone()]));
    let short = meta.short_of_copies(2).await.unwrap();
    assert!(!short.contains_key(&kept.id), "{short:?}");
    // Found again (a second run): nothing left to point.
    assert_eq!(meta.reindex_packs(&found).await.unwrap(), 0);
}
