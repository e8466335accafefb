//! Replication over three real Garage S3 nodes: every chunk on every node,
//! quorum writes with a node down, UNAVAILABLE below quorum, and verified
//! reads past corrupt copies.

use coffer_proto::chunking::{chunk_id, chunk_spans};
use coffer_proto::pb::FileMetadataRequest;
use coffer_tests::data::{download, pattern, upload_bytes};
use coffer_tests::garage::{start_cluster, GarageNode};
use coffer_tests::server::{Server, ServerOpts};
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::Code;

fn chunk_keys(data: &[u8]) -> BTreeSet<String> {
    chunk_spans(data)
        .iter()
        .map(|&(o, l)| {
            let id = chunk_id(&data[o..o + l]);
            format!("chunks/{}/{}", &id[..2], id)
        })
        .collect()
}

/// Waits (bounded) until every node's bucket lists all of `keys`.
async fn wait_until_on_every_node(nodes: &[GarageNode], keys: &BTreeSet<String>) {
    for _ in 0..300 {
        let mut all = true;
        for n in nodes {
            let listed: BTreeSet<String> =
                n.list_keys("chunks/").await.unwrap().into_iter().collect();
            all &= keys.is_subset(&listed);
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chunks did not reach every node");
}

#[tokio::test]
async fn chunks_reach_all_nodes_and_quorum_rules_hold_when_nodes_stop() {
    let nodes = start_cluster(3).await.unwrap();
    let server = Server::start(ServerOpts::on_garage(&nodes)).await.unwrap();
    let mut c = server.client().await;

    let first = pattern(10 * 1024 * 1024 + 1, 1);
    upload_bytes(&mut c, "replicated/first.bin", &first)
        .await
        .unwrap();
    let keys = chunk_keys(&first);
    assert!(keys.len() >= 3);
    wait_until_on_every_node(&nodes, &keys).await;
    for n in &nodes {
        // Only chunk objects are ever stored on a node.
        assert!(n
            .list_keys("")
            .await
            .unwrap()
            .iter()
            .all(|k| k.starts_with("chunks/")));
    }

    // One node stopped: W=2 of R=3 still holds.
    nodes[1].pause();
    let second = pattern(6 * 1024 * 1024 + 7, 2);
    let r = upload_bytes(&mut c, "replicated/second.bin", &second)
        .await
        .unwrap();
    assert_eq!(r.version, 1);
    assert!(download(&mut c, "replicated/first.bin", 0).await.unwrap() == first);
    assert!(download(&mut c, "replicated/second.bin", 0).await.unwrap() == second);
    let both: BTreeSet<String> = chunk_keys(&second);
    for n in [&nodes[0], &nodes[2]] {
        let listed: BTreeSet<String> = n.list_keys("chunks/").await.unwrap().into_iter().collect();
        assert!(both.is_subset(&listed));
    }

    // Two nodes stopped: below W, uploads fail UNAVAILABLE and commit nothing.
    nodes[2].pause();
    let third = pattern(3 * 1024 * 1024, 3);
    let err = upload_bytes(&mut c, "replicated/third.bin", &third)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let err = c
        .get_metadata(FileMetadataRequest {
            file_name: "replicated/third.bin".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = upload_bytes(&mut c, "replicated/first.bin", &third)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let md = c
        .get_metadata(FileMetadataRequest {
            file_name: "replicated/first.bin".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(md.version, "1");

    // Back up: reads of everything still work.
    nodes[1].resume();
    nodes[2].resume();
    assert!(download(&mut c, "replicated/first.bin", 0).await.unwrap() == first);
}

#[tokio::test]
async fn garbage_in_one_nodes_chunk_objects_does_not_change_downloads() {
    let nodes = start_cluster(3).await.unwrap();
    let server = Server::start(ServerOpts::on_garage(&nodes)).await.unwrap();
    let mut c = server.client().await;
    let data = pattern(9 * 1024 * 1024 + 123, 4);
    upload_bytes(&mut c, "bitrot.bin", &data).await.unwrap();
    let keys = chunk_keys(&data);
    wait_until_on_every_node(&nodes, &keys).await;
    for (i, key) in keys.iter().enumerate() {
        let len = nodes[0].get(key).await.unwrap().len();
        nodes[0]
            .put(key, pattern(len, 1000 + i as u64))
            .await
            .unwrap();
    }
    assert!(download(&mut c, "bitrot.bin", 0).await.unwrap() == data);
    // Now two of the three copies of every chunk are garbage, so most reads
    // meet a bad copy first, whatever the placement.
    for (i, key) in keys.iter().enumerate() {
        let len = nodes[1].get(key).await.unwrap().len();
        nodes[1]
            .put(key, pattern(len, 2000 + i as u64))
            .await
            .unwrap();
    }
    assert!(download(&mut c, "bitrot.bin", 0).await.unwrap() == data);
    // The garbage is still there: reads never "fix" by accepting bad bytes.
    let first = keys.iter().next().unwrap();
    assert_ne!(
        chunk_id(&nodes[0].get(first).await.unwrap()),
        first.rsplit('/').next().unwrap()
    );
}
