//! How results are shown: text for people or one JSON document for
//! scripts, and sizes in binary units.

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

/// `1536` -> `1.5 KiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
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
        human(m.size),
        m.version_number,
        m.upload_time,
        m.file_name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(64 * 1024 * 1024), "64.0 MiB");
    }
}
