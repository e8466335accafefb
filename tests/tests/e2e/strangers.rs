//! No stranger stalls the server: silent sockets give their slot back,
//! one address cannot hold every connection, huge user names are neither
//! kept nor logged, concurrent guesses are counted before they are hashed
//! and hashed a few at a time, and a guesser slows only themselves (not
//! the owner at another address, also behind a trusted proxy).

use base64::Engine;
use coffer_proto::pb::coffer_auth_client::CofferAuthClient;
use coffer_proto::pb::coffer_share_client::CofferShareClient;
use coffer_proto::pb::{CreateShareLinkRequest, LoginRequest};
use coffer_tests::data::upload_bytes;
use coffer_tests::server::{get_head, http_get_with, proc_bytes, Server, ServerOpts};
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tonic::Code;

/// Longer than any of these tests may take to see what they wait for;
/// only a server that never gets there runs into it.
const PATIENCE: Duration = Duration::from_secs(90);

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A TCP connection to `server` from the loopback address `from` that
/// never sends a byte.
async fn silent(server: &Server, from: IpAddr) -> tokio::net::TcpStream {
    let addr: std::net::SocketAddr = server.addr().trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Waits until the server closes `conn` (end of stream or a reset).
async fn closed_by_server(conn: &mut tokio::net::TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(PATIENCE, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server never closed a silent connection"),
        }
    }
}

async fn login(
    auth: &mut CofferAuthClient<tonic::transport::Channel>,
    user: &str,
    password: &str,
) -> Result<(), tonic::Status> {
    auth.login(LoginRequest {
        username: user.into(),
        password: password.into(),
    })
    .await
    .map(drop)
}

#[tokio::test]
async fn silent_connections_give_their_slots_back() {
    let server = Server::start(
        ServerOpts::embedded()
            .with("COFFER_MAX_CONNECTIONS", "4")
            .with("COFFER_HEADER_TIMEOUT_SECS", "1"),
    )
    .await
    .unwrap();
    let mut quiet = Vec::new();
    for _ in 0..4 {
        quiet.push(silent(&server, loopback(2)).await);
    }
    // Every slot is taken by a socket that says nothing; a real client
    // still gets served once they have timed out.
    let mut auth = CofferAuthClient::new(server.raw_channel().await);
    tokio::time::timeout(
        PATIENCE,
        login(&mut auth, "admin", coffer_tests::server::ADMIN_PASSWORD),
    )
    .await
    .expect("a real client was never served")
    .unwrap();
    for q in &mut quiet {
        closed_by_server(q).await;
    }
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let server = Server::start(
        ServerOpts::embedded()
            .with("COFFER_MAX_CONNECTIONS_PER_ADDRESS", "3")
            .with("COFFER_HEADER_TIMEOUT_SECS", "3600"),
    )
    .await
    .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(silent(&server, loopback(2)).await);
    }
    // The fourth from that address is closed at once (its header time-out
    // is an hour away)...
    let mut fourth = silent(&server, loopback(2)).await;
    closed_by_server(&mut fourth).await;
    // ...while another address is served.
    let mut auth = CofferAuthClient::new(server.channel_from(Some(loopback(3))).await);
    login(&mut auth, "admin", coffer_tests::server::ADMIN_PASSWORD)
        .await
        .unwrap();
    drop(held);
}

#[tokio::test]
async fn huge_user_names_are_neither_kept_nor_logged() {
    let server = Server::start(ServerOpts::embedded().process())
        .await
        .unwrap();
    let pid = server.pid().expect("a process");
    let mut auth =
        CofferAuthClient::new(server.raw_channel().await).max_encoding_message_size(8 << 20);
    let before = proc_bytes(pid, "VmRSS:");
    let name = "x".repeat(3 << 20);
    for i in 0..64 {
        // A different name each time: each would be a throttle key.
        let name = format!("{i}{name}");
        let e = login(&mut auth, &name, "wrong password").await.unwrap_err();
        assert!(
            matches!(e.code(), Code::Unauthenticated | Code::ResourceExhausted),
            "{e:?}"
        );
    }
    let after = proc_bytes(pid, "VmRSS:");
    // 64 names of 3 MiB kept as keys would be 192 MiB.
    assert!(
        after < before + (64 << 20),
        "the server grew from {before} to {after} bytes"
    );
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    assert!(log.contains("failed login"), "the attempts are logged");
    assert!(
        !log.contains(&"x".repeat(1000)),
        "a huge name was written to the log ({} bytes of log)",
        log.len()
    );
}

#[tokio::test]
async fn concurrent_guesses_are_counted_before_they_are_hashed() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    server.add_user("carol", "carol-password-1", false).await;
    let checks = server.metric("coffer_login_password_checks_total").await;
    let channel = server.raw_channel().await;
    let guesses = (0..60).map(|i| {
        let mut auth = CofferAuthClient::new(channel.clone());
        async move { login(&mut auth, "carol", &format!("guess-{i}")).await }
    });
    for r in futures::future::join_all(guesses).await {
        let e = r.unwrap_err();
        assert!(
            matches!(e.code(), Code::Unauthenticated | Code::ResourceExhausted),
            "{e:?}"
        );
    }
    let hashed = server.metric("coffer_login_password_checks_total").await - checks;
    assert!(
        hashed <= 5,
        "{hashed} of 60 concurrent guesses were hashed; the free ones are 5"
    );
}

