//! [`Leased`]: a worker decorator that runs a pass only while this server
//! holds the worker's lease in the metadata store, so with several servers
//! on one database exactly one runs each worker at a time, and another
//! takes over within the lease time once the holder dies. A pass renews
//! the lease every third of its time.

use super::runner::{Pass, Worker, WorkerError};
use crate::meta::Meta;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Leased<W> {
    pub inner: W,
    pub meta: Meta,
    /// This server's name in the lease table.
    pub holder: String,
    pub ttl: Duration,
}

impl<W> Leased<W> {
    /// `inner` under the lease named after it, held as `holder` for `ttl`
    /// at a time.
    pub fn new(inner: W, meta: &Meta, holder: &str, ttl: Duration) -> Self {
        Self {
            inner,
            meta: meta.clone(),
            holder: holder.to_string(),
            ttl: ttl.max(Duration::from_secs(1)),
        }
    }
}

impl<W: Worker + Sync> Worker for Leased<W> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn pass(&mut self, cancel: &CancellationToken) -> Result<Pass, WorkerError> {
        let Self {
            inner,
            meta,
            holder,
            ttl,
        } = self;
        let name = inner.name();
        if !meta.try_lease(name, holder, *ttl).await? {
            let other = meta
                .leases()
                .await?
                .into_iter()
                .find(|l| l.name == name)
                .map_or_else(|| "another server".to_string(), |l| l.holder);
            return Ok(Pass::standby(format!("standby: {name} runs on {other}")));
        }
        // Renewed while the pass runs; a lost lease stops the pass.
        let lost = cancel.child_token();
        let done = CancellationToken::new();
        let renew = async {
            loop {
                tokio::select! {
                    _ = done.cancelled() => return,
                    _ = tokio::time::sleep(*ttl / 3) => {}
                }
                match meta.try_lease(name, holder, *ttl).await {
                    Ok(true) => {}
                    other => {
                        tracing::warn!(worker = name, ?other, "lease lost; stopping the pass");
                        lost.cancel();
                        return;
                    }
                }
            }
        };
        let work = async {
            let r = inner.pass(&lost).await;
            done.cancel();
            r
        };
        let (r, ()) = tokio::join!(work, renew);
        r
    }
}

/// A name for this server in the lease table: its host and data dir. It
/// stays the same across restarts, so a restarted server picks its workers
/// up at once instead of waiting out its own old lease; two servers differ
/// in host or data dir.
pub fn holder_name(data_dir: &std::path::Path) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "coffer".into());
    let dir = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    format!("{host}:{}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    struct Count(Arc<AtomicU32>);

    impl Worker for Count {
        fn name(&self) -> &'static str {
            "count"
        }
        async fn pass(&mut self, _: &CancellationToken) -> Result<Pass, WorkerError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Pass::done("counted"))
        }
    }

    #[tokio::test]
    async fn only_the_lease_holder_runs_a_pass() {
        let meta: Meta = Arc::new(crate::meta::sqlite::open_in_memory().unwrap());
        let runs = Arc::new(AtomicU32::new(0));
        let leased = |holder: &str| Leased {
            inner: Count(runs.clone()),
            meta: meta.clone(),
            holder: holder.into(),
            // Below the one-second floor `new` keeps, to keep this quick.
            ttl: Duration::from_millis(200),
        };
        let (mut a, mut b) = (leased("a"), leased("b"));
        let cancel = CancellationToken::new();
        assert_eq!(a.pass(&cancel).await.unwrap(), Pass::done("counted"));
        let standby = b.pass(&cancel).await.unwrap();
        assert_eq!(standby, Pass::standby("standby: count runs on a"));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The holder stops renewing (it died): b takes over after expiry.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(b.pass(&cancel).await.unwrap(), Pass::done("counted"));
        assert_eq!(
            a.pass(&cancel).await.unwrap().state,
            super::super::runner::WorkerState::Standby
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
