//! Share links: the dialog that makes one for a file version (expiry, an
//! optional password, then the URL to copy), and the list of the user's
//! links with their state and a button to revoke each live one.

use crate::{api, clipboard, Banner};
use coffer_client::pb::ShareLink;
use leptos::prelude::*;
use leptos::task::spawn_local;

const DAY: u64 = 24 * 60 * 60;

/// The expiry choices, in days, and the one the dialog starts with.
const EXPIRY_DAYS: [u64; 3] = [1, 7, 30];
const DEFAULT_DAYS: u64 = 7;

/// What the dialog and the list share (a context of the signed-in app).
#[derive(Clone, Copy)]
pub struct Shares {
    /// Whether the list is showing.
    pub open: RwSignal<bool>,
    /// Bumped when a link is made or revoked, so an open list reloads.
    changed: RwSignal<u64>,
}

impl Shares {
    /// Makes the state and provides it to the components below the caller.
    pub fn provide() -> Self {
        let shares = Shares {
            open: RwSignal::new(false),
            changed: RwSignal::new(0),
        };
        provide_context(shares);
        shares
    }

    fn changed(&self) {
        self.changed.update(|n| *n += 1);
    }
}

/// `live`, `expired` or `revoked` (revoked wins: it was the user's act).
fn state(link: &ShareLink) -> &'static str {
    if link.revoked {
        "revoked"
    } else if link.expired {
        "expired"
    } else {
        "live"
    }
}

fn days_label(days: u64) -> String {
    if days == 1 {
        "1 day".into()
    } else {
        format!("{days} days")
    }
}

/// A link's URL read-only, with a Copy button that says whether copying
/// worked; when it did not, the URL is selected for copying by hand.
/// With `focus`, the URL takes the focus (and is selected) when shown.
#[component]
fn LinkField(url: String, #[prop(optional)] focus: bool) -> impl IntoView {
    let input = NodeRef::<leptos::html::Input>::new();
    if focus {
        Effect::new(move |_| {
            if let Some(el) = input.get() {
                let _ = el.focus();
            }
        });
    }
    // None: not tried yet; Some(Err): why copying failed.
    let copied = RwSignal::new(None::<Result<(), String>>);
    let select = move || {
        if let Some(el) = input.get_untracked() {
            el.select();
        }
    };
    let text = url.clone();
    let copy = move |_| {
        let text = text.clone();
        spawn_local(async move {
            let result = clipboard::copy(&text).await;
            if result.is_err() {
                select();
            }
            copied.try_set(Some(result));
        });
    };
    view! {
        <span class="link-field">
            <input type="text" readonly class="url" data-testid="share-url" aria-label="Link"
                node_ref=input prop:value=url on:focus=move |_| select() />
            <button type="button" data-testid="copy" on:click=copy>"Copy"</button>
            <span class="copy-status" role="status" data-testid="copy-status"
                data-state=move || match copied.get() {
                    None => "",
                    Some(Ok(())) => "copied",
                    Some(Err(_)) => "failed",
                }>
                {move || match copied.get() {
                    None => String::new(),
                    Some(Ok(())) => "Copied".into(),
                    Some(Err(e)) => format!("Copy failed ({e}): the link is selected, copy it by hand."),
                }}
            </span>
        </span>
    }
}

/// The share dialog for `target` (file name, version number), while it
/// is `Some`; closing sets it to `None`. Each opening starts afresh.
#[component]
pub fn ShareDialog(target: RwSignal<Option<(String, u64)>>) -> impl IntoView {
    move || {
        target
            .get()
            .map(|(name, version)| view! { <Dialog name=name version=version target=target /> })
    }
}

#[component]
fn Dialog(name: String, version: u64, target: RwSignal<Option<(String, u64)>>) -> impl IntoView {
    let banner = expect_context::<Banner>();
    let shares = expect_context::<Shares>();
    let days = RwSignal::new(DEFAULT_DAYS);
    let password = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let made = RwSignal::new(None::<ShareLink>);
    let first = NodeRef::<leptos::html::Select>::new();
    Effect::new(move |_| {
        if let Some(el) = first.get() {
            let _ = el.focus();
        }
    });

    let file = name.clone();
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        let (file, secs, pw) = (
            file.clone(),
            days.get_untracked() * DAY,
            password.get_untracked(),
        );
        spawn_local(async move {
            match api::client().share(&file, version, secs, &pw).await {
                Ok(link) => {
                    password.try_set(String::new());
                    made.try_set(Some(link));
                    shares.changed();
                }
                Err(e) => {
                    banner.0.set(Some(format!("Cannot share {file}: {e}")));
                }
            }
            busy.try_set(false);
        });
    };
    let close = move || target.set(None);
    // On the window, not the dialog: Escape must work wherever the focus
    // went (a button that was clicked and removed leaves it on the body).
    let escape = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "Escape" {
            close();
        }
    });
    on_cleanup(move || escape.remove());
    let title = format!("Share {name} (version {version})");

    view! {
        <div class="overlay">
            <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="share-title"
                data-testid="share-dialog" data-name=name.clone()>
                <h2 id="share-title">{title}</h2>
                <button type="button" class="link close" data-testid="share-close" aria-label="Close"
                    on:click=move |_| close()>"×"</button>
                {move || match made.get() {
                    None => view! {
                        <form class="share-form" on:submit=create.clone()>
                            <label>"Expires after"
                                <select data-testid="share-expiry" node_ref=first
                                    on:change=move |ev| days.set(event_target_value(&ev).parse().unwrap_or(DEFAULT_DAYS))>
                                    {EXPIRY_DAYS
                                        .into_iter()
                                        .map(|d| view! {
                                            <option value=d.to_string() selected=d == days.get_untracked()>{days_label(d)}</option>
                                        })
                                        .collect_view()}
                                </select>
                            </label>
                            <label>"Password (optional)"
                                <input type="password" autocomplete="new-password" data-testid="share-password"
                                    prop:value=move || password.get()
                                    on:input=move |ev| password.set(event_target_value(&ev)) />
                            </label>
                            <button type="submit" data-testid="share-create" disabled=move || busy.get()>
                                "Create link"
                            </button>
                        </form>
                    }
                        .into_any(),
                    Some(link) => {
                        let note = format!(
                            "Anyone with this link{} can download this version until {} (UTC).",
                            if link.has_password { " and the password" } else { "" },
                            api::short_time(&link.expires_at),
                        );
                        view! {
                            <div class="share-made" data-testid="share-made">
                                <LinkField url=api::absolute(&link.url) focus=true />
                                <p class="note">{note}</p>
                                <button type="button" data-testid="share-done" on:click=move |_| close()>"Done"</button>
                            </div>
                        }
                            .into_any()
                    }
                }}
            </div>
        </div>
    }
}

