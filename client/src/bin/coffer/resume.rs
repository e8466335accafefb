//! Resume records: the upload session of an unfinished `put`, so running
//! it again continues that session and sends only what is missing.
//!
//! A record lives in `<state dir>/uploads/<key>.json`, where the key hashes
//! the server, the remote name and the local path. An edited file finds
//! its old record: the SDK sees the session's content hash differ,
//! abandons that session (`AbortUpload`, so it stops counting against the
//! open sessions) and starts a fresh one. The state dir is
//! `$COFFER_STATE_DIR`, else `$XDG_STATE_HOME/coffer`, else
//! `~/.local/state/coffer`.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a record holds.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    upload_id: String,
    server: String,
    remote: String,
    local: String,
}

/// Where one upload's record is kept.
#[derive(Debug)]
pub struct ResumeRecord {
    path: PathBuf,
    server: String,
    remote: String,
    local: String,
}

impl ResumeRecord {
    /// The record slot for uploading `local` to `remote`.
    pub fn for_upload(server: &str, remote: &str, local: &Path) -> anyhow::Result<Self> {
        let local = std::fs::canonicalize(local)
            .with_context(|| format!("cannot read {}", local.display()))?;
        let local = local.to_string_lossy().into_owned();
        let mut h = blake3::Hasher::new();
        for part in [server, remote, &local] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        let key = &h.finalize().to_hex()[..32];
        Ok(ResumeRecord {
            path: state_dir()?.join("uploads").join(format!("{key}.json")),
            server: server.to_string(),
            remote: remote.to_string(),
            local,
        })
    }

    /// The session id of an unfinished earlier run, if any.
    pub fn load(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let r: Record = serde_json::from_str(&text).ok()?;
        Some(r.upload_id)
    }

    /// Remembers `upload_id` (atomically: write, then rename).
    pub fn save(&self, upload_id: &str) -> anyhow::Result<()> {
        let dir = self.path.parent().expect("records live in a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let r = Record {
            upload_id: upload_id.to_string(),
            server: self.server.clone(),
            remote: self.remote.clone(),
            local: self.local.clone(),
        };
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&r)?)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Forgets the record once the upload is committed.
    pub fn clear(&self) {
        std::fs::remove_file(&self.path).ok();
    }
}

pub fn state_dir() -> anyhow::Result<PathBuf> {
    let var = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("COFFER_STATE_DIR") {
        return Ok(d);
    }
    if let Some(d) = var("XDG_STATE_HOME") {
        return Ok(d.join("coffer"));
    }
    let home = var("HOME").context("cannot find a state directory: set COFFER_STATE_DIR")?;
    Ok(home.join(".local/state/coffer"))
}
