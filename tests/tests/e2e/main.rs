//! End-to-end tests: the real `coffer-server` binary, real SQLite, real
//! local-directory nodes and real Garage S3 nodes. One test binary; shared
//! helpers live in the `coffer-tests` library.

mod accounts;
mod archive;
mod bad_input;
mod browser;
mod cli;
mod client_trust;
mod conformance;
mod consistency;
mod deploy;
mod embedded;
mod feed;
mod harness;
mod hostile_soak;
mod limits;
mod meta;
mod packs;
mod readme;
mod recovery;
mod replication;
mod revocation;
mod scale_out;
mod search;
mod seed;
mod sessions;
mod sharing;
mod soak;
mod strangers;
mod sync;
mod thumbnails;
mod upgrade;
mod versions;
mod viewing;
mod web;
mod webdav;

use std::path::Path;

/// Chunk objects stored on the embedded default's local nodes, per node.
pub fn local_chunk_objects(data_dir: &Path) -> Vec<Vec<String>> {
    (1..=3)
        .map(|i| {
            let mut keys = Vec::new();
            let root = data_dir.join("nodes").join(format!("node{i}"));
            walk(&root, &root.join("chunks"), &mut keys);
            keys.sort();
            keys
        })
        .collect()
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}
