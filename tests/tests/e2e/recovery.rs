//! Disaster recovery: metadata snapshots on the nodes, and
//! `coffer-server meta restore` after the server's disk is lost. On real
//! Garage nodes where the issue asks for them, else on directory nodes
//! outside the data dir (which a lost disk does not take with it).

use coffer_proto::pb::{ClusterStatusRequest, ListVersionsRequest, SnapshotStatus};
use coffer_tests::data::{download, pattern, read_tree, upload_at_once, upload_bytes};
use coffer_tests::garage::start_cluster;
use coffer_tests::server::{Server, ServerOpts};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tonic::Code;

/// The signing key the operator keeps off the server's disk: snapshots
/// are authenticated with a key derived from it.
const SIGNING_KEY: &str = "the-operators-signing-key-kept-in-a-safe-place";

/// Workers run only when a test asks; the signing key comes from the
/// operator, as a restore after a lost disk needs it.
fn quiet(opts: ServerOpts) -> ServerOpts {
    opts.with("COFFER_AUTH_KEY", SIGNING_KEY)
        .with("COFFER_PROBE_INTERVAL_MS", "300")
        .with("COFFER_REPAIR_INTERVAL_SECS", "3600")
        .with("COFFER_SCRUB_INTERVAL_SECS", "3600")
        .with("COFFER_GC_INTERVAL_SECS", "3600")
        .with("COFFER_SNAPSHOT_INTERVAL_SECS", "0")
}

/// Three directory nodes that outlive the data dir.
fn dir_nodes(root: &Path) -> (ServerOpts, Vec<PathBuf>) {
    let (opts, dirs) = ServerOpts::on_dirs(root);
    (quiet(opts), dirs)
}

async fn snapshot_status(server: &Server) -> SnapshotStatus {
    server
        .admin()
        .await
        .cluster_status(ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .expect("SQLite reports snapshots")
}

/// Takes a snapshot and returns its status.
async fn snapshot(server: &Server) -> SnapshotStatus {
    let report = server.run_worker("snapshot").await;
    assert!(report.starts_with("snapshot coffer/snapshots/"), "{report}");
    snapshot_status(server).await
}

/// Snapshot objects (key, bytes) under a directory node.
fn snapshot_files(node: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let root = node.join("coffer/snapshots");
    for cluster in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(cluster.path()).unwrap().flatten() {
            let key = f.path().strip_prefix(node).unwrap().display().to_string();
            out.insert(key, std::fs::read(f.path()).unwrap());
        }
    }
    out
}

async fn upload_all(server: &Server, files: &BTreeMap<&str, Vec<u8>>) {
    let mut c = server.client().await;
    for (name, data) in files {
        upload_bytes(&mut c, name, data).await.unwrap();
    }
}

async fn assert_serves(server: &Server, files: &BTreeMap<&str, Vec<u8>>) {
    let mut c = server.client().await;
    for (name, data) in files {
        let got = download(&mut c, name, 0)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got == *data, "{name} differs after the restore");
    }
}

