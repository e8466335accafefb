//! Deterministic test content and helpers that move it through the API.

use crate::server::Conn;
use bytes::Bytes;
use coffer_proto::chunking::{content_hash_of, StreamContentHasher};
use coffer_proto::pb::{
    file_storage_client::FileStorageClient, FileDownloadRequest, FileRequest, ListVersionsRequest,
    MetadataResponse, UploadResponse,
};

/// Bytes per message when streaming uploads.
pub const MESSAGE: usize = 1024 * 1024;

/// `len` pseudo-random bytes from `seed` (xorshift; incompressible and
/// without repeats that would dedup).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    out
}

/// A large pattern as a sequence of `MESSAGE`-sized blocks, generated
/// lazily so the test never holds the whole file.
pub fn pattern_blocks(len: u64, seed: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
    let blocks = len.div_ceil(MESSAGE as u64);
    (0..blocks).map(move |i| {
        let this = (len - i * MESSAGE as u64).min(MESSAGE as u64) as usize;
        Bytes::from(pattern(this, seed.wrapping_add(i.wrapping_mul(7919))))
    })
}

/// Length and content hash (hex, as the server reports it) of what
/// `blocks` yields.
pub fn hash_blocks(blocks: impl Iterator<Item = Bytes>) -> (u64, String) {
    let mut h = StreamContentHasher::new();
    let mut n = 0;
    for b in blocks {
        n += b.len() as u64;
        h.update(&b);
    }
    (n, h.finish())
}

/// Uploads `blocks` to `name` through `UploadFile`, the name in the first
/// message only (an empty file is one empty message carrying the name).
pub async fn upload(
    client: &mut FileStorageClient<Conn>,
    name: &str,
    blocks: impl Iterator<Item = Bytes> + Send + 'static,
) -> Result<UploadResponse, tonic::Status> {
    let mut blocks = blocks.peekable();
    let first = FileRequest {
        file_data: blocks.next().unwrap_or_default(),
        file_name: name.to_string(),
    };
    let rest = blocks.map(|b| FileRequest {
        file_data: b,
        file_name: String::new(),
    });
    let msgs = std::iter::once(first).chain(rest);
    client
        .upload_file(tokio_stream::iter(msgs))
        .await
        .map(|r| r.into_inner())
}

/// Uploads `data` in one go.
pub async fn upload_bytes(
    client: &mut FileStorageClient<Conn>,
    name: &str,
    data: &[u8],
) -> Result<UploadResponse, tonic::Status> {
    let blocks: Vec<Bytes> = data.chunks(MESSAGE).map(Bytes::copy_from_slice).collect();
    upload(client, name, blocks.into_iter()).await
}

/// Streams version `version` (0 = latest) of `name`, handing each
/// message's bytes to `take`.
async fn download_each(
    client: &mut FileStorageClient<Conn>,
    name: &str,
    version: u64,
    mut take: impl FnMut(&[u8]),
) -> Result<(), tonic::Status> {
    let mut stream = client
        .download_file(FileDownloadRequest {
            file_name: name.to_string(),
            version,
        })
        .await?
        .into_inner();
    while let Some(msg) = stream.message().await? {
        take(&msg.file_data);
    }
    Ok(())
}

/// Whether `name` exists (any version): `false` on NOT_FOUND, a panic on
/// any other failure.
pub async fn is_stored(client: &mut FileStorageClient<Conn>, name: &str) -> bool {
    let req = coffer_proto::pb::FileMetadataRequest {
        file_name: name.to_string(),
        version: 0,
    };
    match client.get_metadata(req).await {
        Ok(_) => true,
        Err(s) if s.code() == tonic::Code::NotFound => false,
        Err(s) => panic!("metadata of {name}: {s:?}"),
    }
}

