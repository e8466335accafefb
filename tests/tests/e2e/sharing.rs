//! Share links, quotas and the name rules, end to end: over gRPC, plain
//! HTTP and the `coffer` CLI, against the real server.

use base64::Engine;
use coffer_proto::pb::coffer_auth_client::CofferAuthClient;
use coffer_proto::pb::coffer_share_client::CofferShareClient;
use coffer_proto::pb::{
    CreateShareLinkRequest, DeleteFileRequest, FileMetadataRequest, ListShareLinksRequest,
    RestoreVersionRequest, RevokeShareLinkRequest, WhoAmIRequest,
};
use coffer_tests::cli::Cli;
use coffer_tests::data::{download, is_stored, pattern, session_plan, upload_bytes};
use coffer_tests::server::{http_get_with, Server, ServerOpts};
use std::time::Duration;
use tonic::Code;

fn link(name: &str, version: u64, secs: u64, password: &str) -> CreateShareLinkRequest {
    CreateShareLinkRequest {
        file_name: name.into(),
        version,
        expires_in_secs: secs,
        password: password.into(),
    }
}

/// GET `url` with no token, and a Basic password if given.
async fn fetch(
    server: &Server,
    url: &str,
    password: Option<&str>,
    range: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let basic = password.map(|p| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("anyone:{p}"))
        )
    });
    let mut headers = Vec::new();
    if let Some(b) = &basic {
        headers.push(("Authorization", b.as_str()));
    }
    if let Some(r) = range {
        headers.push(("Range", r));
    }
    http_get_with(server.addr(), url, &headers).await
}

