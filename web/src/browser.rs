//! The file browser: one folder at a time (the server lists it, so a
//! folder of a large tree costs only its own entries), sorting, paging,
//! replica health, downloads of any version, version history with
//! restore and comparison, delete with undo, new folders, renaming and
//! moving files and folders, deleting folders (every file restorable),
//! search by name, a selection (click, shift-click, ctrl-click, keys)
//! to download as one zip, move or delete, a preview of each file
//! ([`crate::viewer`]) and a Share button per file (the dialog lives in
//! [`crate::shares`]).

use crate::api;
use crate::diff::Compare;
use crate::keys::{typing, Help};
use crate::shares::ShareDialog;
use crate::viewer::{Thumbnail, Viewer};
use crate::Banner;
use coffer_client::format::human_size;
use coffer_client::{Metadata, PutMode};
use coffer_proto::media::{media, Media};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::BTreeSet;

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

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum SortBy {
    #[default]
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

/// The rows of one folder: its sub-folders (by name, reversed with a
/// descending sort by name), then its files in the order the server sent
/// them.
fn entries(listing: &Listing) -> Vec<Entry> {
    let mut folders: Vec<Entry> = listing
        .folders
        .iter()
        .filter_map(|f| {
            let name = f
                .strip_prefix(listing.folder.as_str())?
                .trim_end_matches('/');
            (!name.is_empty()).then(|| Entry::Folder(name.to_string(), f.clone()))
        })
        .collect();
    if listing.order == (SortBy::Name, true) {
        folders.reverse();
    }
    folders
        .into_iter()
        .chain(listing.files.iter().cloned().map(Entry::File))
        .collect()
}

impl SortBy {
    /// The server's name for the order.
    fn wire(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::Size => "size",
            SortBy::Time => "time",
        }
    }
}

/// Files a listing page brings.
const FOLDER_PAGE: u32 = 1000;
/// Rows drawn beyond the screen's, above and below.
const OVERSCAN: usize = 20;
/// Rows drawn before the first measurement.
const FIRST_WINDOW: usize = 80;

