//! README's examples that speak to the server directly, with grpcurl and
//! curl, run as written: every such block of README.md, in order, in one
//! shell, against a real server with authentication on. Only the address
//! and the passwords (`…` in README) are filled in.

use coffer_tests::data::upload_bytes;
use coffer_tests::server::{Server, ServerOpts, ADMIN_PASSWORD};

/// README's ```sh blocks that call grpcurl or curl, each as one string.
fn protocol_examples(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap().join("\n")),
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    blocks
        .into_iter()
        .filter(|b| {
            b.lines().any(|l| {
                l.starts_with("grpcurl ") || l.starts_with("curl ") || l.contains("$(grpcurl ")
            })
        })
        .collect()
}

#[tokio::test]
async fn the_readmes_grpcurl_and_curl_examples_work_as_written() {
    let version = std::process::Command::new("grpcurl")
        .arg("-version")
        .output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "grpcurl is not installed (scripts/install-test-deps.sh installs it): {version:?}"
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let blocks = protocol_examples(&readme);
    // Logging in, files, reflection and health, the admin service.
    assert!(blocks.len() >= 3, "README's examples not found: {blocks:?}");

    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let alice_password = "alice-readme-password";
    let alice = server.add_user("alice", alice_password, false).await;
    let notes = b"notes kept in Coffer\n".repeat(100);
    upload_bytes(
        &mut server.client_as(Some(&alice)).await,
        "notes.txt",
        &notes,
    )
    .await
    .unwrap();

    let host = server.addr().trim_start_matches("http://");
    let script = format!("set -euo pipefail\n{}\n", blocks.join("\n"))
        .replace("localhost:5000", host)
        .replace(
            r#""username":"alice","password":"…""#,
            &format!(r#""username":"alice","password":"{alice_password}""#),
        )
        .replace(
            r#""username":"admin","password":"…""#,
            &format!(r#""username":"admin","password":"{ADMIN_PASSWORD}""#),
        );
    assert!(
        !script.contains('…'),
        "a placeholder left unfilled:\n{script}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "README's examples failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // What each example is there to show came back.
    for (what, want) in [
        ("ListFiles", r#""fileName": "notes.txt""#),
        ("list (reflection)", "CofferAuth"),
        ("list (reflection)", "FileStorage"),
        ("GetMetadata", &format!(r#""size": "{}""#, notes.len())),
        ("ClusterStatus", r#""nodes""#),
        ("/metrics", "coffer_"),
    ] {
        assert!(
            stdout.contains(want),
            "{what}: {want} not in the output:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    // `curl -OJ` saved the download under the file's own name.
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).expect("curl -OJ saved notes.txt"),
        notes
    );
}
