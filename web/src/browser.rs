//! The file browser: one folder at a time (the server lists it, so a
//! folder of a large tree costs only its own entries), sorting, paging,
//! replica health, downloads of any version, version history with
//! restore, delete with undo, new folders, renaming and moving files and
//! folders, deleting folders (every file restorable), and a Share button
//! per file (the dialog lives in [`crate::shares`]).

use crate::api;
use crate::shares::ShareDialog;
use crate::Banner;
use coffer_client::format::human_size;
use coffer_client::{Metadata, PutMode};
use leptos::prelude::*;
use leptos::task::spawn_local;

const PAGE: usize = 50;

/// Asks for a name with the browser's own dialog; `None` if cancelled or
/// left empty.
fn ask(message: &str, default: &str) -> Option<String> {
    web_sys::window()?
        .prompt_with_message_and_default(message, default)
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Asks the browser's own yes-or-no question.
fn confirm(message: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.confirm_with_message(message).ok())
        .unwrap_or(false)
}

/// A name typed in folder `open` (`"a/"`, or `""` at the top): `x/y` is
/// below `open`, `/x/y` from the top.
fn typed_path(open: &str, typed: &str) -> String {
    match typed.strip_prefix('/') {
        Some(top) => top.to_string(),
        None => format!("{open}{typed}"),
    }
}

/// "1 file", "2 files".
fn files(n: u64) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}

/// The folder a path is in, as a prefix (`"a/"`, or `""` at the top).
fn folder_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..=i])
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Name,
    Size,
    Time,
}

/// One row: a folder under the current one (its name, its full prefix),
/// or a file in it.
#[derive(Clone, PartialEq)]
enum Entry {
    Folder(String, String),
    File(Metadata),
}

/// The rows of one folder: its sub-folders (by name, in order), then its
/// files in the chosen order.
fn entries(listing: &Listing, sort: SortBy, descending: bool) -> Vec<Entry> {
    let mut here = listing.files.clone();
    here.sort_by(|a, b| {
        let o = match sort {
            SortBy::Name => a.file_name.cmp(&b.file_name),
            SortBy::Size => a.size.cmp(&b.size),
            SortBy::Time => a.upload_time.cmp(&b.upload_time),
        };
        if descending {
            o.reverse()
        } else {
            o
        }
    });
    let folders = listing.folders.iter().filter_map(|f| {
        let name = f
            .strip_prefix(listing.folder.as_str())?
            .trim_end_matches('/');
        (!name.is_empty()).then(|| Entry::Folder(name.to_string(), f.clone()))
    });
    folders.chain(here.into_iter().map(Entry::File)).collect()
}

/// One folder as the server listed it (ListFiles with a delimiter: the
/// files directly in it and its sub-folders, nothing deeper).
#[derive(Clone, Default, PartialEq)]
struct Listing {
    folder: String,
    files: Vec<Metadata>,
    folders: Vec<String>,
}

fn health(m: &Metadata) -> (String, &'static str) {
    match &m.replica_health {
        Some(h) if h.chunks == 0 || h.fully_replicated == h.chunks => ("healthy".into(), "ok"),
        Some(h) if h.unavailable > 0 => (format!("{} chunks unavailable", h.unavailable), "bad"),
        Some(h) => (
            format!(
                "{} of {} chunks under-replicated",
                h.under_replicated, h.chunks
            ),
            "warn",
        ),
        None => ("unknown".into(), "warn"),
    }
}

