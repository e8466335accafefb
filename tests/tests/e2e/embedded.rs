//! The embedded default (three local-directory nodes and SQLite under the
//! data dir): round trips of every size class.

use crate::local_chunk_objects;
use coffer_tests::data::{
    download, download_hash, hash_blocks, pattern, pattern_blocks, upload, upload_bytes,
};
use coffer_tests::server::{Server, ServerOpts};

#[tokio::test]
async fn small_files_round_trip_byte_identical() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    for (name, len) in [
        ("empty.bin", 0usize),
        ("one.bin", 1),
        ("five-mib-plus-three.bin", 5 * 1024 * 1024 + 3),
    ] {
        let data = pattern(len, len as u64);
        let resp = upload_bytes(&mut c, name, &data).await.unwrap();
        assert_eq!((resp.version, resp.size), (1, len as u64), "{name}");
        assert_eq!(
            resp.content_hash,
            coffer_proto::chunking::content_hash_of(&data)
        );
        let back = download(&mut c, name, 0).await.unwrap();
        assert!(back == data, "{name}: downloaded bytes differ");
    }
    // Every chunk landed on all three local nodes.
    let nodes = local_chunk_objects(server.data_dir());
    assert!(!nodes[0].is_empty());
    assert!(
        nodes.iter().all(|n| n == &nodes[0]),
        "nodes disagree: {nodes:?}"
    );
    assert!(server.data_dir().join("coffer.db").exists());
}

#[tokio::test]
async fn a_300_mib_file_round_trips_byte_identical() {
    const LEN: u64 = 300 * 1024 * 1024;
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    let (len, hash) = hash_blocks(pattern_blocks(LEN, 42));
    let resp = upload(&mut c, "big/300mib.bin", pattern_blocks(LEN, 42))
        .await
        .unwrap();
    assert_eq!(
        (resp.size, resp.content_hash.as_str()),
        (len, hash.as_str())
    );
    let (got_len, got_hash) = download_hash(&mut c, "big/300mib.bin", 0).await.unwrap();
    assert_eq!((got_len, got_hash), (len, hash));
}

