//! The client trusts no name the server lists: `coffer get` and `coffer
//! sync` never write outside the folder they were given, whatever a
//! hostile server (or anyone who can write into the remote folder)
//! lists; names another OS cannot hold are reported and skipped, never
//! written and never deleted on the server; links in the folder are
//! neither written through nor followed by `coffer put`; a user's own
//! file named like a temporary download is never deleted.

use coffer_tests::cli::Cli;
use coffer_tests::data::upload_bytes;
use coffer_tests::hostile::{self, files_under, CONTENT};
use coffer_tests::server::{Server, ServerOpts};
use std::path::{Path, PathBuf};

/// A work area with the folder a client is given three levels down, so a
/// name that climbs out lands inside the work area, where the test sees
/// it (and not in the machine's temporary directory).
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b/target")).unwrap();
        // An empty folder beside the target: a download that "makes room"
        // outside the target would remove it.
        std::fs::create_dir_all(dir.path().join("a/b/empty")).unwrap();
        Work { dir }
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("a/b/target")
    }

    /// Every file in the work area outside the target.
    fn outside(&self) -> Vec<PathBuf> {
        let target = self.target();
        files_under(self.dir.path())
            .into_iter()
            .filter(|p| !p.starts_with(&target))
            .collect()
    }
}

/// Names a hostile server lists under `evil/`: climbing out with `/` and
/// `\`, a drive prefix, absolute, and names Windows cannot hold.
const HOSTILE: &[&str] = &[
    "evil/fine.txt",
    "evil/sub/also fine.txt",
    "evil/../../escaped.txt",
    "evil/a/../../../../x",
    "evil/../empty/x",
    "evil/../empty",
    "/etc/coffer-escaped",
    "evil/..\\..\\AppData\\Roaming\\Startup\\x.bat",
    "evil/C:\\Windows\\x.dll",
    "evil/C:x",
    "evil/CON",
    "evil/nul.txt",
    "evil/trailing.",
    "evil/trailing ",
    "evil/what?.txt",
];

#[tokio::test]
async fn coffer_get_writes_nothing_outside_its_target_for_a_hostile_server() {
    let addr = hostile::start(HOSTILE).await;
    let cli = Cli::with_token(&addr, "any");
    let work = Work::new();
    let target = work.target();
    let out = cli.run(&["get", "evil", target.to_str().unwrap()]).await;
    assert!(!out.ok, "skipped names make the get fail: {out:?}");
    assert!(out.stderr.contains("were not fetched"), "{}", out.stderr);
    for bad in ["CON", "trailing.", "what?.txt", "AppData"] {
        assert!(
            out.stderr.contains(bad),
            "{bad} not reported: {}",
            out.stderr
        );
    }
    assert_eq!(work.outside(), Vec::<PathBuf>::new(), "written outside");
    assert!(work.dir.path().join("a/b/empty").is_dir());
    // Only the plain names, inside the target.
    assert_eq!(
        files_under(&target),
        vec![target.join("fine.txt"), target.join("sub/also fine.txt")]
    );
    assert_eq!(std::fs::read(target.join("fine.txt")).unwrap(), CONTENT);
}

#[tokio::test]
async fn coffer_sync_writes_nothing_outside_its_folder_for_a_hostile_server() {
    let names: Vec<String> = HOSTILE
        .iter()
        .map(|n| n.replacen("evil/", "synced/", 1))
        .chain(["synced/docs/link/x".to_string()])
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let addr = hostile::start(&names).await;
    let cli = Cli::with_token(&addr, "any");
    let work = Work::new();
    let target = work.target();
    // A link in the folder that leads outside it: never written through.
    let elsewhere = work.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(target.join("docs")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, target.join("docs/link")).unwrap();

    let out = cli
        .run(&["sync", target.to_str().unwrap(), "synced", "--once"])
        .await;
    for bad in ["CON", "trailing.", "what?.txt", "AppData", "escaped.txt"] {
        assert!(out.stderr.contains(bad), "{bad} not reported: {out:?}");
    }
    assert_eq!(work.outside(), Vec::<PathBuf>::new(), "written outside");
    assert!(
        work.dir.path().join("a/b/empty").is_dir(),
        "a folder outside was removed"
    );
    assert_eq!(
        files_under(&target),
        vec![
            target.join("docs/link"),
            target.join("fine.txt"),
            target.join("sub/also fine.txt"),
        ]
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// Names the real server stores (they are valid Coffer names) but no
/// Windows disk can hold.
const UNPORTABLE: &[&str] = &[
    "synced/a\\..\\..\\x.txt",
    "synced/CON.txt",
    "synced/trail.",
    "synced/c:stream",
    "synced/dir./inside.txt",
];

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

#[tokio::test]
async fn names_another_os_cannot_hold_are_skipped_never_written_nor_deleted() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let mut c = server.client().await;
    for name in UNPORTABLE {
        upload_bytes(&mut c, name, b"from elsewhere").await.unwrap();
    }
    upload_bytes(&mut c, "synced/fine.txt", b"fine")
        .await
        .unwrap();
    let before = server.names_under("synced/").await;

    let work = Work::new();
    let target = work.target();
    // A user's own file that looks like a temporary download: it is
    // theirs; names of that shape are not synced, and it stays.
    write(&target, ".coffer-Ab12Cd.part", b"mine");
    let cli = Cli::for_server(&server);
    let out = cli
        .run(&["sync", target.to_str().unwrap(), "synced", "--once"])
        .await;
    assert!(out.ok, "{out:?}");
    for bad in ["CON.txt", "trail.", "c:stream", "dir./inside.txt"] {
        assert!(out.stderr.contains(bad), "{bad} not reported: {out:?}");
    }
    assert_eq!(work.outside(), Vec::<PathBuf>::new(), "written outside");
    assert_eq!(
        files_under(&target),
        vec![target.join(".coffer-Ab12Cd.part"), target.join("fine.txt")]
    );
    assert_eq!(
        std::fs::read(target.join(".coffer-Ab12Cd.part")).unwrap(),
        b"mine"
    );

    // Missing here is not deleted there: a second pass, and one after a
    // local edit, leave every skipped name on the server.
    write(&target, "fine.txt", b"edited");
    let out = cli
        .run(&["sync", target.to_str().unwrap(), "synced", "--once"])
        .await;
    assert!(out.ok, "{out:?}");
    assert_eq!(server.names_under("synced/").await, before);
    assert_eq!(
        std::fs::read(target.join(".coffer-Ab12Cd.part")).unwrap(),
        b"mine"
    );
}

#[tokio::test]
async fn coffer_put_of_a_folder_does_not_follow_links() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("secret");
    write(&secret, "key.pem", b"private");
    let tree = work.path().join("tree");
    write(&tree, "real.txt", b"real");
    std::os::unix::fs::symlink(secret.join("key.pem"), tree.join("key-link.pem")).unwrap();
    std::os::unix::fs::symlink(&secret, tree.join("dir-link")).unwrap();
    std::os::unix::fs::symlink("/nowhere", tree.join("dangling")).unwrap();

    let cli = Cli::for_server(&server);
    let out = cli.run(&["put", tree.to_str().unwrap(), "synced"]).await;
    assert!(out.ok, "{out:?}");
    for link in ["key-link.pem", "dir-link", "dangling"] {
        assert!(
            out.stderr.contains(link) && out.stderr.contains("symbolic link"),
            "{link} not reported: {}",
            out.stderr
        );
    }
    assert_eq!(server.names_under("synced/").await, vec!["synced/real.txt"]);
}
