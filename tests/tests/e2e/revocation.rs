//! Ending a login ends what it has open: a `WatchChanges` stream and a
//! download in progress (gRPC, or HTTP with a token) are cut after
//! logout, a new password or `user rm`, on this server and on another
//! sharing its database.

use coffer_proto::pb::coffer_auth_client::CofferAuthClient;
use coffer_proto::pb::{FileDownloadRequest, LogoutRequest, WatchChangesRequest};
use coffer_tests::data::{pattern, upload_bytes};
use coffer_tests::server::{get_head, server_command, Server, ServerOpts};
use std::time::Duration;
use tonic::Code;

/// Far longer than the server's revocation check; only a stream that is
/// never cut runs into it.
const PATIENCE: Duration = Duration::from_secs(90);

const PASSWORD: &str = "carol-password-1";

/// Reads `next` until the stream fails; its status.
async fn cut<T>(mut next: impl AsyncFnMut() -> Result<Option<T>, tonic::Status>) -> tonic::Status {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match next().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without an error"),
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("the stream outlived its login")
}

#[tokio::test]
async fn a_watch_ends_when_its_login_does() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let carol = server.add_user("carol", PASSWORD, false).await;
    let mut watch = server
        .client_as(Some(&carol))
        .await
        .watch_changes(WatchChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().expect("the first page");
    let mut auth = CofferAuthClient::new(server.channel_as(Some(&carol)).await);
    auth.logout(LogoutRequest::default()).await.unwrap();
    let e = cut(async || watch.message().await).await;
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
}

#[tokio::test]
async fn a_watch_through_another_server_ends_when_the_user_is_removed() {
    let first = Server::start(ServerOpts::embedded().on_postgres().await)
        .await
        .unwrap();
    let second = Server::start(first.opts().clone()).await.unwrap();
    let carol = first.add_user("carol", PASSWORD, false).await;
    let mut watch = second
        .client_as(Some(&carol))
        .await
        .watch_changes(WatchChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().expect("the first page");
    let out = first.command(&["user", "rm", "carol"]).await;
    assert!(out.success, "{out:?}");
    let e = cut(async || watch.message().await).await;
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
}

#[tokio::test]
async fn a_download_in_progress_ends_with_a_new_password() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let carol = server.add_user("carol", PASSWORD, false).await;
    let mut c = server.client_as(Some(&carol)).await;
    upload_bytes(&mut c, "big.bin", &pattern(24 << 20, 7))
        .await
        .unwrap();
    let mut download = c
        .download_file(FileDownloadRequest {
            file_name: "big.bin".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    download.message().await.unwrap().expect("the first piece");
    let out = server_command(
        &server
            .opts()
            .clone()
            .with("COFFER_PASSWORD", "a-new-password-2"),
        server.data_dir(),
        &["user", "passwd", "carol"],
    )
    .await;
    assert!(out.success, "{out:?}");
    // A reader that takes a piece now and then, as a slow client would.
    let e = cut(async || {
        tokio::time::sleep(Duration::from_millis(200)).await;
        download.message().await
    })
    .await;
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
}

#[tokio::test]
async fn an_http_download_in_progress_ends_with_its_login() {
    use tokio::io::AsyncReadExt;
    const SIZE: usize = 48 << 20;
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let carol = server.add_user("carol", PASSWORD, false).await;
    let mut c = server.client_as(Some(&carol)).await;
    upload_bytes(&mut c, "big.bin", &pattern(SIZE, 8))
        .await
        .unwrap();
    let addr = server.addr().trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let bearer = format!("Bearer {carol}");
    let (code, head) = get_head(
        &mut conn,
        "/download/big.bin",
        &[("Authorization", &bearer)],
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{head}");
    let mut auth = CofferAuthClient::new(server.channel_as(Some(&carol)).await);
    auth.logout(LogoutRequest::default()).await.unwrap();
    // Read on at about 1.3 MB/s (well above the minimum rate): the whole
    // file would take over half a minute; the login's end cuts it first.
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the download outlived its login");
    assert!(got < SIZE, "the whole file came after logout ({got} bytes)");
}
