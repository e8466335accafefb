//! The built web app is served at `/` on the API's port, with caching
//! fit for the build's hashed assets, compressed as the client allows, and a
//! clear message when it is not built.

use coffer_tests::data::upload_bytes;
use coffer_tests::server::{http_get, http_get_with, Server, ServerOpts, ADMIN_PASSWORD};

#[tokio::test]
async fn the_web_app_is_served_with_sensible_caching() {
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(
        dist.path().join("index.html"),
        "<!doctype html><title>Coffer</title>",
    )
    .unwrap();
    std::fs::write(
        dist.path().join("coffer-web-0123456789abcdef.js"),
        "console.log(1)",
    )
    .unwrap();
    std::fs::write(
        dist.path().join("coffer-web-0123456789abcdef_bg.wasm"),
        b"\0asm",
    )
    .unwrap();
    // Not really gzip: the test only looks at which file is sent.
    std::fs::write(
        dist.path().join("coffer-web-0123456789abcdef.js.gz"),
        "GZ form",
    )
    .unwrap();
    let opts = ServerOpts::embedded().with("COFFER_WEB_DIR", dist.path().to_str().unwrap());
    let server = Server::start(opts).await.unwrap();

    let (code, head, body) = http_get(server.addr(), "/").await;
    assert_eq!(code, 200);
    assert!(body.contains("<title>Coffer</title>"));
    assert!(
        head.to_lowercase().contains("cache-control: no-cache"),
        "{head}"
    );
    assert!(
        head.to_lowercase().contains("content-type: text/html"),
        "{head}"
    );

    let (code, head, _) = http_get(server.addr(), "/coffer-web-0123456789abcdef.js").await;
    assert_eq!(code, 200);
    assert!(head.contains("immutable"), "{head}");
    assert!(head.to_lowercase().contains("javascript"), "{head}");
    let (_, head, _) = http_get(server.addr(), "/coffer-web-0123456789abcdef_bg.wasm").await;
    assert!(
        head.to_lowercase()
            .contains("content-type: application/wasm"),
        "{head}"
    );
    // The gzip form tools/web-build writes beside an asset, to a client
    // that takes it; the plain file to one that does not.
    let script = "/coffer-web-0123456789abcdef.js";
    let (code, head, body) =
        http_get_with(server.addr(), script, &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(code, 200);
    assert_eq!(
        header_of(&head, "content-encoding").as_deref(),
        Some("gzip"),
        "{head}"
    );
    assert!(head.contains("immutable"), "{head}");
    assert_eq!(body, b"GZ form");
    let (_, head, body) = http_get_with(server.addr(), script, &[("Accept-Encoding", "br")]).await;
    assert_eq!(header_of(&head, "content-encoding"), None, "{head}");
    assert_eq!(body, b"console.log(1)");

    // Client-side routes fall back to the app.
    let (code, _, body) = http_get(server.addr(), "/files/docs").await;
    assert_eq!(code, 200);
    assert!(body.contains("<title>Coffer</title>"));
    // The API still answers on the same port.
    assert_eq!(http_get(server.addr(), "/healthz").await.0, 200);
}

#[tokio::test]
async fn a_missing_web_build_is_explained() {
    let opts = ServerOpts::embedded().with("COFFER_WEB_DIR", "/nonexistent/dist");
    let server = Server::start(opts).await.unwrap();
    let (code, _, body) = http_get(server.addr(), "/").await;
    assert_eq!(code, 404);
    assert!(body.contains("not built"), "{body}");
}

#[tokio::test]
async fn unknown_grpc_methods_are_unimplemented_not_the_web_app() {
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(dist.path().join("index.html"), "<!doctype html>").unwrap();
    let opts = ServerOpts::embedded().with("COFFER_WEB_DIR", dist.path().to_str().unwrap());
    let server = Server::start(opts).await.unwrap();
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/NoSuchService/Nothing");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let err = grpc
        .unary(tonic::Request::new(()), path, codec)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
}

#[tokio::test]
async fn files_download_over_plain_http_by_version() {
    use coffer_tests::data::{pattern, upload_bytes};
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    let v1 = pattern(5 * 1024 * 1024 + 3, 1);
    let v2 = pattern(1234, 2);
    upload_bytes(&mut c, "docs/my report ü.bin", &v1)
        .await
        .unwrap();
    upload_bytes(&mut c, "docs/my report ü.bin", &v2)
        .await
        .unwrap();

    let url = "/download/docs/my%20report%20%C3%BC.bin";
    let (code, head, body) = server.get_bytes(url).await;
    assert_eq!(code, 200, "{head}");
    assert!(body == v2, "latest version differs");
    let lower = head.to_lowercase();
    assert!(
        lower.contains(
            "content-disposition: attachment; filename=\"my report _.bin\"; \
             filename*=utf-8''my%20report%20%c3%bc.bin"
        ),
        "{head}"
    );
    assert!(
        lower.contains(&format!("content-length: {}", v2.len())),
        "{head}"
    );
    let (code, _, body) = server.get_bytes(&format!("{url}?version=1")).await;
    assert_eq!(code, 200);
    assert!(body == v1, "version 1 differs");

    // Ranges: across chunk boundaries, a suffix, and one outside the file.
    let bearer = format!("Bearer {}", server.token().unwrap());
    let ranged = |range: &'static str| {
        let (addr, bearer) = (server.addr().to_string(), bearer.clone());
        async move {
            coffer_tests::server::http_get_with(
                &addr,
                &format!("{url}?version=1"),
                &[("Authorization", &bearer), ("Range", range)],
            )
            .await
        }
    };
    let (code, head, body) = ranged("bytes=1000000-4500000").await;
    assert_eq!(code, 206, "{head}");
    assert!(body == v1[1_000_000..=4_500_000], "a middle range differs");
    let want = format!("content-range: bytes 1000000-4500000/{}", v1.len());
    assert!(head.to_lowercase().contains(&want), "{head}");
    let (code, _, body) = ranged("bytes=-10").await;
    assert_eq!(code, 206);
    assert!(body == v1[v1.len() - 10..], "the suffix differs");
    let (code, head, _) = ranged("bytes=99999999-").await;
    assert_eq!(code, 416, "{head}");
    // A malformed range is ignored: the whole file.
    let (code, _, body) = ranged("pages=1-2").await;
    assert_eq!(code, 200);
    assert!(body == v1);

    assert_eq!(server.get_bytes("/download/docs/missing.bin").await.0, 404);
    assert_eq!(server.get_bytes(&format!("{url}?version=9")).await.0, 404);
    assert_eq!(server.get_bytes("/download/a/%2E%2E/b").await.0, 400);
}