#[component]
pub fn Browser(refresh: RwSignal<u64>) -> impl IntoView {
    let banner = expect_context::<Banner>();
    crate::live::follow(refresh);
    let listing = RwSignal::new(Listing::default());
    let loading = RwSignal::new(true);
    let folder = RwSignal::new(String::new());
    let sort = RwSignal::new((SortBy::Name, false));
    let page = RwSignal::new(0usize);
    let history = RwSignal::new(None::<(String, Vec<Metadata>)>);
    let undo = RwSignal::new(None::<(String, u64)>);
    // The file (name, version number) the share dialog is open for.
    let sharing = RwSignal::new(None::<(String, u64)>);
    // What the last folder action did, for a status line.
    let notice = RwSignal::new(None::<String>);

    // Only the open folder is fetched, again on every change the feed
    // reports; an answer for a folder no longer open is dropped.
    Effect::new(move |_| {
        refresh.track();
        let open = folder.get();
        if listing.get_untracked().folder != open {
            loading.set(true);
        }
        spawn_local(async move {
            match api::client().list_folder(&open).await {
                Ok((files, folders)) if folder.get_untracked() == open => {
                    listing.set(Listing {
                        folder: open,
                        files,
                        folders,
                    });
                    loading.set(false);
                }
                Ok(_) => {}
                Err(e) => banner.0.set(Some(format!("Cannot list files: {e}"))),
            }
        });
    });

    // Until the open folder's listing arrives, no rows (never the last
    // folder's rows under the new folder's name).
    let rows = Memo::new(move |_| {
        let (by, desc) = sort.get();
        let listing = listing.get();
        if listing.folder == folder.get() {
            entries(&listing, by, desc)
        } else {
            Vec::new()
        }
    });
    let pages = move || rows.get().len().div_ceil(PAGE).max(1);
    let visible = move || {
        let p = page.get().min(pages() - 1);
        rows.get()
            .into_iter()
            .skip(p * PAGE)
            .take(PAGE)
            .collect::<Vec<_>>()
    };

    let sort_by = move |by: SortBy| {
        sort.update(|s| *s = if s.0 == by { (by, !s.1) } else { (by, false) });
        page.set(0);
    };
    let open_history = move |name: String| {
        spawn_local(async move {
            match api::client().versions(&name).await {
                Ok(v) => history.set(Some((name, v))),
                Err(e) => banner
                    .0
                    .set(Some(format!("Cannot load versions of {name}: {e}"))),
            }
        });
    };
    let restore = move |name: String, version: u64| {
        spawn_local(async move {
            match api::client().restore(&name, version).await {
                Ok(_) => {
                    undo.set(None);
                    refresh.update(|n| *n += 1);
                    if history.get_untracked().is_some_and(|(h, _)| h == name) {
                        open_history(name);
                    }
                }
                Err(e) => banner.0.set(Some(format!("Cannot restore {name}: {e}"))),
            }
        });
    };
    let download = move |name: String, version: u64| {
        spawn_local(async move {
            if let Err(e) = api::start_download(&name, version).await {
                banner.0.set(Some(format!("Cannot download {name}: {e}")));
            }
        });
    };
    let delete = move |name: String| {
        spawn_local(async move {
            match api::client().delete(&name, PutMode::Overwrite).await {
                Ok(latest) => {
                    undo.set(Some((name, latest)));
                    history.set(None);
                    refresh.update(|n| *n += 1);
                }
                Err(e) => banner.0.set(Some(format!("Cannot delete {name}: {e}"))),
            }
        });
    };

    // Folders and names: each one call, the listing follows the feed.
    let done = move |message: String| {
        notice.set(Some(message));
        history.set(None);
        refresh.update(|n| *n += 1);
    };
    let new_folder = move |_| {
        let open = folder.get_untracked();
        let Some(name) = ask("Name of the new folder", "") else {
            return;
        };
        let path = typed_path(&open, &name);
        spawn_local(async move {
            match api::client().make_folder(&path).await {
                Ok(made) => done(format!("Made folder {made}")),
                Err(e) => banner
                    .0
                    .set(Some(format!("Cannot make folder {path}: {e}"))),
            }
        });
    };
    let rename_file = move |name: String| {
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        let Some(typed) = ask(
            "New name (a/b moves it into folder a; /a from the top)",
            &base,
        ) else {
            return;
        };
        let to = typed_path(folder_of(&name), &typed);
        if to == name {
            return;
        }
        spawn_local(async move {
            match api::client()
                .move_file(&name, &to, PutMode::Overwrite)
                .await
            {
                Ok(m) => done(format!("Moved {name} to {}", m.file_name)),
                Err(e) => banner.0.set(Some(format!("Cannot move {name}: {e}"))),
            }
        });
    };
    let rename_folder = move |prefix: String| {
        let from = prefix.trim_end_matches('/').to_string();
        let base = from.rsplit('/').next().unwrap_or(&from).to_string();
        let Some(typed) = ask("New name of the folder (/a moves it to the top)", &base) else {
            return;
        };
        let to = typed_path(folder_of(&from), &typed);
        if to == from {
            return;
        }
        spawn_local(async move {
            match api::client().move_folder(&from, &to).await {
                Ok(n) => done(format!("Moved folder {from} to {to} ({})", files(n))),
                Err(e) => banner
                    .0
                    .set(Some(format!("Cannot move folder {from}: {e}"))),
            }
        });
    };
    let delete_folder = move |prefix: String| {
        let path = prefix.trim_end_matches('/').to_string();
        if !confirm(&format!(
            "Delete the folder {path} and everything in it? Each file stays restorable from its versions."
        )) {
            return;
        }
        spawn_local(async move {
            match api::client().delete_folder(&path).await {
                Ok(n) => done(format!(
                    "Deleted folder {path} ({}, each restorable from its versions)",
                    files(n)
                )),
                Err(e) => banner
                    .0
                    .set(Some(format!("Cannot delete folder {path}: {e}"))),
            }
        });
    };

    let crumbs = move || {
        let f = folder.get();
        let mut out = vec![("All files".to_string(), String::new())];
        let mut acc = String::new();
        for seg in f.split('/').filter(|s| !s.is_empty()) {
            acc.push_str(seg);
            acc.push('/');
            out.push((seg.to_string(), acc.clone()));
        }
        out
    };
    let arrow = move |by: SortBy| {
        let (s, desc) = sort.get();
        if s != by {
            ""
        } else if desc {
            " ▼"
        } else {
            " ▲"
        }
    };

    view! {
        <section class="browser">
            <nav class="crumbs" aria-label="Folder">
                {move || {
                    crumbs()
                        .into_iter()
                        .map(|(label, target)| {
                            view! {
                                <button class="link" on:click=move |_| {
                                    folder.set(target.clone());
                                    page.set(0);
                                }>{label}</button>
                                <span class="sep">"/"</span>
                            }
                        })
                        .collect_view()
                }}
                <button class="new-folder" data-testid="new-folder" on:click=new_folder>"New folder"</button>
            </nav>
            <Show when=move || notice.get().is_some()>
                <div class="undo" role="status" data-testid="notice">
                    {move || notice.get().unwrap_or_default()}
                </div>
            </Show>
            <Show when=move || undo.get().is_some()>
                <div class="undo" role="status" data-testid="undo-bar">
                    {move || format!("Deleted {}", undo.get().map(|u| u.0).unwrap_or_default())}
                    <button data-testid="undo" on:click=move |_| {
                        if let Some((name, v)) = undo.get_untracked() {
                            restore(name, v);
                        }
                    }>"Undo"</button>
                </div>
            </Show>
            <table class="files" data-testid="file-table">
                <thead>
                    <tr>
                        <th><button class="link" on:click=move |_| sort_by(SortBy::Name)>"Name" {move || arrow(SortBy::Name)}</button></th>
                        <th class="num"><button class="link" on:click=move |_| sort_by(SortBy::Size)>"Size" {move || arrow(SortBy::Size)}</button></th>
                        <th class="num">"Version"</th>
                        <th><button class="link" on:click=move |_| sort_by(SortBy::Time)>"Uploaded" {move || arrow(SortBy::Time)}</button></th>
                        <th>"Replicas"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    <Show when=move || !loading.get() && rows.get().is_empty()>
                        <tr><td colspan="6" class="empty">"No files yet. Drop some above."</td></tr>
                    </Show>
                    {move || {
                        visible()
                            .into_iter()
                            .map(|entry| match entry {
                                Entry::Folder(sub, target) => {
                                    let (t1, t2) = (target.clone(), target.clone());
                                    view! {
                                        <tr class="folder" data-testid="folder-row" data-name=sub.clone()>
                                            <td colspan="3">
                                                <span class="folder-icon" aria-hidden="true">"▸"</span>
                                                <button class="link" on:click=move |_| {
                                                    folder.set(target.clone());
                                                    page.set(0);
                                                }>{format!("{sub}/")}</button>
                                            </td>
                                            // Under Uploaded and Replicas, which narrow screens hide.
                                            <td class="wide" colspan="2"></td>
                                            <td class="actions">
                                                <button class="link" data-testid="rename-folder"
                                                    on:click=move |_| rename_folder(t1.clone())>"Rename"</button>
                                                <button class="link danger" data-testid="delete-folder"
                                                    on:click=move |_| delete_folder(t2.clone())>"Delete"</button>
                                            </td>
                                        </tr>
                                    }
                                        .into_any()
                                }
                                Entry::File(m) => {
                                    let name = m.file_name.clone();
                                    let base = name.rsplit('/').next().unwrap_or(&name).to_string();
                                    let (label, class) = health(&m);
                                    let (n1, n2, n3, n4, n5) = (name.clone(), name.clone(), name.clone(), name.clone(), name.clone());
                                    let number = m.version_number;
                                    view! {
                                        <tr data-testid="file-row" data-name=name.clone() data-size=m.size.to_string()
                                            data-version=m.version.clone()>
                                            <td class="name">{base}</td>
                                            <td class="num">{human_size(m.size)}</td>
                                            <td class="num">{m.version.clone()}</td>
                                            <td>{api::short_time(&m.upload_time)}</td>
                                            <td><span class=format!("health {class}")>{label}</span></td>
                                            <td class="actions">
                                                <a href="#" data-testid="download"
                                                    on:click=move |ev| { ev.prevent_default(); download(n3.clone(), number) }>"Download"</a>
                                                <button class="link" data-testid="history"
                                                    on:click=move |_| open_history(n1.clone())>"Versions"</button>
                                                <button class="link" data-testid="share"
                                                    on:click=move |_| sharing.set(Some((n4.clone(), number)))>"Share"</button>
                                                <button class="link" data-testid="rename"
                                                    on:click=move |_| rename_file(n5.clone())>"Rename"</button>
                                                <button class="link danger" data-testid="delete"
                                                    on:click=move |_| delete(n2.clone())>"Delete"</button>
                                            </td>
                                        </tr>
                                    }
                                        .into_any()
                                }
                            })
                            .collect_view()
                    }}
                </tbody>
            </table>
            <div class="pager">
                <button disabled=move || { page.get() == 0 } on:click=move |_| page.update(|p| *p = p.saturating_sub(1))>"Previous"</button>
                <span>{move || format!("Page {} of {}", page.get().min(pages() - 1) + 1, pages())}</span>
                <button disabled=move || { page.get() + 1 >= pages() } on:click=move |_| page.update(|p| *p += 1)>"Next"</button>
            </div>
            <Show when=move || history.get().is_some()>
                <aside class="history" data-testid="history-panel" aria-label="Version history">
                    <h2>{move || format!("Versions of {}", history.get().map(|h| h.0).unwrap_or_default())}</h2>
                    <button class="link close" on:click=move |_| history.set(None) aria-label="Close">"×"</button>
                    <ul>
                        {move || {
                            let Some((name, versions)) = history.get() else { return Vec::new() };
                            versions
                                .into_iter()
                                .map(|v| {
                                    let (n, nd, number) = (name.clone(), name.clone(), v.version_number);
                                    view! {
                                        <li data-testid="version-row" data-version=v.version.clone()>
                                            <span class="num">{format!("v{}", v.version)}</span>
                                            <span>{human_size(v.size)}</span>
                                            <span>{api::short_time(&v.upload_time)}</span>
                                            <a href="#" on:click=move |ev| { ev.prevent_default(); download(nd.clone(), number) }>"Download"</a>
                                            <button class="link" data-testid="restore"
                                                on:click=move |_| restore(n.clone(), number)>"Restore"</button>
                                        </li>
                                    }
                                })
                                .collect::<Vec<_>>()
                        }}
                    </ul>
                </aside>
            </Show>
            <ShareDialog target=sharing />
        </section>
    }
}