async fn assert_absent(server: &Server, name: &str) {
    let mut c = server.client().await;
    let e = download(&mut c, name, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{name}: {e}");
}

#[tokio::test]
async fn losing_the_data_dir_loses_only_what_came_after_the_snapshot() {
    let nodes = start_cluster(3).await.unwrap();
    // No grace period: only the restore hold keeps the later chunks.
    let opts = quiet(ServerOpts::on_garage(&nodes)).with("COFFER_GC_GRACE_SECS", "0");
    let mut server = Server::start(opts).await.unwrap();
    let before: BTreeMap<&str, Vec<u8>> = [
        ("docs/a.txt", b"first file".to_vec()),
        ("big.bin", pattern(3 * 1024 * 1024 + 17, 1)),
        ("b.txt", b"b, version one".to_vec()),
    ]
    .into();
    upload_all(&server, &before).await;
    let b_v2 = pattern(200_000, 2);
    upload_bytes(&mut server.client().await, "b.txt", &b_v2)
        .await
        .unwrap();
    let snap = snapshot(&server).await;
    assert_eq!((snap.last_nodes, snap.of_nodes), (3, 3), "{snap:?}");
    assert!(snap.last_bytes > 0 && snap.last_database_bytes > snap.last_bytes);
    let (_, _, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(&format!("coffer_snapshot_last_bytes {}", snap.last_bytes)),
        "{metrics}"
    );
    for n in &nodes {
        assert_eq!(
            n.list_keys("coffer/snapshots/").await.unwrap(),
            vec![snap.last_key.clone()]
        );
    }

    // After the snapshot: a new file and a new version.
    let mut c = server.client().await;
    upload_bytes(&mut c, "late.txt", &pattern(150_000, 3))
        .await
        .unwrap();
    upload_bytes(&mut c, "b.txt", &pattern(180_000, 4))
        .await
        .unwrap();
    drop(c);

    server.kill().await;
    server.wipe_data_dir();
    let out = server.command(&["meta", "restore"]).await;
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "from the snapshot taken at {}",
            snap.last_taken_at
        )),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!(
            "versions committed after {} are lost",
            snap.last_taken_at
        )),
        "{out:?}"
    );
    // The chunks of the two later versions are reported, not deleted.
    assert!(
        out.stdout.contains("were stored after the snapshot"),
        "{out:?}"
    );
    // A second restore would overwrite the restored database.
    let again = server.command(&["meta", "restore"]).await;
    assert!(
        !again.success && again.stderr.contains("--force"),
        "{again:?}"
    );

    server.restart().await.unwrap();
    let mut expected = before.clone();
    expected.insert("b.txt", b_v2.clone());
    assert_serves(&server, &expected).await;
    let mut c = server.client().await;
    assert_eq!(
        download(&mut c, "b.txt", 1).await.unwrap(),
        b"b, version one"
    );
    let versions = c
        .list_versions(ListVersionsRequest {
            file_name: "b.txt".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_absent(&server, "late.txt").await;

    // The later chunks outlast gc passes: a newer snapshot could need them.
    let chunks_before: Vec<usize> = futures::future::join_all(
        nodes
            .iter()
            .map(|n| async { n.list_keys("chunks/").await.unwrap().len() }),
    )
    .await;
    for _ in 0..2 {
        let report = server.run_worker("gc").await;
        assert!(!report.starts_with("failed"), "{report}");
    }
    for (n, before) in nodes.iter().zip(chunks_before) {
        assert_eq!(n.list_keys("chunks/").await.unwrap().len(), before);
    }
}

#[tokio::test]
async fn restore_picks_the_snapshot_for_a_time_and_skips_a_corrupt_one() {
    let root = tempfile::tempdir().unwrap();
    let (opts, dirs) = dir_nodes(root.path());
    let mut server = Server::start(opts).await.unwrap();
    let mut taken = Vec::new();
    for i in 1..=3 {
        let mut c = server.client().await;
        upload_bytes(&mut c, &format!("f{i}"), &pattern(10_000 * i, i as u64))
            .await
            .unwrap();
        taken.push(snapshot(&server).await);
    }
    let listed = server.command(&["meta", "snapshots"]).await;
    assert!(listed.success, "{listed:?}");
    for s in &taken {
        assert!(listed.stdout.contains(&s.last_taken_at), "{listed:?}");
    }

    server.kill().await;
    server.wipe_data_dir();
    // "At or before": the second snapshot's own time picks it.
    let out = server
        .command(&["meta", "restore", "--at", &taken[1].last_taken_at])
        .await;
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains(&taken[1].last_taken_at), "{out:?}");
    server.restart().await.unwrap();
    let f = |i: usize| pattern(10_000 * i, i as u64);
    assert_serves(&server, &[("f1", f(1)), ("f2", f(2))].into()).await;
    assert_absent(&server, "f3").await;
    server.kill().await;

    // Too early for any snapshot: a clear refusal.
    let early = server
        .command(&["meta", "restore", "--force", "--at", "2000-01-01T00:00:00Z"])
        .await;
    assert!(
        !early.success && early.stderr.contains("no reachable node holds a snapshot"),
        "{early:?}"
    );

    // Bitrot in the newest snapshot on every node: the one before it is used.
    for d in &dirs {
        let path = d.join(&taken[2].last_key);
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
    }
    let out = server.command(&["meta", "restore", "--force"]).await;
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains("skipped a bad snapshot")
            && out.stdout.contains("corrupt")
            && out
                .stdout
                .contains(&format!("taken at {}", taken[1].last_taken_at))
            && out.stdout.contains("the database it replaced is kept at"),
        "{out:?}"
    );
    server.restart().await.unwrap();
    assert_serves(&server, &[("f1", f(1)), ("f2", f(2))].into()).await;
    assert_absent(&server, "f3").await;
}

