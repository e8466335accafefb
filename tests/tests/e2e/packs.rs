//! Packs on three real Garage nodes: small files land in a few shared
//! objects (counted on the nodes, not by Coffer) and read back
//! byte-identical, a large file's big chunks stay objects of their own,
//! packs emptied by deletions are repacked to near their live bytes, and
//! packs nothing names are collected.

use coffer_proto::chunking::{chunk_id, chunk_spans, MIN_CHUNK};
use coffer_proto::pb::{DeleteFileRequest, DeleteFolderRequest, ListFilesRequest};
use coffer_tests::cli::Cli;
use coffer_tests::data::{download, pattern, read_tree, small_tree, upload_at_once, upload_bytes};
use coffer_tests::garage::{start_cluster, GarageNode};
use coffer_tests::server::{Server, ServerOpts};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Packs on, and gc collecting at once (no grace, no retention).
fn packed_and_collected(nodes: &[GarageNode]) -> ServerOpts {
    ServerOpts::on_garage(nodes)
        .with("COFFER_PACKS", "true")
        .with("COFFER_GC_GRACE_SECS", "0")
        .with("COFFER_DELETED_RETENTION_SECS", "0")
}

/// The first `coffer sync` of 10,000 small files: their uploads share
/// batch calls and fill a few packs, at most 60 objects per node. Then
/// nine in ten are deleted: gc repacks the rest, and each node stores at
/// most 1.3 times the live bytes, every live file read back whole.
#[tokio::test]
async fn ten_thousand_small_files_sync_into_a_few_objects_and_repack_when_most_go() {
    const FILES: usize = 10_000;
    let nodes = start_cluster(3).await.unwrap();
    let server = Server::start(packed_and_collected(&nodes)).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("tree");
    small_tree(&src, FILES, 100);
    let cli = Cli::for_server(&server);
    let t = std::time::Instant::now();
    let sync = cli
        .run(&["sync", src.to_str().unwrap(), "tree", "--once"])
        .await;
    assert!(sync.ok, "{}", sync.stderr);
    println!("synced {FILES} files in {:?}", t.elapsed());
    let mut c = server.client().await;
    let (mut listed, mut token) = (0, String::new());
    loop {
        let page = c
            .list_files(ListFilesRequest {
                prefix: "tree/".into(),
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        listed += page.files.iter().filter(|f| f.size == 4096).count();
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(listed, FILES, "every file is on the server");
    let mut counts = Vec::new();
    for n in &nodes {
        counts.push(n.list_keys("chunks/").await.unwrap().len());
    }
    println!("objects per node for {FILES} files of 4 KiB: {counts:?}");
    assert!(
        counts.iter().all(|&c| c > 0 && c <= 60),
        "{FILES} small files should be at most 60 objects per node, not {counts:?}"
    );
    // A sample reads back as written.
    for i in (0..FILES).step_by(997) {
        let name = format!("tree/d{}/f{i:05}.txt", i % 100);
        assert!(download(&mut c, &name, 0).await.unwrap() == pattern(4096, i as u64));
    }

    // Ninety of the hundred folders deleted (their files were synced in
    // no particular order, so every pack loses most of its chunks), and
    // the finished sessions, which keep their chunks a day, ended now.
    for d in 10..100 {
        c.delete_folder(DeleteFolderRequest {
            path: format!("tree/d{d}"),
        })
        .await
        .unwrap();
    }
    server.end_upload_sessions();
    let first = server.run_worker("gc").await;
    let second = server.run_worker("gc").await;
    println!("gc: {first}; then {second}");
    let live = (FILES / 10) as u64 * 4096;
    for n in &nodes {
        let stored: u64 = n
            .list_sized("chunks/")
            .await
            .unwrap()
            .iter()
            .map(|(_, s)| s)
            .sum();
        println!("{stored} bytes stored for {live} live");
        assert!(
            stored as f64 <= 1.3 * live as f64,
            "{stored} bytes stored for {live} live"
        );
    }
    let back = work.path().join("kept");
    let get = cli.json(&["get", "tree", back.to_str().unwrap()]).await;
    assert_eq!(get["files"].as_array().unwrap().len(), FILES / 10);
    let kept: BTreeMap<PathBuf, Vec<u8>> = read_tree(&src)
        .into_iter()
        .filter(|(p, _)| {
            let d = p.components().next().unwrap().as_os_str().to_str().unwrap();
            d[1..].parse::<usize>().unwrap() < 10
        })
        .collect();
    assert!(read_tree(&back) == kept, "a repacked file differs");
}

#[tokio::test]
async fn small_files_fill_a_few_shared_objects_and_read_back_whole() {
    const FILES: usize = 1_000;
    let nodes = start_cluster(3).await.unwrap();
    let server = Server::start(packed_and_collected(&nodes)).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("small");
    small_tree(&src, FILES, 10);
    let cli = Cli::for_server(&server);
    let t = std::time::Instant::now();
    let put = cli.json(&["put", src.to_str().unwrap(), "small"]).await;
    assert_eq!(put["files"].as_array().unwrap().len(), FILES);
    println!("put {FILES} files in {:?}", t.elapsed());

    // Counted on the nodes: with three nodes, each holds every object.
    let mut counts = Vec::new();
    for n in &nodes {
        counts.push(n.list_keys("chunks/").await.unwrap().len());
    }
    println!("objects per node for {FILES} files of 4 KiB: {counts:?}");
    assert!(
        counts.iter().all(|&c| c > 0 && c <= 20),
        "{FILES} small files should be at most 20 objects per node, not {counts:?}"
    );

    // Every file reads back as it was.
    let back = work.path().join("back");
    let t = std::time::Instant::now();
    let get = cli.json(&["get", "small", back.to_str().unwrap()]).await;
    assert_eq!(get["files"].as_array().unwrap().len(), FILES);
    println!("got {FILES} files in {:?}", t.elapsed());
    assert!(read_tree(&back) == read_tree(&src), "a packed file differs");

    // As one zip: the small files' packed chunks are read a group at a
    // time, neighbours in a pack with one ranged GET.
    let token = server.token().expect("a signed-in server");
    let t = std::time::Instant::now();
    let (code, head, body) =
        crate::archive::post_zip(&server, "/zip", Some(token), &["small"]).await;
    assert_eq!(code, 200, "{head}");
    println!("zip of {FILES} files in {:?}", t.elapsed());
    let zip = work.path().join("small.zip");
    std::fs::write(&zip, &body).unwrap();
    let (_, unpacked) = crate::archive::check_zip(&zip);
    let want: BTreeMap<String, Vec<u8>> = read_tree(&src)
        .into_iter()
        .map(|(p, b)| (format!("small/{}", p.to_str().unwrap()), b))
        .collect();
    assert!(unpacked == want, "the zip of packed files differs");

    // A large file: its big chunks are objects of their own; only its
    // tail, under FastCDC's minimum, goes into a pack.
    let mut c = server.client().await;
    let big = pattern(3 * 1024 * 1024 + 5, 99);
    upload_bytes(&mut c, "big.bin", &big).await.unwrap();
    // On any node: the upload is answered once W of the copies are
    // written, and the last may land a moment later.
    let mut keys = std::collections::BTreeSet::new();
    for n in &nodes {
        keys.extend(n.list_keys("chunks/").await.unwrap());
    }
    for &(o, l) in chunk_spans(&big).iter() {
        let id = chunk_id(&big[o..o + l]);
        let own = keys.contains(&format!("chunks/{}/{id}", &id[..2]));
        assert_eq!(
            own,
            l >= MIN_CHUNK,
            "a chunk of {l} bytes: own object {own}"
        );
    }
    assert!(download(&mut c, "big.bin", 0).await.unwrap() == big);

    // Finished sessions are kept a day (a retried FinishUpload gets the
    // same answer) and keep their chunks; here they end now.
    server.end_upload_sessions();

    // Nine files in ten deleted, all but every tenth in upload order, so
    // every pack is left mostly empty: gc forgets their chunks, repacks
    // the rest, and a pass later deletes the old packs. Then each node
    // stores at most 1.3 times the live bytes.
    let names: Vec<PathBuf> = read_tree(&src).into_keys().collect();
    let kept: BTreeMap<PathBuf, Vec<u8>> = names
        .iter()
        .step_by(10)
        .map(|p| (p.clone(), std::fs::read(src.join(p)).unwrap()))
        .collect();
    for (i, p) in names.iter().enumerate().filter(|(i, _)| i % 10 != 0) {
        let name = format!("small/{}", p.to_str().unwrap());
        c.delete_file(DeleteFileRequest {
            file_name: name.clone(),
            base_version: None,
        })
        .await
        .unwrap_or_else(|e| panic!("delete {i} {name}: {e}"));
    }
    let first = server.run_worker("gc").await;
    assert!(
        first.contains(&format!("removed {} versions", FILES / 10 * 9))
            && !first.contains("repacked 0 packs"),
        "{first}"
    );
    let second = server.run_worker("gc").await;
    println!("gc: {first}; then {second}");
    let live: u64 = (FILES / 10) as u64 * 4096 + big.len() as u64;
    for n in &nodes {
        let stored: u64 = n
            .list_sized("chunks/")
            .await
            .unwrap()
            .iter()
            .map(|(_, s)| s)
            .sum();
        assert!(
            stored as f64 <= 1.3 * live as f64,
            "{stored} bytes stored for {live} live"
        );
    }
    let back = work.path().join("kept");
    let get = cli.json(&["get", "small", back.to_str().unwrap()]).await;
    assert_eq!(get["files"].as_array().unwrap().len(), FILES / 10);
    assert!(read_tree(&back) == kept, "a repacked file differs");

    // The rest deleted and purged: gc takes their chunks' rows, then the
    // packs no chunk names any more, from every node. What is left is
    // the large file: its own chunks and the pack with its tail.
    let rm = cli.run(&["rm", "-r", "small"]).await;
    assert!(rm.ok, "{}", rm.stderr);
    for _ in 0..2 {
        server.run_worker("gc").await;
    }
    let spans = chunk_spans(&big);
    let own = spans.iter().filter(|&&(_, l)| l >= MIN_CHUNK).count();
    for n in &nodes {
        let left = n.list_keys("chunks/").await.unwrap().len();
        assert_eq!(left, own + 1, "the small files' packs are gone");
    }
    assert!(download(&mut c, "big.bin", 0).await.unwrap() == big);
}

/// A server killed (SIGKILL) while small uploads fill its open packs:
/// every upload it acknowledged reads back whole after a restart, and
/// none it did not is half there.
#[tokio::test]
async fn a_sigkill_with_packs_open_loses_no_acknowledged_upload() {
    let opts = ServerOpts::embedded()
        .process()
        .with("COFFER_PACKS", "true");
    let mut server = Server::start(opts).await.unwrap();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..16u64 {
        let mut c = server.client().await;
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0u64.. {
                let name = format!("w{w}/f{i}.bin");
                let data = pattern(1000 + (i as usize * 37) % 9000, w * 100_000 + i);
                if upload_bytes(&mut c, &name, &data).await.is_err() {
                    return i;
                }
                acked.lock().unwrap().push((name, data));
            }
            unreachable!()
        }));
    }
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill().await;
    let mut tried = 0;
    for w in writers {
        tried += w.await.unwrap() + 1;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    println!("{} uploads acknowledged of {tried} tried", acked.len());

    server.restart().await.unwrap();
    let mut c = server.client().await;
    for (name, data) in &acked {
        let got = download(&mut c, name, 0)
            .await
            .unwrap_or_else(|e| panic!("{name} was acknowledged: {e}"));
        assert!(got == *data, "{name} differs");
    }
    // The uploads cut off: absent, never partial.
    for w in 0..16u64 {
        let i = acked
            .iter()
            .filter(|(n, _)| n.starts_with(&format!("w{w}/")))
            .count() as u64;
        let name = format!("w{w}/f{i}.bin");
        if let Ok(got) = download(&mut c, &name, 0).await {
            let want = pattern(1000 + (i as usize * 37) % 9000, w * 100_000 + i);
            assert!(got == want, "{name}, cut off, is partial");
        }
    }
}

/// Packs on three directory nodes: one node's copies rotted, another
/// node wiped. Reads go on from the good copies; scrub finds the rotten
/// ones and repair makes every node whole again, byte for byte.
#[tokio::test]
async fn rotten_and_lost_packs_are_read_past_found_and_repaired() {
    let root = tempfile::tempdir().unwrap();
    let (opts, dirs) = ServerOpts::on_dirs(root.path());
    let opts = opts
        .with("COFFER_PACKS", "true")
        .with("COFFER_SCRUB_RATE_MIB", "0");
    let server = Server::start(opts).await.unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| {
            (
                format!("p/f{i:03}"),
                pattern(500 + i * 29, 7_000 + i as u64),
            )
        })
        .collect();
    let c = server.client().await;
    upload_at_once(
        &c,
        files.iter().map(|(n, d)| (n.as_str(), d.as_slice())),
        32,
    )
    .await;
    let good = read_tree(&dirs[2].join("chunks"));
    assert!(!good.is_empty() && good.len() < 50, "{} packs", good.len());

    // Node 1: every pack rots (one byte flipped); node 2: wiped.
    for (rel, bytes) in &good {
        let mut bad = bytes.clone();
        bad[bytes.len() / 3] ^= 0x10;
        std::fs::write(dirs[0].join("chunks").join(rel), bad).unwrap();
    }
    std::fs::remove_dir_all(dirs[1].join("chunks")).unwrap();
    let mut c = server.client().await;
    for (name, data) in &files {
        let got = download(&mut c, name, 0).await.unwrap();
        assert!(got == *data, "{name} differs with two copies bad");
    }

    let scrub = server.run_worker("scrub").await;
    let repair = server.run_worker("repair").await;
    println!("scrub: {scrub}\nrepair: {repair}");
    for d in &dirs[..2] {
        assert!(
            read_tree(&d.join("chunks")) == good,
            "{} is not whole again",
            d.display()
        );
    }
}

