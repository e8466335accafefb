//! `coffer-web`: Coffer's browser app, a Leptos client-side app talking
//! grpc-web to the server that serves it (same origin, same port).
//!
//! - [`api`]: the SDK client for this origin, reading dropped files in
//!   slices, formatting.
//! - [`uploads`]: the upload queue: hashing, sending only missing chunks,
//!   committing, with progress and cancel per file.
//! - [`browser`]: the file browser: folders, sorting, paging, versions,
//!   restore, delete with undo, downloads.
//! - [`session`]: signing in and out, silent token refresh.

mod api;
mod browser;
mod session;
mod uploads;

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
    provide_context(auth);
    session::start(auth);
    let signed_in = move || auth.session.get().is_some();
    view! {
        <header class="top">
            <h1>"Coffer"</h1>
            <span class="tagline">"your files, replicated"</span>
            <session::UserMenu />
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
            {move || auth.session.get().map(|s| view! {
                <div data-user=s.username>
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