#[tokio::test]
async fn planted_snapshots_are_refused_and_every_login_ends_on_restore() {
    let root = tempfile::tempdir().unwrap();
    let (opts, dirs) = dir_nodes(root.path());
    let mut server = Server::start(opts).await.unwrap();
    upload_bytes(&mut server.client().await, "kept", &pattern(20_000, 1))
        .await
        .unwrap();
    let genuine = snapshot(&server).await;
    let token = server.token().unwrap().to_string();
    server.kill().await;
    server.wipe_data_dir();

    // Someone who can write to a node plants newer snapshots: the genuine
    // one re-dated, and a copy named by its unkeyed BLAKE3 (how snapshots
    // were checked before they carried a MAC).
    let (old_stamp, old_mac) = genuine
        .last_key
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".sqlite.zst")
        .split_once('-')
        .unwrap();
    let (old_stamp, old_mac) = (old_stamp.to_string(), old_mac.to_string());
    let bytes = std::fs::read(dirs[0].join(&genuine.last_key)).unwrap();
    let plant = |stamp: &str, mac: &str| {
        let key = genuine
            .last_key
            .replace(&old_stamp, stamp)
            .replace(&old_mac, mac);
        for d in &dirs {
            std::fs::write(d.join(&key), &bytes).unwrap();
        }
    };
    plant("29991231T000000.000Z", &old_mac);
    plant(
        "29991231T000001.000Z",
        blake3::hash(&bytes).to_hex().as_str(),
    );

    // Without the signing key there is nothing to check them with.
    let out = server
        .command_with(|o| o.without("COFFER_AUTH_KEY"), &["meta", "restore"])
        .await;
    assert!(
        !out.success && out.stderr.contains("COFFER_AUTH_KEY"),
        "{out:?}"
    );
    // With another key, no snapshot is genuine.
    let out = server
        .command_with(
            |o| {
                o.with(
                    "COFFER_AUTH_KEY",
                    "another-key-of-at-least-thirty-two-characters",
                )
            },
            &["meta", "restore"],
        )
        .await;
    assert!(
        !out.success && out.stderr.contains("not authenticated"),
        "{out:?}"
    );
    // Decompression is bounded: with a bound of 0 GiB, even the genuine
    // one is too big.
    let out = server
        .command(&["meta", "restore", "--max-size-gib", "0"])
        .await;
    assert!(
        !out.success && out.stderr.contains("decompresses to more than 0 bytes"),
        "{out:?}"
    );
    // With the right one, both plants are skipped for the genuine one.
    let out = server.command(&["meta", "restore"]).await;
    assert!(out.success, "{out:?}");
    assert_eq!(
        out.stdout.matches("not authenticated").count(),
        2 * dirs.len(),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains(&format!("taken at {}", genuine.last_taken_at))
            && out.stdout.contains("every login has ended"),
        "{out:?}"
    );
    server.restart().await.unwrap();
    assert_serves(&server, &[("kept", pattern(20_000, 1))].into()).await;
    // A login of before the restore (it could have been revoked after the
    // snapshot) is over.
    let err = server
        .client_as(Some(&token))
        .await
        .list_files(coffer_proto::pb::ListFilesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}