/// One folder as the server listed it (ListFiles with a delimiter: the
/// files directly in it and its sub-folders, nothing deeper).
#[derive(Clone, Default, PartialEq)]
struct Listing {
    folder: String,
    order: (SortBy, bool),
    files: Vec<Metadata>,
    folders: Vec<String>,
    /// The token of the next page of files; empty once all are here.
    next: String,
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

impl Entry {
    /// The name a selection holds: a file's path, or a folder's prefix
    /// (ending in `/`, which the zip route reads as "a folder").
    fn key(&self) -> String {
        match self {
            Entry::Folder(_, prefix) => prefix.clone(),
            Entry::File(m) => m.file_name.clone(),
        }
    }
}

/// What a drawn row shows, as a key: its entry, the file's version, and
/// whether names are shown whole (search results) or within the folder.
fn row_identity(e: &Entry, searching: bool) -> (String, String, bool) {
    let version = match e {
        Entry::Folder(..) => String::new(),
        Entry::File(m) => format!("{}/{}", m.version, health(m).0),
    };
    (e.key(), version, searching)
}

/// Search results: the query they answer, the files found so far and the
/// token of the next page (empty when there is none).
#[derive(Clone, Default, PartialEq)]
struct Found {
    query: String,
    files: Vec<Metadata>,
    next: String,
}

/// Results a search page brings.
const SEARCH_PAGE: u32 = 100;

/// The selection after a click on row `at` of `keys`: with Shift, the
/// range from the anchor; with Ctrl (or ⌘) or on the checkbox, that row
/// toggled; else only that row.
fn clicked(
    chosen: &BTreeSet<String>,
    keys: &[String],
    anchor: Option<&str>,
    at: usize,
    shift: bool,
    toggle: bool,
) -> BTreeSet<String> {
    let key = &keys[at];
    let from = anchor.and_then(|a| keys.iter().position(|k| k == a));
    match (shift, from) {
        (true, Some(from)) => {
            let (lo, hi) = (from.min(at), from.max(at));
            let mut out = chosen.clone();
            out.extend(keys[lo..=hi].iter().cloned());
            out
        }
        _ if toggle => {
            let mut out = chosen.clone();
            if !out.remove(key) {
                out.insert(key.clone());
            }
            out
        }
        _ => BTreeSet::from([key.clone()]),
    }
}

/// The drag data type of rows dragged within the browser.
const DRAGGED: &str = "application/x-coffer-paths";

/// Whether a drag carries rows of this browser (not files from outside).
fn dragged_rows(ev: &web_sys::DragEvent) -> bool {
    ev.data_transfer()
        .is_some_and(|dt| dt.types().includes(&DRAGGED.into(), 0))
}

/// Whether search results are shown instead of the folder.
fn searching_untracked(found: RwSignal<Option<Found>>) -> bool {
    found.with_untracked(Option::is_some)
}

/// A Shift-click extends the selection, not the page's text selection.
fn no_text_selection(ev: leptos::ev::MouseEvent) {
    if ev.shift_key() {
        ev.prevent_default();
    }
}

/// Moves the keyboard focus `by` rows from the focused one.
fn focus_row(by: i32) {
    use wasm_bindgen::JsCast;
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(rows) = doc.query_selector_all("tr[data-row]") else {
        return;
    };
    let active = doc.active_element();
    let mut at = None;
    for i in 0..rows.length() {
        if let (Some(r), Some(a)) = (rows.item(i), active.as_ref()) {
            if r.is_same_node(Some(a)) {
                at = Some(i as i32);
            }
        }
    }
    let next = at.map_or(0, |i| (i + by).clamp(0, rows.length() as i32 - 1));
    if let Some(el) = rows
        .item(next as u32)
        .and_then(|n| n.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = el.focus();
    }
}

#[component]
pub fn Browser(refresh: RwSignal<u64>) -> impl IntoView {
    let banner = expect_context::<Banner>();
    crate::live::follow(refresh);
    let listing = RwSignal::new(Listing::default());
    let loading = RwSignal::new(true);
    // The open folder, shared with the uploads, which land in it.
    let folder = expect_context::<crate::uploads::OpenFolder>().0;
    let sort = RwSignal::new((SortBy::Name, false));
    // The rows drawn: a window over the listing, moved as the page
    // scrolls, and the height a row takes on screen.
    let window = RwSignal::new((0usize, FIRST_WINDOW));
    let row_height = RwSignal::new(48.0f64);
    let body_ref = NodeRef::<leptos::html::Tbody>::new();
    let more_loading = RwSignal::new(false);
    let history = RwSignal::new(None::<(String, Vec<Metadata>)>);
    let undo = RwSignal::new(None::<(String, u64)>);
    // The file (name, version number) the share dialog is open for.
    let sharing = RwSignal::new(None::<(String, u64)>);
    // What the last folder action did, for a status line.
    let notice = RwSignal::new(None::<String>);
    // The selection (files' paths, folders' prefixes) and the row a
    // Shift-click extends from.
    let selected = RwSignal::new(BTreeSet::<String>::new());
    let anchor = RwSignal::new(None::<String>);
    // Search: what is typed, and the results for it.
    let query = RwSignal::new(String::new());
    let found = RwSignal::new(None::<Found>);
    let search_box = NodeRef::<leptos::html::Input>::new();
    // The file being previewed; two versions being compared; the
    // shortcut list.
    let viewing = RwSignal::new(None::<String>);
    let comparing = RwSignal::new(None::<(String, u64, u64)>);
    let picked = RwSignal::new(BTreeSet::<u64>::new());
    let help = RwSignal::new(false);

    // Only the open folder is fetched, in the order chosen, a page at a
    // time; on every change the feed reports, as many files again as
    // were here. An answer for a folder or order no longer shown is
    // dropped.
    Effect::new(move |_| {
        refresh.track();
        let open = folder.get();
        let order = sort.get();
        let now = listing.get_untracked();
        let same = now.folder == open && now.order == order;
        if !same {
            loading.set(true);
            if now.folder != open {
                selected.set(BTreeSet::new());
            }
            window.set((0, FIRST_WINDOW));
        }
        let want = if same {
            now.files.len().clamp(1, 5000)
        } else {
            1
        };
        spawn_local(async move {
            let c = api::client();
            let mut got = Listing {
                folder: open.clone(),
                order,
                ..Listing::default()
            };
            let mut first = true;
            loop {
                match c
                    .folder_page(&open, order.0.wire(), order.1, &got.next, FOLDER_PAGE)
                    .await
                {
                    Ok((files, folders, next)) => {
                        got.files.extend(files);
                        if first {
                            got.folders = folders;
                            first = false;
                        }
                        got.next = next;
                    }
                    Err(e) => {
                        banner.0.set(Some(format!("Cannot list files: {e}")));
                        return;
                    }
                }
                if got.next.is_empty() || got.files.len() >= want {
                    break;
                }
            }
            if folder.get_untracked() == open && sort.get_untracked() == order {
                listing.set(got);
                loading.set(false);
            }
        });
    });

    // A search runs once typing pauses, and again when files change; an
    // answer to an older query is dropped.
    Effect::new(move |_| {
        refresh.track();
        let q = query.get().trim().to_string();
        if q.is_empty() {
            found.set(None);
            return;
        }
        spawn_local(async move {
            gloo_timers::future::TimeoutFuture::new(200).await;
            if query.get_untracked().trim() != q {
                return;
            }
            match api::client().search("", &q, "", SEARCH_PAGE).await {
                Ok((files, next)) if query.get_untracked().trim() == q => {
                    window.set((0, FIRST_WINDOW));
                    found.set(Some(Found {
                        query: q,
                        files,
                        next,
                    }));
                }
                Ok(_) => {}
                Err(e) => banner.0.set(Some(format!("Cannot search: {e}"))),
            }
        });
    });
    let more_results = move |_| {
        let Some(f) = found.get_untracked() else {
            return;
        };
        spawn_local(async move {
            match api::client()
                .search("", &f.query, &f.next, SEARCH_PAGE)
                .await
            {
                Ok((files, next)) => found.update(|now| {
                    if let Some(now) = now.as_mut().filter(|n| n.query == f.query) {
                        now.files.extend(files);
                        now.next = next;
                    }
                }),
                Err(e) => banner.0.set(Some(format!("Cannot search: {e}"))),
            }
        });
    };

    // Until the open folder's listing arrives, no rows (never the last
    // folder's rows under the new folder's name). While searching, the
    // results.
    let rows = Memo::new(move |_| {
        if let Some(f) = found.get() {
            return f.files.into_iter().map(Entry::File).collect();
        }
        let listing = listing.get();
        if listing.folder == folder.get() && listing.order == sort.get() {
            entries(&listing)
        } else {
            Vec::new()
        }
    });
    let searching = move || found.with(Option::is_some);
    let visible = move || {
        let (a, b) = window.get();
        rows.with(|r| r[a.min(r.len())..b.min(r.len())].to_vec())
    };
    let all_keys = move || rows.with(|r| r.iter().map(Entry::key).collect::<Vec<_>>());
    // The files listed, in order, for the viewer's previous and next.
    let siblings = Signal::derive(move || {
        rows.with(|r| {
            r.iter()
                .filter_map(|e| match e {
                    Entry::File(m) => Some(m.file_name.clone()),
                    Entry::Folder(..) => None,
                })
                .collect::<Vec<_>>()
        })
    });

    // The window follows the scroll: rows above the screen and below it
    // are spacers of the height they would take.
    let measure = move || {
        use wasm_bindgen::JsCast;
        let (Some(body), Some(win)) = (body_ref.get_untracked(), web_sys::window()) else {
            return;
        };
        if let Some(first) = body
            .query_selector("tr[data-row]")
            .ok()
            .flatten()
            .and_then(|r| r.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let h = f64::from(first.offset_height());
            if h > 0.0 && (h - row_height.get_untracked()).abs() > 0.5 {
                row_height.set(h);
            }
        }
        let h = row_height.get_untracked();
        let top = body.get_bounding_client_rect().top();
        let screen = win
            .inner_height()
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(800.0);
        let len = rows.with_untracked(Vec::len);
        let first = ((-top) / h).floor().max(0.0) as usize;
        let start = first.saturating_sub(OVERSCAN).min(len);
        let end = (first + (screen / h).ceil() as usize + OVERSCAN)
            .min(len)
            .max(start);
        if window.get_untracked() != (start, end) {
            window.set((start, end));
        }
    };
    let on_scroll = window_event_listener(leptos::ev::scroll, move |_| measure());
    let on_resize = window_event_listener(leptos::ev::resize, move |_| measure());
    on_cleanup(move || {
        on_scroll.remove();
        on_resize.remove();
    });
    Effect::new(move |_| {
        rows.track();
        request_animation_frame(measure);
    });
    // The next page of files, once the window nears the end of those here.
    let load_more = move || {
        let now = listing.get_untracked();
        if now.next.is_empty() || more_loading.get_untracked() || searching_untracked(found) {
            return;
        }
        more_loading.set(true);
        spawn_local(async move {
            let page = api::client()
                .folder_page(
                    &now.folder,
                    now.order.0.wire(),
                    now.order.1,
                    &now.next,
                    FOLDER_PAGE,
                )
                .await;
            more_loading.set(false);
            match page {
                Ok((files, _, next)) => listing.update(|l| {
                    if l.folder == now.folder && l.order == now.order && l.next == now.next {
                        l.files.extend(files);
                        l.next = next;
                    }
                }),
                Err(e) => banner.0.set(Some(format!("Cannot list files: {e}"))),
            }
        });
    };
    Effect::new(move |_| {
        let (_, end) = window.get();
        if end + 5 * OVERSCAN >= rows.with(Vec::len) {
            load_more();
        }
    });

    let sort_by = move |by: SortBy| {
        sort.update(|s| *s = if s.0 == by { (by, !s.1) } else { (by, false) });
    };
    let open_folder = move |target: String| {
        notice.set(None);
        query.set(String::new());
        found.set(None);
        folder.set(target);
    };
    let open_history = move |name: String| {
        spawn_local(async move {
            match api::client().versions(&name).await {
                Ok(v) => {
                    picked.set(BTreeSet::new());
                    history.set(Some((name, v)));
                }
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
    let zip = move |paths: Vec<String>| {
        spawn_local(async move {
            if let Err(e) = api::start_archive(&paths).await {
                banner.0.set(Some(format!("Cannot make the zip: {e}")));
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

    // The selection's own actions: each name one call, in order; the
    // first failure stops and says which.
    let delete_selected = move || {
        let chosen: Vec<String> = selected.get_untracked().into_iter().collect();
        if chosen.is_empty()
            || !confirm(&format!(
                "Delete {} selected? Each file stays restorable from its versions.",
                chosen.len()
            ))
        {
            return;
        }
        spawn_local(async move {
            let c = api::client();
            for key in &chosen {
                let r = match key.strip_suffix('/') {
                    Some(f) => c.delete_folder(f).await.map(drop),
                    None => c.delete(key, PutMode::Overwrite).await.map(drop),
                };
                if let Err(e) = r {
                    banner.0.set(Some(format!("Cannot delete {key}: {e}")));
                    break;
                }
            }
            selected.set(BTreeSet::new());
            done(format!(
                "Deleted {} (each file restorable from its versions)",
                chosen.len()
            ));
        });
    };
    // Moves `keys` (files' paths, folders' prefixes) into folder `into`
    // (no slashes at the ends; "" the top), one call each; the first
    // failure stops and says which. A folder never goes into itself.
    let move_into = move |keys: Vec<String>, into: String| {
        spawn_local(async move {
            let c = api::client();
            let mut moved = 0;
            for key in &keys {
                let name = key.trim_end_matches('/');
                let base = name.rsplit('/').next().unwrap_or(name);
                let to = if into.is_empty() {
                    base.to_string()
                } else {
                    format!("{into}/{base}")
                };
                if to == name
                    || (key.ends_with('/') && (into == name || into.starts_with(key.as_str())))
                {
                    continue;
                }
                let r = if key.ends_with('/') {
                    c.move_folder(name, &to).await.map(drop)
                } else {
                    c.move_file(name, &to, PutMode::Overwrite).await.map(drop)
                };
                if let Err(e) = r {
                    banner.0.set(Some(format!("Cannot move {name}: {e}")));
                    break;
                }
                moved += 1;
            }
            selected.set(BTreeSet::new());
            done(format!("Moved {moved} into /{into}"));
        });
    };
    let move_selected = move |_| {
        let chosen: Vec<String> = selected.get_untracked().into_iter().collect();
        let Some(typed) = ask(
            "Move the selection into folder (/ for the top, /a/b from the top)",
            &folder.get_untracked(),
        ) else {
            return;
        };
        move_into(chosen, typed.trim_matches('/').to_string());
    };
    // Dragging rows onto a folder or a breadcrumb moves them there: the
    // selection if the row dragged is in it, else that row alone.
    let drag_start = move |key: String, ev: web_sys::DragEvent| {
        let chosen = selected.get_untracked();
        let keys: Vec<String> = if chosen.contains(&key) {
            chosen.into_iter().collect()
        } else {
            vec![key]
        };
        if let Some(dt) = ev.data_transfer() {
            // Names hold no line breaks (control characters are refused).
            let _ = dt.set_data(DRAGGED, &keys.join("\n"));
            dt.set_effect_allowed("move");
        }
    };
    let drag_over = move |ev: web_sys::DragEvent| {
        if dragged_rows(&ev) {
            ev.prevent_default();
        }
    };
    let drop_into = move |into: String, ev: web_sys::DragEvent| {
        if !dragged_rows(&ev) {
            return;
        }
        ev.prevent_default();
        ev.stop_propagation();
        let keys: Vec<String> = ev
            .data_transfer()
            .and_then(|dt| dt.get_data(DRAGGED).ok())
            .map(|d| d.lines().map(str::to_string).collect())
            .unwrap_or_default();
        if !keys.is_empty() {
            move_into(keys, into.trim_matches('/').to_string());
        }
    };

    // Clicks on a row: Shift extends from the anchor, Ctrl (or ⌘) and
    // the checkbox toggle, a plain click on the row chooses it alone.
    let choose = move |key: String, shift: bool, toggle: bool| {
        let keys = all_keys();
        let Some(at) = keys.iter().position(|k| *k == key) else {
            return;
        };
        let next = clicked(
            &selected.get_untracked(),
            &keys,
            anchor.get_untracked().as_deref(),
            at,
            shift,
            toggle,
        );
        selected.set(next);
        if !shift {
            anchor.set(Some(key));
        }
    };
    let open_entry = move |e: Entry| match e {
        Entry::Folder(_, target) => open_folder(target),
        Entry::File(m) => viewing.set(Some(m.file_name)),
    };

    // Shortcuts anywhere on the page but in a field (the viewer and the
    // dialogs take their own keys first).
    let shortcuts = window_event_listener(leptos::ev::keydown, move |ev| {
        if comparing.get_untracked().is_some() && ev.key() == "Escape" {
            comparing.set(None);
        }
        if typing(&ev) || viewing.get_untracked().is_some() || comparing.get_untracked().is_some() {
            return;
        }
        let ctrl = ev.ctrl_key() || ev.meta_key();
        match ev.key().as_str() {
            "?" => help.update(|h| *h = !*h),
            "Escape" => {
                help.set(false);
                selected.set(BTreeSet::new());
            }
            "/" => {
                ev.prevent_default();
                if let Some(i) = search_box.get() {
                    let _ = i.focus();
                }
            }
            "ArrowDown" | "j" => {
                ev.prevent_default();
                focus_row(1);
            }
            "ArrowUp" | "k" => {
                ev.prevent_default();
                focus_row(-1);
            }
            "a" if ctrl => {
                ev.prevent_default();
                selected.set(rows.get_untracked().iter().map(Entry::key).collect());
            }
            "Delete" => delete_selected(),
            _ => {}
        }
    });
    on_cleanup(move || shortcuts.remove());

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
    let sorted = move |by: SortBy| {
        let (s, desc) = sort.get();
        if s != by {
            "none"
        } else if desc {
            "descending"
        } else {
            "ascending"
        }
    };
    let all_chosen = move || {
        let keys = all_keys();
        !keys.is_empty() && selected.with(|s| keys.iter().all(|k| s.contains(k)))
    };

    view! {
        <section class="browser">
            <nav class="crumbs" aria-label="Folder">
                {move || {
                    crumbs()
                        .into_iter()
                        .map(|(label, target)| {
                            view! {
                                <button class="link" data-testid="crumb" data-folder=target.clone()
                                    on:click={
                                        let t = target.clone();
                                        move |_| open_folder(t.clone())
                                    }
                                    on:dragover=drag_over
                                    on:drop=move |ev| drop_into(target.clone(), ev)>{label}</button>
                                <span class="sep" aria-hidden="true">"/"</span>
                            }
                        })
                        .collect_view()
                }}
                <button class="new-folder" data-testid="new-folder" on:click=new_folder>"New folder"</button>
                <input type="search" class="search" data-testid="search" node_ref=search_box
                    placeholder="Search by name  ( / )" aria-label="Search files by name"
                    prop:value=move || query.get()
                    on:input=move |ev| query.set(event_target_value(&ev))
                    on:keydown=move |ev| if ev.key() == "Escape" { query.set(String::new()) } />
                <button class="link" aria-label="Keyboard shortcuts" data-testid="shortcuts-button"
                    on:click=move |_| help.set(true)>"?"</button>
            </nav>
            <Show when=searching>
                <p class="muted" role="status" data-testid="search-status">{move || {
                    let f = found.get().unwrap_or_default();
                    let more = if f.next.is_empty() { "" } else { " so far" };
                    format!("{} found for “{}”{more}", files(f.files.len() as u64), f.query)
                }}</p>
            </Show>
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
            <Show when=move || !selected.with(BTreeSet::is_empty)>
                <div class="selbar" role="toolbar" aria-label="Selection" data-testid="selection-bar">
                    <span data-testid="selection-count">{move || format!("{} selected", selected.with(BTreeSet::len))}</span>
                    <button data-testid="zip-selection"
                        on:click=move |_| zip(selected.get_untracked().into_iter().collect())>"Download as zip"</button>
                    <button data-testid="move-selection" on:click=move_selected>"Move…"</button>
                    <button class="danger" data-testid="delete-selection" on:click=move |_| delete_selected()>"Delete"</button>
                    <button class="link" data-testid="clear-selection" on:click=move |_| selected.set(BTreeSet::new())>"Clear"</button>
                </div>
            </Show>
            <table class="files" data-testid="file-table">
                <caption class="sr-only">{move || if searching() { "Search results".to_string() } else { format!("Files in /{}", folder.get()) }}</caption>
                <thead>
                    <tr>
                        <th class="pick">
                            <input type="checkbox" aria-label="Select everything listed" data-testid="select-all"
                                prop:checked=all_chosen
                                on:change=move |_| {
                                    let keys = all_keys();
                                    if all_chosen() {
                                        selected.update(|s| keys.iter().for_each(|k| { s.remove(k); }));
                                    } else {
                                        selected.update(|s| s.extend(keys));
                                    }
                                } />
                        </th>
                        <th aria-sort=move || sorted(SortBy::Name)><button class="link" on:click=move |_| sort_by(SortBy::Name)>"Name" {move || arrow(SortBy::Name)}</button></th>
                        <th class="num" aria-sort=move || sorted(SortBy::Size)><button class="link" on:click=move |_| sort_by(SortBy::Size)>"Size" {move || arrow(SortBy::Size)}</button></th>
                        <th class="num ver">"Version"</th>
                        <th class="wide" aria-sort=move || sorted(SortBy::Time)><button class="link" on:click=move |_| sort_by(SortBy::Time)>"Uploaded" {move || arrow(SortBy::Time)}</button></th>
                        <th class="wide">"Replicas"</th>
                        <th><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody node_ref=body_ref>
                    <Show when=move || !loading.get() && rows.with(Vec::is_empty)>
                        <tr><td colspan="7" class="empty">{move || if searching() { "No file has that in its name." } else { "No files yet. Drop some above." }}</td></tr>
                    </Show>
                    <tr class="spacer" aria-hidden="true"
                        style:height=move || format!("{}px", window.get().0 as f64 * row_height.get())></tr>
                    // Keyed: a row that stays in the window as it moves (or
                    // through a reload) keeps its elements and thumbnail.
                    <For
                        each=visible
                        key=move |e: &Entry| row_identity(e, searching())
                        children=move |entry: Entry| {
                                let key = entry.key();
                                let (k1, k2, k3, k4) = (key.clone(), key.clone(), key.clone(), key.clone());
                                let is_chosen = move || selected.with(|s| s.contains(&k1));
                                let e1 = entry.clone();
                                let row_keys = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
                                    " " if !typing(&ev) => {
                                        ev.prevent_default();
                                        choose(k2.clone(), ev.shift_key(), true);
                                    }
                                    "Enter" if !typing(&ev) => open_entry(e1.clone()),
                                    _ => {}
                                };
                                let row_click = move |ev: leptos::ev::MouseEvent| {
                                    use wasm_bindgen::JsCast;
                                    // Buttons, links and the checkbox do their own thing.
                                    let on_control = ev
                                        .target()
                                        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                                        .is_some_and(|el| el.closest("button, a, input").ok().flatten().is_some());
                                    if !on_control {
                                        choose(k3.clone(), ev.shift_key(), ev.ctrl_key() || ev.meta_key());
                                    }
                                };
                                let checkbox_key = key.clone();
                                let label = match &entry {
                                    Entry::Folder(sub, _) => format!("Select folder {sub}"),
                                    Entry::File(m) => format!("Select {}", m.file_name),
                                };
                                let pick = view! {
                                    <td class="pick">
                                        <input type="checkbox" aria-label=label data-testid="pick"
                                            prop:checked=is_chosen.clone()
                                            on:click=move |ev: leptos::ev::MouseEvent| {
                                                choose(checkbox_key.clone(), ev.shift_key(), true);
                                            } />
                                    </td>
                                };
                                match entry {
                                    Entry::Folder(sub, target) => {
                                        let (t1, t2, t3, t4, t5) = (target.clone(), target.clone(), target.clone(), target.clone(), target.clone());
                                        view! {
                                            <tr class="folder" class:chosen=is_chosen.clone() data-testid="folder-row" data-name=sub.clone()
                                                data-row="" tabindex="0" aria-selected=move || is_chosen().to_string()
                                                draggable="true" on:dragstart=move |ev| drag_start(k4.clone(), ev)
                                                on:dragover=drag_over on:drop=move |ev| drop_into(t5.clone(), ev)
                                                on:keydown=row_keys on:click=row_click on:mousedown=no_text_selection>
                                                {pick}
                                                <td colspan="2">
                                                    <span class="folder-icon" aria-hidden="true">"▸"</span>
                                                    <button class="link" on:click=move |_| open_folder(t4.clone())>{format!("{sub}/")}</button>
                                                </td>
                                                // Under Version, Uploaded and Replicas, which narrow screens hide.
                                                <td class="ver"></td>
                                                <td class="wide" colspan="2"></td>
                                                <td class="actions">
                                                    <button class="link" data-testid="zip-folder"
                                                        on:click=move |_| zip(vec![t3.clone()])>"Download"</button>
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
                                        let shown = if searching() {
                                            name.clone()
                                        } else {
                                            name.rsplit('/').next().unwrap_or(&name).to_string()
                                        };
                                        let (label, class) = health(&m);
                                        let (n1, n2, n3, n4, n5, n6) = (name.clone(), name.clone(), name.clone(), name.clone(), name.clone(), name.clone());
                                        let number = m.version_number;
                                        view! {
                                            <tr class:chosen=is_chosen.clone() data-testid="file-row" data-name=name.clone() data-size=m.size.to_string()
                                                data-version=m.version.clone() data-row="" tabindex="0" aria-selected=move || is_chosen().to_string()
                                                draggable="true" on:dragstart=move |ev| drag_start(k4.clone(), ev)
                                                on:keydown=row_keys on:click=row_click on:mousedown=no_text_selection>
                                                {pick}
                                                <td class="name">
                                                    {matches!(media(&name), Media::Image(_)).then(|| view! { <Thumbnail name=name.clone() /> })}
                                                    <button class="link name" data-testid="open"
                                                        title="Preview" on:click=move |_| viewing.set(Some(n6.clone()))>{shown}</button>
                                                </td>
                                                <td class="num">{human_size(m.size)}</td>
                                                <td class="num ver">{m.version.clone()}</td>
                                                <td class="wide">{api::short_time(&m.upload_time)}</td>
                                                <td class="wide"><span class=format!("health {class}")>{label}</span></td>
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
                                }
                        }
                    />
                    <tr class="spacer" aria-hidden="true"
                        style:height=move || {
                            let below = rows.with(Vec::len).saturating_sub(window.get().1);
                            format!("{}px", below as f64 * row_height.get())
                        }></tr>
                </tbody>
            </table>
            <Show when=move || found.with(|f| f.as_ref().is_some_and(|f| !f.next.is_empty()))>
                <button class="more" data-testid="more-results" on:click=more_results>"More results"</button>
            </Show>
            <p class="muted listing-count" role="status" data-testid="listing-count">{move || {
                if searching() {
                    return String::new();
                }
                let l = listing.get();
                let more = if l.next.is_empty() { "" } else { ", more as you scroll" };
                format!("{} folders, {}{more}", l.folders.len(), files(l.files.len() as u64))
            }}</p>
            <Show when=move || history.get().is_some()>
                <aside class="history" data-testid="history-panel" aria-label="Version history">
                    <h2>{move || format!("Versions of {}", history.get().map(|h| h.0).unwrap_or_default())}</h2>
                    <button class="link close" on:click=move |_| history.set(None) aria-label="Close">"×"</button>
                    <p class="muted">"Tick two versions to compare them."</p>
                    <ul>
                        {move || {
                            let Some((name, versions)) = history.get() else { return Vec::new() };
                            versions
                                .into_iter()
                                .map(|v| {
                                    let (n, nd, number) = (name.clone(), name.clone(), v.version_number);
                                    view! {
                                        <li data-testid="version-row" data-version=v.version.clone()>
                                            <input type="checkbox" data-testid="compare-pick" aria-label=format!("Compare version {}", v.version)
                                                prop:checked=move || picked.with(|p| p.contains(&number))
                                                on:change=move |_| picked.update(|p| {
                                                    if !p.remove(&number) {
                                                        p.insert(number);
                                                    }
                                                }) />
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
                    <button data-testid="compare" disabled=move || picked.with(|p| p.len() != 2)
                        on:click=move |_| {
                            let p: Vec<u64> = picked.get_untracked().into_iter().collect();
                            if let (Some((name, _)), [a, b]) = (history.get_untracked(), p.as_slice()) {
                                comparing.set(Some((name, *a, *b)));
                            }
                        }>"Compare"</button>
                </aside>
            </Show>
            <ShareDialog target=sharing />
            <Viewer target=viewing siblings=siblings />
            <Compare pair=comparing />
            <Help open=help />
        </section>
    }
}
