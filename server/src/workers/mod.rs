//! Background workers. Each takes a cancellation token and finishes its
//! current step before it stops; each reports its status through a
//! [`runner::WorkerHandle`].
//!
//! - [`replica_log`]: records every replica outcome the cluster reports.
//! - [`probe`]: node health probes.
//! - [`repair`]: hints and anti-entropy, back to R copies on home nodes.
//! - [`scrub`]: re-reads and verifies replicas, replaces bad ones.
//! - [`gc`]: retention, purge of deleted files, unreferenced chunks.
//! - [`pace`]: the rate limit each of them keeps to.
//! - [`lease`]: one server at a time runs each of repair, scrub and gc.

pub mod gc;
pub mod lease;
pub mod pace;
pub mod probe;
pub mod repair;
pub mod replica_log;
pub mod runner;
pub mod scrub;

use runner::WorkerHandle;
use std::sync::Arc;

/// The running workers, by name.
#[derive(Clone, Default)]
pub struct Workers {
    handles: Vec<Arc<WorkerHandle>>,
}

impl Workers {
    pub fn add(&mut self, handle: Arc<WorkerHandle>) {
        self.handles.push(handle);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<WorkerHandle>> {
        self.handles.iter().find(|h| h.status().name == name)
    }

    pub fn all(&self) -> &[Arc<WorkerHandle>] {
        &self.handles
    }
}

/// Every stored chunk id, read in pages so no one query holds the table.
/// (Anti-entropy and scrub walk them all.)
pub async fn all_chunks(meta: &crate::meta::Meta) -> Result<Vec<String>, String> {
    const PAGE: u32 = 10_000;
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let page = meta
            .chunks_page(&after, PAGE)
            .await
            .map_err(|e| e.to_string())?;
        let full = page.len() as u32 >= PAGE;
        out.extend(page.into_iter().map(|c| c.id));
        match out.last() {
            Some(last) if full => after = last.clone(),
            _ => return Ok(out),
        }
    }
}
