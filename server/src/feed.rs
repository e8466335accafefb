//! The change feed a client follows: pages of one owner's changes after a
//! cursor, and a watch that wakes at once on this server's commits and
//! polls for those made through other servers sharing the database.

use crate::files::FileError;
use crate::meta::{ChangeRow, Meta, OwnerId};
use futures::Stream;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a watch looks for changes made through other servers.
pub const POLL: Duration = Duration::from_secs(2);

/// Changes in one page, at most.
pub const MAX_PAGE: u32 = 1000;

/// The feed. Cheap to clone.
#[derive(Clone)]
pub struct Feed {
    meta: Meta,
    /// Bumped after every change this server makes.
    bump: Arc<watch::Sender<u64>>,
}

/// Changes after a cursor, and the cursor to continue from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub changes: Vec<ChangeRow>,
    pub cursor: String,
    /// More changes follow at once.
    pub more: bool,
}

impl Feed {
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            bump: Arc::new(watch::channel(0).0),
        }
    }

    /// Wakes the watches: something changed.
    pub fn changed(&self) {
        self.bump.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Up to `limit` changes after `cursor` (empty: from the first); with
    /// `latest`, none, and the cursor of the newest change.
    pub async fn page(
        &self,
        owner: OwnerId,
        cursor: &str,
        limit: u32,
        latest: bool,
    ) -> Result<Page, FileError> {
        let after = parse_cursor(cursor)?;
        let limit = match limit {
            0 => 100,
            n => n.min(MAX_PAGE),
        };
        if latest {
            let (_, head) = self.meta.changes(owner, 0, 0).await?;
            return Ok(Page {
                changes: Vec::new(),
                cursor: head.to_string(),
                more: false,
            });
        }
        let (changes, head) = self.meta.changes(owner, after, limit).await?;
        let last = changes.last().map_or(after, |c| c.seq);
        Ok(Page {
            more: last < head,
            cursor: last.to_string(),
            changes,
        })
    }

    /// Pages of changes after `cursor` as they happen: the first at once
    /// (empty if nothing is new, so the client knows it is following),
    /// then one whenever there are new changes. Ends with an error only.
    pub fn watch(
        &self,
        owner: OwnerId,
        cursor: &str,
    ) -> impl Stream<Item = Result<Page, FileError>> + Send + 'static {
        let start = parse_cursor(cursor).map(|c| c.to_string());
        // The cursor to go on from; `None` once the watch has ended.
        let state = (self.clone(), self.bump.subscribe(), Some(start), true);
        futures::stream::unfold(state, move |(feed, mut rx, cursor, first)| async move {
            let cursor = match cursor? {
                Ok(c) => c,
                Err(e) => return Some((Err(e), (feed, rx, None, false))),
            };
            loop {
                // Seen before the query: a commit after it wakes the wait.
                rx.borrow_and_update();
                match feed.page(owner, &cursor, MAX_PAGE, false).await {
                    Ok(page) if first || !page.changes.is_empty() => {
                        let next = Some(Ok(page.cursor.clone()));
                        return Some((Ok(page), (feed, rx, next, false)));
                    }
                    Ok(_) => {}
                    Err(e) => return Some((Err(e), (feed, rx, None, false))),
                }
                tokio::select! {
                    woke = rx.changed() => if woke.is_err() { return None },
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        })
    }
}

fn parse_cursor(cursor: &str) -> Result<u64, FileError> {
    if cursor.is_empty() {
        return Ok(0);
    }
    cursor.parse().map_err(|_| {
        FileError::InvalidArgument(format!(
            "cursor {cursor:?} is not one this server handed out"
        ))
    })
}
