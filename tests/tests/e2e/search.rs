//! Search by name (`ListFiles` with `nameContains`): case ignored beyond
//! ASCII too, names only (not folders on the way), pages, and a prefix.

use coffer_proto::pb::ListFilesRequest;
use coffer_tests::data::upload_bytes;
use coffer_tests::server::{Server, ServerOpts};

#[tokio::test]
async fn search_finds_names_in_pages_ignoring_case() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let alice = server.add_user("alice", "alice-password-1", false).await;
    let mut files = server.client_as(Some(&alice)).await;
    for name in [
        "Reports/q1.txt",
        "Reports/annual REPORT.pdf",
        "music/Grüße aus Köln.mp3",
        "a/b/c/deep report.md",
        "notes.txt",
    ] {
        upload_bytes(&mut files, name, b"x").await.unwrap();
    }
    let search = |needle: &str, prefix: &str, token: &str, size: u32| ListFilesRequest {
        prefix: prefix.into(),
        page_size: size,
        page_token: token.into(),
        delimiter: "/".into(),
        name_contains: needle.into(),
        ..Default::default()
    };
    let paths = |r: &coffer_proto::pb::ListFilesResponse| -> Vec<String> {
        r.files.iter().map(|f| f.file_name.clone()).collect()
    };
    // A folder's name alone is no match: "Reports/q1.txt" is not found.
    let r = files
        .list_files(search("report", "", "", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        paths(&r),
        vec!["Reports/annual REPORT.pdf", "a/b/c/deep report.md"]
    );
    assert!(r.next_page_token.is_empty());
    // Case beyond ASCII.
    let r = files
        .list_files(search("AUS KÖLN", "", "", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paths(&r), vec!["music/Grüße aus Köln.mp3"]);
    // Pages of one, then the end.
    let first = files
        .list_files(search("report", "", "", 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paths(&first), vec!["Reports/annual REPORT.pdf"]);
    let second = files
        .list_files(search("report", "", &first.next_page_token, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paths(&second), vec!["a/b/c/deep report.md"]);
    assert!(second.next_page_token.is_empty());
    // Under a folder only; and nothing for others.
    let r = files
        .list_files(search("report", "a/", "", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paths(&r), vec!["a/b/c/deep report.md"]);
    let bob = server.add_user("bob", "bob-password-1", false).await;
    let mut bobs = server.client_as(Some(&bob)).await;
    let r = bobs
        .list_files(search("report", "", "", 0))
        .await
        .unwrap()
        .into_inner();
    assert!(r.files.is_empty());
}
