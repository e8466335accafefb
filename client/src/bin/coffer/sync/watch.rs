//! What wakes continuous sync for local changes: the file system's own
//! events for the folder (the `notify` crate: inotify, FSEvents,
//! ReadDirectoryChangesW), or, where those are unavailable (some network
//! mounts, an exhausted inotify limit), a poll of the folder.

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
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
    /// The paths of each event; empty when events were lost.
    events: mpsc::UnboundedReceiver<Vec<PathBuf>>,
}

impl FolderWatch {
    /// Watches `root` and everything under it; on failure says so and
    /// falls back to polling.
    pub fn start(root: &Path) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            let paths = match e {
                // Opening and reading (our own hashing among them) change
                // nothing; a close after writing (an mmap write's only
                // event) does.
                Ok(e)
                    if matches!(
                        e.kind,
                        EventKind::Access(notify::event::AccessKind::Close(
                            notify::event::AccessMode::Write
                        ))
                    ) =>
                {
                    e.paths
                }
                Ok(e) if matches!(e.kind, EventKind::Access(_)) => return,
                Ok(e) if e.paths.is_empty() => Vec::new(),
                Ok(e) => e.paths,
                // A lost event (queue overflow): look again to be sure.
                Err(_) => Vec::new(),
            };
            let _ = tx.send(paths);
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

    /// No events: the caller polls (`coffer sync --poll`).
    pub fn polling_only() -> Self {
        let (_, events) = mpsc::unbounded_channel();
        FolderWatch {
            watcher: None,
            events,
        }
    }

    /// Whether changes arrive as events (else the caller compares scans).
    pub fn polling(&self) -> bool {
        self.watcher.is_none()
    }

    /// Forgets events so far: the pass about to start sees their changes.
    pub fn drain(&mut self) {
        while self.events.try_recv().is_ok() {}
    }

    /// Returns once something in the folder may have changed at a path
    /// `relevant` accepts (with events), or after [`POLL`] (without).
    pub async fn changed(&mut self, relevant: &dyn Fn(&Path) -> bool) {
        if self.watcher.is_none() {
            tokio::time::sleep(POLL).await;
            return;
        }
        loop {
            match self.events.recv().await {
                Some(paths) if paths.is_empty() || paths.iter().any(|p| relevant(p)) => break,
                Some(_) => {}
                // The watcher is gone; never wake for it again.
                None => std::future::pending::<()>().await,
            }
        }
        tokio::time::sleep(SETTLE).await;
    }
}