/// A store written before packs were on: once they are, gc packs its
/// small chunks, a pass later deletes their old objects, and every file
/// reads back unchanged.
#[tokio::test]
async fn small_chunks_stored_before_packs_are_packed_by_gc() {
    let root = tempfile::tempdir().unwrap();
    let (opts, dirs) = ServerOpts::on_dirs(root.path());
    let opts = opts.with("COFFER_GC_GRACE_SECS", "0");
    let mut server = Server::start(opts).await.unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..150)
        .map(|i| {
            (
                format!("old/f{i:03}"),
                pattern(300 + i * 41, 9_000 + i as u64),
            )
        })
        .collect();
    let mut c = server.client().await;
    for (name, data) in &files {
        upload_bytes(&mut c, name, data).await.unwrap();
    }
    assert_eq!(read_tree(&dirs[0].join("chunks")).len(), files.len());

    let packed = server.opts().clone().with("COFFER_PACKS", "true");
    server.restart_with(packed).await.unwrap();
    let first = server.run_worker("gc").await;
    assert!(first.contains("packed 150 small chunks"), "{first}");
    let second = server.run_worker("gc").await;
    println!("gc: {first}\nthen: {second}");
    for d in &dirs {
        let n = read_tree(&d.join("chunks")).len();
        assert_eq!(
            n,
            1,
            "{}: the old objects are gone, one pack left",
            d.display()
        );
    }
    let mut c = server.client().await;
    for (name, data) in &files {
        assert!(download(&mut c, name, 0).await.unwrap() == *data, "{name}");
    }
}
