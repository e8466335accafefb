//! How results are shown: text for people or one JSON document for
//! scripts.

use coffer_client::format::human_size;
use coffer_client::Metadata;
use serde_json::{json, Value};

/// Output settings shared by every command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    /// Prints `doc` as JSON when asked to, else `text()`.
    pub fn emit(&self, doc: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{doc}");
        } else {
            let t = text();
            if !t.is_empty() {
                println!("{t}");
            }
        }
    }
}

/// A file version as JSON.
pub fn meta_json(m: &Metadata) -> Value {
    let mut v = json!({
        "name": m.file_name,
        "version": m.version_number,
        "size": m.size,
        "upload_time": m.upload_time,
        "content_hash": m.content_hash,
        "chunks": m.chunk_count,
        "deleted": m.deleted,
    });
    if let Some(h) = &m.replica_health {
        v["replica_health"] = json!({
            "replication_factor": h.replication_factor,
            "chunks": h.chunks,
            "fully_replicated": h.fully_replicated,
            "under_replicated": h.under_replicated,
            "unavailable": h.unavailable,
        });
    }
    v
}

/// One line of a long listing: size, version, time, name.
pub fn meta_line(m: &Metadata) -> String {
    format!(
        "{:>10}  v{:<5} {}  {}",
        human_size(m.size),
        m.version_number,
        m.upload_time,
        m.file_name
    )
}
