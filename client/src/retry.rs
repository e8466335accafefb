//! Retrying idempotent calls with exponential back-off, on native and wasm.

use std::time::Duration;
use tonic::{Code, Status};

/// Attempts per call, the first included.
pub const ATTEMPTS: u32 = 5;
/// Wait before the first retry; doubles after each.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Whether another attempt of an idempotent call may succeed.
pub fn is_retryable(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unknown
    )
}

/// Runs `call` until it succeeds, fails permanently, or [`ATTEMPTS`] are
/// used up. Only for idempotent calls.
pub async fn with_backoff<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut wait = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(s) if attempt < ATTEMPTS && is_retryable(&s) => {
                sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
async fn sleep(d: Duration) {
    #[cfg(feature = "native")]
    tokio::time::sleep(d).await;
    #[cfg(not(feature = "native"))]
    std::thread::sleep(d);
}

#[cfg(target_arch = "wasm32")]
async fn sleep(d: Duration) {
    #[cfg(feature = "wasm")]
    gloo_timers::future::sleep(d).await;
    // Without a timer, retry at once.
    #[cfg(not(feature = "wasm"))]
    let _ = d;
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn only_transient_codes_are_retried() {
        assert!(is_retryable(&Status::unavailable("x")));
        assert!(!is_retryable(&Status::not_found("x")));
        assert!(!is_retryable(&Status::invalid_argument("x")));
        assert!(!is_retryable(&Status::failed_precondition("x")));
    }

    #[tokio::test]
    async fn retries_transient_failures_then_gives_up() {
        let calls = Cell::new(0);
        let r: Result<(), Status> = with_backoff(|| {
            calls.set(calls.get() + 1);
            async { Err(Status::invalid_argument("bad")) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 1, "permanent errors are not retried");

        calls.set(0);
        let r = with_backoff(|| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(Status::unavailable("busy"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
    }
}
