//! Self-test of the Garage harness: nodes start, store data, fail and come back.

use std::time::{Duration, Instant};

use coffer_tests::garage::{start_cluster, GarageNode};

/// Put, get, list, delete round trip on one node.
async fn round_trip(node: &GarageNode, tag: &str) -> anyhow::Result<()> {
    let key = format!("chunks/{tag}/object");
    let data = format!("hello from {tag}").into_bytes();
    node.put(&key, data.clone()).await?;
    assert_eq!(node.get(&key).await?, data);
    assert_eq!(node.list_keys("chunks/").await?, vec![key.clone()]);
    assert!(node.list_keys("other/").await?.is_empty());
    node.put(&key, b"garbage".to_vec()).await?;
    assert_eq!(node.get(&key).await?, b"garbage");
    node.delete(&key).await?;
    assert!(node.list_keys("").await?.is_empty());
    assert!(node.get(&key).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_nodes_start_store_and_fail() -> anyhow::Result<()> {
    let t = Instant::now();
    let mut nodes = start_cluster(2).await?;
    eprintln!("started 2 garage nodes in {:?}", t.elapsed());
    assert_eq!(nodes.len(), 2);
    assert_ne!(nodes[0].endpoint(), nodes[1].endpoint());
    for node in &nodes {
        assert!(node.endpoint().starts_with("http://127.0.0.1:"));
        assert_eq!(node.bucket(), "files");
        assert_eq!(node.region(), "garage");
        assert_eq!(node.access_key().len(), 26);
        assert!(node.access_key().starts_with("GK"));
        assert_eq!(node.secret_key().len(), 64);
    }
    round_trip(&nodes[0], "n0").await?;
    round_trip(&nodes[1], "n1").await?;

    // Pagination: more keys than one ListObjectsV2 page (1000).
    let client = nodes[1].client();
    let mut puts = Vec::new();
    for i in 0..1005 {
        let client = client.clone();
        puts.push(tokio::spawn(async move {
            client
                .put_object()
                .bucket("files")
                .key(format!("many/{i:05}"))
                .body(Vec::new().into())
                .send()
                .await
        }));
    }
    for p in puts {
        p.await??;
    }
    assert_eq!(nodes[1].list_keys("many/").await?.len(), 1005);

    // A paused node hangs; the other one keeps working.
    nodes[0].pause();
    let hung = tokio::time::timeout(
        Duration::from_secs(3),
        nodes[0].put("while-paused", b"x".to_vec()),
    )
    .await;
    assert!(hung.is_err(), "put to a paused node should hang: {hung:?}");
    nodes[1].put("while-other-paused", b"y".to_vec()).await?;
    assert_eq!(nodes[1].get("while-other-paused").await?, b"y");
    nodes[0].resume();
    nodes[0].put("after-resume", b"z".to_vec()).await?;
    assert_eq!(nodes[0].get("after-resume").await?, b"z");

    // Killed then restarted: data survives.
    nodes[0].kill().await;
    assert!(nodes[0].pid().is_none());
    assert!(nodes[0].get("after-resume").await.is_err());
    let t = Instant::now();
    nodes[0].restart().await?;
    eprintln!("restarted a garage node in {:?}", t.elapsed());
    assert_eq!(nodes[0].get("after-resume").await?, b"z");

    // Wiped: same endpoint and key, empty but usable bucket.
    let endpoint = nodes[1].endpoint();
    let t = Instant::now();
    nodes[1].wipe_and_restart().await?;
    eprintln!("wiped and restarted a garage node in {:?}", t.elapsed());
    assert_eq!(nodes[1].endpoint(), endpoint);
    assert!(nodes[1].list_keys("").await?.is_empty());
    round_trip(&nodes[1], "n1-wiped").await?;
    // The other node is untouched.
    assert_eq!(nodes[0].get("after-resume").await?, b"z");

    // Dropping a paused node still kills it.
    let pid = nodes[0].pid().expect("running");
    nodes[0].pause();
    drop(nodes);
    // SAFETY: signal 0 only checks whether the pid exists.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "garage process {pid} survived drop");
    Ok(())
}
