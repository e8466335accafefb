//! Eventual consistency against real Garage nodes: node loss under load,
//! a node replaced by an empty one, bitrot, objects lost behind Coffer's
//! back, garbage collection, and adding a node. Lines starting with
//! `RELIABILITY` are the figures recorded in RELIABILITY.md.

use coffer_proto::chunking::{chunk_id, chunk_spans};
use coffer_proto::pb::{
    ChunkRef, ClusterStatusRequest, DeleteFileRequest, FinishUploadRequest, ListVersionsRequest,
    PutChunkRequest, StartUploadRequest,
};
use coffer_server::cluster::placement::rank;
use coffer_tests::data::{download, pattern, upload_bytes};
use coffer_tests::garage::{start_cluster, GarageNode};
use coffer_tests::server::{Server, ServerOpts};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tonic::Code;

fn key(id: &str) -> String {
    format!("chunks/{}/{}", &id[..2], id)
}

fn ids_of(data: &[u8]) -> BTreeSet<String> {
    chunk_spans(data)
        .iter()
        .map(|&(o, l)| chunk_id(&data[o..o + l]))
        .collect()
}

async fn listing(node: &GarageNode) -> BTreeSet<String> {
    node.list_keys("chunks/")
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Options for these tests: quick probes and time-outs; workers run only
/// when a test asks (their intervals are long).
fn opts(nodes: &[GarageNode]) -> ServerOpts {
    ServerOpts::on_garage(nodes)
        .with("COFFER_NODE_TIMEOUT_MS", "2000")
        .with("COFFER_PROBE_INTERVAL_MS", "300")
        .with("COFFER_REPAIR_INTERVAL_SECS", "3600")
        .with("COFFER_SCRUB_INTERVAL_SECS", "3600")
        .with("COFFER_GC_INTERVAL_SECS", "3600")
        .with("COFFER_SCRUB_RATE_MIB", "0")
}

/// Runs repair passes (bounded, 500 ms apart: a pass that meets a slow
/// or briefly unreachable node leaves work for the next) until `left`,
/// given each node's chunk listing, counts nothing left to do; returns
/// how long it took.
async fn repair_until(
    server: &Server,
    nodes: &[GarageNode],
    what: &str,
    left: impl Fn(&[BTreeSet<String>]) -> usize,
) -> Duration {
    let start = Instant::now();
    let mut last = String::new();
    for _ in 0..20 {
        let report = server.run_worker("repair").await;
        let listings = futures::future::join_all(nodes.iter().map(listing)).await;
        let n = left(&listings);
        if n == 0 {
            return start.elapsed();
        }
        eprintln!("repair pass: {report}; {n} not yet {what}");
        last = report;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("repair never got every chunk {what}; last pass: {last}");
}

/// Runs repair until every key is on every node (bounded), and returns how
/// long it took.
async fn repair_until_complete(
    server: &Server,
    nodes: &[GarageNode],
    keys: &BTreeSet<String>,
) -> Duration {
    repair_until(server, nodes, "on every node", |listings| {
        listings.iter().filter(|l| !keys.is_subset(l)).count()
    })
    .await
}

/// Uploads `count` files named `{prefix}/{i}.bin` holding `content(i)`,
/// waits until every node has every chunk, and returns the files by name
/// and the set of chunk object keys.
async fn upload_replicated(
    server: &Server,
    nodes: &[GarageNode],
    prefix: &str,
    count: usize,
    content: impl Fn(usize) -> Vec<u8>,
) -> (BTreeMap<String, Vec<u8>>, BTreeSet<String>) {
    let mut c = server.client().await;
    let mut files = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for i in 0..count {
        let data = content(i);
        let name = format!("{prefix}/{i}.bin");
        upload_bytes(&mut c, &name, &data).await.unwrap();
        keys.extend(ids_of(&data).iter().map(|id| key(id)));
        files.insert(name, data);
    }
    repair_until_complete(server, nodes, &keys).await;
    (files, keys)
}

async fn cluster_status(server: &Server) -> coffer_proto::pb::ClusterStatusResponse {
    server
        .admin()
        .await
        .cluster_status(ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

fn mixed_size(i: usize) -> usize {
    match i % 10 {
        0 => 3 * 1024 * 1024 + i,
        1 | 2 => 300_000 + i * 1000,
        _ => 1 + (i * 7919) % 60_000,
    }
}

#[tokio::test]
async fn node_loss_under_load_loses_nothing_and_heals() {
    let nodes = start_cluster(3).await.unwrap();
    let server = Server::start(opts(&nodes)).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<usize>(256);
    let mut c = server.client().await;
    let uploader = tokio::spawn(async move {
        let (mut attempted, mut succeeded, mut failures) = (0, 0, Vec::new());
        for i in 0..200 {
            let data = pattern(mixed_size(i), i as u64);
            attempted += 1;
            match upload_bytes(&mut c, &format!("load/{i:03}.bin"), &data).await {
                Ok(_) => succeeded += 1,
                Err(e) => failures.push(format!("{i}: {e}")),
            }
            tx.send(i).await.ok();
        }
        (attempted, succeeded, failures)
    });
    let mut outage = (0, 0);
    while let Some(i) = rx.recv().await {
        if i == 40 {
            nodes[1].pause();
            outage.0 = i;
        }
        if i == 150 {
            nodes[1].resume();
            outage.1 = i;
        }
    }
    let (attempted, succeeded, failures) = uploader.await.unwrap();
    assert!(failures.is_empty(), "uploads failed: {failures:?}");
    let during = outage.1 - outage.0;

    let mut keys = BTreeSet::new();
    for i in 0..200 {
        keys.extend(
            ids_of(&pattern(mixed_size(i), i as u64))
                .iter()
                .map(|id| key(id)),
        );
    }
    let healed = repair_until_complete(&server, &nodes, &keys).await;
    let mut c = server.client().await;
    let mut lost = 0u64;
    for i in 0..200 {
        let data = pattern(mixed_size(i), i as u64);
        if download(&mut c, &format!("load/{i:03}.bin"), 0)
            .await
            .unwrap()
            != data
        {
            lost += data.len() as u64;
        }
    }
    assert_eq!(lost, 0);
    let status = cluster_status(&server).await;
    assert!(status.nodes.iter().all(|n| n.up), "{status:?}");
    println!(
        "RELIABILITY node-loss: uploads attempted {attempted}, succeeded {succeeded} ({during} of them during the \
         outage); {} chunk objects; full replication {:.1}s after the node returned; bytes lost {lost}",
        keys.len(),
        healed.as_secs_f64()
    );
}

#[tokio::test]
async fn a_node_replaced_by_an_empty_one_is_rebuilt() {
    let mut nodes = start_cluster(3).await.unwrap();
    let server = Server::start(opts(&nodes)).await.unwrap();
    let (_, keys) = upload_replicated(&server, &nodes, "wipe", 12, |i| {
        pattern(mixed_size(i), 900 + i as u64)
    })
    .await;
    nodes[2].wipe_and_restart().await.unwrap();
    assert!(listing(&nodes[2]).await.is_empty());
    let took = repair_until_complete(&server, &nodes, &keys).await;
    assert_eq!(listing(&nodes[2]).await, keys);
    // The admin view agrees: nothing under-replicated, every node up.
    let status = cluster_status(&server).await;
    assert_eq!(status.under_replicated_chunks, 0, "{status:?}");
    assert_eq!(status.chunks as usize, keys.len());
    assert!(
        status
            .nodes
            .iter()
            .all(|n| n.up && n.chunks as usize == keys.len()),
        "{status:?}"
    );
    let (code, _, metrics) = server.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("coffer_under_replicated_chunks 0"),
        "{metrics}"
    );
    println!(
        "RELIABILITY wiped-node: {} chunk objects rebuilt in {:.1}s",
        keys.len(),
        took.as_secs_f64()
    );
}

#[tokio::test]
async fn bitrot_is_served_around_and_scrub_replaces_every_corrupt_copy() {
    let nodes = start_cluster(3).await.unwrap();
    let server = Server::start(opts(&nodes)).await.unwrap();
    let (files, keys) = upload_replicated(&server, &nodes, "rot", 40, |i| {
        pattern(200_000 + i * 5000, 300 + i as u64)
    })
    .await;
    let mut c = server.client().await;
    let victims: Vec<&String> = keys.iter().step_by(20).collect(); // 5%
    for (i, k) in victims.iter().enumerate() {
        let len = nodes[0].get(k).await.unwrap().len();
        nodes[0]
            .put(k, pattern(len, 5000 + i as u64))
            .await
            .unwrap();
    }
    for (name, data) in &files {
        assert!(download(&mut c, name, 0).await.unwrap() == *data, "{name}");
    }
    let report = server.run_worker("scrub").await;
    for k in &keys {
        let id = k.rsplit('/').next().unwrap();
        assert_eq!(
            chunk_id(&nodes[0].get(k).await.unwrap()),
            id,
            "{k} still corrupt after scrub: {report}"
        );
    }
    println!(
        "RELIABILITY bitrot: {} of {} objects on one node corrupted; scrub: {report}; bytes lost 0",
        victims.len(),
        keys.len()
    );
}

#[tokio::test]
async fn objects_deleted_behind_coffers_back_are_restored_by_anti_entropy() {
    let nodes = start_cluster(3).await.unwrap();
    let server = Server::start(opts(&nodes)).await.unwrap();
    let (_, keys) = upload_replicated(&server, &nodes, "gone", 10, |i| {
        pattern(900_000 + i, 40 + i as u64)
    })
    .await;
    let removed: Vec<&String> = keys.iter().step_by(2).collect();
    for k in &removed {
        nodes[1].delete(k).await.unwrap();
    }
    assert!(!keys.is_subset(&listing(&nodes[1]).await));
    // No download in between: only anti-entropy can notice.
    repair_until_complete(&server, &nodes, &keys).await;
    println!(
        "RELIABILITY lost-objects: {} objects deleted behind Coffer's back, all restored",
        removed.len()
    );
}

#[tokio::test]
async fn gc_removes_unreferenced_chunks_and_spares_shared_and_in_flight_ones() {
    let nodes = start_cluster(3).await.unwrap();
    let opts = opts(&nodes)
        .with("COFFER_GC_GRACE_SECS", "0")
        .with("COFFER_DELETED_RETENTION_SECS", "0");
    let server = Server::start(opts).await.unwrap();
    let mut c = server.client().await;
    let shared = pattern(2 * 1024 * 1024, 61);
    let unique = pattern(2 * 1024 * 1024, 62);
    upload_bytes(&mut c, "gc/shared-a.bin", &shared)
        .await
        .unwrap();
    upload_bytes(&mut c, "gc/shared-b.bin", &shared)
        .await
        .unwrap();
    upload_bytes(&mut c, "gc/unique.bin", &unique)
        .await
        .unwrap();

    // An upload session in progress, half its chunks sent.
    let pending = pattern(3 * 1024 * 1024, 63);
    let spans = chunk_spans(&pending);
    let refs: Vec<ChunkRef> = spans
        .iter()
        .map(|&(o, l)| ChunkRef {
            id: chunk_id(&pending[o..o + l]),
            size: l as u32,
        })
        .collect();
    let start = c
        .start_upload(StartUploadRequest {
            file_name: "gc/pending.bin".into(),
            size: pending.len() as u64,
            chunks: refs.clone(),
            content_hash: coffer_proto::chunking::content_hash_of(&pending),
            upload_id: String::new(),
            modified_time: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let (o, l) = spans[0];
    c.put_chunk(PutChunkRequest {
        upload_id: start.upload_id.clone(),
        chunk_id: refs[0].id.clone(),
        data: pending[o..o + l].to_vec().into(),
    })
    .await
    .unwrap();

    let mut all = ids_of(&shared);
    all.extend(ids_of(&unique));
    all.insert(refs[0].id.clone());
    let keys: BTreeSet<String> = all.iter().map(|id| key(id)).collect();
    repair_until_complete(&server, &nodes, &keys).await;

    c.delete_file(DeleteFileRequest {
        file_name: "gc/shared-a.bin".into(),
        base_version: None,
    })
    .await
    .unwrap();
    c.delete_file(DeleteFileRequest {
        file_name: "gc/unique.bin".into(),
        base_version: None,
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = server.run_worker("gc").await;
    server.run_worker("gc").await;

    for n in &nodes {
        let listed = listing(n).await;
        for id in ids_of(&unique) {
            assert!(
                !listed.contains(&key(&id)),
                "a deleted file's chunk survived gc ({report})"
            );
        }
        for id in ids_of(&shared) {
            assert!(
                listed.contains(&key(&id)),
                "gc removed a chunk a live file shares"
            );
        }
        assert!(
            listed.contains(&key(&refs[0].id)),
            "gc removed an open session's chunk"
        );
    }
    assert!(download(&mut c, "gc/shared-b.bin", 0).await.unwrap() == shared);
    let err = c
        .list_versions(ListVersionsRequest {
            file_name: "gc/unique.bin".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "the deleted file was not purged"
    );

    // The session still completes.
    for (i, &(o, l)) in spans.iter().enumerate().skip(1) {
        c.put_chunk(PutChunkRequest {
            upload_id: start.upload_id.clone(),
            chunk_id: refs[i].id.clone(),
            data: pending[o..o + l].to_vec().into(),
        })
        .await
        .unwrap();
    }
    c.finish_upload(FinishUploadRequest {
        upload_id: start.upload_id,
        base_version: None,
    })
    .await
    .unwrap();
    assert!(download(&mut c, "gc/pending.bin", 0).await.unwrap() == pending);
    println!("RELIABILITY gc: {report}");
}

#[tokio::test]
async fn adding_a_fourth_node_rebalances_and_removing_one_rebuilds() {
    let nodes = start_cluster(4).await.unwrap();
    let mut server = Server::start(opts(&nodes[..3])).await.unwrap();
    let mut c = server.client().await;
    let mut files = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for i in 0..15 {
        let data = pattern(mixed_size(i), 700 + i as u64);
        upload_bytes(&mut c, &format!("grow/{i}.bin"), &data)
            .await
            .unwrap();
        ids.extend(ids_of(&data));
        files.insert(format!("grow/{i}.bin"), data);
    }
    let keys: BTreeSet<String> = ids.iter().map(|id| key(id)).collect();
    repair_until_complete(&server, &nodes[..3], &keys).await;

    server.restart_with(opts(&nodes)).await.unwrap();
    let node_ids: Vec<String> = nodes.iter().map(|n| n.endpoint()).collect();
    let refs: Vec<&str> = node_ids.iter().map(String::as_str).collect();
    repair_until(&server, &nodes, "on exactly its 3 home nodes", |listings| {
        ids.iter()
            .filter(|id| {
                let home: BTreeSet<usize> = rank(id, &refs)[..3].iter().copied().collect();
                (0..4).any(|n| listings[n].contains(&key(id)) != home.contains(&n))
            })
            .count()
    })
    .await;
    let moved = {
        let listing4 = listing(&nodes[3]).await;
        ids.iter().filter(|id| listing4.contains(&key(id))).count()
    };
    assert!(moved > 0, "the new node took no chunks");
    let mut c = server.client().await;
    for (name, data) in &files {
        assert!(download(&mut c, name, 0).await.unwrap() == *data, "{name}");
    }
    println!(
        "RELIABILITY add-node: {moved} of {} chunks moved to the new node",
        ids.len()
    );

    // Removing a node (the first) rebuilds its copies on the others.
    server.restart_with(opts(&nodes[1..])).await.unwrap();
    repair_until_complete(&server, &nodes[1..], &keys).await;
    let mut c = server.client().await;
    for (name, data) in &files {
        assert!(download(&mut c, name, 0).await.unwrap() == *data, "{name}");
    }
    let status = cluster_status(&server).await;
    assert_eq!(status.nodes.len(), 3);
}
