//! Limits that keep one client from exhausting the server: open sessions
//! per user (and abandoning one to free its place), what open uploads
//! reserve against the quota, streams against the session cap, the
//! server-wide upload memory budget, plans of tiny chunks, the server-wide download memory budget
//! against stalled readers, the idle time-out on silent uploads, paged
//! version lists, spaced manual worker runs, the header time-out, and the
//! content hash the server checks instead of trusting.

use coffer_proto::pb::{
    AbortUploadRequest, ChunkRef, FileDownloadRequest, FileRequest, FinishUploadRequest,
    ListVersionsRequest, PutChunkRequest, RunWorkerRequest, StartUploadRequest,
};
use coffer_tests::data::{download, is_stored, pattern, session_plan, upload_bytes};
use coffer_tests::server::{proc_bytes, Server, ServerOpts};
use std::time::Duration;
use tonic::Code;

#[tokio::test]
async fn open_upload_sessions_are_capped_per_user() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_MAX_OPEN_UPLOADS", "3"))
        .await
        .unwrap();
    let mut c = server.client().await;
    let mut open = Vec::new();
    for i in 0..3 {
        let (req, _) = session_plan(&format!("s{i}.bin"), &pattern(1000, i));
        open.push(c.start_upload(req).await.unwrap().into_inner().upload_id);
    }
    let (req, chunks) = session_plan("s3.bin", &pattern(1000, 3));
    let err = c.start_upload(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("at most 3"), "{err:?}");
    // Someone else has their own allowance.
    let bob = server.add_user("bob", "bob-password-1", false).await;
    let mut b = server.client_as(Some(&bob)).await;
    b.start_upload(req.clone()).await.unwrap();
    // Finishing one frees a place.
    let (plan0, chunks0) = session_plan("s0.bin", &pattern(1000, 0));
    assert_eq!(plan0.chunks.len(), 1);
    c.put_chunk(PutChunkRequest {
        upload_id: open[0].clone(),
        chunk_id: chunks0[0].0.clone(),
        data: chunks0[0].1.clone(),
    })
    .await
    .unwrap();
    c.finish_upload(FinishUploadRequest {
        upload_id: open[0].clone(),
        base_version: None,
    })
    .await
    .unwrap();
    let started = c.start_upload(req).await.unwrap().into_inner();
    assert_eq!(started.missing_chunks, [chunks[0].0.clone()]);

    // Full again; abandoning one frees a place at once. Only its owner
    // can abandon it, once; afterwards it can be neither resumed nor
    // finished.
    let (req4, _) = session_plan("s4.bin", &pattern(1000, 4));
    let err = c.start_upload(req4.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let abort = |id: &str| AbortUploadRequest {
        upload_id: id.to_string(),
    };
    let err = b.abort_upload(abort(&open[1])).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "someone else's session: {err:?}"
    );
    c.abort_upload(abort(&open[1])).await.unwrap();
    let err = c.abort_upload(abort(&open[1])).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "abandoned twice: {err:?}");
    let err = c.abort_upload(abort("no-such-session")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    c.start_upload(req4).await.unwrap();
    let resume = StartUploadRequest {
        upload_id: open[1].clone(),
        ..Default::default()
    };
    let err = c.start_upload(resume).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "an abandoned session resumed: {err:?}"
    );
    let err = c
        .finish_upload(FinishUploadRequest {
            upload_id: open[1].clone(),
            base_version: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "an abandoned session finished: {err:?}"
    );
}

