//! WebDAV at `/dav/` against the real server: Debian's litmus suite, every
//! group, on the real store; and what WebDAV does to Coffer's files
//! (versions, the change feed, restorable deletes, other users), its
//! authentication (app passwords, Bearer tokens, Basic only over TLS
//! unless allowed) and its clients' quirks.

use base64::Engine;
use coffer_proto::pb::coffer_auth_client::CofferAuthClient;
use coffer_proto::pb::{
    CreateAppPasswordRequest, FileMetadataRequest, ListChangesRequest, ListFilesRequest,
    RestoreVersionRequest, RevokeAppPasswordRequest,
};
use coffer_tests::data::{download, pattern, upload_bytes, versions};
use coffer_tests::server::{http_request, Server, ServerOpts};

/// litmus's groups: every one must pass in full.
const GROUPS: &[&str] = &["basic", "copymove", "props", "locks", "http"];

/// Warnings litmus may print that are not faults, each with why; any
/// other warning fails the test.
const EXPLAINED_WARNINGS: &[(&str, &str)] = &[(
    // basic 9, delete_fragment: litmus sends `DELETE /dav/litmus/frag/#ment`.
    "DELETE removed collection resource with Request-URI including fragment",
    "a fragment is not part of a request target (RFC 9110 4.2.4 / 7.1): \
     the HTTP parser (the http crate, under hyper) drops it before any \
     handler sees the request, so this DELETE is the DELETE of \
     /dav/litmus/frag/, which it deletes as asked",
)];

