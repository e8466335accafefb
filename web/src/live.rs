//! Keeps the file list current without a reload: follows the user's
//! change feed (`WatchChanges` over grpc-web) and asks the list to reload
//! whenever something changed, here or elsewhere (the CLI, another tab,
//! a synced folder).

use crate::api;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Wait before following again after the feed broke off (the server
/// restarted, the network dropped).
const RETRY_MS: u32 = 3_000;

/// Bumps `refresh` for every batch of changes, for as long as the calling
/// component lives.
pub fn follow(refresh: RwSignal<u64>) {
    let alive = Arc::new(AtomicBool::new(true));
    {
        let alive = alive.clone();
        on_cleanup(move || alive.store(false, Ordering::Relaxed));
    }
    spawn_local(async move {
        let mut cursor: Option<String> = None;
        while alive.load(Ordering::Relaxed) {
            let client = api::client();
            if cursor.is_none() {
                cursor = client.latest_cursor().await.ok();
            }
            if let Some(from) = cursor.clone() {
                // A call that cannot start is retried below, like one
                // that broke off.
                if let Ok(mut pages) = client.watch(&from).await {
                    loop {
                        match pages.next().await {
                            Ok(Some(page)) => {
                                if !alive.load(Ordering::Relaxed) {
                                    return;
                                }
                                cursor = Some(page.cursor);
                                if !page.changes.is_empty() {
                                    refresh.update(|n| *n += 1);
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                if e.is_stale() {
                                    // Too far behind: reload everything and
                                    // follow from the newest change.
                                    cursor = None;
                                    refresh.update(|n| *n += 1);
                                }
                                break;
                            }
                        }
                    }
                }
            }
            gloo_timers::future::TimeoutFuture::new(RETRY_MS).await;
        }
    });
}
