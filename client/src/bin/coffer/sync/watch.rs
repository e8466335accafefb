//! What wakes continuous sync for local changes: the file system's own
//! events for the folder (the `notify` crate: inotify, FSEvents,
//! ReadDirectoryChangesW), or, where those are unavailable (some network
//! mounts, an exhausted inotify limit), a poll of the folder.

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the folder is looked at when events are unavailable.
pub const POLL: Duration = Duration::from_millis(500);

/// Quiet time after an event before a pass starts, so one save (write,
/// rename, set the time) makes one pass.
const SETTLE: Duration = Duration::from_millis(100);

pub struct FolderWatch {
    /// Kept alive for its events; `None` when polling.
    watcher: Option<RecommendedWatcher>,
    events: mpsc::UnboundedReceiver<()>,
}

impl FolderWatch {
    /// Watches `root` and everything under it; on failure says so and
    /// falls back to polling.
    pub fn start(root: &Path) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            let wake = match e {
                // Reads (our own hashing among them) change nothing.
                Ok(e) => !matches!(e.kind, EventKind::Access(_)),
                // A lost event (queue overflow): look again to be sure.
                Err(_) => true,
            };
            if wake {
                let _ = tx.send(());
            }
        })
        .and_then(|mut w| w.watch(root, RecursiveMode::Recursive).map(|()| w));
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!(
                    "coffer: sync: cannot watch {} for changes ({e}); looking every {} ms instead",
                    root.display(),
                    POLL.as_millis()
                );
                None
            }
        };
        FolderWatch { watcher, events }
    }

    /// Whether changes arrive as events (else the caller compares scans).
    pub fn polling(&self) -> bool {
        self.watcher.is_none()
    }

    /// Forgets events so far: the pass about to start sees their changes.
    pub fn drain(&mut self) {
        while self.events.try_recv().is_ok() {}
    }

    /// Returns once something in the folder may have changed (with
    /// events), or after [`POLL`] (without).
    pub async fn changed(&mut self) {
        if self.watcher.is_none() {
            tokio::time::sleep(POLL).await;
            return;
        }
        if self.events.recv().await.is_none() {
            // The watcher is gone; never wake for it again.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SETTLE).await;
    }
}