/// The header button that shows or hides the list.
#[component]
pub fn Toggle() -> impl IntoView {
    let shares = expect_context::<Shares>();
    view! {
        <button class="link" data-testid="shares-toggle"
            aria-expanded=move || shares.open.get().to_string()
            on:click=move |_| shares.open.update(|o| *o = !*o)>"Shared links"</button>
    }
}

/// The user's links, newest first, loaded when the list opens and again
/// after each change while it is open.
#[component]
pub fn SharedLinks() -> impl IntoView {
    let banner = expect_context::<Banner>();
    let shares = expect_context::<Shares>();
    // None until the first answer.
    let links = RwSignal::new(None::<Vec<ShareLink>>);
    // The last load failed (the banner says why).
    let failed = RwSignal::new(false);
    // The next user to sign in starts with the list closed.
    on_cleanup(move || {
        shares.open.try_set(false);
    });
    Effect::new(move |_| {
        shares.changed.track();
        if !shares.open.get() {
            return;
        }
        spawn_local(async move {
            match api::client().share_links().await {
                Ok(l) => {
                    failed.try_set(false);
                    links.try_set(Some(l));
                }
                Err(e) => {
                    failed.try_set(true);
                    banner.0.set(Some(format!("Cannot list shared links: {e}")));
                }
            }
        });
    });
    let revoke = move |id: String, file: String| {
        spawn_local(async move {
            match api::client().revoke_share(&id).await {
                Ok(()) => shares.changed(),
                Err(e) => banner
                    .0
                    .set(Some(format!("Cannot revoke the link to {file}: {e}"))),
            }
        });
    };

    view! {
        <Show when=move || shares.open.get()>
            <section class="shares" data-testid="shares-panel" aria-label="Shared links">
                <h2>"Shared links"</h2>
                <button class="link close" data-testid="shares-close" aria-label="Close"
                    on:click=move |_| shares.open.set(false)>"×"</button>
                {move || match links.get() {
                    None if failed.get() => view! { <p class="empty">"The links could not be loaded."</p> }.into_any(),
                    None => view! { <p class="empty">"Loading…"</p> }.into_any(),
                    Some(l) if l.is_empty() => {
                        view! { <p class="empty">"No shared links yet: use Share on a file."</p> }.into_any()
                    }
                    Some(l) => view! {
                        <table class="links">
                            <thead>
                                <tr>
                                    <th>"File"</th>
                                    <th class="num">"Version"</th>
                                    <th>"Expires"</th>
                                    <th>"Password"</th>
                                    <th>"State"</th>
                                    <th>"Link"</th>
                                    <th></th>
                                </tr>
                            </thead>
                            <tbody>
                                {l.into_iter().map(|link| {
                                    let st = state(&link);
                                    let url = api::absolute(&link.url);
                                    let (id, file, shown) = (link.id.clone(), link.file_name.clone(), url.clone());
                                    view! {
                                        <tr data-testid="share-row" data-id=link.id.clone() data-url=url.clone()
                                            data-state=st>
                                            <td class="name">{link.file_name.clone()}</td>
                                            <td class="num">{link.version}</td>
                                            <td>{api::short_time(&link.expires_at)}</td>
                                            <td>{if link.has_password { "yes" } else { "no" }}</td>
                                            <td><span class=format!("state {st}")>{st}</span></td>
                                            <td><LinkField url=shown /></td>
                                            <td class="actions">
                                                {(st == "live").then(|| view! {
                                                    <button class="link danger" data-testid="revoke"
                                                        on:click=move |_| revoke(id.clone(), file.clone())>"Revoke"</button>
                                                })}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }
                        .into_any(),
                }}
            </section>
        </Show>
    }
}
