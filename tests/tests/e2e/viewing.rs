//! Files shown in the browser (`/view/`): the server names every type,
//! sandboxes whatever could run script, saves what it cannot show, and
//! answers ranges, all through an hour-long link for that one file.

use coffer_proto::pb::coffer_auth_client::CofferAuthClient;
use coffer_proto::pb::DownloadLinkRequest;
use coffer_tests::data::upload_bytes;
use coffer_tests::server::{http_get_with, Server, ServerOpts};

#[tokio::test]
async fn shown_files_are_typed_by_the_server_and_sandboxed() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let alice = server.add_user("alice", "alice-password-1", false).await;
    let mut files = server.client_as(Some(&alice)).await;
    let mut auth = CofferAuthClient::new(server.channel_as(Some(&alice)).await);
    let html = b"<script>localStorage.setItem('pwned', '1')</script><p>hi</p>";
    let cases: [(&str, &[u8], &str, &str); 5] = [
        ("evil.html", html, "text/html; charset=utf-8", "sandbox;"),
        (
            "x/evil.svg",
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            "image/svg+xml",
            "sandbox;",
        ),
        (
            "notes.TXT",
            b"<b>not markup</b>",
            "text/plain; charset=utf-8",
            "sandbox;",
        ),
        (
            "doc.pdf",
            b"%PDF-1.4\n",
            "application/pdf",
            "frame-ancestors 'self'",
        ),
        ("tool.exe", b"MZ\x90\x00", "application/octet-stream", ""),
    ];
    for (name, bytes, _, _) in &cases {
        upload_bytes(&mut files, name, bytes).await.unwrap();
    }
    for (name, bytes, content_type, policy) in cases {
        let link = auth
            .download_link(DownloadLinkRequest {
                file_name: name.into(),
                version: 0,
                inline: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(link.url.starts_with("/view/"), "{}", link.url);
        let (code, head, body) = http_get_with(server.addr(), &link.url, &[]).await;
        assert_eq!(code, 200, "{name}: {head}");
        assert!(body == bytes, "{name}: the bytes differ");
        let lower = head.to_lowercase();
        assert!(
            lower.contains(&format!("content-type: {content_type}")),
            "{name}: {head}"
        );
        assert!(lower.contains("x-content-type-options: nosniff"), "{head}");
        if policy.is_empty() {
            assert!(lower.contains("content-disposition: attachment"), "{head}");
            assert!(!lower.contains("content-security-policy"), "{head}");
        } else {
            assert!(lower.contains("content-disposition: inline"), "{head}");
            assert!(
                lower.contains(&format!("content-security-policy: {policy}")),
                "{name}: {head}"
            );
            assert!(lower.contains("x-frame-options: sameorigin"), "{head}");
        }
        if policy == "sandbox;" {
            let csp = lower
                .lines()
                .find(|l| l.starts_with("content-security-policy:"))
                .unwrap();
            assert!(
                !csp.contains("allow-scripts") && !csp.contains("allow-same-origin"),
                "{csp}"
            );
        }
    }

    // Ranges, for media that plays as it loads.
    let link = auth
        .download_link(DownloadLinkRequest {
            file_name: "evil.html".into(),
            version: 0,
            inline: true,
        })
        .await
        .unwrap()
        .into_inner();
    let (code, head, body) =
        http_get_with(server.addr(), &link.url, &[("Range", "bytes=0-7")]).await;
    assert_eq!(code, 206, "{head}");
    assert_eq!(body, &html[..8]);
    // The link lasts about an hour, for this file only.
    let expires = time::OffsetDateTime::parse(
        &link.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(50), "{left}");
    let other = link.url.replace("/view/evil.html", "/view/doc.pdf");
    assert_eq!(http_get_with(server.addr(), &other, &[]).await.0, 403);
    // Without a link or a token, nothing.
    assert_eq!(
        http_get_with(server.addr(), "/view/evil.html", &[]).await.0,
        401
    );
}
