//! The signed-in user's storage use against their quota ("X used of Y"
//! with a bar), asked of the server again whenever the file list reloads.

use crate::api;
use coffer_client::format::human_size;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// From this share of the quota on, the bar turns red.
const NEARLY_FULL: f64 = 0.9;

/// "X used of Y", or "X used" without a quota (`quota` 0).
fn label(used: u64, quota: u64) -> String {
    if quota == 0 {
        format!("{} used", human_size(used))
    } else {
        format!("{} used of {}", human_size(used), human_size(quota))
    }
}

/// The figures from WhoAmI, reloaded each time `refresh` is bumped (after
/// uploads, deletes and restores), so they follow this tab's changes.
#[component]
pub fn Quota(refresh: RwSignal<u64>) -> impl IntoView {
    let usage = RwSignal::new(None::<(u64, u64)>);
    Effect::new(move |_| {
        refresh.track();
        spawn_local(async move {
            // Only a hint: a failed look-up keeps the last figures rather
            // than raising the error banner over a working app.
            if let Ok(w) = api::client().whoami().await {
                usage.try_set(Some((w.used_bytes, w.quota_bytes)));
            }
        });
    });
    move || {
        usage.get().map(|(used, quota)| {
            let full = quota > 0 && used as f64 >= quota as f64 * NEARLY_FULL;
            view! {
                <span class="quota" class:full=full data-testid="quota"
                    data-used=used.to_string() data-quota=quota.to_string()>
                    <span>{label(used, quota)}</span>
                    {(quota > 0).then(|| view! {
                        <progress max=quota.to_string() value=used.min(quota).to_string()
                            aria-label="Storage used"></progress>
                    })}
                </span>
            }
        })
    }
}