/// The index.html Trunk built into `dist/`, which the server embeds.
fn built_index() -> String {
    let built = coffer_tests::server::workspace_root().join("dist/index.html");
    std::fs::read_to_string(&built).unwrap_or_else(|_| {
        panic!("the web app is not built: `bash scripts/test.sh` builds it before the server")
    })
}

#[tokio::test]
async fn the_binary_serves_its_own_web_app_from_any_working_directory() {
    let index = built_index();
    // The binary, started in its data dir, where no dist/ is.
    let server = Server::start(ServerOpts::embedded().process())
        .await
        .unwrap();
    assert!(!server.data_dir().join("dist").exists());
    let (code, head, body) = http_get(server.addr(), "/").await;
    assert_eq!(code, 200, "{body}");
    assert!(head.to_ascii_lowercase().contains("text/html"), "{head}");
    assert_eq!(body, index, "not the app built in dist/");
    // Its policy allows exactly the inline loader Trunk wrote, which the
    // browser test then runs under it.
    let policy = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("content-security-policy:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .expect("a Content-Security-Policy on the page");
    assert_eq!(
        policy,
        coffer_server::api::web::content_security_policy(&index)
    );
    assert!(policy.contains("'sha256-"), "{policy}");
    // A client-side route gets the app too; an asset comes with its type.
    let (code, _, body) = http_get(server.addr(), "/some/folder").await;
    assert_eq!((code, body == index), (200, true));
    let wasm = std::fs::read_dir(coffer_tests::server::workspace_root().join("dist"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".wasm"))
        .expect("a wasm file in dist/");
    let (code, head, _) = http_get(server.addr(), &format!("/{wasm}")).await;
    assert_eq!(code, 200);
    assert!(head.contains("application/wasm"), "{head}");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    for path in ["/", "/healthz", "/download/missing.bin", "/readyz"] {
        let (_, head, _) = http_get(server.addr(), path).await;
        let head = head.to_ascii_lowercase();
        for h in [
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "referrer-policy: no-referrer",
        ] {
            assert!(head.contains(h), "{path}: no {h:?} in\n{head}");
        }
    }
}

/// The header `name` of a raw response head, lower-cased name.
fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

#[tokio::test]
async fn the_embedded_app_goes_out_compressed_as_asked_and_revalidates_to_nothing() {
    use std::io::Read;
    let index = built_index();
    let server = Server::start(ServerOpts::embedded().process())
        .await
        .unwrap();
    // Every asset the page loads: itself, its script and its module.
    let mut assets = vec!["/".to_string()];
    for part in index.split(['"', '\'']) {
        let asset = part.starts_with('/') && (part.ends_with(".js") || part.ends_with(".wasm"));
        if asset && !assets.iter().any(|a| a == part) {
            assets.push(part.to_string());
        }
    }
    assert!(assets.iter().any(|a| a.ends_with("_bg.wasm")), "{assets:?}");
    let addr = server.addr().to_string();
    for asset in &assets {
        let (code, head, plain) = http_get_with(&addr, asset, &[]).await;
        assert_eq!(code, 200, "{asset}");
        assert_eq!(
            header_of(&head, "content-encoding"),
            None,
            "{asset}: {head}"
        );
        // Brotli for a browser, from the first request after the start:
        // the forms were made at build time.
        let (code, head, body) = http_get_with(
            &addr,
            asset,
            &[("Accept-Encoding", "gzip, deflate, br, zstd")],
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(
            header_of(&head, "content-encoding").as_deref(),
            Some("br"),
            "{asset}: {head}"
        );
        assert_eq!(header_of(&head, "vary").as_deref(), Some("accept-encoding"));
        let mut back = Vec::new();
        brotli::Decompressor::new(&body[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == plain, "{asset}: brotli form differs");
        // Smaller always; under half for the script and the module.
        let (packed, whole) = (body.len(), plain.len());
        assert!(packed < whole, "{asset}: {packed} of {whole}");
        assert!(
            whole < 64 * 1024 || packed * 2 < whole,
            "{asset}: {packed} of {whole}"
        );
        println!("{asset}: {whole} bytes, brotli {packed}");
        // gzip for a client that refuses brotli.
        let (_, head, body) =
            http_get_with(&addr, asset, &[("Accept-Encoding", "br;q=0, gzip")]).await;
        assert_eq!(
            header_of(&head, "content-encoding").as_deref(),
            Some("gzip")
        );
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == plain, "{asset}: gzip form differs");
        // Plain for one that takes neither.
        let (_, head, body) = http_get_with(&addr, asset, &[("Accept-Encoding", "identity")]).await;
        assert_eq!(header_of(&head, "content-encoding"), None);
        assert!(body == plain);
        // Revalidation: the ETag of what was sent gets 304 and no body.
        let etag = header_of(&head, "etag").expect("an ETag");
        let (code, head304, body) = http_get_with(&addr, asset, &[("If-None-Match", &etag)]).await;
        assert_eq!(code, 304, "{asset}: {head304}");
        assert!(body.is_empty());
        // Hashed assets are immutable; the page is revalidated.
        let cache = header_of(&head, "cache-control").unwrap_or_default();
        if asset == "/" {
            assert_eq!(cache, "no-cache");
        } else {
            assert!(cache.contains("immutable"), "{asset}: {cache}");
        }
    }
}

#[tokio::test]
async fn a_second_visit_moves_under_a_tenth_of_the_first() {
    let root = coffer_tests::server::workspace_root();
    assert!(
        root.join("dist/index.html").is_file(),
        "the web app is not built: `bash scripts/test.sh` builds it before the server"
    );
    // The binary's own embedded app, as `scripts/run.sh` serves it.
    let server = Server::start(ServerOpts::embedded().process())
        .await
        .unwrap();
    // Signed in, the second load goes straight to a listing with a row.
    upload_bytes(&mut server.client().await, "first.txt", b"listed")
        .await
        .unwrap();
    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/reload.mjs"))
        .env("COFFER_URL", server.addr())
        .env("COFFER_USER", "admin")
        .env("COFFER_PASSWORD", ADMIN_PASSWORD)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
    let first = report["first"]["bytes"].as_u64().unwrap();
    let second = report["second"]["bytes"].as_u64().unwrap();
    println!(
        "first load moved {first} bytes ({} decoded), the second {second}; \
         from navigation to the login form {} ms, to the first listing {} ms \
         (signing in included); on the second load, to the listing {} ms",
        report["first"]["decoded"],
        report["first"]["loginMs"],
        report["first"]["listingMs"],
        report["second"]["listingMs"],
    );
    assert!(
        first > 100_000,
        "the first load moved too little to be the app: {report}"
    );
    assert!(
        second * 10 < first,
        "the second load moved {second} bytes of the first's {first}: {report}"
    );
}
