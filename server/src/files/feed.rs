//! The change feed a client follows: pages of one owner's changes after a
//! cursor, and a watch that wakes at once on this server's commits of its
//! owner (only: one user's uploads never make another's watches query)
//! and polls for those made through other servers sharing the database.

use super::error::FileError;
use crate::meta::{ChangeRow, Meta, OwnerId};
use futures::Stream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    bells: Bells,
}

/// One bell per owner with watchers, rung after every change this server
/// makes to that owner's files. Cheap to clone.
#[derive(Clone, Default)]
pub struct Bells(Arc<Mutex<HashMap<OwnerId, watch::Sender<u64>>>>);

impl Bells {
    /// Wakes `owner`'s watches (if any).
    pub fn ring(&self, owner: OwnerId) {
        let mut bells = self.0.lock().unwrap();
        if let Some(b) = bells.get(&owner) {
            if b.receiver_count() == 0 {
                bells.remove(&owner);
            } else {
                b.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// A receiver woken by `owner`'s bell.
    pub fn listen(&self, owner: OwnerId) -> watch::Receiver<u64> {
        let mut bells = self.0.lock().unwrap();
        // Bells nobody listens to any more go (bounded by live watches).
        if bells.len() > 64 {
            bells.retain(|_, b| b.receiver_count() > 0);
        }
        bells
            .entry(owner)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
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
            bells: Bells::default(),
        }
    }

    /// Wakes `owner`'s watches: something of theirs changed.
    pub fn changed(&self, owner: OwnerId) {
        self.bells.ring(owner);
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
        let state = (self.clone(), self.bells.listen(owner), Some(start), true);
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn a_change_wakes_only_its_owners_watches() {
        let bells = Bells::default();
        let mut alice = bells.listen(1);
        let mut bob = bells.listen(2);
        alice.borrow_and_update();
        bob.borrow_and_update();
        bells.ring(1);
        assert!(
            alice.changed().now_or_never().is_some(),
            "alice's watch wakes"
        );
        assert!(bob.changed().now_or_never().is_none(), "bob's does not");
        bells.ring(2);
        assert!(bob.changed().now_or_never().is_some());
        // A bell nobody listens to any more is dropped when rung.
        drop(bob);
        bells.ring(2);
        assert!(!bells.0.lock().unwrap().contains_key(&2));
    }
}