#[tokio::test]
async fn snapshots_land_with_a_node_down_and_restore_from_any_one_node() {
    let mut nodes = start_cluster(3).await.unwrap();
    let mut server =
        Server::start(quiet(ServerOpts::on_garage(&nodes)).with("COFFER_NODE_TIMEOUT_MS", "2000"))
            .await
            .unwrap();
    let files: BTreeMap<&str, Vec<u8>> =
        [("one", pattern(500_000, 5)), ("two", pattern(70_000, 6))].into();
    upload_all(&server, &files).await;
    nodes[2].kill().await;
    let report = server.run_worker("snapshot").await;
    assert!(report.contains("on 2 of 3 nodes"), "{report}");
    let snap = snapshot_status(&server).await;
    for n in &nodes[..2] {
        assert_eq!(
            n.list_keys("coffer/snapshots/").await.unwrap(),
            vec![snap.last_key.clone()]
        );
    }

    server.kill().await;
    server.wipe_data_dir();
    // Only the second node survives.
    nodes[0].kill().await;
    let alone = quiet(ServerOpts::on_garage(&nodes[1..2]));
    let out =
        coffer_tests::server::server_command(&alone, server.data_dir(), &["meta", "restore"]).await;
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("read from {}", nodes[1].endpoint())),
        "{out:?}"
    );
    nodes[0].restart().await.unwrap();
    nodes[2].restart().await.unwrap();
    server.restart().await.unwrap();
    assert_serves(&server, &files).await;
}

#[tokio::test]
async fn workers_leave_snapshots_alone_and_retention_keeps_the_newest() {
    let root = tempfile::tempdir().unwrap();
    let (opts, dirs) = dir_nodes(root.path());
    let opts = opts
        .with("COFFER_SNAPSHOT_KEEP", "3")
        .with("COFFER_SNAPSHOT_KEEP_DAYS", "0")
        .with("COFFER_GC_GRACE_SECS", "0");
    let server = Server::start(opts).await.unwrap();
    upload_bytes(&mut server.client().await, "x", &pattern(300_000, 7))
        .await
        .unwrap();
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(snapshot(&server).await.last_key);
    }
    let newest: Vec<String> = keys[2..].to_vec();
    let kept: Vec<BTreeMap<String, Vec<u8>>> = dirs.iter().map(|d| snapshot_files(d)).collect();
    for k in &kept {
        assert_eq!(k.keys().cloned().collect::<Vec<_>>(), newest);
    }

    // An object under chunks/ that no file names: gc's orphan sweep must
    // take it (so the sweep did run) and nothing outside chunks/.
    let stray = dirs[0].join("chunks/00/".to_string() + &"0".repeat(64));
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"stray").unwrap();
    for w in ["gc", "gc", "repair", "scrub"] {
        let report = server.run_worker(w).await;
        assert!(!report.starts_with("failed"), "{w}: {report}");
    }
    assert!(!stray.exists(), "the orphan sweep did not run");
    let after: Vec<BTreeMap<String, Vec<u8>>> = dirs.iter().map(|d| snapshot_files(d)).collect();
    assert_eq!(after, kept, "a worker touched a snapshot");
    assert!(dirs.iter().all(|d| d.join("coffer/cluster-id").exists()));
}