#[tokio::test]
async fn password_checks_run_a_few_at_a_time() {
    // Many addresses, one guess each: the throttle lets every one
    // through, so only the bounded pool keeps argon2 (19 MiB a check)
    // from running all of them at once.
    let server = Server::start(ServerOpts::embedded().process())
        .await
        .unwrap();
    let pid = server.pid().expect("a process");
    let mut attempts = Vec::new();
    for i in 0..150u32 {
        let from = IpAddr::from([127, 0, 1 + (i / 200) as u8, (i % 200) as u8 + 10]);
        let channel = server.channel_from(Some(from)).await;
        attempts.push(async move {
            let mut auth = CofferAuthClient::new(channel);
            login(&mut auth, &format!("user{i}"), "a wrong password").await
        });
    }
    for r in futures::future::join_all(attempts).await {
        let e = r.unwrap_err();
        assert!(
            matches!(e.code(), Code::Unauthenticated | Code::Unavailable),
            "{e:?}"
        );
    }
    let peak = proc_bytes(pid, "VmHWM:");
    assert!(
        peak < 600 << 20,
        "the server peaked at {} MiB: password checks ran unbounded",
        peak >> 20
    );
}

#[tokio::test]
async fn a_guesser_elsewhere_never_locks_the_owner_out() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    server.add_user("carol", "carol-password-1", false).await;
    let mut guesser = CofferAuthClient::new(server.channel_from(Some(loopback(2))).await);
    let mut throttled = false;
    for i in 0..20 {
        let e = login(&mut guesser, "carol", &format!("guess-{i}"))
            .await
            .unwrap_err();
        throttled |= e.code() == Code::ResourceExhausted;
    }
    assert!(throttled, "the guesser is slowed down");
    // Even with the right password, the guesser's address waits...
    assert_eq!(
        login(&mut guesser, "carol", "carol-password-1")
            .await
            .unwrap_err()
            .code(),
        Code::ResourceExhausted
    );
    // ...but the owner, elsewhere, gets in at once.
    let mut owner = CofferAuthClient::new(server.channel_from(Some(loopback(3))).await);
    login(&mut owner, "carol", "carol-password-1")
        .await
        .unwrap();
}

/// A login through a proxy at 127.0.0.1 that says the client is `client`.
async fn login_via_proxy(server: &Server, client: &str, password: &str) -> Code {
    let mut auth = CofferAuthClient::new(server.raw_channel().await);
    let mut req = tonic::Request::new(LoginRequest {
        username: "carol".into(),
        password: password.into(),
    });
    req.metadata_mut()
        .insert("x-forwarded-for", client.parse().unwrap());
    match auth.login(req).await {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_throttled_alone() {
    let server =
        Server::start(ServerOpts::embedded().with("COFFER_TRUSTED_PROXIES", "127.0.0.1/32"))
            .await
            .unwrap();
    server.add_user("carol", "carol-password-1", false).await;
    let mut codes = Vec::new();
    for i in 0..20 {
        codes.push(login_via_proxy(&server, "203.0.113.5", &format!("guess-{i}")).await);
    }
    assert!(codes.contains(&Code::ResourceExhausted), "{codes:?}");
    // The owner comes through the same proxy from their own address.
    assert_eq!(
        login_via_proxy(&server, "198.51.100.7", "carol-password-1").await,
        Code::Ok
    );
    // A peer that is no proxy cannot name itself someone new each time.
    let mut spoofer = CofferAuthClient::new(server.channel_from(Some(loopback(4))).await);
    let mut throttled = false;
    for i in 0..20 {
        let mut req = tonic::Request::new(LoginRequest {
            username: "carol".into(),
            password: format!("guess-{i}"),
        });
        req.metadata_mut()
            .insert("x-forwarded-for", format!("192.0.2.{i}").parse().unwrap());
        throttled |= spoofer.login(req).await.unwrap_err().code() == Code::ResourceExhausted;
    }
    assert!(throttled, "a spoofed X-Forwarded-For escaped the throttle");
}

#[tokio::test]
async fn a_share_link_guesser_never_locks_out_the_one_who_knows_the_password() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_TRUSTED_PROXIES", "127.0.0.1"))
        .await
        .unwrap();
    let mut c = server.client().await;
    upload_bytes(&mut c, "shared.txt", b"for the right eyes")
        .await
        .unwrap();
    let mut shares = CofferShareClient::new(server.channel_as(server.token()).await);
    let link = shares
        .create_share_link(CreateShareLinkRequest {
            file_name: "shared.txt".into(),
            password: "open sesame".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let fetch = |client: &'static str, password: String| {
        let url = link.url.clone();
        let addr = server.addr().to_string();
        async move {
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("anyone:{password}"))
            );
            let headers = [
                ("Authorization", basic.as_str()),
                ("X-Forwarded-For", client),
            ];
            http_get_with(&addr, &url, &headers).await.0
        }
    };
    let mut codes = Vec::new();
    for i in 0..15 {
        codes.push(fetch("203.0.113.5", format!("guess {i}")).await);
    }
    assert!(codes.contains(&429), "{codes:?}");
    assert_eq!(fetch("198.51.100.7", "open sesame".into()).await, 200);
}

