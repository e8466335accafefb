//! Upgrades: a database in the schema before times became integer
//! milliseconds (RFC 3339 text on SQLite; TIMESTAMPTZ and BOOLEAN columns
//! on PostgreSQL) opens, migrates, and serves every file byte-identical,
//! with the same versions, times, share links and logins.
//!
//! The old database is made by the server itself, then turned back into
//! the old schema column by column (the inverse of the migration), so it
//! holds what a server of that schema wrote: live, deleted and
//! multi-version files, a share link, a login and the change feed.

use coffer_proto::pb::coffer_share_client::CofferShareClient;
use coffer_proto::pb::{
    CreateShareLinkRequest, DeleteFileRequest, ListChangesRequest, ListFilesRequest,
    ListVersionsRequest,
};
use coffer_server::meta::sql::TIME_COLUMNS;
use coffer_tests::data::{download, pattern, upload_bytes};
use coffer_tests::server::{Server, ServerOpts};

/// Everything a client can see of the store, as text, and every version's
/// bytes.
async fn everything(server: &Server) -> (String, Vec<Vec<u8>>) {
    let mut c = server.client().await;
    let mut seen = String::new();
    let mut bytes = Vec::new();
    let files = c
        .list_files(ListFilesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .files;
    seen.push_str(&format!("{files:?}\n"));
    for name in ["a.txt", "big.bin", "gone.txt"] {
        let versions = c
            .list_versions(ListVersionsRequest {
                file_name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .versions;
        seen.push_str(&format!("{versions:?}\n"));
        for v in &versions {
            bytes.push(download(&mut c, name, v.version_number).await.unwrap());
        }
    }
    let changes = c
        .list_changes(ListChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    seen.push_str(&format!("{changes:?}\n"));
    (seen, bytes)
}

/// Writes the store the old schema must carry over; returns a share
/// link's URL.
async fn fill(server: &Server) -> String {
    let mut c = server.client().await;
    upload_bytes(&mut c, "a.txt", b"first").await.unwrap();
    upload_bytes(&mut c, "a.txt", b"second, longer")
        .await
        .unwrap();
    upload_bytes(&mut c, "big.bin", &pattern(5 << 20, 7))
        .await
        .unwrap();
    upload_bytes(&mut c, "gone.txt", b"deleted but restorable")
        .await
        .unwrap();
    c.delete_file(DeleteFileRequest {
        file_name: "gone.txt".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut shares = CofferShareClient::new(server.channel().await);
    shares
        .create_share_link(CreateShareLinkRequest {
            file_name: "big.bin".into(),
            version: 0,
            expires_in_secs: 3600,
            password: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .url
}

/// Starts a server with `opts`, fills it, turns its database back into
/// the old schema with `downgrade`, starts it again and checks that
/// nothing a client sees changed.
async fn survives_the_upgrade<F, Fut>(opts: ServerOpts, downgrade: F)
where
    F: FnOnce(Server) -> Fut,
    Fut: std::future::Future<Output = Server>,
{
    let server = Server::start(opts).await.unwrap();
    let link = fill(&server).await;
    let before = everything(&server).await;
    let (status, _, shared) = server.get_bytes(&link).await;
    assert_eq!(status, 200);
    let mut server = downgrade(server).await;
    server.restart().await.unwrap();
    let after = everything(&server).await;
    assert_eq!(before.0, after.0, "what clients see changed");
    assert_eq!(before.1.len(), 4, "four versions");
    assert!(before.1 == after.1, "a version's bytes changed");
    let (status, _, again) = server.get_bytes(&link).await;
    assert_eq!(status, 200, "the share link ended");
    assert!(shared == again && shared == pattern(5 << 20, 7));
}

/// Takes back the migrations since times were text (batches, packs,
/// thumbnails; folders, WebDAV's tables, app passwords, version
/// checksums), the same on both engines: the upgrade then makes them
/// again.
const UNDO_SINCE_TEXT_TIMES: &str = "ALTER TABLE upload_sessions DROP COLUMN batch_id;
     DROP INDEX chunks_by_pack; ALTER TABLE chunks DROP COLUMN pack_offset;
     ALTER TABLE chunks DROP COLUMN pack_id;
     DROP TABLE thumbnails; DROP INDEX versions_by_hash;
     DROP TABLE folders; DROP TABLE dead_props;
     DROP TABLE dav_locks; DROP TABLE app_passwords;
     ALTER TABLE versions DROP COLUMN checksums;";

#[tokio::test]
async fn sqlite_times_in_text_migrate_and_every_file_is_served_unchanged() {
    survives_the_upgrade(ServerOpts::embedded(), |mut server| async move {
        server.kill().await;
        let db = rusqlite::Connection::open(server.data_dir().join("coffer.db")).unwrap();
        let version: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 13, "the schema this test turns back");
        db.execute_batch(UNDO_SINCE_TEXT_TIMES).unwrap();
        db.execute_batch(
            "DROP INDEX files_deleted; DROP INDEX upload_sessions_by_owner;
             DROP INDEX share_links_by_owner; DROP INDEX changes_by_time;",
        )
        .unwrap();
        for &(table, column, _) in TIME_COLUMNS {
            db.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column}_text TEXT;
                 UPDATE {table} SET {column}_text =
                     strftime('%Y-%m-%dT%H:%M:%fZ', {column} / 1000.0, 'unixepoch');
                 ALTER TABLE {table} DROP COLUMN {column};
                 ALTER TABLE {table} RENAME COLUMN {column}_text TO {column};"
            ))
            .unwrap();
        }
        db.execute_batch(
            "CREATE INDEX files_deleted ON files(deleted_at) WHERE deleted_at IS NOT NULL;
             CREATE INDEX upload_sessions_by_owner ON upload_sessions(owner_id, expires_at);
             CREATE INDEX share_links_by_owner ON share_links(owner_id, created_at);
             CREATE INDEX changes_by_time ON changes(at);
             PRAGMA user_version = 8;",
        )
        .unwrap();
        let created: String = db
            .query_row("SELECT created_at FROM versions LIMIT 1", [], |r| r.get(0))
            .unwrap();
        assert!(created.ends_with('Z') && created.len() == 24, "{created}");
        server
    })
    .await;
}

#[tokio::test]
async fn postgres_timestamps_and_booleans_migrate_and_every_file_is_served_unchanged() {
    let opts = ServerOpts::embedded().on_postgres().await;
    let url = opts
        .env
        .iter()
        .find(|(k, _)| k == "COFFER_DATABASE_URL")
        .map(|(_, v)| v.clone())
        .unwrap();
    survives_the_upgrade(opts, |mut server| async move {
        server.kill().await;
        let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let version: i32 = db
            .query_one("SELECT version FROM coffer_schema WHERE id = 1", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, 10, "the schema this test turns back");
        db.batch_execute(UNDO_SINCE_TEXT_TIMES).await.unwrap();
        for &(table, column, _) in TIME_COLUMNS {
            db.batch_execute(&format!(
                "ALTER TABLE {table} ALTER COLUMN {column} TYPE TIMESTAMPTZ
                 USING to_timestamp({column} / 1000.0)"
            ))
            .await
            .unwrap();
        }
        db.batch_execute(
            "ALTER TABLE upload_sessions ALTER COLUMN stream DROP DEFAULT;
             ALTER TABLE upload_sessions ALTER COLUMN stream TYPE BOOLEAN USING stream <> 0;
             ALTER TABLE upload_sessions ALTER COLUMN stream SET DEFAULT FALSE;
             ALTER TABLE owners ALTER COLUMN removed DROP DEFAULT;
             ALTER TABLE owners ALTER COLUMN removed TYPE BOOLEAN USING removed <> 0;
             ALTER TABLE owners ALTER COLUMN removed SET DEFAULT FALSE;
             ALTER TABLE changes ALTER COLUMN deleted TYPE BOOLEAN USING deleted <> 0;
             UPDATE coffer_schema SET version = 5 WHERE id = 1;",
        )
        .await
        .unwrap();
        server
    })
    .await;
}
