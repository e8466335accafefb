//! `coffer sync` between two folders through the real server: creates,
//! edits, deletes, moves and nested folders on either side converge; a
//! conflicting edit keeps both contents; an unchanged pass makes no
//! version; mass deletes and emptied or missing folders change nothing
//! without `--force`.

use coffer_proto::pb::{ListChangesRequest, ListVersionsRequest};
use coffer_tests::cli::{Cli, Run};
use coffer_tests::data::pattern;
use coffer_tests::server::{Server, ServerOpts};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::path::Path;

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Every file under `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

async fn sync(cli: &Cli, dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["sync", dir.to_str().unwrap(), "synced", "--once"];
    args.extend_from_slice(extra);
    cli.run(&args).await
}

fn ok(r: Run) {
    assert!(r.ok, "coffer sync failed: {}", r.stderr);
}

/// A pass on each folder in turn, each of which must change nothing on
/// the server: the folders agree with it.
async fn passes_change_nothing(server: &Server, sides: &[(&Cli, &Path)]) {
    let before = server.latest_change().await;
    for (cli, dir) in sides {
        ok(sync(cli, dir, &[]).await);
    }
    assert_eq!(
        server.latest_change().await,
        before,
        "a no-change pass changed something"
    );
}

#[tokio::test]
async fn two_folders_converge_and_keep_both_sides_of_a_conflict() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    let (ca, cb) = (Cli::for_server(&server), Cli::for_server(&server));

    write(a, "notes.txt", b"one");
    write(a, "docs/report.md", b"r1");
    write(a, "docs/deep/x.bin", &pattern(300_000, 1));
    write(a, "photos/p.jpg", &pattern(2_000_000, 2));
    ok(sync(&ca, a, &[]).await);
    ok(sync(&cb, b, &[]).await);
    assert_eq!(tree(a), tree(b), "the second folder got the first's files");

    // Changes on both sides: an edit and a new nested folder in B; a
    // delete and a move in A.
    write(b, "docs/report.md", b"r2");
    write(b, "new/nested/deep.txt", b"n");
    std::fs::remove_file(a.join("notes.txt")).unwrap();
    std::fs::rename(a.join("photos/p.jpg"), a.join("photos/renamed.jpg")).unwrap();
    ok(sync(&ca, a, &[]).await);
    ok(sync(&cb, b, &[]).await);
    ok(sync(&ca, a, &[]).await);
    let t = tree(a);
    assert_eq!(t, tree(b));
    assert_eq!(t["docs/report.md"], b"r2");
    assert_eq!(t["new/nested/deep.txt"], b"n");
    assert_eq!(t["photos/renamed.jpg"], pattern(2_000_000, 2));
    assert!(!t.contains_key("notes.txt") && !t.contains_key("photos/p.jpg"));
    assert!(!a.join("photos/p.jpg").exists());

    // The delete is restorable on the server.
    let mut c = server.client().await;
    let versions = c
        .list_versions(ListVersionsRequest {
            file_name: "synced/notes.txt".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert!(!versions.is_empty(), "the deleted file's versions remain");

    // The same file edited differently on both sides: both contents stay,
    // on both machines, one under a conflict name.
    write(a, "docs/report.md", b"from A");
    write(b, "docs/report.md", b"from B");
    ok(sync(&ca, a, &[]).await);
    ok(sync(&cb, b, &[]).await);
    ok(sync(&ca, a, &[]).await);
    let t = tree(a);
    assert_eq!(t, tree(b));
    let contents: Vec<&[u8]> = t.values().map(|v| v.as_slice()).collect();
    assert!(contents.contains(&&b"from A"[..]), "{:?}", t.keys());
    assert!(contents.contains(&&b"from B"[..]), "{:?}", t.keys());
    let conflicts: Vec<&String> = t
        .keys()
        .filter(|k| k.contains("(conflicted copy from "))
        .collect();
    assert_eq!(conflicts.len(), 1, "{:?}", t.keys());
    assert!(conflicts[0].starts_with("docs/report (conflicted copy from "));
    assert!(conflicts[0].ends_with(").md"));

    // An unchanged pass on either side makes no version.
    passes_change_nothing(&server, &[(&ca, a), (&cb, b)]).await;
    let status = cb
        .run(&["sync", b.to_str().unwrap(), "synced", "--status"])
        .await;
    assert!(
        status.ok && status.stdout.contains("nothing to do"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_mass_delete_or_an_emptied_or_missing_folder_deletes_nothing_without_force() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a");
    let cli = Cli::for_server(&server);
    for i in 0..10 {
        write(&a, &format!("f{i}.txt"), format!("file {i}").as_bytes());
    }
    ok(sync(&cli, &a, &[]).await);
    assert_eq!(server.names_under("synced/").await.len(), 10);

    // Most of the tree deleted: refused, and nothing changes.
    for i in 0..8 {
        std::fs::remove_file(a.join(format!("f{i}.txt"))).unwrap();
    }
    let refused = sync(&cli, &a, &[]).await;
    assert!(
        !refused.ok && refused.stderr.contains("--force"),
        "{refused:?}"
    );
    assert_eq!(server.names_under("synced/").await.len(), 10);
    let status = cli
        .run(&["--json", "sync", a.to_str().unwrap(), "synced", "--status"])
        .await;
    assert_eq!(status.json()["pending"].as_array().unwrap().len(), 8);

    // An emptied folder, then a missing one (an unmounted disk).
    for i in 8..10 {
        std::fs::remove_file(a.join(format!("f{i}.txt"))).unwrap();
    }
    let empty = sync(&cli, &a, &[]).await;
    assert!(!empty.ok && empty.stderr.contains("is empty"), "{empty:?}");
    std::fs::remove_dir(&a).unwrap();
    let missing = sync(&cli, &a, &[]).await;
    assert!(
        !missing.ok && missing.stderr.contains("is not there"),
        "{missing:?}"
    );
    assert_eq!(
        server.names_under("synced/").await.len(),
        10,
        "the server lost nothing"
    );

    // Put back, the folder agrees again; asked with --force, the deletes
    // go through (restorable).
    for i in 0..10 {
        write(&a, &format!("f{i}.txt"), format!("file {i}").as_bytes());
    }
    ok(sync(&cli, &a, &[]).await);
    for i in 0..8 {
        std::fs::remove_file(a.join(format!("f{i}.txt"))).unwrap();
    }
    ok(sync(&cli, &a, &["--force"]).await);
    assert_eq!(
        server.names_under("synced/").await,
        ["synced/f8.txt", "synced/f9.txt"]
    );
}

/// Every file under `root`, leaving out unfinished downloads.
fn real_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(root)
        .into_iter()
        .filter(|(k, _)| !k.rsplit('/').next().unwrap().starts_with(".coffer-"))
        .collect()
}

#[tokio::test]
async fn a_sync_killed_at_random_points_finishes_on_restart_with_nothing_lost() {
    let seed: u64 = std::env::var("COFFER_SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("seed {seed} (rerun with COFFER_SYNC_SEED={seed})");
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let (ca, cb) = (Cli::for_server(&server), Cli::for_server(&server));
    // B's files reach the server first; A then has uploads and downloads
    // to do in the same pass.
    let mut want = BTreeMap::new();
    for i in 0..30 {
        let (rel, data) = (format!("from-b/{i}.txt"), pattern(1000 + i * 10, i as u64));
        write(&b, &rel, &data);
        want.insert(rel, data);
    }
    ok(sync(&cb, &b, &[]).await);
    for i in 0..60 {
        let (rel, data) = (
            format!("from-a/{}/{i}.bin", i % 4),
            pattern(4000 + i * 7, 100 + i as u64),
        );
        write(&a, &rel, &data);
        want.insert(rel, data);
    }
    for i in 0..3 {
        let (rel, data) = (
            format!("big/{i}.bin"),
            pattern(3_000_000 + i, 500 + i as u64),
        );
        write(&a, &rel, &data);
        want.insert(rel, data);
    }

    let mut interrupted = 0;
    let rounds = 8;
    for round in 0..rounds {
        // New work for each run: files here to send, files from B to fetch.
        for i in 0..15 {
            let rel = format!("round{round}/a{i}.bin");
            let data = pattern(2000 + (next() % 20_000) as usize, next());
            write(&a, &rel, &data);
            want.insert(rel, data);
        }
        if round % 2 == 0 {
            let rel = format!("round{round}/big.bin");
            let data = pattern(2_500_000, next());
            write(&a, &rel, &data);
            want.insert(rel, data);
        }
        for i in 0..5 {
            let rel = format!("round{round}/b{i}.txt");
            let data = pattern(500 + i, next());
            write(&b, &rel, &data);
            want.insert(rel, data);
        }
        ok(sync(&cb, &b, &[]).await);
        let known: std::collections::HashSet<Vec<u8>> = want.values().cloned().collect();
        let mut child = ca.spawn(&["--quiet", "sync", a.to_str().unwrap(), "synced", "--once"]);
        let delay = 10 + next() % 300;
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.start_kill().ok(); // SIGKILL; it may have finished already
        child.wait().await.unwrap();
        // Whatever the moment, every file under a real name is whole.
        for (rel, data) in real_files(&a) {
            assert!(
                known.contains(&data),
                "seed {seed}, round {round} (killed after {delay} ms): {rel} is not a whole file"
            );
        }
    }
    println!("{interrupted} of {rounds} runs were killed mid-pass");
    ok(sync(&ca, &a, &[]).await);
    ok(sync(&cb, &b, &[]).await);
    assert_eq!(
        real_files(&a),
        want,
        "seed {seed}: A lost or changed something"
    );
    assert_eq!(
        tree(&a),
        want,
        "seed {seed}: unfinished downloads were left behind"
    );
    assert_eq!(tree(&b), want, "seed {seed}: B does not agree");
}

/// One seed of the model: two or three replicas of one remote folder take
/// random creates, edits, deletes, moves (conflicting ones included) with
/// sync passes in between, then sync until quiet. Returns what failed.
/// A model run's counts: files in the final tree, contents checked,
/// conflict copies, names moved apart for case and files moved off a
/// folder's name.
type ModelRun = (usize, usize, usize, usize, usize);

/// Whether a file can be written at `rel` under `root`: no folder there
/// and no file where it needs a folder.
fn fits(root: &Path, rel: &str) -> bool {
    let mut at = root.to_path_buf();
    for part in rel.split('/') {
        if at.is_file() {
            return false;
        }
        at.push(part);
    }
    !at.is_dir()
}

async fn model_run(server: &Server, seed: u64) -> Result<ModelRun, String> {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let remote = format!("model{seed}");
    let work = tempfile::tempdir().unwrap();
    let replicas: Vec<(std::path::PathBuf, Cli)> = (0..2 + next(2))
        .map(|i| {
            let dir = work.path().join(format!("r{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            (dir, Cli::for_server(server))
        })
        .collect();
    let pass = |r: usize| {
        let (dir, cli) = &replicas[r];
        let remote = remote.clone();
        async move {
            // --force: here deleting most files or emptying a folder is
            // what the model meant (the safety rules have their own test).
            let run = cli
                .run(&[
                    "--quiet",
                    "sync",
                    dir.to_str().unwrap(),
                    &remote,
                    "--once",
                    "--force",
                ])
                .await;
            match run.ok {
                true => Ok(()),
                false => Err(format!("sync of replica {r} failed: {}", run.stderr)),
            }
        }
    };
    // Contents a sync pass saw: each must outlive the run, as a file or a
    // retained version.
    let mut observed: Vec<Vec<u8>> = Vec::new();
    // Folders are "dN" and files "fN.txt". A file is sometimes "FN.txt"
    // and a folder "DN", which a case-insensitive disk would take for
    // "fN.txt" and "dN", and a file is sometimes "dN", a folder's name:
    // sync keeps them apart.
    let random_path = |next: &mut dyn FnMut(u64) -> u64| {
        let file = |next: &mut dyn FnMut(u64) -> u64| match next(8) {
            0 => format!("d{}", next(3)),
            n => {
                let f = if n == 1 { "F" } else { "f" };
                format!("{f}{}.txt", next(5))
            }
        };
        let dir = |next: &mut dyn FnMut(u64) -> u64, n: u64| {
            let d = if next(6) == 0 { "D" } else { "d" };
            format!("{d}{}", next(n))
        };
        match next(3) {
            0 => file(next),
            1 => format!("{}/{}", dir(next, 3), file(next)),
            _ => format!("{}/{}/{}", dir(next, 2), dir(next, 2), file(next)),
        }
    };
    for step in 0..24 {
        let r = next(replicas.len() as u64) as usize;
        let dir = &replicas[r].0;
        let files: Vec<String> = tree(dir).into_keys().collect();
        let content = format!("seed {seed} step {step} replica {r}").into_bytes();
        match next(10) {
            0..=2 => {
                let to = random_path(&mut next);
                if fits(dir, &to) {
                    write(dir, &to, &content)
                }
            }
            3..=4 if !files.is_empty() => {
                write(dir, &files[next(files.len() as u64) as usize], &content)
            }
            5 if !files.is_empty() => {
                std::fs::remove_file(dir.join(&files[next(files.len() as u64) as usize])).unwrap()
            }
            6 if !files.is_empty() => {
                let from = &files[next(files.len() as u64) as usize];
                let to = random_path(&mut next);
                if fits(dir, &to) && !dir.join(&to).exists() {
                    std::fs::create_dir_all(dir.join(&to).parent().unwrap()).unwrap();
                    std::fs::rename(dir.join(from), dir.join(&to)).unwrap();
                }
            }
            _ => {
                observed.extend(tree(dir).into_values());
                pass(r).await?;
            }
        }
    }
    // Quiet: every replica syncs in turn, three times round.
    for _ in 0..3 {
        for (r, (dir, _)) in replicas.iter().enumerate() {
            observed.extend(tree(dir).into_values());
            pass(r).await?;
        }
    }
    let first = tree(&replicas[0].0);
    for (i, (dir, _)) in replicas.iter().enumerate().skip(1) {
        if tree(dir) != first {
            return Err(format!(
                "replica {i} differs from replica 0: {:?} against {:?}",
                tree(dir).keys().collect::<Vec<_>>(),
                first.keys().collect::<Vec<_>>()
            ));
        }
    }
    // No two names a case-insensitive disk would confuse, files or
    // folders.
    let mut folds = std::collections::HashMap::new();
    for k in first.keys() {
        let mut at = 0;
        for part in k.split('/') {
            let spelled = &k[..at + part.len()];
            at += part.len() + 1;
            if let Some(other) = folds.insert(folded(spelled), spelled) {
                if other != spelled {
                    return Err(format!("{spelled} and {other} collide under case folding"));
                }
            }
        }
    }
    // Every content a pass saw is a file now or a version the server kept
    // (the feed lists every version committed).
    let mut c = server.client().await;
    let mut committed = std::collections::HashSet::new();
    let mut cursor = String::new();
    loop {
        let page = c
            .list_changes(ListChangesRequest {
                cursor: cursor.clone(),
                page_size: 1000,
                latest: false,
            })
            .await
            .unwrap()
            .into_inner();
        committed.extend(
            page.changes
                .iter()
                .filter(|ch| !ch.deleted && ch.file_name.starts_with(&format!("{remote}/")))
                .map(|ch| ch.content_hash.clone()),
        );
        cursor = page.cursor;
        if !page.more {
            break;
        }
    }
    let seen = observed.len();
    for data in observed {
        let hash = coffer_proto::chunking::content_hash_of(&data);
        if !committed.contains(&hash) && !first.values().any(|v| *v == data) {
            return Err(format!(
                "content {:?} was lost",
                String::from_utf8_lossy(&data)
            ));
        }
    }
    let conflicts = first
        .keys()
        .filter(|k| k.contains("(conflicted copy from "))
        .count();
    let apart = first
        .keys()
        .filter(|k| k.contains("(case conflict"))
        .count();
    let off_folders = first
        .keys()
        .filter(|k| k.contains("(folder conflict"))
        .count();
    Ok((first.len(), seen, conflicts, apart, off_folders))
}

#[tokio::test]
async fn randomized_replicas_converge_and_lose_no_content() {
    // COFFER_SYNC_SEEDS=N runs more; COFFER_SYNC_SEED=S runs only seed S.
    let seeds: Vec<u64> = match std::env::var("COFFER_SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => {
            let n = std::env::var("COFFER_SYNC_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(200u64);
            (1..=n).collect()
        }
    };
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let runs: Vec<Result<ModelRun, String>> = futures::stream::iter(seeds.iter().copied())
        .map(|seed| {
            let server = &server;
            async move {
                model_run(server, seed)
                    .await
                    .map_err(|e| format!("seed {seed} (rerun with COFFER_SYNC_SEED={seed}): {e}"))
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let (files, contents, conflicts, apart, off_folders) = runs
        .iter()
        .flatten()
        .fold((0, 0, 0, 0, 0), |(f, c, k, a, o), (rf, rc, rk, ra, ro)| {
            (f + rf, c + rc, k + rk, a + ra, o + ro)
        });
    let failures: Vec<String> = runs.into_iter().filter_map(|r| r.err()).collect();
    println!(
        "{} seeds, {} failed; {files} files in the final trees ({conflicts} conflict copies, \
         {apart} names moved apart for case, {off_folders} files moved off a folder's name), \
         {contents} contents checked",
        seeds.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(files > 0, "the model made no files");
    if seeds.len() >= 100 {
        assert!(conflicts > 0, "no seed made a conflicting edit");
        assert!(apart > 0, "no seed made names that differ only in case");
        assert!(off_folders > 0, "no seed made a file named like a folder");
    }
}

/// Every file under `synced/` on the server, with its content.
async fn remote_tree(server: &Server, cli: &Cli) -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = BTreeMap::new();
    for name in server.names_under("synced/").await {
        let dest = dir.path().join("f");
        let got = cli.run(&["get", &name, dest.to_str().unwrap()]).await;
        assert!(got.ok, "coffer get {name}: {}", got.stderr);
        out.insert(
            name.strip_prefix("synced/").unwrap().to_string(),
            std::fs::read(&dest).unwrap(),
        );
        std::fs::remove_file(&dest).unwrap();
    }
    out
}

/// The name as a case- and normalisation-insensitive disk sees it.
fn folded(name: &str) -> String {
    coffer_proto::paths::normalize(name).unwrap().to_lowercase()
}

#[tokio::test]
async fn ignored_paths_stay_put_and_names_a_disk_would_confuse_are_kept_apart() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    let (ca, cb) = (Cli::for_server(&server), Cli::for_server(&server));

    // On the server first: two names that differ only in case, one that
    // differs from a local file only in case, and one A ignores.
    let up = tempfile::tempdir().unwrap();
    for (name, data) in [
        ("Notes.md", &b"notes upper"[..]),
        ("notes.md", b"notes lower"),
        ("report.txt", b"report from the server"),
        ("scratch.tmp", b"the server's scratch"),
        ("Docs/a.txt", b"in Docs"),
    ] {
        let f = up.path().join("f");
        std::fs::write(&f, data).unwrap();
        let put = ca
            .run(&["put", f.to_str().unwrap(), &format!("synced/{name}")])
            .await;
        assert!(put.ok, "{}", put.stderr);
    }
    // In A: ignore rules, ignored files, a name that collides with the
    // server's, and one name in two Unicode spellings.
    write(a, ".cofferignore", b"# scratch\n*.tmp\nbuild/\n");
    write(a, "local.tmp", b"ignored");
    write(a, "build/out.o", b"ignored too");
    write(a, "Report.txt", b"report from A");
    write(a, "caf\u{e9}.txt", b"composed");
    write(a, "cafe\u{301}.txt", b"decomposed");
    write(a, "plain.txt", b"plain");
    // A folder spelled as the server's but for case.
    write(a, "docs/b.txt", b"in docs");
    ok(sync(&ca, a, &[]).await);

    let remote = remote_tree(&server, &ca).await;
    let names: Vec<&String> = remote.keys().collect();
    // Nothing ignored went up; the server's ignored file stayed and did
    // not come down.
    assert!(
        !remote.contains_key("local.tmp") && !remote.contains_key("build/out.o"),
        "{names:?}"
    );
    assert!(!remote.contains_key(".cofferignore"), "{names:?}");
    assert_eq!(remote["scratch.tmp"], b"the server's scratch");
    assert!(!a.join("scratch.tmp").exists());
    assert_eq!(std::fs::read(a.join("local.tmp")).unwrap(), b"ignored");
    // No two names fold to one, and every content is there.
    let mut folds = std::collections::BTreeSet::new();
    for n in remote.keys() {
        assert!(folds.insert(folded(n)), "{n} collides: {names:?}");
    }
    let folders: std::collections::BTreeSet<&str> = remote
        .keys()
        .filter_map(|n| n.rsplit_once('/').map(|(d, _)| d))
        .collect();
    let folded_folders: std::collections::BTreeSet<String> =
        folders.iter().map(|f| folded(f)).collect();
    assert_eq!(folders.len(), folded_folders.len(), "{folders:?}");
    assert_eq!(remote["Docs/a.txt"], b"in Docs");
    assert_eq!(remote["docs (case conflict)/b.txt"], b"in docs");
    for content in [
        &b"notes upper"[..],
        b"notes lower",
        b"report from the server",
        b"report from A",
        b"composed",
        b"decomposed",
        b"plain",
        b"in Docs",
        b"in docs",
    ] {
        assert!(
            remote.values().any(|v| v == content),
            "{:?} was lost: {names:?}",
            String::from_utf8_lossy(content)
        );
    }
    assert_eq!(remote["report.txt"], b"report from the server");
    assert_eq!(remote["Report (case conflict).txt"], b"report from A");
    assert!(
        remote.contains_key("caf\u{e9} (case conflict).txt"),
        "{names:?}"
    );

    // A's folder matches the server, less what it ignores.
    let mut local = tree(a);
    for ignored in [".cofferignore", "local.tmp", "build/out.o"] {
        assert!(local.remove(ignored).is_some(), "{ignored} was touched");
    }
    let mut expected = remote.clone();
    expected.remove("scratch.tmp");
    assert_eq!(local, expected);

    // B ignores nothing: it gets everything, and the two agree.
    ok(sync(&cb, b, &[]).await);
    assert_eq!(tree(b), remote);
    passes_change_nothing(&server, &[(&ca, a), (&cb, b)]).await;
}

#[tokio::test]
async fn a_file_named_like_a_folder_moves_aside_and_files_and_folders_swap_places() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    let (ca, cb) = (Cli::for_server(&server), Cli::for_server(&server));
    write(a, "turn", b"a file at first");
    write(a, "back/inner.txt", b"inside a folder at first");
    ok(sync(&ca, a, &[]).await);
    ok(sync(&cb, b, &[]).await);

    // In A the file `turn` becomes a folder; in B the folder `back/`
    // becomes a file. And, never synced, a file `clash` in A where B
    // makes a folder `clash/`.
    std::fs::remove_file(a.join("turn")).unwrap();
    write(a, "turn/inside.txt", b"now a folder");
    write(a, "clash", b"A's file");
    std::fs::remove_dir_all(b.join("back")).unwrap();
    write(b, "back", b"now a file");
    write(b, "clash/in.txt", b"B's folder");
    ok(sync(&ca, a, &[]).await);
    let run = sync(&cb, b, &[]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("clash is clash (folder conflict) now: a folder has its name"),
        "{}",
        run.stderr
    );
    ok(sync(&ca, a, &[]).await);

    // Each swap went through; the file that met a folder moved aside,
    // and nothing was lost.
    let remote = remote_tree(&server, &ca).await;
    let expected: BTreeMap<String, Vec<u8>> = [
        ("back", &b"now a file"[..]),
        ("clash (folder conflict)", b"A's file"),
        ("clash/in.txt", b"B's folder"),
        ("turn/inside.txt", b"now a folder"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_vec()))
    .collect();
    assert_eq!(remote, expected);
    assert_eq!(tree(a), expected);
    assert_eq!(tree(b), expected);
    passes_change_nothing(&server, &[(&ca, a), (&cb, b)]).await;
}

/// Waits (up to a minute, a liveness bound only) until `path` holds
/// `data`.
async fn arrives(path: &Path, data: &[u8], log: &Path) {
    for _ in 0..600 {
        if std::fs::read(path).ok().as_deref() == Some(data) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "{} never arrived; the sync logged:\n{}",
        path.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[tokio::test]
async fn continuous_sync_carries_edits_both_ways_as_they_happen() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    let (ca, cb) = (Cli::for_server(&server), Cli::for_server(&server));
    write(a, "first.txt", b"1");
    ok(sync(&ca, a, &[]).await);

    let logs = tempfile::tempdir().unwrap();
    let mut running = Vec::new();
    // A follows file-system events; B polls (as on a network mount).
    for (cli, dir, log, extra) in [(&ca, a, "a.log", None), (&cb, b, "b.log", Some("--poll"))] {
        let log = std::fs::File::create(logs.path().join(log)).unwrap();
        let mut args = vec!["sync", dir.to_str().unwrap(), "synced"];
        args.extend(extra);
        let mut cmd = cli.command(&args);
        cmd.stderr(log);
        running.push(cmd.spawn().unwrap());
    }
    let (la, lb) = (logs.path().join("a.log"), logs.path().join("b.log"));
    arrives(&b.join("first.txt"), b"1", &lb).await;

    // A new file, a nested one and an edit, each way.
    write(a, "docs/new.md", b"from A");
    arrives(&b.join("docs/new.md"), b"from A", &lb).await;
    write(b, "first.txt", b"edited in B");
    arrives(&a.join("first.txt"), b"edited in B", &la).await;
    std::fs::remove_file(b.join("docs/new.md")).unwrap();
    for _ in 0..600 {
        if !a.join("docs/new.md").exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        !a.join("docs/new.md").exists(),
        "the delete never arrived: {}",
        std::fs::read_to_string(&la).unwrap_or_default()
    );
    for mut c in running {
        c.kill().await.unwrap();
    }
    let log = std::fs::read_to_string(&la).unwrap() + &std::fs::read_to_string(&lb).unwrap();
    assert!(
        !log.contains("instead"),
        "file-system events were unavailable: {log}"
    );
    assert_eq!(tree(a), tree(b));
}

#[tokio::test]
async fn a_pass_lists_the_server_only_when_the_feed_shows_a_change_in_the_folder() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let a = tempfile::tempdir().unwrap();
    let a = a.path();
    let ca = Cli::for_server(&server);
    let other = Cli::for_server(&server);
    write(a, "one.txt", b"1");
    ok(sync(&ca, a, &[]).await);
    let pass = |extra: &'static [&'static str]| {
        let ca = &ca;
        async move {
            let mut args = vec!["sync", a.to_str().unwrap(), "synced", "--once"];
            args.extend_from_slice(extra);
            ca.json(&args).await
        }
    };
    let put = |name: &'static str, data: &'static [u8]| {
        let other = &other;
        async move {
            let f = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(f.path(), data).unwrap();
            let r = other.run(&["put", f.path().to_str().unwrap(), name]).await;
            assert!(r.ok, "{}", r.stderr);
        }
    };

    // Agreed, and nothing changed under synced/: no listing.
    assert_eq!(pass(&[]).await["listings"], 0);
    // A change elsewhere in the account: still none.
    put("elsewhere/x.txt", b"x").await;
    let r = pass(&[]).await;
    assert_eq!(r["listings"], 0, "{r}");
    // A change in the folder: listed, and it comes down.
    put("synced/two.txt", b"2").await;
    let r = pass(&[]).await;
    assert!(r["listings"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(std::fs::read(a.join("two.txt")).unwrap(), b"2");
    // A local edit is found by the scan alone; the pass after it agrees
    // without listing.
    write(a, "one.txt", b"1 edited");
    let r = pass(&[]).await;
    assert_eq!(r["uploaded"], 1, "{r}");
    assert_eq!(pass(&[]).await["listings"], 0);
    // New ignore rules: what was agreed under the old ones is listed
    // again.
    write(a, ".cofferignore", b"*.log\n");
    assert!(pass(&[]).await["listings"].as_u64().unwrap() >= 1);
    // A delete on the server is a change in the folder too.
    let rm = other.run(&["rm", "synced/two.txt"]).await;
    assert!(rm.ok, "{}", rm.stderr);
    let r = pass(&[]).await;
    assert_eq!(r["deleted_local"], 1, "{r}");
    assert!(!a.join("two.txt").exists());

    // A path left alone (a link where a synced file was) keeps the two
    // apart: the pass is not agreed, so the next one lists again rather
    // than trust the feed's silence.
    write(a, "keep.txt", b"so the folder is not empty");
    pass(&[]).await;
    std::fs::remove_file(a.join("one.txt")).unwrap();
    std::os::unix::fs::symlink("/nowhere", a.join("one.txt")).unwrap();
    for round in 0..2 {
        let run = ca
            .run(&["--json", "sync", a.to_str().unwrap(), "synced", "--once"])
            .await;
        assert!(!run.ok, "agreed with a link in place of a synced file");
        let r: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{e}: {} / {}", run.stdout, run.stderr));
        assert_eq!(r["agreed"], false, "{r}");
        if round == 1 {
            assert!(r["listings"].as_u64().unwrap() >= 1, "{r}");
        }
    }
    let names = server.names_under("synced/").await;
    assert!(names.contains(&"synced/one.txt".to_string()), "{names:?}");
}

#[tokio::test]
async fn one_file_that_cannot_sync_holds_up_nothing_else_and_links_are_left_alone() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    let outside = tempfile::tempdir().unwrap();
    let (ca, cb) = (Cli::for_server(&server), Cli::for_server(&server));

    // A path this disk takes but the server cannot: within the server's
    // 1,024 bytes here, past them under the remote folder's name.
    let long: String = ["long".to_string()]
        .into_iter()
        .chain(['a', 'b', 'c', 'd'].map(|c| c.to_string().repeat(250)))
        .chain(["too-long.txt".to_string()])
        .collect::<Vec<_>>()
        .join("/");
    assert_eq!(long.len(), 1021);
    write(a, &long, b"a path too long for the server");
    write(a, "fine/other.txt", b"other");
    // More files than steps run at once: none waits on the long path.
    for i in 0..40 {
        write(
            a,
            &format!("later/{i:02}.txt"),
            format!("later {i}").as_bytes(),
        );
    }
    // A name typed decomposed (NFD), alone: it syncs under its composed
    // name and stays as it is on this disk.
    write(a, "cafe\u{301}.txt", b"menu");
    // Links are neither followed nor synced.
    write(outside.path(), "secret.txt", b"outside the folder");
    std::os::unix::fs::symlink(outside.path(), a.join("link")).unwrap();

    let run = sync(&ca, a, &[]).await;
    assert!(!run.ok, "the long path cannot be synced, and says so");
    assert!(run.stderr.contains("too-long.txt"), "{}", run.stderr);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    let names = server.names_under("synced/").await;
    assert!(
        names.contains(&"synced/fine/other.txt".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"synced/caf\u{e9}.txt".to_string()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("too-long")), "{names:?}");
    let later = names
        .iter()
        .filter(|n| n.starts_with("synced/later/"))
        .count();
    assert_eq!(later, 40, "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("secret") || n.contains("link")),
        "{names:?}"
    );
    assert_eq!(
        std::fs::read(a.join(&long)).unwrap(),
        b"a path too long for the server"
    );
    assert_eq!(
        std::fs::read(outside.path().join("secret.txt")).unwrap(),
        b"outside the folder"
    );

    // B gets what could be synced; an edit there reaches A's decomposed
    // file in place, with no composed twin beside it.
    let run = sync(&cb, b, &[]).await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(std::fs::read(b.join("caf\u{e9}.txt")).unwrap(), b"menu");
    assert_eq!(std::fs::read(b.join("fine/other.txt")).unwrap(), b"other");
    write(b, "caf\u{e9}.txt", b"new menu");
    ok(sync(&cb, b, &[]).await);
    let _ = sync(&ca, a, &[]).await;
    assert_eq!(
        std::fs::read(a.join("cafe\u{301}.txt")).unwrap(),
        b"new menu"
    );
    assert!(
        !a.join("caf\u{e9}.txt").exists(),
        "a composed twin appeared"
    );

    // A synced file replaced by a link is left alone: never read as a
    // delete, never followed.
    std::fs::remove_file(a.join("fine/other.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), a.join("fine/other.txt"))
        .unwrap();
    let run = sync(&ca, a, &[]).await;
    assert!(!run.ok, "the folders do not agree");
    let names = server.names_under("synced/").await;
    assert!(
        names.contains(&"synced/fine/other.txt".to_string()),
        "{names:?}"
    );
    ok(sync(&cb, b, &[]).await);
    assert_eq!(std::fs::read(b.join("fine/other.txt")).unwrap(), b"other");
}