/// The README's run command (`bash scripts/run.sh`) builds the server and
/// starts it on the embedded default: local nodes and SQLite in the data dir.
#[tokio::test]
async fn readme_run_command_serves_on_the_embedded_default() {
    let script = coffer_tests::server::workspace_root().join("scripts/run.sh");
    let opts = ServerOpts {
        command: Some(vec!["bash".into(), script.to_string_lossy().into_owned()]),
        // The test build's profile: no second, release-mode build in CI.
        // COFFER_SKIP_WEB_BUILD: the test command has built dist/ already,
        // and the browser test reads it meanwhile.
        env: vec![
            ("COFFER_RUN_PROFILE".into(), "dev".into()),
            ("COFFER_SKIP_WEB_BUILD".into(), "1".into()),
        ],
        process: true,
    };
    let server = Server::start(opts).await.unwrap();
    let mut c = server.client().await;
    let data = pattern(2 * 1024 * 1024 + 9, 31);
    upload_bytes(&mut c, "readme.bin", &data).await.unwrap();
    assert!(download(&mut c, "readme.bin", 0).await.unwrap() == data);
    assert!(server.data_dir().join("coffer.db").is_file());
    let nodes = local_chunk_objects(server.data_dir());
    assert!(
        nodes.iter().all(|n| !n.is_empty()),
        "every local node holds chunks: {nodes:?}"
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_refuses_to_start_and_touches_nothing() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    upload_bytes(&mut c, "kept.bin", &pattern(300_000, 9))
        .await
        .unwrap();
    let db = server.data_dir().join("coffer.db");
    let before = std::fs::metadata(&db).unwrap().modified().unwrap();
    let out = tokio::process::Command::new(coffer_tests::server::server_bin())
        .env("COFFER_DATA_DIR", server.data_dir())
        .env("PORT", "0")
        .env("COFFER_HOST", "127.0.0.1")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it started: {stderr}");
    assert!(
        stderr.contains("another coffer-server") && stderr.lines().count() <= 2,
        "not one clear line: {stderr}"
    );
    assert_eq!(std::fs::metadata(&db).unwrap().modified().unwrap(), before);
    // The first server is unharmed.
    assert!(download(&mut c, "kept.bin", 0).await.unwrap() == pattern(300_000, 9));
}

#[tokio::test]
async fn the_server_runs_in_process_and_drains_on_shutdown() {
    use clap::Parser;
    use coffer_proto::pb::file_storage_client::FileStorageClient;
    let dir = tempfile::tempdir().unwrap();
    let cfg = coffer_server::config::Config::parse_from([
        "coffer-server",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--admin-password",
        coffer_tests::server::ADMIN_PASSWORD,
    ]);
    let nodes = cfg.node_specs(|_| None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(coffer_server::server::run(cfg, nodes, listener, async {
        stopped.await.ok();
    }));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token = coffer_proto::pb::coffer_auth_client::CofferAuthClient::new(channel.clone())
        .login(coffer_proto::pb::LoginRequest {
            username: "admin".into(),
            password: coffer_tests::server::ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let mut c = FileStorageClient::with_interceptor(
        channel,
        coffer_tests::server::Bearer::new(Some(&token)),
    );
    let data = pattern(1_500_000, 44);
    upload_bytes(&mut c, "in-process.bin", &data).await.unwrap();
    assert!(download(&mut c, "in-process.bin", 0).await.unwrap() == data);
    drop(c);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    // Everything it stored is there for the next start.
    assert!(dir.path().join("coffer.db").exists());
    assert!(!local_chunk_objects(dir.path())[0].is_empty());
}

/// On a first run, the README's run command creates the admin and tells
/// the new user how to sign in; the password it shows works, and is not
/// kept in clear in the data dir.
#[tokio::test]
async fn readme_run_command_tells_the_first_user_how_to_sign_in() {
    use tokio::io::AsyncBufReadExt;
    let data = tempfile::tempdir().unwrap();
    let script = coffer_tests::server::workspace_root().join("scripts/run.sh");
    let mut cmd = tokio::process::Command::new("bash");
    for (k, _) in std::env::vars() {
        if k.starts_with("COFFER_") || k.starts_with("MINIO_") || k == "PORT" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .arg(&script)
        .env("COFFER_DATA_DIR", data.path())
        .env("PORT", "0")
        .env("COFFER_HOST", "127.0.0.1")
        .env("COFFER_RUN_PROFILE", "dev")
        .env("COFFER_SKIP_WEB_BUILD", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut password, mut addr) = (None, None);
    let mut said = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        said.push(line.clone());
        if let Some(p) = line.trim().strip_prefix("password: ") {
            password = Some(p.trim().to_string());
        }
        if let Some(a) = line.strip_prefix("coffer-server listening on ") {
            addr = Some(a.trim().to_string());
            break;
        }
    }
    let (password, addr) = (
        password.expect("the run command shows the admin's password"),
        addr.expect("the server started"),
    );
    assert!(password.len() >= 16, "{password}");
    // On port 0 it cannot know the address, and does not claim one; it
    // names the `coffer` client it built.
    let said = said.join("\n");
    assert!(!said.contains("localhost:5000"), "{said}");
    let cli = said
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" --server URL login --user admin")
                .map(|(cli, _)| cli.to_string())
        })
        .unwrap_or_else(|| panic!("no login command: {said}"));
    assert!(std::path::Path::new(&cli).is_file(), "{cli} was not built");
    let channel = tonic::transport::Channel::from_shared(addr)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let login = coffer_proto::pb::coffer_auth_client::CofferAuthClient::new(channel)
        .login(coffer_proto::pb::LoginRequest {
            username: "admin".into(),
            password: password.clone(),
        })
        .await
        .expect("the shown password signs in")
        .into_inner();
    assert_eq!(login.role, "admin");
    child.start_kill().ok();
    child.wait().await.ok();
    for f in std::fs::read_dir(data.path()).unwrap().flatten() {
        if f.path().is_file() {
            let bytes = std::fs::read(f.path()).unwrap();
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "the password is in clear in {}",
                f.path().display()
            );
        }
    }
}
