//! The one way background work runs: a [`Worker`] does passes; the runner
//! repeats them on an interval or when asked, until cancelled, and keeps a
//! [`WorkerHandle`] with its status for the admin API and metrics.

use crate::cluster::ClusterError;
use crate::meta::{now_rfc3339, MetaError};
use crate::store::StoreError;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// It did what there was to do.
    Done,
    /// There was nothing to do.
    Idle,
    /// Another server holds this worker's lease and runs it.
    Standby,
    /// It stopped early: the server is stopping, or the lease was lost.
    Cancelled,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Done => "done",
            WorkerState::Idle => "idle",
            WorkerState::Standby => "standby",
            WorkerState::Cancelled => "cancelled",
        }
    }
}

/// What a pass did: how it ended, and a line for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    pub state: WorkerState,
    pub report: String,
}

impl Pass {
    pub fn done(report: impl Into<String>) -> Self {
        Self {
            state: WorkerState::Done,
            report: report.into(),
        }
    }

    pub fn idle(report: impl Into<String>) -> Self {
        Self {
            state: WorkerState::Idle,
            report: report.into(),
        }
    }

    pub fn standby(report: impl Into<String>) -> Self {
        Self {
            state: WorkerState::Standby,
            report: report.into(),
        }
    }

    pub fn cancelled(report: impl Into<String>) -> Self {
        Self {
            state: WorkerState::Cancelled,
            report: report.into(),
        }
    }
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pass went through but some of its steps failed: what it did,
    /// and the last failure.
    #[error("{report}; last error: {last}")]
    Partly { report: String, last: String },
    #[error("{0}")]
    Other(String),
}

impl From<String> for WorkerError {
    fn from(e: String) -> Self {
        WorkerError::Other(e)
    }
}

/// A kind of background work done in passes.
pub trait Worker: Send + 'static {
    fn name(&self) -> &'static str;
    /// One pass. A pass should stop early when `cancel` fires.
    fn pass(
        &mut self,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Pass, WorkerError>> + Send;
}

/// A snapshot of a worker's status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStatus {
    pub name: String,
    pub running: bool,
    /// How the last pass ended: a [`WorkerState`], or "failed".
    pub last_outcome: String,
    pub passes: u64,
    pub last_pass_started: String,
    pub last_pass_finished: String,
    pub last_report: String,
    pub errors: u64,
    pub last_error: String,
}

/// Shared handle to a running worker: status and "run now".
pub struct WorkerHandle {
    status: Mutex<WorkerStatus>,
    trigger: Notify,
    /// (passes started, passes finished)
    progress: watch::Sender<(u64, u64)>,
}

impl WorkerHandle {
    fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            status: Mutex::new(WorkerStatus {
                name: name.to_string(),
                ..Default::default()
            }),
            trigger: Notify::new(),
            progress: watch::channel((0, 0)).0,
        })
    }

    pub fn status(&self) -> WorkerStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// Asks for a pass now. With `wait`, returns once a pass that started
    /// after this call has finished (or `None` if the worker stopped).
    pub async fn run_now(&self, wait: bool) -> Option<WorkerStatus> {
        let mut rx = self.progress.subscribe();
        let started_before = rx.borrow().0;
        self.trigger.notify_one();
        if wait {
            rx.wait_for(|&(_, finished)| finished > started_before)
                .await
                .ok()?;
        }
        Some(self.status())
    }
}

/// Runs `worker` every `interval` (and whenever asked) until `cancel`.
pub fn spawn<W: Worker>(
    mut worker: W,
    interval: Duration,
    cancel: CancellationToken,
) -> (Arc<WorkerHandle>, tokio::task::JoinHandle<()>) {
    let handle = WorkerHandle::new(worker.name());
    let h = handle.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
                _ = h.trigger.notified() => {}
            }
            h.progress.send_modify(|p| p.0 += 1);
            {
                let mut s = h.status.lock().expect("status lock");
                s.running = true;
                s.last_pass_started = now_rfc3339();
            }
            let result = worker.pass(&cancel).await;
            {
                let mut s = h.status.lock().expect("status lock");
                s.running = false;
                s.passes += 1;
                s.last_pass_finished = now_rfc3339();
                match result {
                    Ok(pass) => {
                        s.last_outcome = pass.state.as_str().into();
                        s.last_report = pass.report;
                    }
                    Err(e) => {
                        tracing::warn!(worker = worker.name(), error = %e, "worker pass failed");
                        s.errors += 1;
                        s.last_outcome = "failed".into();
                        s.last_report = format!("failed: {e}");
                        s.last_error = e.to_string();
                    }
                }
            }
            h.progress.send_modify(|p| p.1 += 1);
        }
    });
    (handle, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counter(Arc<AtomicU32>);

    impl Worker for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        async fn pass(&mut self, _: &CancellationToken) -> Result<Pass, WorkerError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 2 {
                return Err(WorkerError::Other("second pass fails".into()));
            }
            Ok(Pass::done(format!("pass {n}")))
        }
    }

    #[tokio::test]
    async fn run_now_waits_for_a_fresh_pass_and_status_tracks_errors() {
        let count = Arc::new(AtomicU32::new(0));
        let cancel = CancellationToken::new();
        let (h, task) = spawn(
            Counter(count.clone()),
            Duration::from_secs(3600),
            cancel.clone(),
        );
        let s = h.run_now(true).await.unwrap();
        assert_eq!(
            (s.passes, s.last_report.as_str(), s.running),
            (1, "pass 1", false)
        );
        assert_eq!(s.last_outcome, "done");
        let s = h.run_now(true).await.unwrap();
        assert_eq!(
            (s.passes, s.errors, s.last_error.as_str()),
            (2, 1, "second pass fails")
        );
        assert_eq!(s.last_outcome, "failed");
        assert_eq!(count.load(Ordering::SeqCst), 2);
        cancel.cancel();
        task.await.unwrap();
    }
}
