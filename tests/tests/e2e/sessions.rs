//! The chunked upload session: StartUpload / PutChunk / FinishUpload.

use crate::local_chunk_objects;
use bytes::Bytes;
use coffer_proto::chunking::{chunk_id, chunk_spans};
use coffer_proto::pb::file_storage_client::FileStorageClient;
use coffer_proto::pb::{
    ChunkRef, FinishUploadRequest, ListFilesRequest, PutChunkRequest, StartUploadRequest,
};
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

#[tokio::test]
async fn malformed_session_plans_are_refused() {
    malformed_session_plans_are_refused_with(ServerOpts::embedded()).await
}

#[tokio::test]
async fn malformed_session_plans_are_refused_on_postgres() {
    malformed_session_plans_are_refused_with(ServerOpts::embedded().on_postgres().await).await
}