/// Downloads version `version` (0 = latest) whole.
/// The first page of `name`'s versions, newest first.
pub async fn versions(client: &mut FileStorageClient<Conn>, name: &str) -> Vec<MetadataResponse> {
    client
        .list_versions(ListVersionsRequest {
            file_name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("versions of {name}: {e}"))
        .into_inner()
        .versions
}

pub async fn download(
    client: &mut FileStorageClient<Conn>,
    name: &str,
    version: u64,
) -> Result<Vec<u8>, tonic::Status> {
    let mut out = Vec::new();
    download_each(client, name, version, |b| out.extend_from_slice(b)).await?;
    Ok(out)
}

/// Downloads and returns only the length and content hash (hex) of the
/// content, for files too large to hold.
pub async fn download_hash(
    client: &mut FileStorageClient<Conn>,
    name: &str,
    version: u64,
) -> Result<(u64, String), tonic::Status> {
    let mut h = StreamContentHasher::new();
    let mut n = 0;
    download_each(client, name, version, |b| {
        n += b.len() as u64;
        h.update(b);
    })
    .await?;
    Ok((n, h.finish()))
}

/// A session plan for uploading `data` as `name` (the shared chunking
/// scheme), and its chunks' ids and bytes in file order.
pub fn session_plan(
    name: &str,
    data: &[u8],
) -> (coffer_proto::pb::StartUploadRequest, Vec<(String, Bytes)>) {
    use coffer_proto::chunking::{chunk_id, chunk_spans};
    let mut refs = Vec::new();
    let mut chunks = Vec::new();
    for (off, len) in chunk_spans(data) {
        let bytes = Bytes::copy_from_slice(&data[off..off + len]);
        let id = chunk_id(&bytes);
        refs.push(coffer_proto::pb::ChunkRef {
            id: id.clone(),
            size: len as u32,
        });
        chunks.push((id, bytes));
    }
    let request = coffer_proto::pb::StartUploadRequest {
        file_name: name.into(),
        size: data.len() as u64,
        chunks: refs,
        content_hash: content_hash_of(data),
        upload_id: String::new(),
        modified_time: String::new(),
    };
    (request, chunks)
}

/// Copies the one file in `folder` (`file000000.txt`) to `count` files in
/// one SQLite transaction of the embedded server's database `db` (the
/// server stopped): a folder of 100,000 files takes seconds to build
/// instead of 100,000 uploads. Only listings read the copies.
pub fn fill_folder(db: &std::path::Path, folder: &str, count: u32) -> anyhow::Result<()> {
    let mut db = rusqlite::Connection::open(db)?;
    let tx = db.transaction()?;
    let first = format!("{folder}/file000000.txt");
    let id: i64 = tx.query_row("SELECT id FROM files WHERE path = ?1", [&first], |r| {
        r.get(0)
    })?;
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?3)
         INSERT INTO files (owner_id, path)
         SELECT f.owner_id, printf('%s/file%06d.txt', ?2, n.i) FROM n, files f WHERE f.id = ?1",
        rusqlite::params![id, folder, count - 1],
    )?;
    let like = format!("{folder}/file%");
    tx.execute(
        "INSERT INTO versions (file_id, number, size, hash, created_at, uploader, modified_at)
         SELECT nf.id, v.number, v.size, v.hash, v.created_at, v.uploader, v.modified_at
         FROM files nf, versions v WHERE v.file_id = ?1 AND nf.path LIKE ?2 AND nf.id <> ?1",
        rusqlite::params![id, like],
    )?;
    tx.execute(
        "INSERT INTO version_chunks (file_id, number, idx, chunk_id)
         SELECT nf.id, vc.number, vc.idx, vc.chunk_id
         FROM files nf, version_chunks vc WHERE vc.file_id = ?1 AND nf.path LIKE ?2 AND nf.id <> ?1",
        rusqlite::params![id, like],
    )?;
    tx.commit()?;
    Ok(())
}

/// Every file under `dir`, relative path -> content (empty if `dir` is
/// not there).
pub fn read_tree(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    fn go(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
    ) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                go(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    go(dir, dir, &mut out);
    out
}

/// Writes `n` different files of 4 KiB under `dir`, spread over
/// `folders` folders (`d{i % folders}/f{i}.txt`), as a tree of small
/// files to upload.
pub fn small_tree(dir: &std::path::Path, n: usize, folders: usize) {
    for i in 0..n {
        let p = dir.join(format!("d{}/f{i:05}.txt", i % folders));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, pattern(4096, i as u64)).unwrap();
    }
}

/// Uploads every `(name, data)` of `files`, `at_once` at a time, as a
/// client sending a tree does; panics on the first failure.
pub async fn upload_at_once<'a>(
    client: &FileStorageClient<Conn>,
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    at_once: usize,
) {
    use futures::StreamExt;
    futures::stream::iter(files)
        .for_each_concurrent(at_once, |(name, data)| {
            let mut c = client.clone();
            async move {
                upload_bytes(&mut c, name, data)
                    .await
                    .unwrap_or_else(|e| panic!("upload {name}: {e}"));
            }
        })
        .await;
}