/// Starts a download of `name` as the holder of `token` from `from`,
/// and takes its first piece: an open download, not read any further.
async fn open_download(
    server: &Server,
    token: Option<&str>,
    from: IpAddr,
    name: &str,
) -> Result<tonic::Streaming<coffer_proto::pb::FileResponse>, tonic::Status> {
    let channel = tonic::service::interceptor::InterceptedService::new(
        server.channel_from(Some(from)).await,
        coffer_tests::server::Bearer::new(token),
    );
    let mut c = coffer_proto::pb::file_storage_client::FileStorageClient::new(channel);
    let mut stream = c
        .download_file(coffer_proto::pb::FileDownloadRequest {
            file_name: name.into(),
            version: 0,
        })
        .await?
        .into_inner();
    stream.message().await?.expect("a first piece");
    Ok(stream)
}

/// A share-link GET from `from` that reads the response head and then
/// nothing more; the connection is held open. Its status code.
async fn held_share_get(server: &Server, url: &str, from: IpAddr) -> (u16, tokio::net::TcpStream) {
    let mut conn = silent(server, from).await;
    let (code, _) = get_head(&mut conn, url, &[]).await.expect("closed early");
    (code, conn)
}

#[tokio::test]
async fn one_caller_cannot_hold_every_download() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_MAX_DOWNLOADS_PER_CALLER", "2"))
        .await
        .unwrap();
    let mut c = server.client().await;
    upload_bytes(&mut c, "big.bin", &coffer_tests::data::pattern(24 << 20, 3))
        .await
        .unwrap();
    let admin = server.token();
    let _one = open_download(&server, admin, loopback(2), "big.bin")
        .await
        .unwrap();
    let _two = open_download(&server, admin, loopback(3), "big.bin")
        .await
        .unwrap();
    let e = open_download(&server, admin, loopback(4), "big.bin")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("account admin"), "{e:?}");
    // Someone else is not held up by the admin's downloads.
    let bob = server.add_user("bob", "bob-password-1", false).await;
    let mut b = server.client_as(Some(&bob)).await;
    upload_bytes(&mut b, "mine.bin", b"bob's").await.unwrap();
    drop(
        open_download(&server, Some(&bob), loopback(5), "mine.bin")
            .await
            .unwrap(),
    );

    // One share link is one caller too, from whatever addresses.
    let mut shares = CofferShareClient::new(server.channel_as(admin).await);
    let link = shares
        .create_share_link(CreateShareLinkRequest {
            file_name: "big.bin".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (first, _a) = held_share_get(&server, &link.url, loopback(6)).await;
    let (second, _b) = held_share_get(&server, &link.url, loopback(7)).await;
    assert_eq!((first, second), (200, 200));
    let (third, _c) = held_share_get(&server, &link.url, loopback(8)).await;
    assert_eq!(third, 429);
}

#[tokio::test]
async fn a_download_waiting_for_room_is_refused_in_time() {
    // Room for one open download; the one that holds it never reads
    // and is never idle long enough to be ended.
    let server = Server::start(
        ServerOpts::embedded()
            .with("COFFER_DOWNLOAD_MEMORY_MIB", "1")
            .with("COFFER_DOWNLOAD_QUEUE_SECS", "2")
            .with("COFFER_IDLE_TIMEOUT_SECS", "3600"),
    )
    .await
    .unwrap();
    let mut c = server.client().await;
    upload_bytes(&mut c, "big.bin", &coffer_tests::data::pattern(24 << 20, 4))
        .await
        .unwrap();
    let _holder = open_download(&server, server.token(), loopback(2), "big.bin")
        .await
        .unwrap();
    let e = tokio::time::timeout(
        PATIENCE,
        open_download(&server, server.token(), loopback(3), "big.bin"),
    )
    .await
    .expect("a download waited for room without end")
    .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
}

#[tokio::test]
async fn a_reader_below_the_minimum_rate_is_ended() {
    let server = Server::start(
        ServerOpts::embedded()
            .with("COFFER_IDLE_TIMEOUT_SECS", "2")
            .with("COFFER_MIN_DOWNLOAD_RATE_KIB", "512"),
    )
    .await
    .unwrap();
    let mut c = server.client().await;
    upload_bytes(&mut c, "big.bin", &coffer_tests::data::pattern(24 << 20, 5))
        .await
        .unwrap();
    let mut stream = open_download(&server, server.token(), loopback(2), "big.bin")
        .await
        .unwrap();
    // A piece (64 KiB) every half second: never idle for 2 s, but far
    // under 512 KiB/s.
    let e = tokio::time::timeout(PATIENCE, async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the slow reader got the whole file"),
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("a slow reader was never ended");
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(e.message().contains("minimum"), "{e:?}");
}
