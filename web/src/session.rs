//! Logging in and out: the login form, the signed-in user's name (with
//! their storage use, see [`crate::quota`]) and a logout button, and the
//! access token refreshed in the background before it expires. The
//! refresh token stays in this tab's session storage, so a reload signs
//! back in silently; the access token lives in memory only.

use crate::{api, quota};
use coffer_client::pb::LoginResponse;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::time::Duration;

const STORAGE_KEY: &str = "coffer.refresh";

/// Who is signed in.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub username: String,
    pub role: String,
    /// `None` when the server has authentication switched off.
    pub refresh: Option<String>,
}

/// The signed-in state every component can read.
#[derive(Clone, Copy)]
pub struct Auth {
    pub session: RwSignal<Option<Session>>,
    /// Whether the start-up check (silent sign-in) is over.
    pub checked: RwSignal<bool>,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

fn remember(refresh: Option<&str>) {
    if let Some(s) = storage() {
        let _ = match refresh {
            Some(r) => s.set_item(STORAGE_KEY, r),
            None => s.remove_item(STORAGE_KEY),
        };
    }
}

/// Uses fresh tokens, and refreshes them a minute before they expire.
fn adopt(auth: Auth, r: LoginResponse) {
    api::set_token(Some(r.access_token.clone()));
    remember(Some(&r.refresh_token));
    let refresh = r.refresh_token.clone();
    auth.session.set(Some(Session {
        username: r.username,
        role: r.role,
        refresh: Some(r.refresh_token),
    }));
    let left = js_sys::Date::parse(&r.expires_at) - js_sys::Date::now() - 60_000.0;
    let delay = if left.is_finite() {
        left.max(5_000.0)
    } else {
        60_000.0
    };
    set_timeout(
        move || {
            let current = auth.session.get_untracked().and_then(|s| s.refresh);
            if current.as_deref() != Some(refresh.as_str()) {
                return; // Signed out (or in again) meanwhile.
            }
            spawn_local(async move {
                match api::client().refresh(&refresh).await {
                    Ok(r) => adopt(auth, r),
                    Err(_) => forget(auth),
                }
            });
        },
        Duration::from_millis(delay as u64),
    );
}

/// Signs out in this tab.
fn forget(auth: Auth) {
    api::set_token(None);
    remember(None);
    auth.session.set(None);
}

/// The start-up check: a server without authentication lets everyone in;
/// else a refresh token from this tab signs back in silently.
pub fn start(auth: Auth) {
    spawn_local(async move {
        if let Ok(w) = api::client().whoami().await {
            if w.auth_disabled {
                auth.session.set(Some(Session {
                    username: w.username,
                    role: w.role,
                    refresh: None,
                }));
                auth.checked.set(true);
                return;
            }
        }
        let stored = storage().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten());
        if let Some(refresh) = stored {
            match api::client().refresh(&refresh).await {
                Ok(r) => adopt(auth, r),
                Err(_) => remember(None),
            }
        }
        auth.checked.set(true);
    });
}

#[component]
pub fn Login() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let user = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        error.set(None);
        let (u, p) = (user.get_untracked(), password.get_untracked());
        spawn_local(async move {
            match api::client().sign_in(&u, &p).await {
                Ok(r) => {
                    password.set(String::new());
                    adopt(auth, r);
                }
                Err(e) => error.set(Some(e.to_string())),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="login" data-testid="login-form" on:submit=submit>
            <h2>"Sign in"</h2>
            <label>"User name"
                <input type="text" autocomplete="username" required data-testid="login-user"
                    prop:value=move || user.get() on:input=move |ev| user.set(event_target_value(&ev)) />
            </label>
            <label>"Password"
                <input type="password" autocomplete="current-password" required data-testid="login-password"
                    prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev)) />
            </label>
            <button type="submit" data-testid="login-submit" disabled=move || busy.get()>"Sign in"</button>
            <Show when=move || error.get().is_some()>
                <p class="login-error" role="alert" data-testid="login-error">{move || error.get().unwrap_or_default()}</p>
            </Show>
        </form>
    }
}

/// The signed-in user's name, their storage use (reloaded with the file
/// list: `refresh`) and a logout button.
#[component]
pub fn UserMenu(refresh: RwSignal<u64>) -> impl IntoView {
    let auth = expect_context::<Auth>();
    // Keyed on the user, so a silent token refresh keeps the figures.
    let user = Memo::new(move |_| auth.session.get().map(|s| s.username));
    let logout = move |_| {
        let refresh = auth
            .session
            .get_untracked()
            .and_then(|s| s.refresh)
            .unwrap_or_default();
        spawn_local(async move {
            // Ends the login on the server: its tokens and download links die.
            let _ = api::client().sign_out(&refresh).await;
            forget(auth);
        });
    };
    view! {
        <span class="user">
            <span data-testid="whoami">{move || user.get().unwrap_or_default()}</span>
            {move || user.get().map(|_| view! { <quota::Quota refresh=refresh /> })}
            <Show when=move || auth.session.get().is_some_and(|s| s.refresh.is_some())>
                <button class="link" data-testid="logout" on:click=logout>"Sign out"</button>
            </Show>
        </span>
    }
}
