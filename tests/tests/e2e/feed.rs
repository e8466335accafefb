//! What a sync client builds on: conditional writes (a stale base version
//! changes nothing), MoveFile, and the change feed (ListChanges pages,
//! WatchChanges streams), over native gRPC and grpc-web.

use bytes::Bytes;
use coffer_proto::pb::file_storage_client::FileStorageClient;
use coffer_proto::pb::*;
use coffer_tests::data::{session_plan, upload_bytes};
use coffer_tests::grpc_web::{self, WebStream};
use coffer_tests::server::{Conn, Server, ServerOpts};
use prost::Message;
use tonic::Code;

/// gRPC's FAILED_PRECONDITION, as grpc-web carries it.
const FAILED_PRECONDITION: i32 = 9;

/// UploadFile of `data` to `name` with an `x-coffer-base-version` header.
async fn upload_on(
    c: &mut FileStorageClient<Conn>,
    name: &str,
    data: &[u8],
    base: &str,
) -> Result<UploadResponse, tonic::Status> {
    let msg = FileRequest {
        file_data: Bytes::copy_from_slice(data),
        file_name: name.into(),
    };
    let mut req = tonic::Request::new(tokio_stream::iter([msg]));
    req.metadata_mut()
        .insert("x-coffer-base-version", base.parse().unwrap());
    c.upload_file(req).await.map(|r| r.into_inner())
}

async fn latest(c: &mut FileStorageClient<Conn>, name: &str) -> Result<MetadataResponse, Code> {
    c.get_metadata(FileMetadataRequest {
        file_name: name.into(),
        version: 0,
    })
    .await
    .map(|r| r.into_inner())
    .map_err(|s| s.code())
}

