//! Keeps the deletion of a chunk's objects apart from writes of the same
//! chunk.
//!
//! Garbage collection decides in the metadata store and deletes objects on
//! the nodes afterwards. An upload of the same content in between would
//! see the chunk as not stored, write its objects again and record it, and
//! the deletion would then remove bytes that a committed version needs.
//! So an upload holds a [`WriteGuard`] on each chunk id from its "is it
//! stored?" check until a version or an upload session references the
//! chunk, and gc deletes a chunk's objects only under a [`DeleteGuard`]:
//! gc skips ids that writers hold, and writers wait out a deletion.
//!
//! The fence lives in the one server process that owns the metadata, like
//! the metadata store itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

#[derive(Debug)]
enum Hold {
    /// This many uploads hold the id.
    Writers(usize),
    /// gc is deleting the id's objects.
    Deleting,
}

/// Who holds which chunk ids. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct ChunkFence {
    holds: Mutex<HashMap<String, Hold>>,
    deleted: Notify,
}

impl ChunkFence {
    fn holds(&self) -> MutexGuard<'_, HashMap<String, Hold>> {
        // The map stays consistent whatever panicked while holding it.
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `id` for an upload, first waiting for any deletion of it to
    /// end.
    pub async fn write(self: &Arc<Self>, id: &str) -> WriteGuard {
        loop {
            // Registered before the check, so a deletion ending in between
            // still wakes this writer.
            let deleted = self.deleted.notified();
            {
                let mut holds = self.holds();
                match holds.get_mut(id) {
                    Some(Hold::Deleting) => {}
                    Some(Hold::Writers(n)) => {
                        *n += 1;
                        return self.write_guard(id);
                    }
                    None => {
                        holds.insert(id.to_string(), Hold::Writers(1));
                        return self.write_guard(id);
                    }
                }
            }
            deleted.await;
        }
    }

    fn write_guard(self: &Arc<Self>, id: &str) -> WriteGuard {
        WriteGuard {
            fence: self.clone(),
            id: id.to_string(),
        }
    }

    /// Holds `id` for deleting its objects, unless an upload holds it (or
    /// another deletion does).
    pub fn try_delete(self: &Arc<Self>, id: &str) -> Option<DeleteGuard> {
        let mut holds = self.holds();
        if holds.contains_key(id) {
            return None;
        }
        holds.insert(id.to_string(), Hold::Deleting);
        Some(DeleteGuard {
            fence: self.clone(),
            id: id.to_string(),
        })
    }

    /// How many ids are held, by writers or deletions.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.holds().len()
    }
}

/// An upload's hold on one chunk id; released on drop.
#[derive(Debug)]
pub struct WriteGuard {
    fence: Arc<ChunkFence>,
    id: String,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut holds = self.fence.holds();
        if let Some(Hold::Writers(n)) = holds.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                holds.remove(&self.id);
            }
        }
    }
}

/// gc's hold on one chunk id while it deletes the objects; released on
/// drop, waking the writers that waited.
#[derive(Debug)]
pub struct DeleteGuard {
    fence: Arc<ChunkFence>,
    id: String,
}

impl Drop for DeleteGuard {
    fn drop(&mut self) {
        self.fence.holds().remove(&self.id);
        self.fence.deleted.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn a_written_id_cannot_be_deleted_until_every_writer_is_done() {
        let fence = Arc::new(ChunkFence::default());
        let a = fence.write("c").now_or_never().unwrap();
        let b = fence.write("c").now_or_never().unwrap();
        assert!(fence.try_delete("c").is_none());
        drop(a);
        assert!(fence.try_delete("c").is_none(), "one writer still holds it");
        drop(b);
        let d = fence.try_delete("c").expect("no writer left");
        assert!(fence.try_delete("c").is_none(), "one deletion at a time");
        drop(d);
        assert_eq!(fence.held(), 0);
    }

    #[tokio::test]
    async fn a_writer_waits_for_a_deletion_to_end() {
        let fence = Arc::new(ChunkFence::default());
        let d = fence.try_delete("c").unwrap();
        let mut writer = Box::pin(fence.write("c"));
        assert!(futures::poll!(&mut writer).is_pending());
        // Other ids are not held up.
        assert!(fence.write("other").now_or_never().is_some());
        drop(d);
        let w = writer.await;
        assert!(fence.try_delete("c").is_none());
        drop(w);
        assert_eq!(fence.held(), 0);
    }
}