/// Opens a streamed upload of `name` that sends `data` and then nothing,
/// until the returned sender is dropped.
fn held_stream(
    c: &mut coffer_proto::pb::file_storage_client::FileStorageClient<coffer_tests::server::Conn>,
    name: &str,
    data: Vec<u8>,
) -> (
    tokio::sync::mpsc::Sender<FileRequest>,
    tokio::task::JoinHandle<
        Result<tonic::Response<coffer_proto::pb::UploadResponse>, tonic::Status>,
    >,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<FileRequest>(4);
    tx.try_send(FileRequest {
        file_name: name.into(),
        file_data: data.into(),
    })
    .unwrap();
    let mut c = c.clone();
    let call = tokio::spawn(async move {
        c.upload_file(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    (tx, call)
}

#[tokio::test]
async fn open_uploads_reserve_their_bytes_and_streams_take_a_session_place() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_MAX_OPEN_UPLOADS", "3"))
        .await
        .unwrap();
    let alice = server.add_user("alice", "alice-password-1", false).await;
    let out = server.command(&["user", "quota", "alice", "10MB"]).await;
    assert!(out.success, "{out:?}");
    let mut c = server.client_as(Some(&alice)).await;
    // One session of 6 MB fits the quota of 10 MB.
    let (plan, _) = session_plan("a.bin", &pattern(6_000_000, 1));
    c.start_upload(plan).await.unwrap();
    // Streams take a place among the open uploads: with the session and
    // two silent streams open, a third upload of any kind is refused.
    let mut held = Vec::new();
    for i in 0..2 {
        held.push(held_stream(
            &mut c,
            &format!("s{i}.bin"),
            pattern(1000, 10 + i),
        ));
    }
    let mut bytes = 0;
    for _ in 0..500 {
        bytes = server.metric("coffer_upload_buffer_bytes").await;
        if bytes == 2000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bytes, 2000, "both streams are open");
    let (plan, _) = session_plan("d.bin", &pattern(1000, 4));
    let err = c.start_upload(plan).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("at most 3"), "{err:?}");
    let err = upload_bytes(&mut c, "e.bin", &pattern(1000, 5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("at most 3"), "{err:?}");
    // A stream that ends gives its place back.
    for (tx, call) in held {
        drop(tx);
        call.await.unwrap().unwrap();
    }
    // The session's 6 MB stay reserved: 6 more, by session or by stream,
    // would cross the quota, though nothing is committed yet.
    let (plan, _) = session_plan("b.bin", &pattern(6_000_000, 2));
    let err = c.start_upload(plan).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("quota"), "{err:?}");
    let err = upload_bytes(&mut c, "c.bin", &pattern(6_000_000, 3))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("quota"), "{err:?}");
    upload_bytes(&mut c, "e.bin", &pattern(1000, 5))
        .await
        .unwrap();
}

#[tokio::test]
async fn uploads_hold_no_more_than_the_server_wide_upload_budget() {
    // The smallest budget: 32 MiB; a waiting upload is refused after 1 s.
    let server = Server::start(
        ServerOpts::embedded()
            .with("COFFER_UPLOAD_MEMORY_MIB", "1")
            .with("COFFER_DOWNLOAD_QUEUE_SECS", "1")
            .with("COFFER_MAX_OPEN_UPLOADS", "100"),
    )
    .await
    .unwrap();
    let mut c = server.client().await;
    // Silent streams of 3 MiB each (less than the largest chunk: the
    // server holds every byte while it waits for more).
    const HELD: usize = 3 * 1024 * 1024;
    let mut open = Vec::new();
    for i in 0..10 {
        open.push(held_stream(
            &mut c,
            &format!("held{i}.bin"),
            pattern(HELD, i),
        ));
    }
    let mut held = 0;
    for _ in 0..500 {
        held = server.metric("coffer_upload_buffer_bytes").await;
        if held == 10 * HELD as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held, 10 * HELD as u64, "ten uploads of 3 MiB fit in 32 MiB");
    // The next ones wait, and are refused.
    let mut late = Vec::new();
    for i in 10..16 {
        late.push(held_stream(
            &mut c,
            &format!("held{i}.bin"),
            pattern(HELD, i),
        ));
    }
    for (tx, call) in late {
        match tokio::time::timeout(Duration::from_secs(60), call).await {
            Ok(Ok(Err(e))) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("COFFER_UPLOAD_MEMORY_MIB"), "{e:?}");
            }
            other => panic!("an upload past the budget was not refused: {other:?}"),
        }
        drop(tx);
    }
    let held = server.metric("coffer_upload_buffer_bytes").await;
    assert_eq!(held, 10 * HELD as u64, "the ten that fit hold their bytes");
    // The ten that fit finish; room comes back.
    for (tx, call) in open.drain(..10) {
        drop(tx);
        call.await.unwrap().unwrap();
    }
    assert_eq!(server.metric("coffer_upload_buffer_bytes").await, 0);
    upload_bytes(&mut c, "after.bin", &pattern(HELD, 99))
        .await
        .unwrap();
}

