//! Unit tests of the domain: read-ahead bounds and the upload budget.

use super::*;
use crate::cluster::ClusterConfig;
use crate::store::faults::FaultyStore;
use crate::store::local::LocalStore;
use crate::store::BlobStore;
use std::path::Path;

/// One slow local node holding `sizes.len()` chunks; returns the
/// domain with `read_ahead_bytes`, the node, and the chunks in order.
async fn slow_node(
    dir: &Path,
    sizes: &[usize],
    read_ahead_bytes: usize,
) -> (Files, Arc<FaultyStore>, Vec<(ChunkRef, Bytes)>) {
    let local = Arc::new(LocalStore::new("n0".to_string(), dir.join("n0")));
    local.ensure_ready().await.unwrap();
    let node = Arc::new(FaultyStore::new(local));
    let nodes: Vec<(String, Arc<dyn BlobStore>)> = vec![("n0".into(), node.clone())];
    let (cluster, _events) = Cluster::new(nodes, ClusterConfig::for_nodes(1)).unwrap();
    let mut chunks = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let data = Bytes::from(vec![i as u8; size]);
        let id = chunk_id(&data);
        cluster.write_chunk(&id, data.clone()).await.unwrap();
        let size = size as u32;
        chunks.push((ChunkRef { id, size }, data));
    }
    node.set_read_delay(Duration::from_millis(20));
    let cfg = FilesConfig {
        read_ahead_bytes,
        ..FilesConfig::default()
    };
    let meta: Meta = Arc::new(crate::meta::sqlite::open_in_memory().unwrap());
    (Files::new(meta, Arc::new(cluster), cfg), node, chunks)
}

async fn read_all(files: &Files, chunks: &[(ChunkRef, Bytes)]) -> Vec<Bytes> {
    let refs = chunks.iter().map(|(r, _)| r.clone()).collect();
    let stream = files.read_chunks(refs);
    futures::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.push(piece.unwrap().data);
    }
    out
}

#[tokio::test]
async fn read_ahead_is_bounded_by_bytes_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    const MIB: usize = 1024 * 1024;
    // 4 MiB of budget, 1 MiB chunks: at most 4 reads at once.
    let (files, node, chunks) = slow_node(dir.path(), &[MIB; 12], 4 * MIB).await;
    let got = read_all(&files, &chunks).await;
    let want: Vec<Bytes> = chunks.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(got, want);
    let max = node.max_reads_in_flight();
    assert!(max > 1, "nothing was read ahead");
    assert!(max <= 4, "{max} reads at once with room for 4");
}

#[tokio::test]
async fn a_chunk_larger_than_the_budget_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    // A budget of one byte still lets one whole chunk through at a time.
    let sizes = [3 * 1024 * 1024, 10, MAX_CHUNK, 1];
    let (files, _node, chunks) = slow_node(dir.path(), &sizes, 1).await;
    let got = read_all(&files, &chunks).await;
    let want: Vec<Bytes> = chunks.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn uploads_wait_for_room_in_the_server_wide_budget_then_give_up() {
    let dir = tempfile::tempdir().unwrap();
    let (mut files, node, _) = slow_node(dir.path(), &[], 0).await;
    // The smallest budget (8 chunks of 4 MiB), a short wait, and
    // writes slow enough that nothing is stored while a second upload
    // waits.
    files.cfg.download_queue_wait = Duration::from_millis(300);
    files.uploads = UploadBudget::new(1);
    let total = files.upload_budget().used_kib().1 as u64 * 1024;
    node.set_write_delay(Duration::from_secs(2));
    // Bytes that do not repeat (so they chunk like real content).
    let big = |seed: u8, n: u64| {
        let mut out = vec![0u8; n as usize];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut out);
        out
    };
    let first = big(1, total - 8 * 1024 * 1024);
    let second = big(2, 9 * 1024 * 1024);
    let anyone = Caller::anyone();
    let mut a = files.begin_stream(&anyone);
    let f = files.clone();
    let holder = tokio::spawn(async move {
        a.push(&first).await.unwrap();
        a.finish("a", PutMode::Overwrite, None).await.unwrap()
    });
    // Wait until the first upload holds its bytes.
    while f.upload_budget().used_kib().0 == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut b = f.begin_stream(&anyone);
    let err = b.push(&second).await.unwrap_err();
    assert!(matches!(err, FileError::Busy(_)), "{err}");
    assert!(
        err.to_string().contains("COFFER_UPLOAD_MEMORY_MIB"),
        "{err}"
    );
    drop(b);
    // The first is unharmed, and everything is given back.
    let v = holder.await.unwrap();
    assert_eq!(v.size, total - 8 * 1024 * 1024);
    assert_eq!(f.upload_budget().used_kib().0, 0);
    assert_eq!(f.upload_held_bytes(), 0);
    let mut c = f.begin_stream(&anyone);
    node.set_write_delay(Duration::ZERO);
    c.push(&big(3, 9 * 1024 * 1024)).await.unwrap();
    c.finish("c", PutMode::Overwrite, None).await.unwrap();
}

/// Small chunks stored through the pack filler on two nodes, then read
/// back together: neighbours in a pack share one ranged GET, every chunk
/// is checked, a rotten copy is read past, and what cannot be read
/// whole is left to the usual read.
#[tokio::test]
async fn packed_neighbours_are_read_with_one_ranged_get_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut faulty = Vec::new();
    let mut nodes: Vec<(String, Arc<dyn BlobStore>)> = Vec::new();
    for i in 0..2 {
        let local = Arc::new(LocalStore::new(
            format!("n{i}"),
            dir.path().join(format!("n{i}")),
        ));
        local.ensure_ready().await.unwrap();
        let node = Arc::new(FaultyStore::new(local));
        faulty.push(node.clone());
        nodes.push((format!("n{i}"), node));
    }
    let (cluster, _events) = Cluster::new(nodes, ClusterConfig::for_nodes(2)).unwrap();
    let cfg = FilesConfig {
        packs: Some(crate::packs::filler::FillerConfig::default()),
        ..FilesConfig::default()
    };
    let meta: Meta = Arc::new(crate::meta::sqlite::open_in_memory().unwrap());
    let files = Files::new(meta, Arc::new(cluster), cfg);
    let chunks: Vec<Bytes> = (0..300u32)
        .map(|i| Bytes::from(i.to_le_bytes().repeat(1000 + i as usize)))
        .collect();
    // Stored at once, so they share a pack.
    let refs =
        futures::future::try_join_all(chunks.iter().map(|c| files.store_chunk(c.clone(), None)))
            .await
            .unwrap();
    let ranged = || faulty.iter().map(|n| n.ranged_reads()).sum::<usize>();

    let got = files.prefetch_packed(&refs).await;
    assert_eq!(got.len(), chunks.len());
    for (r, c) in refs.iter().zip(&chunks) {
        assert_eq!(&got[&r.id], c);
    }
    let reads = ranged();
    assert!(
        reads <= 2,
        "{reads} ranged reads for 300 neighbours in one pack"
    );

    // One node's copy rots: its read fails the check, the other's serves.
    faulty[0].set_corrupt_reads(true);
    let got = files.prefetch_packed(&refs).await;
    assert_eq!(got.len(), chunks.len());
    assert!(refs.iter().zip(&chunks).all(|(r, c)| got[&r.id] == c));
    // Both rot: nothing is answered from the pack (each chunk's own read
    // then reports the loss).
    faulty[1].set_corrupt_reads(true);
    assert!(files.prefetch_packed(&refs).await.is_empty());
}
