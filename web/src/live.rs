//! Keeps the file list current without a reload: follows the user's
//! change feed (`WatchChanges` over grpc-web) and asks the list to reload
//! whenever something changed, here or elsewhere (the CLI, another tab,
//! a synced folder). Changes that come in floods (a drop of ten thousand
//! files) reload the list a few times a second, not once per file.

use crate::api;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Wait before following again after the feed broke off (the server
/// restarted, the network dropped).
const RETRY_MS: u32 = 3_000;

/// However many changes arrive, the list reloads at most this often.
const SOON_MS: u32 = 400;

thread_local! {
    static PENDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Asks for one reload within `SOON_MS`: calls meanwhile join it.
pub fn soon(refresh: RwSignal<u64>) {
    if PENDING.with(|p| p.replace(true)) {
        return;
    }
    spawn_local(async move {
        gloo_timers::future::TimeoutFuture::new(SOON_MS).await;
        PENDING.with(|p| p.set(false));
        refresh.update(|n| *n += 1);
    });
}

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
                                    soon(refresh);
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
