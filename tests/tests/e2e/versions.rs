//! Versioning: numbering, restore, delete and undelete, listing, dedup.

use crate::local_chunk_objects;
use coffer_proto::pb::{
    DeleteFileRequest, FileMetadataRequest, ListFilesRequest, ListVersionsRequest,
    RestoreVersionRequest,
};
use coffer_tests::data::{download, pattern, upload_bytes};
use coffer_tests::server::Conn;
use coffer_tests::server::{Server, ServerOpts};
use tonic::{Code, Status};

type Client = coffer_proto::pb::file_storage_client::FileStorageClient<Conn>;

/// Restores `version` of `name`; the new version's number.
async fn restore(c: &mut Client, name: &str, version: u64) -> Result<String, Status> {
    let r = c
        .restore_version(RestoreVersionRequest {
            file_name: name.into(),
            version,
        })
        .await?;
    Ok(r.into_inner().version)
}

/// The names of the live files under `prefix`, in listing order.
async fn listed_names(c: &mut Client, prefix: &str) -> Vec<String> {
    let listed = c
        .list_files(ListFilesRequest {
            prefix: prefix.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    listed
        .into_inner()
        .files
        .into_iter()
        .map(|f| f.file_name)
        .collect()
}

/// The status code GetMetadata answers for `version` of `name`.
async fn metadata_error(c: &mut Client, name: &str, version: u64) -> Code {
    c.get_metadata(FileMetadataRequest {
        file_name: name.into(),
        version,
    })
    .await
    .unwrap_err()
    .code()
}

async fn versions_restore_delete_and_dedup_with(opts: ServerOpts) {
    let server = Server::start(opts).await.unwrap();
    let mut c = server.client().await;
    let contents: Vec<Vec<u8>> = (0..3)
        .map(|i| pattern(2 * 1024 * 1024 + i, 100 + i as u64))
        .collect();
    for (i, data) in contents.iter().enumerate() {
        let r = upload_bytes(&mut c, "docs/plan.txt", data).await.unwrap();
        assert_eq!(r.version, i as u64 + 1);
    }
    let versions = c
        .list_versions(ListVersionsRequest {
            file_name: "docs/plan.txt".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(
        versions
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        ["3", "2", "1"]
    );
    for (i, data) in contents.iter().enumerate() {
        assert!(
            download(&mut c, "docs/plan.txt", i as u64 + 1)
                .await
                .unwrap()
                == *data
        );
    }

    // Restore 1 -> version 4 with version 1's bytes.
    let objects_before = local_chunk_objects(server.data_dir());
    assert_eq!(restore(&mut c, "docs/plan.txt", 1).await.unwrap(), "4");
    assert!(download(&mut c, "docs/plan.txt", 0).await.unwrap() == contents[0]);
    assert_eq!(
        local_chunk_objects(server.data_dir()),
        objects_before,
        "restore stored new chunks"
    );

    // Delete hides it; metadata and download say NOT_FOUND; restore brings it back.
    upload_bytes(&mut c, "docs/other.txt", b"keep me")
        .await
        .unwrap();
    c.delete_file(DeleteFileRequest {
        file_name: "docs/plan.txt".into(),
        base_version: None,
    })
    .await
    .unwrap();
    assert_eq!(listed_names(&mut c, "docs/").await, ["docs/other.txt"]);
    assert_eq!(
        metadata_error(&mut c, "docs/plan.txt", 0).await,
        Code::NotFound
    );
    assert_eq!(
        download(&mut c, "docs/plan.txt", 0)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(restore(&mut c, "docs/plan.txt", 2).await.unwrap(), "5");
    assert!(download(&mut c, "docs/plan.txt", 0).await.unwrap() == contents[1]);
    assert_eq!(
        listed_names(&mut c, "docs/").await,
        ["docs/other.txt", "docs/plan.txt"]
    );

    // Identical content again, under another name: no new chunk objects.
    let before = local_chunk_objects(server.data_dir());
    upload_bytes(&mut c, "copy-of-plan.txt", &contents[2])
        .await
        .unwrap();
    assert_eq!(
        local_chunk_objects(server.data_dir()),
        before,
        "dedup failed"
    );
    // And new content does add objects (the check above can fail).
    upload_bytes(&mut c, "fresh.txt", &pattern(300_000, 9))
        .await
        .unwrap();
    assert_ne!(local_chunk_objects(server.data_dir()), before);

    // Missing versions.
    assert_eq!(
        metadata_error(&mut c, "docs/plan.txt", 99).await,
        Code::NotFound
    );
    assert_eq!(
        restore(&mut c, "nope.txt", 1).await.unwrap_err().code(),
        Code::NotFound
    );
}

async fn listing_pages_through_every_file_once_with(opts: ServerOpts) {
    let server = Server::start(opts).await.unwrap();
    let mut c = server.client().await;
    for i in 0..25 {
        upload_bytes(
            &mut c,
            &format!("many/f{i:02}.txt"),
            format!("file {i}").as_bytes(),
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_files(ListFilesRequest {
                prefix: "many".into(),
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.files.len() <= 10);
        seen.extend(page.files.into_iter().map(|f| {
            let h = f.replica_health.unwrap();
            assert_eq!((h.chunks, h.unavailable), (1, 0));
            f.file_name
        }));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let want: Vec<String> = (0..25).map(|i| format!("many/f{i:02}.txt")).collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn versions_restore_delete_and_dedup() {
    versions_restore_delete_and_dedup_with(ServerOpts::embedded()).await
}

/// With packs on: each version's small tail is packed.
#[tokio::test]
async fn versions_restore_delete_and_dedup_with_packs() {
    versions_restore_delete_and_dedup_with(ServerOpts::embedded().with("COFFER_PACKS", "true"))
        .await
}

#[tokio::test]
async fn versions_restore_delete_and_dedup_on_postgres() {
    versions_restore_delete_and_dedup_with(ServerOpts::embedded().on_postgres().await).await
}

#[tokio::test]
async fn listing_pages_through_every_file_once() {
    listing_pages_through_every_file_once_with(ServerOpts::embedded()).await
}

#[tokio::test]
async fn listing_pages_through_every_file_once_on_postgres() {
    listing_pages_through_every_file_once_with(ServerOpts::embedded().on_postgres().await).await
}

/// A version whose chunk list does not add up to its size (what a version
/// removed by retention between two reads looks like on PostgreSQL) is
/// neither served nor restored as an empty file. Found by the fault soak
/// (seed 124): a restore racing retention committed a 36,958-byte version
/// with no chunks, and it read back as 0 bytes with an OK status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_without_its_chunks_is_neither_read_nor_restored_as_empty() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    upload_bytes(&mut c, "gone.bin", &pattern(40_000, 3))
        .await
        .unwrap();
    upload_bytes(&mut c, "gone.bin", &pattern(50_000, 4))
        .await
        .unwrap();
    let db = rusqlite::Connection::open(server.data_dir().join("coffer.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let cut = db
        .execute(
            "DELETE FROM version_chunks WHERE number = 1
               AND file_id = (SELECT id FROM files WHERE path = 'gone.bin')",
            [],
        )
        .unwrap();
    assert!(cut > 0);
    let read = download(&mut c, "gone.bin", 1).await;
    assert!(
        read.is_err(),
        "served {} bytes of a 40,000-byte version",
        read.unwrap().len()
    );
    let restored = restore(&mut c, "gone.bin", 1).await;
    assert!(restored.is_err(), "restored as version {restored:?}");
    let versions = c
        .list_versions(ListVersionsRequest {
            file_name: "gone.bin".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(versions.len(), 2, "the failed restore made no version");
    // The latest version is untouched.
    assert_eq!(
        download(&mut c, "gone.bin", 0).await.unwrap(),
        pattern(50_000, 4)
    );
}