#[tokio::test]
async fn empty_files_count_against_the_per_user_version_limit() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_MAX_VERSIONS_PER_USER", "3"))
        .await
        .unwrap();
    let alice = server.add_user("alice", "alice-password-1", false).await;
    let mut c = server.client_as(Some(&alice)).await;
    for name in ["a", "a", "b"] {
        upload_bytes(&mut c, name, b"").await.unwrap();
    }
    // Empty files cost no quota, but each version is a row.
    let err = upload_bytes(&mut c, "c", b"").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("at most 3"), "{err:?}");
    let (plan, _) = session_plan("c", b"");
    let err = c.start_upload(plan.clone()).await;
    if let Ok(started) = err {
        // A session of an empty file needs no chunk: its commit is refused.
        let err = c
            .finish_upload(FinishUploadRequest {
                upload_id: started.into_inner().upload_id,
                base_version: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    }
    assert!(!is_stored(&mut c, "c").await);
    // Someone else has their own allowance.
    let mut admin = server.client().await;
    upload_bytes(&mut admin, "c", b"").await.unwrap();
}

#[tokio::test]
async fn a_plan_of_tiny_chunks_or_a_wrong_content_hash_is_refused_and_stores_nothing() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    // 60,000 made-up chunks of 1 KiB: the bookkeeping attack (as many as
    // fit in one message).
    let chunks: Vec<ChunkRef> = (0..60_000u32)
        .map(|i| ChunkRef {
            id: blake3::hash(&i.to_le_bytes()).to_hex().to_string(),
            size: 1024,
        })
        .collect();
    let hash = coffer_proto::chunking::content_hash(chunks.iter().map(|c| c.id.as_str())).unwrap();
    let err = c
        .start_upload(StartUploadRequest {
            file_name: "tiny.bin".into(),
            size: 60_000 * 1024,
            chunks,
            content_hash: hash,
            upload_id: String::new(),
            modified_time: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("chunking minimum"), "{err:?}");

    // A real plan with a hash that is not the one of its chunks: zeros,
    // the whole content's plain BLAKE3, or the right one in upper case.
    let data = pattern(3 * 1024 * 1024, 5);
    for wrong in [
        "0".repeat(64),
        blake3::hash(&data).to_hex().to_string(),
        coffer_proto::chunking::content_hash_of(&data).to_uppercase(),
    ] {
        let (mut req, _) = session_plan("claimed.bin", &data);
        req.content_hash = wrong.clone();
        let err = c.start_upload(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{wrong}: {err:?}");
    }
    for name in ["tiny.bin", "claimed.bin"] {
        assert!(!is_stored(&mut c, name).await, "{name} was stored");
    }
    // The server's own hash is what a streamed upload gets, and what the
    // session with the right claim commits.
    let up = upload_bytes(&mut c, "streamed.bin", &data).await.unwrap();
    assert_eq!(
        up.content_hash,
        coffer_proto::chunking::content_hash_of(&data)
    );
    let (req, _) = session_plan("claimed.bin", &data);
    let started = c.start_upload(req).await.unwrap().into_inner();
    assert!(started.missing_chunks.is_empty(), "deduplicated");
    let v = c
        .finish_upload(FinishUploadRequest {
            upload_id: started.upload_id,
            base_version: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.content_hash, up.content_hash);
}

#[tokio::test]
async fn stalled_downloads_stay_within_the_memory_budget_while_others_download() {
    // Half for read-ahead, half for open downloads' pipes: 146 of them,
    // more than the 128 calls one connection may have open at once, so
    // the other client's download finds room.
    const BUDGET_MIB: u64 = 128;
    const STALLED: usize = 200;
    let server = Server::start(
        ServerOpts::embedded()
            .process()
            .with("COFFER_DOWNLOAD_MEMORY_MIB", &BUDGET_MIB.to_string())
            // One account stalls them all here: its own cap is not what
            // this test is about.
            .with("COFFER_MAX_DOWNLOADS_PER_CALLER", "1000"),
    )
    .await
    .unwrap();
    let pid = server.pid().expect("a process of its own");
    let data = pattern(24 * 1024 * 1024, 9);
    let mut c = server.client().await;
    upload_bytes(&mut c, "big.bin", &data).await.unwrap();
    // Warm up the paths a download takes, then measure from here.
    assert!(download(&mut c, "big.bin", 0).await.unwrap() == data);
    let before = proc_bytes(pid, "VmRSS:");

    // One connection, 200 downloads that read one message and stop.
    let stalled_client = server.client().await;
    let opened = futures::future::join_all((0..STALLED).map(|_| {
        let mut c = stalled_client.clone();
        async move {
            let mut s = c
                .download_file(FileDownloadRequest {
                    file_name: "big.bin".into(),
                    version: 0,
                })
                .await
                .unwrap()
                .into_inner();
            s.message().await.unwrap().expect("a first piece");
            s
        }
    }));
    // The server serves 128 calls per connection at once; the rest wait
    // in the client. Those that got through are all stalled now.
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(
                    proc_bytes(pid, "VmRSS:"),
                    std::sync::atomic::Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let first_wave = tokio::spawn(opened);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Meanwhile another client, on its own connection, downloads it all.
    let mut other = server.client().await;
    let t = std::time::Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(120), download(&mut other, "big.bin", 0))
        .await
        .expect("the other client's download finishes")
        .unwrap();
    assert!(got == data, "the other client got other bytes");
    println!(
        "the other client's download took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let buffered = server.metric("coffer_download_buffer_bytes").await;
    let pipes = server.metric("coffer_download_pipe_bytes").await;
    println!("held: {buffered} bytes read ahead, {pipes} bytes reserved by open downloads");
    assert!(
        buffered + pipes <= BUDGET_MIB << 20,
        "{buffered} bytes read ahead and {pipes} reserved"
    );
    assert!(pipes > 0, "the stalled downloads reserve nothing");
    sampler.abort();
    let grew = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    // Everything a download holds counts against the budget: chunks read
    // ahead, and each open call's pipe and network buffers. Without the
    // budget each stalled call kept its whole read-ahead: 24 MiB each
    // here, gigabytes in all.
    let allowed = BUDGET_MIB << 20;
    println!(
        "server RSS grew {} MiB with {STALLED} stalled downloads (budget {} MiB)",
        grew >> 20,
        allowed >> 20
    );
    assert!(grew < allowed, "RSS grew {} MiB", grew >> 20);
    // Dropping the calls releases them.
    first_wave.abort();
}

#[tokio::test]
async fn a_silent_upload_is_closed_after_the_idle_time_out_and_its_buffers_let_go() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_IDLE_TIMEOUT_SECS", "5"))
        .await
        .unwrap();
    let mut c = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<FileRequest>(4);
    // 3 MiB: less than the largest chunk, so the server holds it all while
    // it waits for more.
    tx.send(FileRequest {
        file_name: "silent.bin".into(),
        file_data: pattern(3 * 1024 * 1024, 1).into(),
    })
    .await
    .unwrap();
    let call = tokio::spawn(async move {
        c.upload_file(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    // The server holds the bytes while the client says nothing more...
    let mut held = 0;
    for _ in 0..200 {
        held = server.metric("coffer_upload_buffer_bytes").await;
        if held > 0 || call.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held, 3 * 1024 * 1024, "the upload's bytes are held");
    // ...until the idle time-out closes the call, though the client never
    // closes its side.
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("sent nothing"), "{err:?}");
    assert_eq!(server.metric("coffer_upload_buffer_bytes").await, 0);
    drop(tx);
    let mut c = server.client().await;
    assert!(!is_stored(&mut c, "silent.bin").await);
}

#[tokio::test]
async fn five_thousand_versions_list_in_pages() {
    const VERSIONS: u64 = 5_000;
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let c = server.client().await;
    // Sixteen writers; the server numbers the versions one at a time.
    let writers = (0..16u64).map(|w| {
        let mut c = c.clone();
        async move {
            for i in (w..VERSIONS).step_by(16) {
                upload_bytes(&mut c, "many.txt", format!("v{i}").as_bytes())
                    .await
                    .unwrap();
            }
        }
    });
    futures::future::join_all(writers).await;
    let mut c = c.clone();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .list_versions(ListVersionsRequest {
                file_name: "many.txt".into(),
                page_size: 0,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.versions.len() <= 100, "the default page is 100");
        pages += 1;
        seen.extend(page.versions.iter().map(|v| v.version_number));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 50);
    let want: Vec<u64> = (1..=VERSIONS).rev().collect();
    assert_eq!(seen, want, "every version once, newest first");
    // A page never exceeds 1000, whatever is asked.
    let page = c
        .list_versions(ListVersionsRequest {
            file_name: "many.txt".into(),
            page_size: 100_000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.versions.len(), 1000);
    let err = c
        .list_versions(ListVersionsRequest {
            file_name: "many.txt".into(),
            page_size: 10,
            page_token: "not-a-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn manual_worker_runs_are_for_admins_and_spaced() {
    let server =
        Server::start(ServerOpts::embedded().with("COFFER_MANUAL_RUN_INTERVAL_SECS", "3600"))
            .await
            .unwrap();
    let mut admin = server.admin().await;
    let run = |name: &str| RunWorkerRequest {
        name: name.into(),
        wait: false,
    };
    admin.run_worker(run("gc")).await.unwrap();
    let err = admin.run_worker(run("gc")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("ask again in"), "{err:?}");
    // Each worker has its own interval.
    admin.run_worker(run("scrub")).await.unwrap();
    let bob = server.add_user("bob", "bob-password-1", false).await;
    let mut as_bob = coffer_proto::pb::coffer_admin_client::CofferAdminClient::new(
        server.channel_as(Some(&bob)).await,
    );
    let err = as_bob.run_worker(run("repair")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(ServerOpts::embedded().with("COFFER_HEADER_TIMEOUT_SECS", "1"))
        .await
        .unwrap();
    let host = server.addr().trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&host).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // The server hangs up (with or without a 408); it does not wait forever.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "still connected after 30 s");
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("200 OK"), "{text}");
    // A whole request is answered as ever.
    assert_eq!(server.get("/healthz").await.0, 200);
}

/// A streamed upload whose commit is refused (here: stale) gives its
/// place among the open uploads back before the refusal is answered.
/// Found by the fault soak (seed 2): refused conditional uploads kept
/// their places until they expired, and after 64 of them every upload of
/// that user was refused as one too many.
#[tokio::test]
async fn refused_streamed_uploads_free_their_place() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_MAX_OPEN_UPLOADS", "2"))
        .await
        .unwrap();
    let mut c = server.client().await;
    for i in 0..4 {
        let mut req = tonic::Request::new(tokio_stream::iter([FileRequest {
            file_data: pattern(1000, i).into(),
            file_name: "stale.bin".into(),
        }]));
        req.metadata_mut()
            .insert("x-coffer-base-version", "7".parse().unwrap());
        let err = c.upload_file(req).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    }
    upload_bytes(&mut c, "fresh.bin", &pattern(1000, 9))
        .await
        .expect("refused uploads left no place taken");
}

/// A streamed upload that sends `head` bytes, then one byte now and then
/// (never idle, never done), holding its place among the open uploads.
fn trickle(name: &str, head: usize) -> impl tokio_stream::Stream<Item = FileRequest> + 'static {
    let name = name.to_string();
    let first: Vec<FileRequest> = pattern(head, 3)
        .chunks(64 * 1024)
        .map(|b| FileRequest {
            file_data: b.to_vec().into(),
            file_name: name.clone(),
        })
        .collect();
    let drip = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let byte = FileRequest {
            file_data: vec![1].into(),
            file_name: String::new(),
        };
        Some((byte, ()))
    });
    futures::StreamExt::chain(tokio_stream::iter(first), drip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_cut_off_by_a_crash_free_their_place_soon() {
    // Idle time-out 3 s: a stream holds its place 30 s after its last chunk.
    let opts = ServerOpts::embedded()
        .process()
        .with("COFFER_MAX_OPEN_UPLOADS", "2")
        .with("COFFER_IDLE_TIMEOUT_SECS", "3");
    let mut server = Server::start(opts).await.unwrap();
    // Two streams past their first chunk (at most 4 MiB) take both places.
    let mut streams = Vec::new();
    for i in 0..2 {
        let mut c = server.client().await;
        let name = format!("t{i}.bin");
        streams.push(tokio::spawn(async move {
            c.upload_file(trickle(&name, 9 << 20)).await
        }));
    }
    // Both have stored a chunk, so both hold a place (read from the
    // database: nothing else is sent while they are open).
    let db = rusqlite::Connection::open(server.data_dir().join("coffer.db")).unwrap();
    let mut tries = 0;
    while db
        .query_row(
            "SELECT COUNT(DISTINCT session_id) FROM session_chunks",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        < 2
    {
        tries += 1;
        assert!(tries < 600, "the streams never stored a chunk");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server dies with both open: nobody closes them.
    server.kill().await;
    for s in streams {
        assert!(s.await.unwrap().is_err(), "a stream cut off by the crash");
    }
    server.restart().await.unwrap();
    let mut c = server.client().await;
    let err = upload_bytes(&mut c, "fresh.bin", &pattern(1000, 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Within the stream window (not the day a session is kept), the places
    // are free again.
    let mut tries = 0;
    while let Err(e) = upload_bytes(&mut c, "fresh.bin", &pattern(1000, 2)).await {
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        tries += 1;
        assert!(tries < 120, "the crashed streams' places were never freed");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