async fn app_password(server: &Server, token: &str, name: &str) -> String {
    let mut auth = CofferAuthClient::new(server.channel_as(Some(token)).await);
    auth.create_app_password(CreateAppPasswordRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .password
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A WebDAV client with one `Authorization` header.
struct Dav<'a> {
    server: &'a Server,
    auth: Option<String>,
}

impl Dav<'_> {
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(a) = &self.auth {
            all.push(("Authorization", a));
        }
        http_request(self.server.addr(), method, path, &all, body).await
    }

    async fn put(&self, path: &str, body: &[u8]) -> u16 {
        self.call("PUT", path, &[], body).await.0
    }

    /// PROPFIND at `depth`, the multistatus body as text.
    async fn propfind(&self, path: &str, depth: &str) -> (u16, String) {
        let (code, _, body) = self.call("PROPFIND", path, &[("Depth", depth)], b"").await;
        (code, String::from_utf8_lossy(&body).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litmus_passes_every_group_on_the_real_store() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_DAV_BASIC_OVER_HTTP", "true"))
        .await
        .unwrap();
    let token = server.add_user("alice", "alice-password-1", false).await;
    let password = app_password(&server, &token, "litmus").await;
    let work = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("litmus")
        .env("TESTS", GROUPS.join(" "))
        .arg(format!("{}/dav/", server.addr()))
        .arg("alice")
        .arg(&password)
        .current_dir(work.path())
        .output()
        .await
        .expect("litmus runs (Debian's litmus package; scripts/install-test-deps.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(work.path().join("debug.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(60).collect::<Vec<_>>().join("\n");
    for group in GROUPS {
        let summary = text
            .lines()
            .find(|l| l.contains(&format!("summary for `{group}'")))
            .unwrap_or_else(|| panic!("no summary for {group}:\n{text}"));
        assert!(
            summary.contains(" 0 failed") && summary.contains("100.0%"),
            "{group}: {summary}\n{text}\n{tail}"
        );
    }
    assert!(!text.contains("FAIL"), "{text}\n{tail}");
    for line in text.lines().filter(|l| l.contains("WARNING")) {
        assert!(
            EXPLAINED_WARNINGS.iter().any(|(w, _)| line.contains(w)),
            "an unexplained litmus warning: {line}\n{text}"
        );
    }
    assert!(out.status.success(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_writes_are_versions_in_the_feed_and_reads_see_every_write() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_DAV_BASIC_OVER_HTTP", "true"))
        .await
        .unwrap();
    let token = server.add_user("alice", "alice-password-1", false).await;
    let dav = Dav {
        server: &server,
        auth: Some(basic(
            "alice",
            &app_password(&server, &token, "laptop").await,
        )),
    };
    let mut files = server.client_as(Some(&token)).await;
    let latest = files
        .list_changes(ListChangesRequest {
            latest: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cursor;

    // A folder, then two versions of a file over several chunks.
    assert_eq!(dav.call("MKCOL", "/dav/docs", &[], b"").await.0, 201);
    let v1 = pattern(3 * 1024 * 1024 + 5, 1);
    let v2 = pattern(3 * 1024 * 1024 + 9, 2);
    assert_eq!(dav.put("/dav/docs/report%20%C3%BC.bin", &v1).await, 201);
    assert_eq!(dav.put("/dav/docs/report%20%C3%BC.bin", &v2).await, 204);
    // The same content again makes no version.
    assert_eq!(dav.put("/dav/docs/report%20%C3%BC.bin", &v2).await, 204);
    let versions = versions(&mut files, "docs/report ü.bin").await;
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(download(&mut files, "docs/report ü.bin", 1).await.unwrap() == v1);
    let changes = files
        .list_changes(ListChangesRequest {
            cursor: latest,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let names: Vec<(&str, u64)> = changes
        .iter()
        .map(|c| (c.file_name.as_str(), c.version))
        .collect();
    assert_eq!(
        names,
        vec![("docs/report ü.bin", 1), ("docs/report ü.bin", 2)]
    );

    // What gRPC writes, WebDAV reads: whole, by range, and its ETag is
    // the content hash.
    let other = pattern(5 * 1024 * 1024 + 3, 3);
    let up = upload_bytes(&mut files, "docs/from-grpc.bin", &other)
        .await
        .unwrap();
    let (code, head, body) = dav.call("GET", "/dav/docs/from-grpc.bin", &[], b"").await;
    assert_eq!(code, 200, "{head}");
    assert!(body == other, "the bytes differ");
    let (code, head, body) = dav
        .call(
            "GET",
            "/dav/docs/from-grpc.bin",
            &[("Range", "bytes=4194000-4194999")],
            b"",
        )
        .await;
    assert_eq!(code, 206, "{head}");
    assert!(body == other[4_194_000..4_195_000], "the range differs");
    let hash = files
        .get_metadata(FileMetadataRequest {
            file_name: "docs/from-grpc.bin".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .content_hash;
    // The ETag is the content hash's first 128 bits.
    let etag = &hash[..32];
    assert!(
        head.to_lowercase().contains(&format!("etag: \"{etag}\"")),
        "{head}"
    );
    assert_eq!(up.version, 1);
    let (code, listing) = dav.propfind("/dav/docs/", "1").await;
    assert_eq!(code, 207, "{listing}");
    assert!(listing.contains("from-grpc.bin"), "{listing}");
    assert!(listing.contains(&format!("\"{etag}\"")), "{listing}");
    assert!(
        listing.contains("<D:getcontentlength>5242883<"),
        "{listing}"
    );
    // Depth infinity is refused, as RFC 4918 lets a server.
    let (code, _) = dav.propfind("/dav/", "infinity").await;
    assert_eq!(code, 403);

    // A WebDAV delete is restorable; a move keeps the content.
    assert_eq!(
        dav.call("DELETE", "/dav/docs/from-grpc.bin", &[], b"")
            .await
            .0,
        204
    );
    files
        .restore_version(RestoreVersionRequest {
            file_name: "docs/from-grpc.bin".into(),
            version: 1,
        })
        .await
        .unwrap();
    let dest = format!("{}/dav/moved/", server.addr());
    let (code, head, _) = dav
        .call("MOVE", "/dav/docs/", &[("Destination", &dest)], b"")
        .await;
    assert_eq!(code, 201, "{head}");
    assert!(
        download(&mut files, "moved/from-grpc.bin", 0)
            .await
            .unwrap()
            == other
    );
    let listed = files
        .list_files(ListFilesRequest {
            prefix: "docs/".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .files;
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_takes_app_passwords_and_tokens_and_keeps_users_apart() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let alice = server.add_user("alice", "alice-password-1", false).await;
    let bob = server.add_user("bob", "bob-password-12", false).await;
    let password = app_password(&server, &alice, "phone").await;

    // Over plain HTTP, Basic is refused unless the operator allows it;
    // no credentials at all: 401 without a Basic challenge.
    let plain = Dav {
        server: &server,
        auth: Some(basic("alice", &password)),
    };
    let (code, head, _) = plain
        .call("PROPFIND", "/dav/", &[("Depth", "0")], b"")
        .await;
    assert_eq!(code, 403, "{head}");
    let anon = Dav {
        server: &server,
        auth: None,
    };
    let (code, head, _) = anon.call("PROPFIND", "/dav/", &[("Depth", "0")], b"").await;
    assert_eq!(code, 401, "{head}");
    assert!(!head.to_lowercase().contains("basic"), "{head}");
    // A Bearer token works anywhere.
    let alice_dav = Dav {
        server: &server,
        auth: Some(format!("Bearer {alice}")),
    };
    assert_eq!(alice_dav.put("/dav/secret.txt", b"alice's").await, 201);
    let bob_dav = Dav {
        server: &server,
        auth: Some(format!("Bearer {bob}")),
    };
    let (code, _) = bob_dav.propfind("/dav/secret.txt", "0").await;
    assert_eq!(code, 404, "bob sees alice's file");
    let (_, listing) = bob_dav.propfind("/dav/", "1").await;
    assert!(!listing.contains("secret.txt"), "{listing}");
    assert_eq!(
        bob_dav.call("GET", "/dav/secret.txt", &[], b"").await.0,
        404
    );

    // Where Basic is taken: app passwords only, never the account's, and
    // a revoked one is refused at once.
    drop(server);
    let server = Server::start(ServerOpts::embedded().with("COFFER_DAV_BASIC_OVER_HTTP", "true"))
        .await
        .unwrap();
    let alice = server.add_user("alice", "alice-password-1", false).await;
    let password = app_password(&server, &alice, "phone").await;
    let dav = |auth: Option<String>| Dav {
        server: &server,
        auth,
    };
    let (code, head, _) = dav(None)
        .call("PROPFIND", "/dav/", &[("Depth", "0")], b"")
        .await;
    assert_eq!(code, 401);
    assert!(
        head.to_lowercase()
            .contains("www-authenticate: basic realm=\"coffer\""),
        "{head}"
    );
    for wrong in [
        basic("alice", "alice-password-1"),
        basic("alice", &format!("{password}x")),
        basic("bob", &password),
        "Basic !!!".to_string(),
    ] {
        let (code, head, _) = dav(Some(wrong.clone()))
            .call("PROPFIND", "/dav/", &[("Depth", "0")], b"")
            .await;
        assert_eq!(code, 401, "{wrong}: {head}");
    }
    let ok = dav(Some(basic("Alice", &password)));
    assert_eq!(ok.propfind("/dav/", "0").await.0, 207);
    let mut auth = CofferAuthClient::new(server.channel_as(Some(&alice)).await);
    auth.revoke_app_password(RevokeAppPasswordRequest {
        name: "phone".into(),
    })
    .await
    .unwrap();
    assert_eq!(ok.propfind("/dav/", "0").await.0, 401);
    // Guessing is slowed like logins: a few more wrong ones, then 429.
    let mut codes = Vec::new();
    for _ in 0..6 {
        let guess = dav(Some(basic("alice", &format!("{password}x"))));
        codes.push(guess.propfind("/dav/", "0").await.0);
    }
    assert_eq!(codes.last(), Some(&429), "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_makes_lists_and_revokes_app_passwords() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_DAV_BASIC_OVER_HTTP", "true"))
        .await
        .unwrap();
    let token = server.add_user("alice", "alice-password-1", false).await;
    let cli = coffer_tests::cli::Cli::with_token(server.addr(), &token);
    let made = cli.json(&["app-password", "create", "laptop"]).await;
    let password = made["password"].as_str().expect("the password").to_string();
    assert_eq!(made["username"], "alice");
    assert!(made["url"].as_str().unwrap().ends_with("/dav/"), "{made}");
    let dav = Dav {
        server: &server,
        auth: Some(basic("alice", &password)),
    };
    assert_eq!(dav.put("/dav/from-finder.txt", b"hello").await, 201);
    let listed = cli.json(&["app-password", "list"]).await;
    assert_eq!(listed[0]["name"], "laptop", "{listed}");
    assert!(
        !listed.to_string().contains(&password),
        "the list shows secrets"
    );
    // A second of the same name is refused, clearly.
    let again = cli.run(&["app-password", "create", "laptop"]).await;
    assert!(!again.ok, "{again:?}");
    assert!(again.stderr.contains("laptop"), "{}", again.stderr);
    let gone = cli.run(&["app-password", "revoke", "laptop"]).await;
    assert!(gone.ok, "{gone:?}");
    assert_eq!(dav.propfind("/dav/", "0").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_handles_finder_windows_and_rclone_quirks() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_DAV_BASIC_OVER_HTTP", "true"))
        .await
        .unwrap();
    let token = server.add_user("alice", "alice-password-1", false).await;
    let dav = Dav {
        server: &server,
        auth: Some(format!("Bearer {token}")),
    };
    let mut files = server.client_as(Some(&token)).await;
    // macOS's bookkeeping is taken and dropped: never stored, never listed.
    assert_eq!(dav.put("/dav/._photo.jpg", b"apple double").await, 201);
    assert_eq!(dav.put("/dav/.DS_Store", b"finder").await, 201);
    assert_eq!(dav.put("/dav/photo.jpg", b"jpeg").await, 201);
    let listed: Vec<String> = files
        .list_files(ListFilesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .files
        .into_iter()
        .map(|f| f.file_name)
        .collect();
    assert_eq!(listed, vec!["photo.jpg"]);
    assert_eq!(dav.propfind("/dav/._photo.jpg", "0").await.0, 404);
    // Spotlight is told to leave the mount alone.
    assert_eq!(dav.propfind("/dav/.metadata_never_index", "0").await.0, 207);
    // Windows asks the server's root first.
    let (code, head, _) = http_request(server.addr(), "OPTIONS", "/", &[], b"").await;
    assert_eq!(code, 200, "{head}");
    let lower = head.to_lowercase();
    assert!(lower.contains("ms-author-via: dav"), "{head}");
    assert!(lower.contains("dav: 1, 2"), "{head}");
    // The web app is still at `/`.
    assert_eq!(server.get("/").await.0, 200);
    // rclone and ownCloud clients set the modification time.
    let (code, head, _) = dav
        .call(
            "PUT",
            "/dav/dated.txt",
            &[("X-OC-Mtime", "1700000000")],
            b"dated",
        )
        .await;
    assert_eq!(code, 201, "{head}");
    assert!(
        head.to_lowercase().contains("x-oc-mtime: accepted"),
        "{head}"
    );
    let meta = files
        .get_metadata(FileMetadataRequest {
            file_name: "dated.txt".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.modified_time, "2023-11-14T22:13:20Z");
    let (_, listing) = dav.propfind("/dav/dated.txt", "0").await;
    assert!(
        listing.contains("Tue, 14 Nov 2023 22:13:20 GMT"),
        "getlastmodified is the modification time: {listing}"
    );

    // ownCloud's checksums: checked on upload, kept, listed.
    let (code, head, _) = dav
        .call(
            "PUT",
            "/dav/abc.txt",
            &[(
                "OC-Checksum",
                "SHA1:a9993e364706816aba3e25717850c26c9cd0d89d",
            )],
            b"abc",
        )
        .await;
    assert_eq!(code, 201, "{head}");
    let ask = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop><oc:checksums/><d:getetag/></d:prop></d:propfind>"#;
    let (code, _, body) = dav
        .call("PROPFIND", "/dav/abc.txt", &[("Depth", "0")], ask)
        .await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 207, "{body}");
    assert!(
        body.contains(
            "SHA1:a9993e364706816aba3e25717850c26c9cd0d89d MD5:900150983cd24fb0d6963f7d28e17f72"
        ),
        "{body}"
    );
    // A wrong one: refused, nothing stored.
    let (code, head, _) = dav
        .call(
            "PUT",
            "/dav/abc.txt",
            &[("OC-Checksum", "MD5:00000000000000000000000000000000")],
            b"abd",
        )
        .await;
    assert_eq!(code, 400, "{head}");
    let versions = versions(&mut files, "abc.txt").await;
    assert_eq!(versions.len(), 1, "a refused upload made a version");

    // The quota, as WebDAV clients show it.
    let out = server.command(&["user", "quota", "alice", "10MB"]).await;
    assert!(out.success, "{out:?}");
    let ask = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:quota-used-bytes/><d:quota-available-bytes/></d:prop></d:propfind>"#;
    let (_, _, body) = dav.call("PROPFIND", "/dav/", &[("Depth", "0")], ask).await;
    let body = String::from_utf8_lossy(&body);
    // abc.txt (3 bytes), dated.txt (5) and photo.jpg (4) are kept.
    assert!(body.contains("<D:quota-used-bytes>12<"), "{body}");
    assert!(body.contains("<D:quota-available-bytes>9999988<"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webdav_lock_taken_through_one_server_holds_on_the_other() {
    let nodes = coffer_tests::garage::start_cluster(3).await.unwrap();
    let url = coffer_tests::postgres::fresh_database().await.unwrap();
    let a = Server::start(ServerOpts::on_garage(&nodes).with("COFFER_DATABASE_URL", &url))
        .await
        .unwrap();
    let b = Server::start(ServerOpts::on_garage(&nodes).with("COFFER_DATABASE_URL", &url))
        .await
        .unwrap();
    let bearer = format!("Bearer {}", a.token().expect("a login"));
    let (on_a, on_b) = (
        Dav {
            server: &a,
            auth: Some(bearer.clone()),
        },
        Dav {
            server: &b,
            auth: Some(bearer),
        },
    );
    assert_eq!(on_a.put("/dav/plan.txt", b"v1").await, 201);
    let lockinfo = br#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>alice's laptop</D:owner></D:lockinfo>"#;
    let (code, head, body) = on_a
        .call(
            "LOCK",
            "/dav/plan.txt",
            &[("Timeout", "Second-600")],
            lockinfo,
        )
        .await;
    assert_eq!(code, 200, "{head}");
    let token = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("lock-token:")
                .then(|| l["lock-token:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Lock-Token: {head}"));
    assert!(String::from_utf8_lossy(&body).contains("alice's laptop"));
    // The other server knows the lock: a write without its token is
    // refused, with it taken; its discovery lists it.
    assert_eq!(on_b.put("/dav/plan.txt", b"v2").await, 423);
    let (_, found) = on_b.propfind("/dav/plan.txt", "0").await;
    assert!(
        found.contains(token.trim_matches(|c| c == '<' || c == '>')),
        "{found}"
    );
    let with_token = format!("({token})");
    let (code, head, _) = on_b
        .call("PUT", "/dav/plan.txt", &[("If", &with_token)], b"v2")
        .await;
    assert_eq!(code, 204, "{head}");
    let (code, head, _) = on_b
        .call("UNLOCK", "/dav/plan.txt", &[("Lock-Token", &token)], b"")
        .await;
    assert_eq!(code, 204, "{head}");
    assert_eq!(on_a.put("/dav/plan.txt", b"v3").await, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_an_app_password_works_as_file_managers_send_it() {
    let certs = tempfile::tempdir().unwrap();
    // Basic over plain HTTP is not allowed here: TLS alone lets it in.
    let (opts, cert) = ServerOpts::embedded().with_tls(certs.path());
    let server = Server::start(opts).await.unwrap();
    let token = server.add_user("alice", "alice-password-1", false).await;
    let password = app_password(&server, &token, "mac").await;
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("notes.txt");
    std::fs::write(&local, b"over tls").unwrap();
    let curl = |args: &[&str]| {
        let mut c = std::process::Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&cert)
            .args(["-u", &format!("alice:{password}")])
            .args(args);
        let out = c.output().expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dav = format!("{}/dav/", server.addr());
    assert_eq!(
        curl(&["-T", local.to_str().unwrap(), &format!("{dav}notes.txt")]),
        "201"
    );
    assert_eq!(curl(&["-X", "PROPFIND", "-H", "Depth: 1", &dav]), "207");
    let mut files = server.client_as(Some(&token)).await;
    assert!(download(&mut files, "notes.txt", 0).await.unwrap() == b"over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_syncs_keeping_times_and_skips_what_is_unchanged() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_DAV_BASIC_OVER_HTTP", "true"))
        .await
        .unwrap();
    let token = server.add_user("alice", "alice-password-1", false).await;
    let password = app_password(&server, &token, "rclone").await;
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("photos");
    std::fs::create_dir_all(local.join("2026")).unwrap();
    // A time in the past, to the second, as a camera leaves it.
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for (name, len) in [("a.jpg", 10_000), ("2026/b.jpg", 300_000), ("c.txt", 5)] {
        let p = local.join(name);
        std::fs::write(&p, pattern(len, len as u64)).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let obscured = std::process::Command::new("rclone")
        .args(["obscure", &password])
        .output()
        .expect("rclone runs (Debian's rclone; scripts/install-test-deps.sh installs it)");
    let obscured = String::from_utf8_lossy(&obscured.stdout).trim().to_string();
    let rclone = |args: &[&str]| {
        let out = std::process::Command::new("rclone")
            .env("RCLONE_CONFIG", work.path().join("rclone.conf"))
            .env("RCLONE_CONFIG_COFFER_TYPE", "webdav")
            .env(
                "RCLONE_CONFIG_COFFER_URL",
                format!("{}/dav/", server.addr()),
            )
            .env("RCLONE_CONFIG_COFFER_VENDOR", "owncloud")
            .env("RCLONE_CONFIG_COFFER_USER", "alice")
            .env("RCLONE_CONFIG_COFFER_PASS", &obscured)
            .args(args)
            .arg("-v")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), text)
    };
    let src = local.to_str().unwrap();
    let (ok, log) = rclone(&["sync", src, "coffer:photos"]);
    assert!(ok, "{log}");
    // Again: nothing to send, nothing new on the server.
    let (ok, log) = rclone(&["sync", src, "coffer:photos"]);
    assert!(ok, "{log}");
    assert!(log.contains("nothing to transfer"), "{log}");
    let mut files = server.client_as(Some(&token)).await;
    for name in ["photos/a.jpg", "photos/2026/b.jpg", "photos/c.txt"] {
        let versions = versions(&mut files, name).await;
        assert_eq!(versions.len(), 1, "{name}: {versions:?}");
        assert_eq!(versions[0].modified_time, "2023-11-14T22:13:20Z", "{name}");
    }
    // rclone compares content by the checksums the server lists.
    let (ok, log) = rclone(&["check", src, "coffer:photos"]);
    assert!(ok, "{log}");
    assert!(log.contains("0 differences found"), "{log}");
    assert!(
        log.contains("Using md5 for hash comparisons")
            || log.contains("Using sha1 for hash comparisons"),
        "compared by content hashes: {log}"
    );
    assert!(log.contains("3 matching files"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macos_files_are_stored_when_the_operator_keeps_them() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_DAV_MAC_FILES", "keep"))
        .await
        .unwrap();
    let token = server.add_user("alice", "alice-password-1", false).await;
    let dav = Dav {
        server: &server,
        auth: Some(format!("Bearer {token}")),
    };
    assert_eq!(dav.put("/dav/._photo.jpg", b"apple double").await, 201);
    assert_eq!(dav.propfind("/dav/._photo.jpg", "0").await.0, 207);
    let mut files = server.client_as(Some(&token)).await;
    assert!(download(&mut files, "._photo.jpg", 0).await.unwrap() == b"apple double");
}