async fn changes(c: &mut FileStorageClient<Conn>, cursor: &str) -> ListChangesResponse {
    c.list_changes(ListChangesRequest {
        cursor: cursor.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test]
async fn a_stale_base_version_changes_nothing_over_grpc_and_grpc_web() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    let bearer = server.token().map(|t| format!("Bearer {t}"));
    let web = |path: &'static str, body: Vec<u8>| {
        let (addr, bearer) = (server.addr().to_string(), bearer.clone());
        async move { grpc_web::call(&addr, path, bearer.as_deref(), &body).await }
    };

    // UploadFile: base 0 creates, and only where nothing is.
    upload_on(&mut c, "doc.txt", b"one", "0").await.unwrap();
    let err = upload_on(&mut c, "doc.txt", b"two", "0").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("latest version is 1"), "{err:?}");
    assert_eq!(latest(&mut c, "doc.txt").await.unwrap().version_number, 1);
    let v2 = upload_on(&mut c, "doc.txt", b"two", "1").await.unwrap();
    assert_eq!(v2.version, 2);
    let err = upload_on(&mut c, "doc.txt", b"x", "two").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // DeleteFile and MoveFile on a stale base, over grpc-web.
    let r = web(
        "/FileStorage/DeleteFile",
        DeleteFileRequest {
            file_name: "doc.txt".into(),
            base_version: Some(1),
        }
        .encode_to_vec(),
    )
    .await;
    assert_eq!(r.code, FAILED_PRECONDITION, "{r:?}");
    let r = web(
        "/FileStorage/MoveFile",
        MoveFileRequest {
            from_name: "doc.txt".into(),
            to_name: "moved.txt".into(),
            base_version: Some(1),
        }
        .encode_to_vec(),
    )
    .await;
    assert_eq!(r.code, FAILED_PRECONDITION, "{r:?}");
    let now = latest(&mut c, "doc.txt").await.unwrap();
    assert_eq!((now.version_number, now.deleted), (2, false));
    assert_eq!(latest(&mut c, "moved.txt").await, Err(Code::NotFound));

    // A session: FinishUpload on a stale base (grpc-web) commits nothing;
    // on the right one it commits.
    let (start, chunks) = session_plan("doc.txt", b"three");
    let s = c.start_upload(start).await.unwrap().into_inner();
    for (id, data) in chunks {
        c.put_chunk(PutChunkRequest {
            upload_id: s.upload_id.clone(),
            chunk_id: id,
            data,
        })
        .await
        .unwrap();
    }
    let finish = |base| {
        FinishUploadRequest {
            upload_id: s.upload_id.clone(),
            base_version: Some(base),
        }
        .encode_to_vec()
    };
    let r = web("/FileStorage/FinishUpload", finish(1)).await;
    assert_eq!(r.code, FAILED_PRECONDITION, "{r:?}");
    assert_eq!(latest(&mut c, "doc.txt").await.unwrap().version_number, 2);
    let r = web("/FileStorage/FinishUpload", finish(2)).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        MetadataResponse::decode(&r.data[..])
            .unwrap()
            .version_number,
        3
    );

    // Native DeleteFile on a stale base; then MoveFile on the right one.
    let err = c
        .delete_file(DeleteFileRequest {
            file_name: "doc.txt".into(),
            base_version: Some(2),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    upload_bytes(&mut c, "taken.txt", b"taken").await.unwrap();
    let onto = c
        .move_file(MoveFileRequest {
            from_name: "doc.txt".into(),
            to_name: "taken.txt".into(),
            base_version: None,
        })
        .await
        .unwrap_err();
    assert_eq!(onto.code(), Code::AlreadyExists, "{onto:?}");
    let moved = c
        .move_file(MoveFileRequest {
            from_name: "doc.txt".into(),
            to_name: "moved.txt".into(),
            base_version: Some(3),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (moved.file_name.as_str(), moved.version_number),
        ("moved.txt", 1)
    );
    assert_eq!(
        moved.content_hash,
        coffer_proto::chunking::content_hash_of(b"three")
    );
    assert_eq!(latest(&mut c, "doc.txt").await, Err(Code::NotFound));

    // The feed holds exactly the writes that went through.
    let feed = changes(&mut c, "").await;
    let seen: Vec<(&str, bool, u64)> = feed
        .changes
        .iter()
        .map(|c| (c.file_name.as_str(), c.deleted, c.version))
        .collect();
    assert_eq!(
        seen,
        [
            ("doc.txt", false, 1),
            ("doc.txt", false, 2),
            ("doc.txt", false, 3),
            ("taken.txt", false, 1),
            ("doc.txt", true, 3),
            ("moved.txt", false, 1),
        ]
    );
}

#[tokio::test]
async fn the_change_feed_pages_and_streams_over_grpc_and_grpc_web() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    let bearer = server.token().map(|t| format!("Bearer {t}"));
    upload_bytes(&mut c, "a.txt", b"a").await.unwrap();
    upload_bytes(&mut c, "b.txt", b"b").await.unwrap();

    // Pages of one continue from their cursor.
    let first = c
        .list_changes(ListChangesRequest {
            cursor: String::new(),
            page_size: 1,
            latest: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.changes.len(), 1);
    assert_eq!(first.changes[0].file_name, "a.txt");
    assert!(first.more);
    let second = changes(&mut c, &first.cursor).await;
    assert_eq!(second.changes.len(), 1);
    assert_eq!(second.changes[0].file_name, "b.txt");
    assert!(!second.more);
    let head = c
        .list_changes(ListChangesRequest {
            latest: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(head.changes.is_empty());
    assert_eq!(head.cursor, second.cursor);

    // Bad cursors are refused, with what to do.
    let bad = c
        .list_changes(ListChangesRequest {
            cursor: "abc".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    let ahead = c
        .list_changes(ListChangesRequest {
            cursor: "999999".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(ahead.code(), Code::FailedPrecondition, "{ahead:?}");
    assert!(
        ahead.message().contains("list the files again"),
        "{ahead:?}"
    );

    // A native watch from the head: an empty first page, then each change
    // as it is made.
    let mut watch = c
        .watch_changes(WatchChangesRequest {
            cursor: head.cursor.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let hello = watch.message().await.unwrap().unwrap();
    assert!(hello.changes.is_empty());
    assert_eq!(hello.cursor, head.cursor);

    // A grpc-web watch from the start: what is there, then what comes.
    let mut web = WebStream::open(
        server.addr(),
        "/FileStorage/WatchChanges",
        bearer.as_deref(),
        &WatchChangesRequest::default().encode_to_vec(),
    )
    .await;
    let page = ListChangesResponse::decode(&web.next().await.unwrap()[..]).unwrap();
    let names: Vec<&str> = page.changes.iter().map(|c| c.file_name.as_str()).collect();
    assert_eq!(names, ["a.txt", "b.txt"]);

    // Another client writes; both watchers hear of it.
    let mut other = server.client().await;
    upload_bytes(&mut other, "c.txt", b"c").await.unwrap();
    let native = watch.message().await.unwrap().unwrap();
    assert_eq!(native.changes.len(), 1);
    assert_eq!(native.changes[0].file_name, "c.txt");
    assert_eq!(native.changes[0].version, 1);
    let page = ListChangesResponse::decode(&web.next().await.unwrap()[..]).unwrap();
    assert_eq!(page.changes.len(), 1);
    assert_eq!(page.changes[0].file_name, "c.txt");
    assert_eq!(page.cursor, native.cursor);
    other
        .delete_file(DeleteFileRequest {
            file_name: "a.txt".into(),
            base_version: Some(1),
        })
        .await
        .unwrap();
    let gone = watch.message().await.unwrap().unwrap();
    assert_eq!(gone.changes.len(), 1);
    assert!(gone.changes[0].deleted);
    assert_eq!(gone.changes[0].file_name, "a.txt");
}

#[tokio::test]
async fn modification_times_are_kept_and_the_cli_puts_them_back() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;

    // UploadFile's header, normalised to UTC; a malformed one is refused
    // and stores nothing.
    let send = |t: &'static str| {
        let msg = FileRequest {
            file_data: Bytes::from_static(b"timed"),
            file_name: "timed.txt".into(),
        };
        let mut req = tonic::Request::new(tokio_stream::iter([msg]));
        req.metadata_mut()
            .insert("x-coffer-modified-time", t.parse().unwrap());
        req
    };
    c.upload_file(send("2026-05-06T09:08:07.5+02:00"))
        .await
        .unwrap();
    let v = latest(&mut c, "timed.txt").await.unwrap();
    assert_eq!(v.modified_time, "2026-05-06T07:08:07.5Z");
    let bad = c.upload_file(send("yesterday")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert_eq!(latest(&mut c, "timed.txt").await.unwrap().version_number, 1);
    let feed = changes(&mut c, "").await;
    assert_eq!(feed.changes[0].modified_time, "2026-05-06T07:08:07.5Z");

    // `coffer put` sends the file's time, `coffer get` sets it again.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("old.txt");
    std::fs::write(&local, b"written long ago").unwrap();
    let then = std::time::UNIX_EPOCH + std::time::Duration::new(1_600_000_000, 123_456_789);
    std::fs::File::options()
        .write(true)
        .open(&local)
        .unwrap()
        .set_modified(then)
        .unwrap();
    let cli = coffer_tests::cli::Cli::for_server(&server);
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let put = cli.run(&["put", &s(&local), "old.txt"]).await;
    assert!(put.ok, "{put:?}");
    let v = latest(&mut c, "old.txt").await.unwrap();
    assert_eq!(v.modified_time, "2020-09-13T12:26:40.123456789Z");
    let back = dir.path().join("back.txt");
    let get = cli.run(&["get", "old.txt", &s(&back)]).await;
    assert!(get.ok, "{get:?}");
    assert_eq!(std::fs::read(&back).unwrap(), b"written long ago");
    assert_eq!(std::fs::metadata(&back).unwrap().modified().unwrap(), then);
}

/// One folder's listing, every page of `size`: (files, folders, pages).
async fn folder(
    c: &mut FileStorageClient<Conn>,
    prefix: &str,
    size: u32,
) -> (Vec<String>, Vec<String>, usize) {
    let (mut files, mut folders, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut token = String::new();
    loop {
        let page = c
            .list_files(ListFilesRequest {
                prefix: prefix.into(),
                page_size: size,
                page_token: token,
                delimiter: "/".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(
            page.files.len() + page.folders.len() <= size as usize,
            "{page:?}"
        );
        files.extend(page.files.into_iter().map(|f| f.file_name));
        folders.extend(page.folders);
        if page.next_page_token.is_empty() {
            return (files, folders, pages);
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn a_folder_lists_its_files_and_sub_folders_without_their_contents() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    let mut names = vec![
        "top.txt".to_string(),
        "docs/a.txt".into(),
        "docs/b/deep.txt".into(),
        "docs/b/deeper/x.txt".into(),
        "docs/c.txt".into(),
        "docs/d/one.txt".into(),
        "docs0.txt".into(),
        "photos/1.jpg".into(),
    ];
    // A big sub-folder the listing steps over.
    names.extend((0..150).map(|i| format!("docs/big/{i:04}.bin")));
    for n in &names {
        upload_bytes(&mut c, n, n.as_bytes()).await.unwrap();
    }
    c.delete_file(DeleteFileRequest {
        file_name: "docs/d/one.txt".into(),
        base_version: None,
    })
    .await
    .unwrap();

    let (files, folders, _) = folder(&mut c, "", 100).await;
    assert_eq!(files, ["docs0.txt", "top.txt"]);
    assert_eq!(folders, ["docs/", "photos/"]);
    // "docs" and "docs/" name the same folder; a deleted file's folder is
    // gone with it. Every page size gives the same entries.
    for size in [1, 2, 3, 100] {
        for prefix in ["docs", "docs/"] {
            let (files, folders, pages) = folder(&mut c, prefix, size).await;
            assert_eq!(files, ["docs/a.txt", "docs/c.txt"], "page size {size}");
            assert_eq!(folders, ["docs/b/", "docs/big/"], "page size {size}");
            assert!(pages <= 4usize.div_ceil(size as usize) + 1, "{pages} pages");
        }
    }
    let (files, folders, _) = folder(&mut c, "docs/b", 10).await;
    assert_eq!(files, ["docs/b/deep.txt"]);
    assert_eq!(folders, ["docs/b/deeper/"]);
    let (files, _, pages) = folder(&mut c, "docs/big/", 1000).await;
    assert_eq!((files.len(), pages), (150, 1));
    let bad = c
        .list_files(ListFilesRequest {
            delimiter: ",".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
}
