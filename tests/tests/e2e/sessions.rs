//! The chunked upload session: StartUpload / PutChunk / FinishUpload.

use crate::local_chunk_objects;
use bytes::Bytes;
use coffer_proto::chunking::{chunk_id, chunk_spans};
use coffer_proto::pb::file_storage_client::FileStorageClient;
use coffer_proto::pb::{
    finish_upload_result, start_upload_result, ChunkRef, FinishUploadRequest, FinishUploadsRequest,
    ListChangesRequest, ListFilesRequest, PutChunkRequest, PutChunksRequest, StartUploadRequest,
    StartUploadsRequest,
};
use coffer_proto::reason;
use coffer_tests::data::{download, pattern, upload_bytes};
use coffer_tests::server::Conn;
use coffer_tests::server::{Server, ServerOpts};
use std::collections::HashMap;
use tonic::Code;

struct Plan {
    request: StartUploadRequest,
    chunks: HashMap<String, Bytes>,
}

fn plan(name: &str, data: &[u8]) -> Plan {
    let (request, chunks) = coffer_tests::data::session_plan(name, data);
    Plan {
        request,
        chunks: chunks.into_iter().collect(),
    }
}

async fn put(
    c: &mut FileStorageClient<Conn>,
    upload: &str,
    id: &str,
    data: Bytes,
) -> Result<u32, tonic::Status> {
    let r = c
        .put_chunk(PutChunkRequest {
            upload_id: upload.into(),
            chunk_id: id.into(),
            data,
        })
        .await?;
    Ok(r.into_inner().remaining)
}