#[tokio::test]
async fn postgres_takes_no_snapshots_and_says_which_tools_do() {
    let server = Server::start(quiet(ServerOpts::embedded()).on_postgres().await)
        .await
        .unwrap();
    let e = server
        .admin()
        .await
        .run_worker(coffer_proto::pb::RunWorkerRequest {
            name: "snapshot".into(),
            wait: true,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("pg_basebackup"), "{e:?}");
    let status = server
        .admin()
        .await
        .cluster_status(ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.snapshot, None);
    let out = server.command(&["meta", "restore"]).await;
    assert!(
        !out.success && out.stderr.contains("PostgreSQL's own tools"),
        "{out:?}"
    );
}

#[tokio::test]
async fn packed_files_come_back_from_a_snapshot_after_the_disk_is_lost() {
    let root = tempfile::tempdir().unwrap();
    let (opts, dirs) = dir_nodes(root.path());
    let mut server = Server::start(opts.with("COFFER_PACKS", "true"))
        .await
        .unwrap();
    let names: Vec<String> = (0..200).map(|i| format!("small/f{i:03}.txt")).collect();
    let files: BTreeMap<&str, Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), pattern(100 + i * 13, i as u64)))
        .collect();
    // Many at once, as `coffer put` of a tree sends them: they share packs.
    let c = server.client().await;
    upload_at_once(&c, files.iter().map(|(n, d)| (*n, d.as_slice())), 32).await;
    snapshot(&server).await;
    // Packed: far fewer objects on each node than files.
    let objects = read_tree(&dirs[0].join("chunks")).len();
    assert!(
        objects > 0 && objects < 50,
        "{objects} objects for 200 files"
    );

    server.kill().await;
    server.wipe_data_dir();
    let out = server.command(&["meta", "restore"]).await;
    assert!(out.success, "{out:?}");
    server.restart().await.unwrap();
    assert_serves(&server, &files).await;
}

/// A snapshot taken before a repack names packs that gc has deleted
/// since: `meta restore` reads the packs' own indexes on the nodes and
/// points the files' chunks at the packs that hold them now.
#[tokio::test]
async fn a_restore_from_before_a_repack_finds_chunks_in_their_new_packs() {
    let root = tempfile::tempdir().unwrap();
    let (opts, dirs) = dir_nodes(root.path());
    let opts = opts
        .with("COFFER_PACKS", "true")
        .with("COFFER_GC_GRACE_SECS", "0")
        .with("COFFER_DELETED_RETENTION_SECS", "0");
    let mut server = Server::start(opts).await.unwrap();
    let names: Vec<String> = (0..100).map(|i| format!("small/f{i:03}.txt")).collect();
    let files: BTreeMap<&str, Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), pattern(2000 + i * 7, i as u64)))
        .collect();
    let c = server.client().await;
    upload_at_once(&c, files.iter().map(|(n, d)| (*n, d.as_slice())), 32).await;
    snapshot(&server).await;
    let before = read_tree(&dirs[0].join("chunks"));

    // Nine in ten deleted: gc repacks the tenth into new packs, then
    // deletes the old ones (finished sessions, which keep their chunks a
    // day, end now).
    let kept: BTreeMap<&str, Vec<u8>> = files
        .iter()
        .step_by(10)
        .map(|(n, d)| (*n, d.clone()))
        .collect();
    let mut c = server.client().await;
    for n in files.keys().filter(|n| !kept.contains_key(*n)) {
        c.delete_file(coffer_proto::pb::DeleteFileRequest {
            file_name: n.to_string(),
            base_version: None,
        })
        .await
        .unwrap();
    }
    server.end_upload_sessions();
    let first = server.run_worker("gc").await;
    assert!(!first.contains("repacked 0 packs"), "{first}");
    server.run_worker("gc").await;
    let after = read_tree(&dirs[0].join("chunks"));
    assert!(
        before.keys().all(|k| !after.contains_key(k)),
        "the packs the snapshot names are all gone"
    );

    server.kill().await;
    server.wipe_data_dir();
    let out = server.command(&["meta", "restore"]).await;
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "{} chunk(s) whose recorded place was gone",
            kept.len()
        )),
        "{}",
        out.stdout
    );
    server.restart().await.unwrap();
    assert_serves(&server, &kept).await;
}
