//! `coffer-web`: Coffer's browser app, a Leptos client-side app talking
//! grpc-web to the server that serves it (same origin, same port).
//!
//! - [`api`]: the SDK client for this origin, reading dropped files in
//!   slices, formatting.
//! - [`uploads`]: the upload panel: files and folders dropped or picked,
//!   a few at a time, hashing, sending only missing chunks, committing,
//!   with overall and per-file progress, cancel, retry and what was
//!   skipped.
//! - [`browser`]: the file browser: folders, sorting, paging, versions,
//!   restore, delete with undo, downloads, search, a selection to zip,
//!   move or delete.
//! - [`viewer`]: previews of images, text, Markdown, PDF, audio, video.
//! - [`diff`]: two versions of a text file compared line by line.
//! - [`keys`]: keyboard shortcuts and their list.
//! - [`shares`]: share links: the dialog that makes one, the list that
//!   shows and revokes them.
//! - [`operator`]: the cluster's picture for admins.
//! - [`live`]: follows the change feed, so changes made elsewhere show
//!   without a reload.
//! - [`quota`]: the user's storage use against their quota.
//! - [`clipboard`]: copying text to the clipboard.
//! - [`session`]: signing in and out, silent token refresh.

mod api;
mod browser;
mod clipboard;
mod diff;
mod keys;
mod live;
mod operator;
mod quota;
mod session;
mod shares;
mod uploads;
mod viewer;

use leptos::prelude::*;

/// A message for the error banner; `None` hides it.
#[derive(Clone, Copy)]
pub struct Banner(pub RwSignal<Option<String>>);

#[component]
fn App() -> impl IntoView {
    let banner = Banner(RwSignal::new(None));
    // Bumped whenever the listing must be reloaded.
    let refresh = RwSignal::new(0u64);
    let auth = session::Auth {
        session: RwSignal::new(None),
        checked: RwSignal::new(false),
    };
    provide_context(banner);
    provide_context(uploads::OpenFolder(RwSignal::new(String::new())));
    provide_context(auth);
    shares::Shares::provide();
    provide_context(operator::Operator(RwSignal::new(false)));
    session::start(auth);
    let signed_in = move || auth.session.get().is_some();
    // Only a change of user (or signing out) re-keys the app below; a
    // silent token refresh replaces the session but not the user.
    let user = Memo::new(move |_| auth.session.get().map(|s| s.username));
    view! {
        <header class="top">
            <h1>"Coffer"</h1>
            <span class="tagline">"your files, replicated"</span>
            <Show when=signed_in>
                <shares::Toggle />
            </Show>
            <Show when=move || auth.session.with(|s| s.as_ref().is_some_and(|s| s.role == "admin"))>
                <operator::Toggle />
            </Show>
            <session::UserMenu refresh=refresh />
        </header>
        <Show when=move || banner.0.get().is_some()>
            <div class="banner" role="alert" data-testid="error-banner">
                <span>{move || banner.0.get().unwrap_or_default()}</span>
                <button class="link" on:click=move |_| banner.0.set(None) aria-label="Dismiss">"×"</button>
            </div>
        </Show>
        <main>
            <Show when=move || auth.checked.get() && !signed_in()>
                <session::Login />
            </Show>
            // Keyed on the user: a new sign-in starts from a fresh state.
            {move || user.get().map(|u| view! {
                <div data-user=u>
                    <operator::OperatorView />
                    <shares::SharedLinks />
                    <uploads::Uploads refresh=refresh />
                    <browser::Browser refresh=refresh />
                </div>
            })}
        </main>
    }
}

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
