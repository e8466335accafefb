//! Per-node health as seen by the requests that use it: a node that fails
//! is marked down for a back-off period, so writes skip it and reads try it
//! last instead of waiting on its time-outs chunk after chunk.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Health of one node. Cheap to read on every request.
#[derive(Debug, Default)]
pub struct NodeHealth {
    down_until: Mutex<Option<Instant>>,
    failures: AtomicU64,
    latency_ms: AtomicU64,
    /// Writes queued or running against this node right now.
    pub(crate) pending_writes: AtomicUsize,
}

impl NodeHealth {
    /// Whether the node failed recently and its back-off has not passed.
    pub fn is_down(&self) -> bool {
        let guard = self.down_until.lock().expect("health lock");
        guard.is_some_and(|t| Instant::now() < t)
    }

    /// A request to the node succeeded: it is up.
    pub fn record_success(&self) {
        *self.down_until.lock().expect("health lock") = None;
    }

    /// A request to the node failed: mark it down for `backoff`.
    pub fn record_failure(&self, backoff: Duration) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.down_until.lock().expect("health lock") = Some(Instant::now() + backoff);
    }

    /// Records the round trip of the last successful probe.
    pub fn record_latency(&self, latency: Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Round trip of the last successful probe, in milliseconds.
    pub fn latency_ms(&self) -> u64 {
        self.latency_ms.load(Ordering::Relaxed)
    }

    /// Failed requests since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Writes queued or running against the node.
    pub fn pending_writes(&self) -> usize {
        self.pending_writes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_marks_down_until_backoff_or_success() {
        let h = NodeHealth::default();
        assert!(!h.is_down());
        h.record_failure(Duration::from_secs(3600));
        assert!(h.is_down());
        h.record_success();
        assert!(!h.is_down());
        h.record_failure(Duration::ZERO);
        assert!(!h.is_down());
        assert_eq!(h.failures(), 2);
    }
}
