//! One conformance suite for every `BlobStore` backend: the local directory
//! store and the S3 store on a real Garage node must behave alike.

use bytes::Bytes;
use coffer_server::store::local::LocalStore;
use coffer_server::store::s3::{S3Config, S3Store};
use coffer_server::store::{BlobStore, ObjectInfo, StoreError};
use coffer_tests::data::pattern;
use coffer_tests::garage::GarageNode;
use std::time::Duration;

async fn conformance(store: &dyn BlobStore) {
    store.ensure_ready().await.unwrap();
    store
        .ensure_ready()
        .await
        .expect("ensure_ready is idempotent");

    // Absent objects.
    assert!(matches!(
        store.get("chunks/00/absent").await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .delete("chunks/00/absent")
        .await
        .expect("deleting an absent object succeeds");
    assert!(store.list("chunks/").await.unwrap().is_empty());

    // Round trips of several sizes, including empty and a maximal chunk.
    let objects: Vec<(String, Bytes)> = [0usize, 1, 1000, 4 * 1024 * 1024]
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            (
                format!("chunks/a{i}/object-{i}"),
                Bytes::from(pattern(len, i as u64)),
            )
        })
        .collect();
    for (key, data) in &objects {
        store.put(key, data.clone()).await.unwrap();
        assert_eq!(store.get(key).await.unwrap(), *data, "{key}");
    }
    // Ranges: exactly the bytes asked, an empty one included; an object
    // shorter than the range is an error, an absent one not found.
    let (key, data) = &objects[3];
    let len = data.len() as u64;
    for r in [0..1, 100..5000, len - 48..len, 7..7, 0..len] {
        let got = store.get_range(key, r.clone()).await.unwrap();
        assert!(
            got == data.slice(r.start as usize..r.end as usize),
            "range {r:?}"
        );
    }
    for r in [len - 10..len + 10, len + 5..len + 10] {
        let err = store.get_range(key, r.clone()).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Other { .. }),
            "range {r:?} past the end: {err}"
        );
    }
    assert!(matches!(
        store.get_range("chunks/00/absent", 0..5).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_range("chunks/00/absent", 0..0).await,
        Err(StoreError::NotFound { .. })
    ));

    // Overwriting is allowed and the last write wins.
    store
        .put(&objects[1].0, Bytes::from_static(b"new"))
        .await
        .unwrap();
    assert_eq!(
        store.get(&objects[1].0).await.unwrap(),
        Bytes::from_static(b"new")
    );

    // Listing is by prefix, with sizes.
    store
        .put("other/x", Bytes::from_static(b"xyz"))
        .await
        .unwrap();
    let mut listed = store.list("chunks/").await.unwrap();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    let mut want: Vec<ObjectInfo> = objects
        .iter()
        .enumerate()
        .map(|(i, (k, d))| ObjectInfo {
            key: k.clone(),
            size: if i == 1 { 3 } else { d.len() as u64 },
        })
        .collect();
    want.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(listed, want);
    assert_eq!(store.list("chunks/a2").await.unwrap().len(), 1);
    assert_eq!(store.list("").await.unwrap().len(), objects.len() + 1);

    // Delete.
    store.delete(&objects[0].0).await.unwrap();
    assert!(matches!(
        store.get(&objects[0].0).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.list("chunks/").await.unwrap().len(),
        objects.len() - 1
    );

    // Listing past one page (S3 pages hold 1000 keys).
    let many: Vec<String> = (0..1050).map(|i| format!("many/{i:05}")).collect();
    futures::future::join_all(many.iter().map(|k| store.put(k, Bytes::from_static(b"m")))).await;
    assert_eq!(store.list("many/").await.unwrap().len(), many.len());
}

#[tokio::test]
async fn local_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new("local", dir.path().join("node"));
    conformance(&store).await;
    // Keys that would escape the root are refused.
    for key in ["../escape", "/abs", "a/../../b", ""] {
        assert!(
            matches!(
                store.put(key, Bytes::new()).await,
                Err(StoreError::InvalidKey { .. })
            ),
            "{key}"
        );
    }
}

fn s3_store(node: &GarageNode, bucket: &str) -> S3Store {
    S3Store::new(&S3Config {
        name: "garage".into(),
        endpoint: node.endpoint(),
        region: node.region().into(),
        bucket: bucket.into(),
        access_key: node.access_key().into(),
        secret_key: node.secret_key().into(),
        timeout: Duration::from_secs(10),
    })
}

#[tokio::test]
async fn s3_store_conforms_on_garage() {
    let node = GarageNode::start().await.unwrap();
    conformance(&s3_store(&node, node.bucket())).await;
}

#[tokio::test]
async fn s3_store_reports_an_unreachable_node_as_retryable() {
    let mut node = GarageNode::start().await.unwrap();
    let store = s3_store(&node, node.bucket());
    node.kill().await;
    let err = store.get("chunks/00/x").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn s3_store_creates_a_missing_bucket() {
    let node = GarageNode::start().await.unwrap();
    let store = s3_store(&node, "made-by-coffer");
    store.ensure_ready().await.unwrap();
    store
        .put("chunks/00/k", Bytes::from_static(b"v"))
        .await
        .unwrap();
    assert_eq!(
        store.get("chunks/00/k").await.unwrap(),
        Bytes::from_static(b"v")
    );
}
