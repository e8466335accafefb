//! Several stateless servers on one PostgreSQL and three Garage nodes:
//! files uploaded through one server are served by the other, versions of
//! one path are numbered once each across servers, and gc on one server
//! never deletes a chunk an upload through the other committed.

use coffer_proto::pb::DeleteFileRequest;
use coffer_tests::data::{download, pattern, upload_bytes};
use coffer_tests::garage::{start_cluster, GarageNode};
use coffer_tests::server::{Server, ServerOpts};

async fn two_servers(nodes: &[GarageNode], first: ServerOpts) -> (Server, Server) {
    let url = coffer_tests::postgres::fresh_database().await.unwrap();
    let a = Server::start(first.with("COFFER_DATABASE_URL", &url))
        .await
        .unwrap();
    let b = Server::start(ServerOpts::on_garage(nodes).with("COFFER_DATABASE_URL", &url))
        .await
        .unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_share_files_and_number_versions_once() {
    let nodes = start_cluster(3).await.unwrap();
    let (a, b) = two_servers(&nodes, ServerOpts::on_garage(&nodes)).await;
    let data = pattern(5 * 1024 * 1024 + 17, 71);
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    upload_bytes(&mut ca, "shared/report.bin", &data)
        .await
        .unwrap();
    assert!(
        download(&mut cb, "shared/report.bin", 0).await.unwrap() == data,
        "the other server served other bytes"
    );

    // Ten uploads of one path at once, split across both servers.
    let uploads = (0..10u64).map(|i| {
        let mut c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        tokio::spawn(async move {
            let body = pattern(64 * 1024, 100 + i);
            let r = upload_bytes(&mut c, "hot.txt", &body).await.unwrap();
            r.version
        })
    });
    let mut versions: Vec<u64> = futures::future::join_all(uploads)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_on_one_server_never_deletes_what_an_upload_through_the_other_commits() {
    let nodes = start_cluster(3).await.unwrap();
    let gc_side = ServerOpts::on_garage(&nodes)
        .with("COFFER_GC_GRACE_SECS", "0")
        .with("COFFER_DELETED_RETENTION_SECS", "0");
    let (a, b) = two_servers(&nodes, gc_side).await;
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let rounds = 12u64;
    for r in 0..rounds {
        // The content becomes garbage on A: uploaded, deleted, purgeable.
        let data = pattern(2 * 1024 * 1024 + r as usize, 200 + r);
        let tmp = format!("tmp/{r}.bin");
        upload_bytes(&mut ca, &tmp, &data).await.unwrap();
        ca.delete_file(DeleteFileRequest {
            file_name: tmp.clone(),
            base_version: None,
        })
        .await
        .unwrap();
        // A collects it while B uploads the same content again.
        let gc = {
            let a = &a;
            async move { a.run_worker("gc").await }
        };
        let keep = format!("keep/{r}.bin");
        let upload = async {
            // A refusal while gc deletes the same chunk is allowed (and
            // retried); a committed version must stay readable.
            for _ in 0..5 {
                match upload_bytes(&mut cb, &keep, &data).await {
                    Ok(_) => return,
                    Err(s) => eprintln!("round {r}: upload refused, again: {s}"),
                }
            }
            panic!("round {r}: the upload never went through");
        };
        let (report, ()) = tokio::join!(gc, upload);
        eprintln!("round {r}: {report}");
    }
    // More gc passes, then every committed file reads back intact.
    a.run_worker("gc").await;
    a.run_worker("gc").await;
    for r in 0..rounds {
        let data = pattern(2 * 1024 * 1024 + r as usize, 200 + r);
        match download(&mut cb, &format!("keep/{r}.bin"), 0).await {
            Ok(back) => assert!(back == data, "round {r}: other bytes came back"),
            Err(s) => panic!("round {r}: a committed file lost its bytes: {s}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_database_on_another_clusters_nodes_deletes_nothing_and_says_why() {
    let nodes = start_cluster(3).await.unwrap();
    let owner = Server::start(ServerOpts::on_garage(&nodes)).await.unwrap();
    let mut c = owner.client().await;
    let data = pattern(3 * 1024 * 1024 + 5, 81);
    upload_bytes(&mut c, "theirs.bin", &data).await.unwrap();
    // Once the third copies (written behind the quorum) have landed.
    let mut before: Vec<Vec<String>> = Vec::new();
    for _ in 0..100 {
        before = futures::future::join_all(
            nodes
                .iter()
                .map(|n| async { n.list_keys("chunks/").await.unwrap() }),
        )
        .await;
        if before.iter().all(|keys| keys == &before[0]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(before.iter().all(|keys| !keys.is_empty()));

    // A server with a fresh data dir (an empty database), pointed at the
    // same nodes, with no grace period at all.
    let stranger = Server::start(
        ServerOpts::on_garage(&nodes)
            .with("COFFER_GC_GRACE_SECS", "0")
            .with("COFFER_DELETED_RETENTION_SECS", "0"),
    )
    .await
    .unwrap();
    stranger.run_worker("gc").await;
    let report = stranger.run_worker("gc").await;
    assert!(
        report.contains("orphan sweep off") && report.contains("belongs to cluster"),
        "{report}"
    );
    let after: Vec<Vec<String>> = futures::future::join_all(
        nodes
            .iter()
            .map(|n| async { n.list_keys("chunks/").await.unwrap() }),
    )
    .await;
    assert_eq!(before, after, "the stranger deleted chunks");
    assert!(download(&mut c, "theirs.bin", 0).await.unwrap() == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_runs_each_worker_and_another_takes_over_when_it_dies() {
    let nodes = start_cluster(3).await.unwrap();
    let url = coffer_tests::postgres::fresh_database().await.unwrap();
    let opts = || {
        ServerOpts::on_garage(&nodes)
            .with("COFFER_DATABASE_URL", &url)
            .with("COFFER_LEASE_SECS", "2")
    };
    // A is killed: a process of its own.
    let mut a = Server::start(opts().process()).await.unwrap();
    let b = Server::start(opts()).await.unwrap();
    for worker in ["gc", "repair", "scrub"] {
        let ran = a.run_worker(worker).await;
        assert!(!ran.starts_with("standby"), "{worker} on A: {ran}");
        let standby = b.run_worker(worker).await;
        assert!(
            standby.starts_with(&format!("standby: {worker} runs on ")),
            "{worker} ran on B while A holds it: {standby}"
        );
    }
    // Both servers' status names the holder of each lease: A.
    let a_dir = a.data_dir().canonicalize().unwrap();
    for server in [&a, &b] {
        let status = server
            .admin()
            .await
            .cluster_status(coffer_proto::pb::ClusterStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.metadata_backend, "postgres");
        for w in status.workers.iter().filter(|w| w.name != "probe") {
            assert!(
                w.lease_holder.ends_with(&a_dir.display().to_string()),
                "{}: held by {:?}",
                w.name,
                w.lease_holder
            );
        }
    }
    a.kill().await;
    // Within the lease time (2 s, polled for far longer), B takes over.
    let mut report = String::new();
    for _ in 0..60 {
        report = b.run_worker("gc").await;
        if !report.starts_with("standby") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        !report.starts_with("standby"),
        "B never took gc over: {report}"
    );
}

/// A server that starts while its database cannot be reached (starting or
/// restarting beside it) waits for it instead of exiting. Found by the
/// fault soak (seed 103): a server restarted just as PostgreSQL restarted
/// exited with "cannot open the metadata database", and stayed down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_waits_for_a_database_that_is_not_up_yet() {
    let mut pg = tokio::task::spawn_blocking(coffer_tests::postgres::PgCluster::start_private)
        .await
        .unwrap()
        .unwrap();
    let url = pg.database().await.unwrap();
    pg.stop().unwrap();
    // Up again a few seconds after the server began to start.
    let back = tokio::task::spawn_blocking(move || {
        std::thread::sleep(std::time::Duration::from_secs(3));
        pg.start_again().map(|()| pg)
    });
    let server = Server::start(ServerOpts::embedded().with("COFFER_DATABASE_URL", &url))
        .await
        .expect("the server waited for its database");
    let _pg = back.await.unwrap().unwrap();
    let mut c = server.client().await;
    let data = pattern(70_000, 3);
    upload_bytes(&mut c, "after.bin", &data).await.unwrap();
    assert!(download(&mut c, "after.bin", 0).await.unwrap() == data);
}

/// The database is reachable but every connection to it breaks at once
/// (as when it crashes under a starting server's first queries): the
/// server waits for it as for one that is down, and starts once it heals.
#[tokio::test]
async fn a_server_waits_for_a_database_whose_connections_break() {
    use coffer_tests::proxy::{Fault, Proxy};
    let pg = coffer_tests::postgres::PgCluster::shared().await.unwrap();
    let url = pg.database().await.unwrap();
    let (head, rest) = url.split_once("@127.0.0.1:").unwrap();
    let (port, db) = rest.split_once('/').unwrap();
    let proxy = Proxy::start(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    proxy.set(Fault::Cut);
    let addr = proxy.endpoint().replace("http://", "");
    let via = format!("{head}@{addr}/{db}");
    let healer = async {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        proxy.set(Fault::None);
    };
    let (server, ()) = tokio::join!(
        Server::start(ServerOpts::embedded().with("COFFER_DATABASE_URL", &via)),
        healer
    );
    let server = server.expect("the server waited for its database");
    let mut c = server.client().await;
    let data = pattern(70_000, 4);
    upload_bytes(&mut c, "after.bin", &data).await.unwrap();
    assert!(download(&mut c, "after.bin", 0).await.unwrap() == data);
}
