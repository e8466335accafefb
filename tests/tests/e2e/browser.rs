//! The web app in real headless Chromium (Debian's, driven by
//! playwright-core) against the real server on three Garage nodes, with a
//! native gRPC client and a hand-framed grpc-web client on the same port in
//! the same run. The browser steps live in `tests/browser/ui.mjs`;
//! screenshots land in `target/browser-screenshots/`.

use coffer_proto::pb::{FileMetadataRequest, ListFilesRequest};
use coffer_tests::data::{download, pattern, upload_bytes, versions};
use coffer_tests::garage::start_cluster;
use coffer_tests::server::{workspace_root, Server, ServerOpts};

#[tokio::test]
async fn browser_and_native_clients_share_one_port() {
    let root = workspace_root();
    let dist = root.join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "the web app is not built: `bash scripts/test.sh` builds it (cargo run -p coffer-web-build)"
    );
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is missing: `bash scripts/test.sh` installs it (npm ci in tests/browser)"
    );
    let nodes = start_cluster(3).await.unwrap();
    let opts = ServerOpts::on_garage(&nodes).with("COFFER_WEB_DIR", dist.to_str().unwrap());
    let server = Server::start(opts).await.unwrap();

    // The native client first: the browser must list what it stored.
    let mut c = server.client().await;
    let native = pattern(2 * 1024 * 1024 + 1, 77);
    upload_bytes(&mut c, "native/from-grpc.bin", &native)
        .await
        .unwrap();

    let work = tempfile::tempdir().unwrap();
    let shots = root.join("target/browser-screenshots");
    run_browser_script(&server, "ui.mjs", work.path(), &[]).await;

    // The native client on the same port sees what the browser did.
    let alpha = std::fs::read(work.path().join("alpha")).unwrap();
    assert!(
        download(&mut c, "alpha.bin", 0).await.unwrap() == alpha,
        "alpha.bin differs"
    );
    let beta = c
        .get_metadata(FileMetadataRequest {
            file_name: "beta.txt".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(beta.version, "3");
    assert!(
        download(&mut c, "beta.txt", 0).await.unwrap()
            == std::fs::read(work.path().join("beta1")).unwrap()
    );
    let gamma = c
        .get_metadata(FileMetadataRequest {
            file_name: "gamma.dat".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        gamma.version, "2",
        "undo restores the deleted file as a new version"
    );
    assert!(
        download(&mut c, "delta.bin", 0).await.unwrap()
            == std::fs::read(work.path().join("delta")).unwrap(),
        "the file picked with the keyboard differs"
    );
    // The folder the page deleted took its file along, restorably.
    let postcard = versions(&mut c, "Journeys/postcard.txt").await;
    assert!(
        postcard.len() == 1 && postcard[0].deleted,
        "the folder's file is deleted and restorable: {postcard:?}"
    );
    // Neither the cancelled upload nor the one made while the server was
    // unreachable left a version behind.
    for name in ["held.bin", "offline.bin"] {
        let err = c
            .get_metadata(FileMetadataRequest {
                file_name: name.into(),
                version: 0,
            })
            .await
            .expect_err(name);
        assert_eq!(err.code(), tonic::Code::NotFound, "{name}: {err}");
    }
    for shot in [
        "files.png",
        "history.png",
        "deleted.png",
        "error-banner.png",
        "phone.png",
    ] {
        assert!(shots.join(shot).is_file(), "screenshot {shot} missing");
    }
}

/// Runs the browser script `tests/browser/<script>` against `server` as
/// the admin, with `work` as its WORK_DIR and `env` besides; fails the
/// test (with the server's log) if the script fails.
async fn run_browser_script(
    server: &Server,
    script: &str,
    work: &std::path::Path,
    env: &[(&str, &str)],
) {
    let root = workspace_root();
    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .env("COFFER_URL", server.addr())
        .env("COFFER_USER", "admin")
        .env("COFFER_PASSWORD", coffer_tests::server::ADMIN_PASSWORD)
        .env(
            "COFFER_TOKEN",
            server.token().expect("authentication is on"),
        )
        .env("WORK_DIR", work)
        .env("COFFER_CLI", coffer_tests::cli::cli_bin())
        .env("SCREENSHOT_DIR", root.join("target/browser-screenshots"))
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run node");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{script} failed; server log:\n{}",
        server.log_tail()
    );
}

/// The names in `zip` and each file's bytes, as Python's `zipfile` reads
/// them after `unzip -t` has passed it.
fn unzipped(zip: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let t = std::process::Command::new("unzip")
        .arg("-tq")
        .arg(zip)
        .output()
        .expect("unzip");
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stdout));
    let script = "import sys, zipfile, json, base64\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  print(json.dumps({n: base64.b64encode(z.read(n)).decode() for n in z.namelist()}))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&out.stdout).unwrap();
    use base64::Engine;
    map.into_iter()
        .map(|(k, v)| {
            (
                k,
                base64::engine::general_purpose::STANDARD.decode(v).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_web_app_previews_compares_selects_zips_and_searches() {
    let root = workspace_root();
    let dist = root.join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "the web app is not built: `bash scripts/test.sh` builds it (cargo run -p coffer-web-build)"
    );
    let opts = ServerOpts::embedded().with("COFFER_WEB_DIR", dist.to_str().unwrap());
    let server = Server::start(opts).await.unwrap();
    let shots = root.join("target/browser-screenshots");
    let work = tempfile::tempdir().unwrap();
    run_browser_script(&server, "app.mjs", work.path(), &[]).await;
    let tree = work.path().join("tree");

    // The folder's zip holds the whole tree, empty folder included; the
    // selection's holds what was chosen, relative to its folder.
    let trip = unzipped(&work.path().join("Trip.zip"));
    let names: Vec<&str> = trip.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "Trip/",
            "Trip/empty/",
            "Trip/notes.md",
            "Trip/photos/sky.png",
            "Trip/photos/sunset.png",
            "Trip/story.txt",
            "Trip/tone.wav",
        ]
    );
    for name in ["Trip/notes.md", "Trip/photos/sunset.png", "Trip/tone.wav"] {
        assert!(
            trip[name] == std::fs::read(tree.join(name)).unwrap(),
            "{name} differs in the zip"
        );
    }
    assert!(trip["Trip/story.txt"] == std::fs::read(work.path().join("story2.txt")).unwrap());
    let chosen = unzipped(&work.path().join("selection.zip"));
    let names: Vec<&str> = chosen.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "notes.md",
            "photos/",
            "photos/sky.png",
            "photos/sunset.png",
            "story.txt",
            "tone.wav"
        ]
    );
    // Folders the page uploaded arrived whole, under the folder it showed.
    let mut c = server.client().await;
    assert_eq!(
        download(&mut c, "Trip/Drop1/many/07.txt", 0).await.unwrap(),
        b"file 7"
    );
    assert_eq!(
        download(&mut c, "Trip/Album/sub/b.txt", 0).await.unwrap(),
        b"b"
    );
    for shot in [
        "upload-panel.png",
        "operator.png",
        "viewer-image.png",
        "viewer-markdown.png",
        "diff.png",
        "selection.png",
        "search.png",
        "dark.png",
        "phone-folder.png",
    ] {
        assert!(shots.join(shot).is_file(), "screenshot {shot} missing");
    }
}