async fn session_reports_missing_chunks_checks_hashes_and_resumes_with(opts: ServerOpts) {
    let server = Server::start(opts).await.unwrap();
    let mut c = server.client().await;

    // Part of the file is already stored: its first 3 MiB as another file.
    let data = pattern(12 * 1024 * 1024 + 5, 77);
    let p = plan("session/big.bin", &data);
    let prefix_len: usize = chunk_spans(&data).iter().take(2).map(|s| s.1).sum();
    upload_bytes(&mut c, "session/prefix.bin", &data[..prefix_len])
        .await
        .unwrap();
    let stored_ids: Vec<String> = p
        .request
        .chunks
        .iter()
        .take(2)
        .map(|c| c.id.clone())
        .collect();
    // The upload answered once W copies were written; the last copy of
    // each chunk may land a moment later. Counting objects (below) waits
    // for it (local nodes only; a minute at most, a liveness bound).
    for _ in 0..600 {
        let nodes = local_chunk_objects(server.data_dir());
        let settled = nodes.iter().all(|n| n.is_empty())
            || nodes.iter().all(|n| {
                stored_ids
                    .iter()
                    .all(|id| n.iter().any(|k| k.ends_with(id.as_str())))
            });
        if settled {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let start = c
        .start_upload(p.request.clone())
        .await
        .unwrap()
        .into_inner();
    let all: Vec<String> = p.request.chunks.iter().map(|c| c.id.clone()).collect();
    let expect_missing: Vec<String> = all
        .iter()
        .filter(|id| !stored_ids.contains(id))
        .cloned()
        .collect();
    assert!(!stored_ids.is_empty() && !expect_missing.is_empty());
    assert_eq!(
        start.missing_chunks, expect_missing,
        "StartUpload must report exactly the absent chunks"
    );

    // Wrong bytes for a chunk id: INVALID_ARGUMENT, nothing stored.
    let before = local_chunk_objects(server.data_dir());
    let victim = &expect_missing[0];
    let mut garbage = p.chunks[victim].to_vec();
    garbage[0] ^= 0xff;
    let err = put(&mut c, &start.upload_id, victim, Bytes::from(garbage))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = put(
        &mut c,
        &start.upload_id,
        victim,
        Bytes::from_static(b"short"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let stranger = chunk_id(b"not in this upload");
    let err = put(
        &mut c,
        &start.upload_id,
        &stranger,
        Bytes::from_static(b"not in this upload"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(local_chunk_objects(server.data_dir()), before);

    // Send half, then "lose the connection".
    let half = expect_missing.len() / 2;
    for id in &expect_missing[..half] {
        put(&mut c, &start.upload_id, id, p.chunks[id].clone())
            .await
            .unwrap();
    }
    // Finishing now fails cleanly and commits nothing.
    let err = c
        .finish_upload(FinishUploadRequest {
            upload_id: start.upload_id.clone(),
            base_version: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        download(&mut c, "session/big.bin", 0)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // Resume on a new connection: only the rest is asked for.
    let mut c2 = server.client().await;
    let resumed = c2
        .start_upload(StartUploadRequest {
            upload_id: start.upload_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed.missing_chunks, expect_missing[half..].to_vec());
    let mut remaining = u32::MAX;
    for id in &resumed.missing_chunks {
        remaining = put(&mut c2, &start.upload_id, id, p.chunks[id].clone())
            .await
            .unwrap();
    }
    assert_eq!(remaining, 0);
    let md = c2
        .finish_upload(FinishUploadRequest {
            upload_id: start.upload_id.clone(),
            base_version: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((md.version.as_str(), md.size), ("1", data.len() as u64));
    assert_eq!(md.content_hash, p.request.content_hash);
    assert!(download(&mut c2, "session/big.bin", 0).await.unwrap() == data);

    // Finishing again (a retry after a lost answer) returns the same
    // version and commits nothing new.
    let again = c2
        .finish_upload(FinishUploadRequest {
            upload_id: start.upload_id.clone(),
            base_version: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.version, "1");
    let versions = c2
        .list_versions(coffer_proto::pb::ListVersionsRequest {
            file_name: "session/big.bin".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(versions.len(), 1);

    // An identical second upload needs no chunk at all.
    let again = c2
        .start_upload(p.request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(again.missing_chunks.is_empty());
    let md = c2
        .finish_upload(FinishUploadRequest {
            upload_id: again.upload_id,
            base_version: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(md.version, "2");
}

async fn malformed_session_plans_are_refused_with(opts: ServerOpts) {
    let server = Server::start(opts).await.unwrap();
    let mut c = server.client().await;
    let good = plan("x.bin", &pattern(1000, 1)).request;
    let mut cases = Vec::new();
    let mut r = good.clone();
    r.size += 1;
    cases.push(("size mismatch", r));
    let mut r = good.clone();
    r.content_hash = "abc".into();
    cases.push(("bad content hash", r));
    let mut r = good.clone();
    r.chunks[0].id = "Z".repeat(64);
    cases.push(("bad chunk id", r));
    let mut r = good.clone();
    r.chunks[0].size = 5 * 1024 * 1024;
    r.size = 5 * 1024 * 1024;
    cases.push(("oversized chunk", r));
    let mut r = good.clone();
    r.file_name = "../escape".into();
    cases.push(("bad name", r));
    // One id twice, with two sizes.
    let mut r = good.clone();
    r.chunks.push(ChunkRef {
        id: r.chunks[0].id.clone(),
        size: 1,
    });
    r.size += 1;
    cases.push(("one id, two sizes", r));
    // A stored chunk claimed with another size: the version would list
    // 3 MiB of content as 10 bytes.
    let stored = pattern(3 * 1024 * 1024, 2);
    upload_bytes(&mut c, "stored.bin", &stored).await.unwrap();
    let mut r = plan("small.bin", &stored).request;
    r.chunks.truncate(1);
    r.chunks[0].size = 10;
    r.size = 10;
    cases.push(("stored chunk, other size", r));
    for (what, req) in cases {
        let err = c.start_upload(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
    }
    let listed = c
        .list_files(ListFilesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .files;
    assert_eq!(listed.len(), 1, "only stored.bin: {listed:?}");
    let err = c
        .put_chunk(PutChunkRequest {
            upload_id: "nope".into(),
            chunk_id: chunk_id(b"x"),
            data: Bytes::from_static(b"x"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// A batch: many files' sessions opened, filled and committed in three
/// calls, each file answered on its own, as a version and a change of
/// its own; a batch counts as one open upload; bad batches change
/// nothing.
async fn batches_answer_each_file_on_its_own_with(opts: ServerOpts) {
    use finish_upload_result::Result as Finished;
    use start_upload_result::Result as Started;
    let server = Server::start(opts.with("COFFER_MAX_OPEN_UPLOADS", "2"))
        .await
        .unwrap();
    let mut c = server.client().await;
    upload_bytes(&mut c, "b/taken.bin", b"first").await.unwrap();
    upload_bytes(&mut c, "f", b"a file, not a folder")
        .await
        .unwrap();
    let cursor = c
        .list_changes(ListChangesRequest {
            latest: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cursor;

    let names = [
        "b/1.bin",
        "../escape",
        "b/2.bin",
        "f/x.bin",
        "b/3.bin",
        "b/taken.bin",
        "b/late.bin",
    ];
    let mut plans: Vec<Plan> = names
        .iter()
        .enumerate()
        .map(|(i, n)| plan(n, &pattern(4096, i as u64)))
        .collect();
    plans[6].request.modified_time = "yesterday".into();
    let started = c
        .start_uploads(StartUploadsRequest {
            files: plans.iter().map(|p| p.request.clone()).collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .files;
    assert_eq!(started.len(), names.len());
    let mut sessions = HashMap::new();
    for (name, r) in names.iter().zip(started) {
        match (r.result.unwrap(), *name) {
            (Started::Session(s), "../escape" | "f/x.bin" | "b/late.bin") => {
                panic!("{name} opened: {s:?}")
            }
            (Started::Session(s), _) => {
                assert_eq!(s.missing_chunks.len(), 1, "{name}");
                sessions.insert(*name, s.upload_id);
            }
            (Started::Refused(r), "../escape") => {
                assert_eq!(r.code, Code::InvalidArgument as i32, "{r:?}")
            }
            (Started::Refused(r), "b/late.bin") => {
                assert_eq!(r.code, Code::InvalidArgument as i32, "{r:?}");
                assert!(r.message.contains("RFC 3339"), "{r:?}");
            }
            (Started::Refused(r), "f/x.bin") => assert_eq!(r.reason, reason::NAME_TAKEN, "{r:?}"),
            (Started::Refused(r), _) => panic!("{name} refused: {r:?}"),
        }
    }

    // The batch is one open upload of the two allowed: a second batch
    // opens, then a third upload does not.
    let other = plan("b/other.bin", &pattern(10, 9)).request;
    let second = c
        .start_uploads(StartUploadsRequest {
            files: vec![other.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(second.files[0].result, Some(Started::Session(_))));
    let err = c.start_upload(other).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // A chunk whose bytes do not match its id refuses the whole call,
    // and the good chunk beside it is not counted as sent.
    let chunk = |i: usize| {
        let (id, data) = plans[i].chunks.iter().next().unwrap();
        (id.clone(), data.clone())
    };
    let put = |name: &str, (id, data): (String, Bytes)| PutChunkRequest {
        upload_id: sessions[name].clone(),
        chunk_id: id,
        data,
    };
    let (bad_id, _) = chunk(2);
    let err = c
        .put_chunks(PutChunksRequest {
            chunks: vec![
                put("b/1.bin", chunk(0)),
                put("b/2.bin", (bad_id, Bytes::from(pattern(4096, 77)))),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let resumed = c
        .start_upload(StartUploadRequest {
            upload_id: sessions["b/1.bin"].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resumed.missing_chunks.len(),
        1,
        "the refused call counted a chunk"
    );
    // More than 4 MiB in one call is refused before anything is read.
    let big = Bytes::from(vec![0u8; 2200 * 1024]);
    let err = c
        .put_chunks(PutChunksRequest {
            chunks: vec![
                put("b/1.bin", (chunk_id(&big), big.clone())),
                put("b/2.bin", (chunk_id(&big), big)),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // All four files' chunks in one call.
    let sent = c
        .put_chunks(PutChunksRequest {
            chunks: vec![
                put("b/1.bin", chunk(0)),
                put("b/2.bin", chunk(2)),
                put("b/3.bin", chunk(4)),
                put("b/taken.bin", chunk(5)),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.remaining, vec![0, 0, 0, 0]);

    // One commit: each file on its own base; the stale one and the
    // unknown session are refused, the others commit.
    let finish = |name: &str, base: Option<u64>| FinishUploadRequest {
        upload_id: sessions.get(name).cloned().unwrap_or_else(|| "nope".into()),
        base_version: base,
    };
    let batch = FinishUploadsRequest {
        files: vec![
            finish("b/1.bin", None),
            finish("b/2.bin", Some(0)),
            finish("b/taken.bin", Some(0)),
            finish("b/3.bin", Some(0)),
            finish("unknown", None),
        ],
    };
    let done = c
        .finish_uploads(batch.clone())
        .await
        .unwrap()
        .into_inner()
        .files;
    let mut versions = Vec::new();
    for (i, r) in done.into_iter().enumerate() {
        match (i, r.result.unwrap()) {
            (0 | 1 | 3, Finished::Metadata(m)) => {
                assert_eq!(m.version_number, 1);
                assert_eq!(m.size, 4096);
                versions.push(m);
            }
            (2, Finished::Refused(r)) => {
                assert_eq!(r.reason, reason::STALE, "{r:?}");
                assert_eq!(r.about["latest"], "1");
            }
            (4, Finished::Refused(r)) => assert_eq!(r.code, Code::NotFound as i32, "{r:?}"),
            (i, r) => panic!("file {i}: {r:?}"),
        }
    }
    // A retry (the answer lost) answers the same versions and makes none.
    let again = c.finish_uploads(batch).await.unwrap().into_inner().files;
    for (i, v) in [(0, &versions[0]), (1, &versions[1]), (3, &versions[2])] {
        match again[i].result.as_ref().unwrap() {
            Finished::Metadata(m) => assert_eq!(
                (m.version_number, &m.file_name, &m.content_hash),
                (v.version_number, &v.file_name, &v.content_hash)
            ),
            r => panic!("file {i} again: {r:?}"),
        }
    }
    let feed = c
        .list_changes(ListChangesRequest {
            cursor,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let changed: Vec<&str> = feed.iter().map(|c| c.file_name.as_str()).collect();
    assert_eq!(changed, ["b/1.bin", "b/2.bin", "b/3.bin"], "{feed:?}");
    assert!(feed.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    for (i, name) in [(0, "b/1.bin"), (2, "b/2.bin"), (4, "b/3.bin")] {
        assert!(download(&mut c, name, 0).await.unwrap() == pattern(4096, i));
    }
    assert!(download(&mut c, "b/taken.bin", 0).await.unwrap() == b"first");

    // Empty batches and batches over 1,000 files are refused.
    let err = c
        .finish_uploads(FinishUploadsRequest { files: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let many = plan("b/many.bin", b"x").request;
    let err = c
        .start_uploads(StartUploadsRequest {
            files: vec![many; 1001],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

#[tokio::test]
async fn batches_answer_each_file_on_its_own() {
    batches_answer_each_file_on_its_own_with(ServerOpts::embedded()).await
}

#[tokio::test]
async fn batches_answer_each_file_on_its_own_on_postgres() {
    batches_answer_each_file_on_its_own_with(ServerOpts::embedded().on_postgres().await).await
}

#[tokio::test]
async fn session_reports_missing_chunks_checks_hashes_and_resumes() {
    session_reports_missing_chunks_checks_hashes_and_resumes_with(ServerOpts::embedded()).await
}

#[tokio::test]
async fn session_reports_missing_chunks_checks_hashes_and_resumes_on_postgres() {
    session_reports_missing_chunks_checks_hashes_and_resumes_with(
        ServerOpts::embedded().on_postgres().await,
    )
    .await
}

/// Missing chunks, resume and dedup with packs on: the file's small
/// tail is packed.
#[tokio::test]
async fn session_reports_missing_chunks_checks_hashes_and_resumes_with_packs() {
    session_reports_missing_chunks_checks_hashes_and_resumes_with(
        ServerOpts::embedded().with("COFFER_PACKS", "true"),
    )
    .await
}

#[tokio::test]
async fn malformed_session_plans_are_refused() {
    malformed_session_plans_are_refused_with(ServerOpts::embedded()).await
}

#[tokio::test]
async fn malformed_session_plans_are_refused_on_postgres() {
    malformed_session_plans_are_refused_with(ServerOpts::embedded().on_postgres().await).await
}
