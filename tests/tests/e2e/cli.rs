//! The `coffer` command-line client against the real server: round trips,
//! the metadata commands, delta uploads, resuming an interrupted upload,
//! and failures that leave nothing half-written.

use crate::local_chunk_objects;
use coffer_tests::cli::Cli;
use coffer_tests::data::pattern;
use coffer_tests::server::{Server, ServerOpts};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MIB: usize = 1024 * 1024;

async fn setup() -> (Server, Cli, tempfile::TempDir) {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let cli = Cli::for_server(&server);
    let work = tempfile::Builder::new()
        .prefix("coffer-cli-")
        .tempdir()
        .unwrap();
    (server, cli, work)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir`, relative path -> content.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    coffer_tests::data::read_tree(dir)
}

/// Distinct chunk ids on the embedded nodes, with their sizes.
fn stored_chunks(server: &Server) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (i, keys) in local_chunk_objects(server.data_dir()).iter().enumerate() {
        let root = server.data_dir().join(format!("nodes/node{}", i + 1));
        for k in keys {
            let id = k.rsplit('/').next().unwrap().to_string();
            if let Ok(m) = std::fs::metadata(root.join(k)) {
                out.insert(id, m.len());
            }
        }
    }
    out
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[tokio::test]
async fn cli_put_and_get_round_trip_files_and_a_directory_tree() {
    let (server, cli, work) = setup().await;
    let dir = work.path();
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();

    for (name, len) in [("empty", 0), ("one", 1), ("multi", 9 * MIB + 3)] {
        let data = pattern(len, len as u64 + 1);
        let local = dir.join(name);
        std::fs::write(&local, &data).unwrap();
        let remote = format!("rt/{name}.bin");
        let put = cli.json(&["put", s(&local), &remote]).await;
        assert_eq!(u(&put, "version"), 1, "{put}");
        assert_eq!(u(&put, "bytes_total"), len as u64);
        assert_eq!(u(&put, "bytes_sent"), len as u64);
        assert_eq!(u(&put, "chunks_sent"), u(&put, "chunks_total"));
        if len > 8 * MIB {
            assert!(u(&put, "chunks_total") > 2, "{put}");
        }
        let got = out.join(format!("{name}.bin"));
        let get = cli.json(&["get", &remote, s(&got)]).await;
        assert_eq!(u(&get, "size"), len as u64);
        assert_eq!(std::fs::read(&got).unwrap(), data, "{name} differs");
    }

    // A tree of 200 small files in nested folders.
    let src = dir.join("tree");
    for i in 0..200 {
        let p = src.join(format!("d{}/sub{}/f{i}.txt", i % 7, i % 3));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, pattern(i * 37 % 5000, i as u64)).unwrap();
    }
    let put = cli.json(&["put", s(&src), "backup/tree"]).await;
    assert_eq!(put["files"].as_array().unwrap().len(), 200);
    let listed = cli.json(&["ls", "backup/tree/"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 200);
    let back = dir.join("tree-back");
    let get = cli.json(&["get", "backup/tree", s(&back)]).await;
    assert_eq!(get["files"].as_array().unwrap().len(), 200);
    assert_eq!(tree(&back), tree(&src));
    // No temporary files are left next to the downloads.
    assert!(tree(&out)
        .keys()
        .all(|k| !k.to_string_lossy().contains(".part")));

    // Putting the unchanged tree again sends nothing and makes no version;
    // after one edit, only that file gets one.
    let before = server.latest_change().await;
    let again = cli.json(&["put", s(&src), "backup/tree"]).await;
    assert_eq!(u(&again, "unchanged"), 200, "{again}");
    assert_eq!(u(&again, "bytes_sent"), 0);
    assert_eq!(
        server.latest_change().await,
        before,
        "no change was recorded"
    );
    std::fs::write(src.join("d1/sub1/f1.txt"), b"edited").unwrap();
    let edited = cli.json(&["put", s(&src), "backup/tree"]).await;
    assert_eq!(u(&edited, "unchanged"), 199, "{edited}");
    let sent: Vec<&Value> = edited["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["unchanged"] != true)
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["name"], "backup/tree/d1/sub1/f1.txt");
    assert_eq!(sent[0]["version"], 2);
    // One file alike.
    let local = dir.join("one");
    let same = cli.json(&["put", s(&local), "rt/one.bin"]).await;
    assert_eq!(same["unchanged"], true, "{same}");
    assert_eq!(u(&same, "version"), 1);
}

#[tokio::test]
async fn cli_metadata_commands_list_stat_version_restore_and_delete() {
    let (_server, cli, work) = setup().await;
    let dir = work.path();
    let (v1, v2) = (pattern(3000, 1), pattern(5000, 2));
    let local = dir.join("notes.txt");
    std::fs::write(&local, &v1).unwrap();
    cli.json(&["put", s(&local), "docs/notes.txt"]).await;
    std::fs::write(&local, &v2).unwrap();
    let put = cli.json(&["put", s(&local), "docs/notes.txt"]).await;
    assert_eq!(u(&put, "version"), 2);

    // ls: a long listing, and JSON with size, version and time.
    let ls = cli.run(&["ls", "docs/"]).await;
    assert!(ls.ok, "{}", ls.stderr);
    let line = ls
        .stdout
        .lines()
        .find(|l| l.contains("docs/notes.txt"))
        .unwrap();
    assert!(line.contains("4.9 KiB") && line.contains("v2"), "{line}");
    let ls = cli.json(&["ls"]).await;
    let files = ls.as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["name"], "docs/notes.txt");
    assert_eq!(u(&files[0], "size"), 5000);
    assert_eq!(u(&files[0], "version"), 2);
    assert!(files[0]["upload_time"].as_str().unwrap().contains('T'));

    // stat
    let st = cli.json(&["stat", "docs/notes.txt"]).await;
    assert_eq!(u(&st, "version"), 2);
    assert_eq!(
        st["content_hash"],
        coffer_proto::chunking::content_hash_of(&v2)
    );
    let st1 = cli
        .json(&["stat", "docs/notes.txt", "--version", "1"])
        .await;
    assert_eq!(u(&st1, "size"), 3000);
    let text = cli.run(&["stat", "docs/notes.txt"]).await;
    assert!(text.stdout.contains("version:      2"), "{}", text.stdout);

    // versions, newest first
    let vs = cli.json(&["versions", "docs/notes.txt"]).await;
    let nums: Vec<u64> = vs
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u(v, "version"))
        .collect();
    assert_eq!(nums, vec![2, 1]);

    // restore makes version 1 the newest, as version 3
    let r = cli.json(&["restore", "docs/notes.txt", "1"]).await;
    assert_eq!(u(&r, "version"), 3);
    let got = dir.join("got.txt");
    cli.json(&["get", "docs/notes.txt", s(&got)]).await;
    assert_eq!(std::fs::read(&got).unwrap(), v1);
    let old = dir.join("old.txt");
    cli.json(&["get", "docs/notes.txt", s(&old), "--version", "2"])
        .await;
    assert_eq!(std::fs::read(&old).unwrap(), v2);

    // rm hides the file; restore brings it back
    let rm = cli.json(&["rm", "docs/notes.txt"]).await;
    assert_eq!(u(&rm, "latest_version"), 3);
    assert!(cli.json(&["ls"]).await.as_array().unwrap().is_empty());
    let gone = cli
        .run(&["get", "docs/notes.txt", s(&dir.join("gone"))])
        .await;
    assert!(!gone.ok);
    assert!(!dir.join("gone").exists());
    let r = cli.json(&["restore", "docs/notes.txt", "2"]).await;
    assert_eq!(u(&r, "version"), 4);
    assert_eq!(cli.json(&["ls"]).await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn cli_status_shows_nodes_and_workers_and_runs_a_worker() {
    let (_server, cli, _work) = setup().await;
    let st = cli.json(&["status"]).await;
    assert_eq!(st["healthy"], true);
    let nodes = st["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes
        .iter()
        .all(|n| n["up"] == true && n["chunks"].is_u64()));
    assert!(st["under_replicated_chunks"].is_u64());
    let workers: Vec<&str> = st["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    for w in ["repair", "scrub", "gc"] {
        assert!(workers.contains(&w), "{workers:?}");
    }
    let text = cli.run(&["status"]).await;
    assert!(text.ok && text.stdout.contains("up"), "{}", text.stdout);

    let run = cli.json(&["admin", "run", "repair", "--wait"]).await;
    assert_eq!(run["name"], "repair");
    assert!(u(&run, "passes") >= 1, "{run}");

    // An on-demand metadata snapshot, then status names it.
    let snap = cli.json(&["admin", "run", "snapshot", "--wait"]).await;
    assert_eq!(snap["name"], "snapshot");
    let report = snap["last_report"].as_str().unwrap();
    assert!(report.starts_with("snapshot coffer/snapshots/"), "{snap}");
    let st = cli.json(&["status"]).await;
    assert_eq!(st["snapshot"]["last_nodes"], 3, "{st}");
    let key = st["snapshot"]["last_key"].as_str().unwrap();
    assert!(report.contains(key), "{report} names {key}");
    let text = cli.run(&["status"]).await;
    assert!(text.stdout.contains("snapshots: last "), "{}", text.stdout);
}

#[tokio::test]
async fn cli_delta_upload_sends_only_the_changed_chunks() {
    let (server, cli, work) = setup().await;
    let local = work.path().join("big.bin");
    let mut data = pattern(64 * MIB, 64);
    std::fs::write(&local, &data).unwrap();
    let first = cli.json(&["put", s(&local), "big.bin"]).await;
    assert_eq!(u(&first, "bytes_sent"), 64 * MIB as u64);
    let before = stored_chunks(&server);

    let mid = data.len() / 2;
    data.splice(mid..mid, pattern(1024, 999));
    std::fs::write(&local, &data).unwrap();
    let second = cli.json(&["put", s(&local), "big.bin"]).await;
    assert_eq!(u(&second, "version"), 2);
    assert_eq!(u(&second, "bytes_total"), data.len() as u64);
    let (sent, chunks) = (u(&second, "bytes_sent"), u(&second, "chunks_sent"));
    assert!((1..=3).contains(&chunks), "{second}");
    assert!(sent <= 3 * 4 * MIB as u64, "{second}");

    println!("delta upload: sent {sent} bytes in {chunks} chunks");
    let after = stored_chunks(&server);
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(new.len() as u64, chunks, "new chunk objects on the nodes");

    let got = work.path().join("got.bin");
    cli.json(&["get", "big.bin", s(&got)]).await;
    assert!(std::fs::read(&got).unwrap() == data, "round trip differs");
}

/// Runs `coffer put local remote` at `rate` bytes/s and SIGKILLs it once a
/// quarter of the local file is stored on the nodes.
async fn interrupted_put(server: &Server, cli: &Cli, local: &Path, remote: &str, rate: usize) {
    let size = std::fs::metadata(local).unwrap().len();
    let rate = rate.to_string();
    let mut child = cli.spawn(&["put", s(local), remote, "--limit-rate", &rate]);
    let mut polls = 0;
    loop {
        let stored: u64 = stored_chunks(server).values().sum();
        if stored >= size / 4 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("put ended ({status}) before it could be interrupted");
        }
        polls += 1;
        assert!(polls < 6000, "the put stored nothing");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
}

#[tokio::test]
async fn cli_interrupted_put_resumes_and_sends_only_what_is_missing() {
    let (server, cli, work) = setup().await;
    let size = 64 * MIB;
    let local = work.path().join("resume.bin");
    let data = pattern(size, 4242);
    std::fs::write(&local, &data).unwrap();

    // A slow put (16 MiB/s), killed once a quarter of the file is stored.
    interrupted_put(&server, &cli, &local, "resume.bin", 16 * MIB).await;
    let records = std::fs::read_dir(cli.state_dir().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(records, 1, "the killed put left a resume record");
    assert!(
        cli.json(&["ls"]).await.as_array().unwrap().is_empty(),
        "nothing is committed by the killed run"
    );
    let sent_before_kill: u64 = stored_chunks(&server).values().sum();
    assert!(sent_before_kill < size as u64, "interrupted halfway");

    let again = cli.json(&["put", s(&local), "resume.bin"]).await;
    assert_eq!(again["resumed"], true, "{again}");
    assert_eq!(u(&again, "version"), 1);
    let sent_after = u(&again, "bytes_sent");
    assert!(sent_after < size as u64, "{again}");
    let total = sent_before_kill + sent_after;
    println!("resume: {sent_before_kill} bytes stored before the kill, {sent_after} sent after");
    assert!(
        (total as f64) < 1.2 * size as f64,
        "sent {total} bytes in all for a {size}-byte file"
    );
    let records = std::fs::read_dir(cli.state_dir().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(records, 0, "the record is gone once committed");

    let got = work.path().join("got.bin");
    cli.json(&["get", "resume.bin", s(&got)]).await;
    assert!(std::fs::read(&got).unwrap() == data, "round trip differs");
}

#[tokio::test]
async fn cli_resume_notices_a_file_changed_with_the_same_size_and_time() {
    let (server, cli, work) = setup().await;
    let local = work.path().join("edited.bin");
    std::fs::write(&local, pattern(16 * MIB, 1)).unwrap();
    let mtime = std::fs::metadata(&local).unwrap().modified().unwrap();
    interrupted_put(&server, &cli, &local, "edited.bin", 4 * MIB).await;

    // Edited in place: same size, and the old modification time put back
    // (as `touch -r` or a coarse-timed filesystem would leave it).
    let edited = pattern(16 * MIB, 2);
    std::fs::write(&local, &edited).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&local)
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    let old_session = recorded_session(&cli);
    assert_open(&server, &old_session).await;
    let put = cli.json(&["put", s(&local), "edited.bin"]).await;
    assert_eq!(put["resumed"], false, "resumed another content: {put}");
    let got = work.path().join("got.bin");
    cli.json(&["get", "edited.bin", s(&got)]).await;
    assert!(
        std::fs::read(&got).unwrap() == edited,
        "stored the old content"
    );
    assert_abandoned(&server, &old_session).await;
}

#[tokio::test]
async fn cli_an_edited_file_abandons_the_session_its_killed_put_left_open() {
    // An ordinary edit (new size and time) after a killed put: the old
    // session is found, abandoned, and does not linger beside the new
    // one (open sessions per user are capped).
    let (server, cli, work) = setup().await;
    let got = work.path().join("got.bin");
    let local = work.path().join("grown.bin");
    std::fs::write(&local, pattern(16 * MIB, 3)).unwrap();
    interrupted_put(&server, &cli, &local, "grown.bin", 4 * MIB).await;
    let old_session = recorded_session(&cli);
    assert_open(&server, &old_session).await;
    let grown = pattern(16 * MIB + 5, 4);
    std::fs::write(&local, &grown).unwrap();
    let put = cli.json(&["put", s(&local), "grown.bin"]).await;
    assert_eq!(put["resumed"], false, "{put}");
    assert_abandoned(&server, &old_session).await;
    assert_eq!(
        std::fs::read_dir(cli.state_dir().join("uploads"))
            .unwrap()
            .count(),
        0,
        "no record is left behind"
    );
    cli.json(&["get", "grown.bin", s(&got)]).await;
    assert!(
        std::fs::read(&got).unwrap() == grown,
        "stored the old content"
    );
}

/// The session id of the one resume record a killed put left.
fn recorded_session(cli: &Cli) -> String {
    let records: Vec<_> = std::fs::read_dir(cli.state_dir().join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records[0]).unwrap()).unwrap();
    r["upload_id"].as_str().unwrap().to_string()
}

/// Asks to resume session `id`, as the CLI's user.
async fn resume(server: &Server, id: &str) -> Result<(), tonic::Status> {
    let mut c = server.client().await;
    c.start_upload(coffer_proto::pb::StartUploadRequest {
        upload_id: id.to_string(),
        ..Default::default()
    })
    .await
    .map(drop)
}

/// The session `id` is open: it can be resumed.
async fn assert_open(server: &Server, id: &str) {
    if let Err(e) = resume(server, id).await {
        panic!("session {id} is not open: {e:?}");
    }
}

/// The session `id` was abandoned: it can no longer be resumed.
async fn assert_abandoned(server: &Server, id: &str) {
    let err = resume(server, id).await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::NotFound,
        "session {id} still open: {err:?}"
    );
}

/// One line on stderr, non-zero exit.
fn assert_one_line_failure(run: &coffer_tests::cli::Run, needle: &str) {
    assert!(!run.ok, "expected a failure, got: {}", run.stdout);
    let line = run.stderr.trim_end();
    assert!(!line.is_empty() && !line.contains('\n'), "stderr: {line:?}");
    assert!(line.starts_with("coffer: error:"), "stderr: {line:?}");
    assert!(line.contains(needle), "stderr {line:?} lacks {needle:?}");
}

#[tokio::test]
async fn cli_failures_print_one_line_and_leave_nothing_half_written() {
    let (_server, cli, work) = setup().await;
    let dir = work.path().join("dl");
    std::fs::create_dir(&dir).unwrap();
    let local = work.path().join("a.txt");
    std::fs::write(&local, b"hello").unwrap();

    // Server unreachable (a port nothing listens on).
    let dead = Cli::new("http://127.0.0.1:1");
    let r = dead.run(&["get", "a.txt", s(&dir.join("a.txt"))]).await;
    assert_one_line_failure(&r, "cannot reach the server");
    let r = dead.run(&["put", s(&local), "a.txt"]).await;
    assert_one_line_failure(&r, "cannot reach the server");

    // Missing remote file.
    let r = cli.run(&["get", "no/such.txt", s(&dir.join("x"))]).await;
    assert_one_line_failure(&r, "not found");
    let r = cli.run(&["stat", "no/such.txt"]).await;
    assert_one_line_failure(&r, "not found");

    // Unreadable local file: missing, and (unless root) without permission.
    let r = cli
        .run(&["put", s(&work.path().join("missing")), "m"])
        .await;
    assert_one_line_failure(&r, "cannot read");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = work.path().join("locked.txt");
        std::fs::write(&locked, b"secret").unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::read(&locked).is_err() {
            let r = cli.run(&["put", s(&locked), "locked.txt"]).await;
            assert_one_line_failure(&r, "cannot read");
        }
    }

    // Bad remote names, rejected before anything is sent.
    let r = cli.run(&["put", s(&local), "a/../b"]).await;
    assert_one_line_failure(&r, "invalid remote name");
    let r = cli.run(&["get", "a/../b", s(&dir.join("b"))]).await;
    assert_one_line_failure(&r, "invalid remote name");

    assert!(cli.json(&["ls"]).await.as_array().unwrap().is_empty());
    assert!(
        tree(&dir).is_empty(),
        "files left behind: {:?}",
        tree(&dir).keys()
    );
}

/// Every remote file's name, as `coffer ls` lists them.
async fn remote_names(cli: &Cli) -> Vec<String> {
    cli.json(&["ls"])
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `args` with `input` on standard input: (success, stdout, stderr).
async fn with_stdin(cli: &Cli, args: &[&str], input: &[u8]) -> (bool, Vec<u8>, String) {
    use tokio::io::AsyncWriteExt;
    let mut cmd = cli.command(args);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cli_folders_move_remove_make_and_pipe_as_aws_and_rclone_users_expect() {
    let (server, cli, work) = setup().await;
    let dir = work.path().join("album");
    std::fs::create_dir_all(dir.join("2026")).unwrap();
    std::fs::write(dir.join("2026/a.jpg"), b"aaa").unwrap();
    std::fs::write(dir.join("b.jpg"), b"bbb").unwrap();

    // A directory into the root, by `/` and by `.`: its contents land there.
    let put = cli.run(&["put", s(&dir), "/"]).await;
    assert!(put.ok, "{}", put.stderr);
    let names = remote_names(&cli).await;
    assert_eq!(names, vec!["2026/a.jpg", "b.jpg"]);
    let put = cli.run(&["put", s(&dir), "."]).await;
    assert!(put.ok, "{}", put.stderr);

    // mkdir (parents too), mv of a file into a folder, mv of a folder.
    let made = cli.run(&["mkdir", "trips/2025"]).await;
    assert!(made.ok, "{}", made.stderr);
    let again = cli.run(&["mkdir", "trips/2025"]).await;
    assert!(!again.ok, "a second mkdir of the same folder succeeded");
    let moved = cli.run(&["mv", "b.jpg", "trips/"]).await;
    assert!(moved.ok, "{}", moved.stderr);
    let moved = cli.run(&["mv", "2026", "trips/2026"]).await;
    assert!(moved.ok, "{}", moved.stderr);
    let names = remote_names(&cli).await;
    assert_eq!(names, vec!["trips/2026/a.jpg", "trips/b.jpg"]);

    // rm of a folder says what to do; rm -r deletes it, restorably.
    let rm = cli.run(&["rm", "trips"]).await;
    assert!(!rm.ok);
    assert!(rm.stderr.contains("rm -r"), "{}", rm.stderr);
    let rm = cli.json(&["rm", "-r", "trips"]).await;
    assert_eq!(rm["files"], 2, "{rm}");
    assert!(cli.json(&["ls"]).await.as_array().unwrap().is_empty());
    let back = cli.run(&["restore", "trips/b.jpg", "1"]).await;
    assert!(back.ok, "{}", back.stderr);

    // `-`: standard input up, standard output down.
    let data = pattern(3 * MIB + 5, 9);
    let (ok, _, err) = with_stdin(&cli, &["put", "-", "piped/data.bin"], &data).await;
    assert!(ok, "{err}");
    let out = cli
        .command(&["get", "piped/data.bin", "-"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "stdout differs from what went in");
    assert!(!Path::new("-").exists(), "a file named - was written");
    drop(server);
}
