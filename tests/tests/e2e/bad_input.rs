//! Bad input gets a clear status and changes nothing; a crash mid-upload
//! leaves no partial version.

use crate::local_chunk_objects;
use bytes::Bytes;
use coffer_proto::pb::{FileMetadataRequest, FileRequest, ListFilesRequest};
use coffer_tests::data::{
    download, download_hash, hash_blocks, pattern, pattern_blocks, upload, upload_bytes,
};
use coffer_tests::server::{Server, ServerOpts};
use tonic::Code;

#[tokio::test]
async fn hostile_names_are_rejected_and_store_nothing() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    let long = "a/".repeat(600);
    let names = [
        "",
        "/",
        "..",
        "a/../b",
        "./x",
        "a\0b",
        "tab\tname",
        "new\nline",
        "esc\u{1b}[31m",
        long.as_str(),
    ];
    let data = pattern(2 * 1024 * 1024, 3);
    for name in names {
        let err = upload_bytes(&mut c, name, &data).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}: {err:?}");
        let err = c
            .get_metadata(FileMetadataRequest {
                file_name: name.into(),
                version: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
    }
    assert!(
        local_chunk_objects(server.data_dir())
            .iter()
            .all(|n| n.is_empty()),
        "chunks were stored"
    );
    let listed = c
        .list_files(ListFilesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.files.is_empty());

    // No name at all, or a name only after the first message: refused
    // before any byte is stored, however much data follows.
    for named_from in [None, Some(1)] {
        let msgs: Vec<FileRequest> = (0..4)
            .map(|i| FileRequest {
                file_data: Bytes::from(pattern(1024 * 1024, 40 + i)),
                file_name: match named_from {
                    Some(from) if i >= from => "late.bin".into(),
                    _ => String::new(),
                },
            })
            .collect();
        let err = c.upload_file(tokio_stream::iter(msgs)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{named_from:?}");
        assert!(err.message().contains("no file name"), "{err:?}");
    }
    assert!(
        local_chunk_objects(server.data_dir())
            .iter()
            .all(|n| n.is_empty()),
        "chunks were stored for a nameless upload"
    );
}

#[tokio::test]
async fn missing_files_are_not_found() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    let err = download(&mut c, "no/such/file", 0).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .get_metadata(FileMetadataRequest {
            file_name: "no/such/file".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("no/such/file"), "{}", err.message());
}

#[tokio::test]
async fn oversized_messages_are_refused_and_store_nothing() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    let msgs = vec![FileRequest {
        file_data: Bytes::from(vec![1u8; 12 * 1024 * 1024]),
        file_name: "huge.bin".into(),
    }];
    let err = c.upload_file(tokio_stream::iter(msgs)).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{err:?}"
    );
    assert!(local_chunk_objects(server.data_dir())
        .iter()
        .all(|n| n.is_empty()));
    let err = c
        .get_metadata(FileMetadataRequest {
            file_name: "huge.bin".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn sigkill_mid_upload_leaves_no_partial_version_and_restart_serves_everything() {
    let mut server = Server::start(ServerOpts::embedded().process())
        .await
        .unwrap();
    let mut c = server.client().await;
    let committed: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("kept/{i}.bin"),
                pattern(1024 * 1024 * i + 11, 500 + i as u64),
            )
        })
        .collect();
    for (name, data) in &committed {
        upload_bytes(&mut c, name, data).await.unwrap();
    }
    // Version 1 of the file that will be interrupted.
    let v1 = pattern(777_777, 8);
    upload_bytes(&mut c, "kept/victim.bin", &v1).await.unwrap();

    // Start a big second version and kill the server once chunks land.
    let before = local_chunk_objects(server.data_dir())[0].len();
    let mut c2 = server.client().await;
    let uploading = tokio::spawn(async move {
        upload(
            &mut c2,
            "kept/victim.bin",
            pattern_blocks(400 * 1024 * 1024, 9),
        )
        .await
    });
    let mut waited = 0;
    while local_chunk_objects(server.data_dir())[0].len() < before + 3 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
        assert!(waited < 2400, "upload made no progress");
    }
    server.kill().await;
    assert!(
        uploading.await.unwrap().is_err(),
        "the interrupted upload must not report success"
    );

    server.restart().await.unwrap();
    let mut c = server.client().await;
    let md = c
        .get_metadata(FileMetadataRequest {
            file_name: "kept/victim.bin".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(md.version, "1", "a partial version became visible");
    assert!(download(&mut c, "kept/victim.bin", 0).await.unwrap() == v1);
    for (name, data) in &committed {
        assert!(download(&mut c, name, 0).await.unwrap() == *data, "{name}");
    }
    // And the server takes new uploads on the same data dir.
    let (len, hash) = hash_blocks(pattern_blocks(9 * 1024 * 1024, 10));
    upload(
        &mut c,
        "after-restart.bin",
        pattern_blocks(9 * 1024 * 1024, 10),
    )
    .await
    .unwrap();
    assert_eq!(
        download_hash(&mut c, "after-restart.bin", 0).await.unwrap(),
        (len, hash)
    );
}