#[tokio::test]
async fn share_links_serve_one_version_to_anyone_until_they_end() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let alice = server.add_user("alice", "alice-password-1", false).await;
    let mut files = server.client_as(Some(&alice)).await;
    let mut shares = CofferShareClient::new(server.channel_as(Some(&alice)).await);
    let v1 = pattern(5 * 1024 * 1024 + 11, 1);
    upload_bytes(&mut files, "docs/plan ü.pdf", &v1)
        .await
        .unwrap();
    let made = shares
        .create_share_link(link("docs/plan ü.pdf", 0, 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(made.url.starts_with("/s/"), "{}", made.url);
    assert_eq!((made.version, made.has_password), (1, false));

    // Anyone, no token: the bytes, a download name, ranges.
    let (code, head, body) = fetch(&server, &made.url, None, None).await;
    assert_eq!(code, 200, "{head}");
    assert!(body == v1, "the shared bytes differ");
    let lower = head.to_lowercase();
    assert!(
        lower.contains("content-disposition: attachment; filename=\"plan _.pdf\"; filename*=utf-8''plan%20%c3%bc.pdf"),
        "{head}"
    );
    assert!(lower.contains("accept-ranges: bytes"), "{head}");
    let (code, head, body) = fetch(&server, &made.url, None, Some("bytes=4000000-4999999")).await;
    assert_eq!(code, 206, "{head}");
    assert!(body == v1[4_000_000..5_000_000], "the range differs");
    assert!(
        head.to_lowercase().contains(&format!(
            "content-range: bytes 4000000-4999999/{}",
            v1.len()
        )),
        "{head}"
    );

    // A new version does not move the link; a link to it is another link.
    let v2 = pattern(1000, 2);
    upload_bytes(&mut files, "docs/plan ü.pdf", &v2)
        .await
        .unwrap();
    assert!(fetch(&server, &made.url, None, None).await.2 == v1);

    // One character changed anywhere names nothing.
    let token = made.url.trim_start_matches("/s/");
    for at in [0, token.len() / 2, token.len() - 1] {
        let mut t: Vec<u8> = token.bytes().collect();
        t[at] = if t[at] == b'0' { b'1' } else { b'0' };
        let url = format!("/s/{}", String::from_utf8(t).unwrap());
        assert_eq!(fetch(&server, &url, None, None).await.0, 404, "{url}");
    }
    assert_eq!(
        fetch(&server, &format!("{}x", made.url), None, None)
            .await
            .0,
        404
    );

    // Others cannot share or revoke what is not theirs.
    let bob = server.add_user("bob", "bob-password-1", false).await;
    let mut bobs = CofferShareClient::new(server.channel_as(Some(&bob)).await);
    let err = bobs
        .create_share_link(link("docs/plan ü.pdf", 0, 0, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = bobs
        .revoke_share_link(RevokeShareLinkRequest {
            id: made.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(bobs
        .list_share_links(ListShareLinksRequest {})
        .await
        .unwrap()
        .into_inner()
        .links
        .is_empty());

    // Revoked: 410, at once.
    shares
        .revoke_share_link(RevokeShareLinkRequest {
            id: made.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(fetch(&server, &made.url, None, None).await.0, 410);
    // Expired: 410.
    let brief = shares
        .create_share_link(link("docs/plan ü.pdf", 1, 1, ""))
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fetch(&server, &brief.url, None, None).await.0, 410);
    let listed = shares
        .list_share_links(ListShareLinksRequest {})
        .await
        .unwrap()
        .into_inner()
        .links;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|l| l.id == made.id && l.revoked));
    assert!(listed
        .iter()
        .any(|l| l.id == brief.id && l.expired && !l.revoked));

    // A deleted file's links stop: 404.
    let live = shares
        .create_share_link(link("docs/plan ü.pdf", 0, 600, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetch(&server, &live.url, None, None).await.0, 200);
    files
        .delete_file(DeleteFileRequest {
            file_name: "docs/plan ü.pdf".into(),
            base_version: None,
        })
        .await
        .unwrap();
    assert_eq!(fetch(&server, &live.url, None, None).await.0, 404);
    // Bad requests change nothing.
    let err = shares
        .create_share_link(link("nope.txt", 0, 0, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = shares
        .create_share_link(link("docs/plan ü.pdf", 0, 400 * 86_400, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_password_protected_link_refuses_wrong_passwords_and_slows_guessing() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut files = server.client().await;
    let data = pattern(70_000, 3);
    upload_bytes(&mut files, "secret.bin", &data).await.unwrap();
    let mut shares = CofferShareClient::new(server.channel().await);
    let made = shares
        .create_share_link(link("secret.bin", 0, 0, "open sesame"))
        .await
        .unwrap()
        .into_inner();
    assert!(made.has_password);
    let (code, head, body) = fetch(&server, &made.url, None, None).await;
    assert_eq!(code, 401, "{head}");
    assert!(
        head.to_lowercase().contains("www-authenticate: basic"),
        "{head}"
    );
    assert!(body.len() < 200, "no file bytes without the password");
    let (code, _, _) = fetch(&server, &made.url, Some("open sesame!"), None).await;
    assert_eq!(code, 401);
    let (code, _, body) = fetch(&server, &made.url, Some("open sesame"), None).await;
    assert_eq!(code, 200);
    assert!(body == data);
    // Guessing slows down: after a few failures, 429 with Retry-After,
    // even for the right password, until the delay has passed.
    let mut throttled = None;
    for _ in 0..10 {
        let (code, head, _) = fetch(&server, &made.url, Some("guess"), None).await;
        if code == 429 {
            throttled = Some(head);
            break;
        }
        assert_eq!(code, 401);
    }
    let head = throttled.expect("guessing is throttled");
    assert!(head.to_lowercase().contains("retry-after:"), "{head}");
    assert_eq!(
        fetch(&server, &made.url, Some("open sesame"), None).await.0,
        429
    );
}

#[tokio::test]
async fn the_cli_shares_lists_and_revokes() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut files = server.client().await;
    let data = pattern(3000, 4);
    upload_bytes(&mut files, "notes/todo.txt", &data)
        .await
        .unwrap();
    let cli = Cli::for_server(&server);
    let made = cli
        .json(&["share", "notes/todo.txt", "--expires", "2h"])
        .await;
    let url = made["url"].as_str().unwrap().to_string();
    let path = url
        .strip_prefix(server.addr())
        .expect("a link on the server");
    assert_eq!(made["state"], "live");
    let (code, _, body) = fetch(&server, path, None, None).await;
    assert_eq!(code, 200);
    assert!(body == data);
    let listed = cli.json(&["share", "--list"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["url"], url.as_str());
    let id = made["id"].as_str().unwrap();
    let out = cli.run(&["share", "--revoke", id]).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(fetch(&server, path, None, None).await.0, 410);
    let bad = cli
        .run(&["share", "notes/todo.txt", "--expires", "soon"])
        .await;
    assert!(!bad.ok && bad.stderr.contains("not a duration"), "{bad:?}");
    let missing = cli.run(&["share", "notes/none.txt"]).await;
    assert!(!missing.ok, "{missing:?}");
}

#[tokio::test]
async fn quotas_refuse_what_would_cross_them_and_deleting_gives_room_back() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_DELETED_RETENTION_SECS", "0"))
        .await
        .unwrap();
    let alice = server.add_user("alice", "alice-password-1", false).await;
    let out = server.command(&["user", "quota", "alice", "10MB"]).await;
    assert!(out.success, "{out:?}");
    let mut c = server.client_as(Some(&alice)).await;
    let mut auth = CofferAuthClient::new(server.channel_as(Some(&alice)).await);
    let used = |w: coffer_proto::pb::WhoAmIResponse| (w.used_bytes, w.quota_bytes);

    let six = pattern(6_000_000, 1);
    upload_bytes(&mut c, "a.bin", &six).await.unwrap();
    assert_eq!(
        used(auth.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner()),
        (6_000_000, 10_000_000)
    );
    // Streamed, by session, or by restoring: each would cross it.
    let more = pattern(6_000_000, 2);
    let err = upload_bytes(&mut c, "b.bin", &more).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("quota"), "{err:?}");
    let (plan, _) = session_plan("b.bin", &more);
    let err = c.start_upload(plan).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let err = c
        .restore_version(RestoreVersionRequest {
            file_name: "a.bin".into(),
            version: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Nothing of it was stored.
    assert!(!is_stored(&mut c, "b.bin").await);
    let w = auth.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!(used(w), (6_000_000, 10_000_000), "usage is what was stored");
    // What fits still goes in.
    upload_bytes(&mut c, "small.bin", &pattern(3_000_000, 3))
        .await
        .unwrap();
    // The CLI shows it.
    let cli = Cli::with_token(server.addr(), &alice);
    let who = cli.json(&["whoami"]).await;
    assert_eq!(who["used_bytes"], 9_000_000);
    assert_eq!(who["quota_bytes"], 10_000_000);
    let status = cli.run(&["status"]).await;
    assert!(status.ok, "{status:?}");
    assert!(status.stdout.contains("of 9.5 MiB"), "{}", status.stdout);

    // Deleting keeps the versions (restorable) until they are purged.
    for name in ["a.bin", "small.bin"] {
        c.delete_file(DeleteFileRequest {
            file_name: name.into(),
            base_version: None,
        })
        .await
        .unwrap();
    }
    assert_eq!(
        auth.who_am_i(WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner()
            .used_bytes,
        9_000_000
    );
    server.run_worker("gc").await;
    assert_eq!(
        auth.who_am_i(WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner()
            .used_bytes,
        0
    );
    upload_bytes(&mut c, "b.bin", &more).await.unwrap();
    assert!(download(&mut c, "b.bin", 0).await.unwrap() == more);
    // Lifted, anything goes; an unknown user or size is refused clearly.
    assert!(
        server
            .command(&["user", "quota", "alice", "none"])
            .await
            .success
    );
    let bad = server.command(&["user", "quota", "alice", "lots"]).await;
    assert!(!bad.success && bad.stderr.contains("not a size"), "{bad:?}");
    assert!(
        !server
            .command(&["user", "quota", "nobody", "1G"])
            .await
            .success
    );
}

#[tokio::test]
async fn names_are_normalised_and_files_and_folders_never_clash() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    // Decomposed on the way in, the precomposed name finds it.
    upload_bytes(&mut c, "cafe\u{301}/menu.txt", b"x")
        .await
        .unwrap();
    let m = c
        .get_metadata(FileMetadataRequest {
            file_name: "caf\u{e9}/menu.txt".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.file_name, "caf\u{e9}/menu.txt");
    for hostile in [
        "invoice\u{202e}fdp.exe",
        "pass\u{200b}word.txt",
        "line\u{2028}break",
        "a\u{feff}b",
    ] {
        let err = upload_bytes(&mut c, hostile, b"x").await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{hostile:?}");
    }
    // A file where a folder is, and a folder where a file is.
    let err = upload_bytes(&mut c, "caf\u{e9}", b"x").await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    upload_bytes(&mut c, "report", b"x").await.unwrap();
    let err = upload_bytes(&mut c, "report/2026.txt", b"x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let (plan, _) = session_plan("report/2026.txt", b"y");
    assert_eq!(
        c.start_upload(plan).await.unwrap_err().code(),
        Code::AlreadyExists
    );
}

#[tokio::test]
async fn a_deleted_files_links_stay_dead_when_its_path_returns() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    upload_bytes(&mut c, "report.txt", b"first").await.unwrap();
    let mut shares = CofferShareClient::new(server.channel_as(server.token()).await);
    let link = shares
        .create_share_link(CreateShareLinkRequest {
            file_name: "report.txt".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetch(&server, &link.url, None, None).await.0, 200);
    c.delete_file(DeleteFileRequest {
        file_name: "report.txt".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_ne!(fetch(&server, &link.url, None, None).await.0, 200);
    // The path made again, by an upload and by a restore: still gone.
    upload_bytes(&mut c, "report.txt", b"second").await.unwrap();
    assert_eq!(fetch(&server, &link.url, None, None).await.0, 410);
    c.restore_version(RestoreVersionRequest {
        file_name: "report.txt".into(),
        version: 1,
    })
    .await
    .unwrap();
    assert_eq!(fetch(&server, &link.url, None, None).await.0, 410);
}

#[tokio::test]
async fn a_share_password_is_long_enough_or_absent() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    upload_bytes(&mut c, "doc.txt", b"x").await.unwrap();
    let mut shares = CofferShareClient::new(server.channel_as(server.token()).await);
    let e = shares
        .create_share_link(link("doc.txt", 0, 0, "1234"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("at least 8"), "{e:?}");
    assert!(shares
        .list_share_links(ListShareLinksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .links
        .is_empty());
    shares
        .create_share_link(link("doc.txt", 0, 0, "12345678"))
        .await
        .unwrap();
}