#[tokio::test]
async fn a_100000_file_folder_scrolls_and_a_10000_file_drop_arrives_in_the_web_app() {
    const COUNT: u32 = 100_000;
    let root = workspace_root();
    let dist = root.join("dist");
    let opts = ServerOpts::embedded().with("COFFER_WEB_DIR", dist.to_str().unwrap());
    let mut server = Server::start(opts).await.unwrap();
    let mut c = server.client().await;
    upload_bytes(&mut c, "big/file000000.txt", b"one of many")
        .await
        .unwrap();
    upload_bytes(&mut c, "small.txt", b"beside").await.unwrap();
    // 4 MiB of text, then made a 1 GiB file of the same chunks 256 times
    // over: the viewer must read only its first MiB.
    let text: Vec<u8> = (0..)
        .flat_map(|i: u32| format!("line {i:07} of a long text file\n").into_bytes())
        .take(4 << 20)
        .collect();
    upload_bytes(&mut c, "huge.txt", &text).await.unwrap();
    server.kill().await;
    let db = server.data_dir().join("coffer.db");
    coffer_tests::data::fill_folder(&db, "big", COUNT).unwrap();
    {
        let db = rusqlite::Connection::open(&db).unwrap();
        let (id, chunks): (i64, i64) = db
            .query_row(
                "SELECT f.id, COUNT(*) FROM files f JOIN version_chunks vc ON vc.file_id = f.id
                 WHERE f.path = 'huge.txt' GROUP BY f.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        db.execute_batch(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 255)
             INSERT INTO version_chunks (file_id, number, idx, chunk_id)
             SELECT vc.file_id, vc.number, vc.idx + {chunks} * n.i, vc.chunk_id
             FROM version_chunks vc, n WHERE vc.file_id = {id};
             UPDATE versions SET size = size * 256 WHERE file_id = {id};"
        ))
        .unwrap();
    }
    server.restart().await.unwrap();
    let mut c = server.client().await;

    let work = tempfile::tempdir().unwrap();
    let count = COUNT.to_string();
    let (drop, size) = (DROP_COUNT.to_string(), DROP_SIZE.to_string());
    run_browser_script(
        &server,
        "big.mjs",
        work.path(),
        &[
            ("BIG_FOLDER", "big"),
            ("BIG_COUNT", &count),
            ("DROP_FOLDER", "Dropped"),
            ("DROP_COUNT", &drop),
            ("DROP_SIZE", &size),
        ],
    )
    .await;

    // Every dropped file arrived whole: counted from the server, and a
    // few read back (the script made each one a header, then a pattern).
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_files(ListFilesRequest {
                prefix: "Dropped/".into(),
                page_token: token,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.files.into_iter().map(|f| (f.file_name, f.size)));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(
        names.len(),
        DROP_COUNT as usize,
        "every dropped file arrived"
    );
    assert!(
        names.iter().all(|(_, s)| *s == DROP_SIZE),
        "each at its size"
    );
    for i in [0, DROP_COUNT / 2 + 1, DROP_COUNT - 1] {
        let head = format!("file {i}\n").into_bytes();
        let mut want = head.clone();
        want.extend((0..DROP_SIZE - head.len() as u64).map(|j| (j * 31 + 7) as u8));
        let got = download(&mut c, &format!("Dropped/f{i:05}.bin"), 0)
            .await
            .unwrap();
        assert!(got == want, "Dropped/f{i:05}.bin differs");
    }
}

/// Files in the one drop `big.mjs` makes, and the bytes of each.
const DROP_COUNT: u64 = 10_000;
const DROP_SIZE: u64 = 16 * 1024;
