//! The upload panel: files and whole folders, dropped (several at once) or
//! picked, land under the folder being shown, tree and empty folders
//! included, each name checked by the rules the CLI uses. A few files go
//! at a time, each hashed in slices and sending only the chunks the
//! cluster lacks, so a drop of ten thousand files holds only handles to
//! them. One panel shows the overall progress and each file's, cancels
//! one or all, retries what failed and says what was skipped and why.

use crate::api::{self, BlobSource, SLICE};
use crate::Banner;
use coffer_client::format::human_size;
use coffer_client::upload::Planner;
use coffer_client::{Observer, PutMode};
use futures::future::{AbortHandle, Abortable};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::VecDeque;
use wasm_bindgen::JsCast;

/// Files sent at once.
const PARALLEL: usize = 3;
/// Finished files the panel keeps listed (the totals count them all).
const SHOWN_FINISHED: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Queued,
    Hashing,
    Uploading,
    Committing,
    Done,
    Failed,
    Cancelled,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Hashing => "hashing",
            Stage::Uploading => "uploading",
            Stage::Committing => "committing",
            Stage::Done => "done",
            Stage::Failed => "failed",
            Stage::Cancelled => "cancelled",
        }
    }
}

fn finished(stage: Stage) -> bool {
    matches!(stage, Stage::Done | Stage::Failed | Stage::Cancelled)
}

/// The folder the browser shows, where uploads land (`""` the top, else
/// a prefix ending in `/`).
#[derive(Clone, Copy)]
pub struct OpenFolder(pub RwSignal<String>);

#[derive(Clone)]
struct Item {
    id: u64,
    name: String,
    size: u64,
    stage: RwSignal<Stage>,
    /// (done, of) bytes of the current stage.
    progress: RwSignal<(u64, u64)>,
    note: RwSignal<String>,
    abort: StoredValue<Option<AbortHandle>>,
    /// The browser's handle on the file: no bytes until they are sent.
    file: StoredValue<web_sys::File, LocalStorage>,
}

struct Progress(Item);

impl Observer for Progress {
    fn start(&self, bytes: u64) {
        self.0.stage.set(Stage::Uploading);
        self.0.progress.set((0, bytes));
        if bytes == 0 {
            self.0.stage.set(Stage::Committing);
        }
    }
    fn advance(&self, bytes: u64) {
        self.0.progress.update(|p| p.0 += bytes);
        let (done, of) = self.0.progress.get_untracked();
        if done >= of {
            self.0.stage.set(Stage::Committing);
        }
    }
}

async fn upload(item: Item) -> Result<String, String> {
    item.stage.set(Stage::Hashing);
    let blob = gloo_file::Blob::from(item.file.get_value());
    let size = blob.size();
    let mut planner = Planner::new();
    let mut at = 0;
    while at < size {
        let end = (at + SLICE).min(size);
        planner.push(&api::read_slice(&blob, at, end).await?);
        at = end;
        item.progress.set((at, size));
    }
    let plan = planner.finish();
    let report = api::client()
        .upload(
            &item.name,
            &plan,
            &BlobSource(blob),
            None,
            PutMode::Overwrite,
            &Progress(item.clone()),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "version {}, sent {} of {}",
        report.metadata.version,
        human_size(report.bytes_sent),
        human_size(report.bytes_total)
    ))
}

/// What one drop or pick brought: files with their paths inside it, the
/// folders in it (so empty ones are made too), and names refused.
#[derive(Default)]
struct Picked {
    files: Vec<(String, web_sys::File)>,
    folders: Vec<String>,
}

/// Awaits a callback-style browser API: `call` gets the success callback.
async fn callback<T: JsCast>(call: impl FnOnce(&js_sys::Function)) -> Result<T, String> {
    let mut call = Some(call);
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(c) = call.take() {
            c(&resolve);
        }
    });
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map(|v| v.unchecked_into())
        .map_err(|_| "the browser could not read the dropped folder".to_string())
}

/// Walks a dropped entry: a file, or a folder read to its end (the
/// browser answers `readEntries` in batches, until an empty one).
async fn walk(entry: web_sys::FileSystemEntry, into: &mut Picked) -> Result<(), String> {
    let mut stack = vec![entry];
    while let Some(e) = stack.pop() {
        let path = e.full_path().trim_start_matches('/').to_string();
        if e.is_directory() {
            into.folders.push(path);
            let dir: web_sys::FileSystemDirectoryEntry = e.unchecked_into();
            let reader = dir.create_reader();
            let mut inside = Vec::new();
            loop {
                let batch: js_sys::Array =
                    callback(|ok| drop(reader.read_entries_with_callback(ok))).await?;
                if batch.length() == 0 {
                    break;
                }
                inside.extend(batch.iter().map(|v| v.unchecked_into()));
            }
            // Sent in the order listed.
            stack.extend(inside.into_iter().rev());
        } else {
            let f: web_sys::FileSystemFileEntry = e.unchecked_into();
            let file: web_sys::File = callback(|ok| f.file_with_callback(ok)).await?;
            into.files.push((path, file));
        }
    }
    Ok(())
}

/// A picked file's path inside the folder chosen (`webkitdirectory`), or
/// its bare name.
fn relative_path(file: &web_sys::File) -> String {
    js_sys::Reflect::get(file, &"webkitRelativePath".into())
        .ok()
        .and_then(|v| v.as_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| file.name())
}

#[component]
pub fn Uploads(refresh: RwSignal<u64>) -> impl IntoView {
    let banner = expect_context::<Banner>();
    let open = expect_context::<OpenFolder>();
    let items = RwSignal::new(Vec::<Item>::new());
    let queue = StoredValue::new(VecDeque::<Item>::new());
    let running = RwSignal::new(0usize);
    let next_id = StoredValue::new(0u64);
    let hovering = RwSignal::new(false);
    let skipped = RwSignal::new(Vec::<(String, String)>::new());

    // Starts queued files while fewer than PARALLEL run.
    fn pump(
        queue: StoredValue<VecDeque<Item>>,
        running: RwSignal<usize>,
        refresh: RwSignal<u64>,
        banner: Banner,
    ) {
        while running.get_untracked() < PARALLEL {
            let Some(item) = queue.try_update_value(|q| q.pop_front()).flatten() else {
                return;
            };
            if item.stage.get_untracked() != Stage::Queued {
                continue;
            }
            running.update(|n| *n += 1);
            let (handle, registration) = AbortHandle::new_pair();
            item.abort.set_value(Some(handle));
            spawn_local(async move {
                let result = Abortable::new(upload(item.clone()), registration).await;
                match result {
                    Ok(Ok(note)) => {
                        item.stage.set(Stage::Done);
                        item.note.set(note);
                        refresh.update(|n| *n += 1);
                    }
                    Ok(Err(e)) => {
                        item.stage.set(Stage::Failed);
                        banner
                            .0
                            .set(Some(format!("Upload of {} failed: {e}", item.name)));
                        item.note.set(e);
                    }
                    Err(_) => item.stage.set(Stage::Cancelled),
                }
                running.update(|n| *n -= 1);
                pump(queue, running, refresh, banner);
            });
        }
    }

    let enqueue = move |picked: Picked| {
        let here = open.0.get_untracked();
        let mut refused = Vec::new();
        let mut fresh = Vec::new();
        for (path, file) in picked.files {
            let target = format!("{here}{path}");
            match coffer_proto::paths::normalize(&target) {
                Ok(name) => {
                    let id = next_id.get_value();
                    next_id.set_value(id + 1);
                    let size = file.size() as u64;
                    fresh.push(Item {
                        id,
                        name,
                        size,
                        stage: RwSignal::new(Stage::Queued),
                        progress: RwSignal::new((0, size)),
                        note: RwSignal::new(String::new()),
                        abort: StoredValue::new(None),
                        file: StoredValue::new_local(file),
                    });
                }
                Err(why) => refused.push((target, why.to_string())),
            }
        }
        // Folders: made up front (the empty ones would not appear
        // otherwise); a name refused is skipped with its files.
        let mut folders = Vec::new();
        for f in picked.folders {
            let target = format!("{here}{f}");
            match coffer_proto::paths::normalize(&target) {
                Ok(name) => folders.push(name),
                Err(why) => refused.push((format!("{target}/"), why.to_string())),
            }
        }
        if !folders.is_empty() {
            spawn_local(async move {
                let c = api::client();
                for f in folders {
                    // Already there is what is wanted.
                    if let Err(e) = c.make_folder(&f).await {
                        if !e.to_string().contains("already exists") {
                            skipped.update(|s| s.push((format!("{f}/"), e.to_string())));
                        }
                    }
                }
                refresh.update(|n| *n += 1);
            });
        }
        skipped.update(|s| s.extend(refused));
        queue.update_value(|q| q.extend(fresh.iter().cloned()));
        items.update(|v| {
            v.extend(fresh);
            // Only so many finished files stay listed.
            let done = v
                .iter()
                .filter(|i| finished(i.stage.get_untracked()))
                .count();
            let mut drop = done.saturating_sub(SHOWN_FINISHED);
            v.retain(|i| {
                let gone = drop > 0 && finished(i.stage.get_untracked());
                if gone {
                    drop -= 1;
                }
                !gone
            });
        });
        pump(queue, running, refresh, banner);
    };

    // A picker of whole folders (the attribute has no typed setter here).
    let folder_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(i) = folder_input.get() {
            let _ = i.set_attribute("webkitdirectory", "");
        }
    });

    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        hovering.set(false);
        let Some(dt) = ev.data_transfer() else {
            return;
        };
        // Entries are taken while the event lasts; read after.
        let mut entries = Vec::new();
        let list = dt.items();
        for i in 0..list.length() {
            if let Some(e) = list
                .get(i)
                .and_then(|item| item.webkit_get_as_entry().ok().flatten())
            {
                entries.push(e);
            }
        }
        if entries.is_empty() {
            if let Some(files) = dt.files() {
                let mut p = Picked::default();
                for i in 0..files.length() {
                    if let Some(f) = files.get(i) {
                        p.files.push((f.name(), f));
                    }
                }
                enqueue(p);
            }
            return;
        }
        spawn_local(async move {
            let mut p = Picked::default();
            for e in entries {
                if let Err(err) = walk(e, &mut p).await {
                    banner.0.set(Some(err));
                }
            }
            enqueue(p);
        });
    };
    let on_pick = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = ev.target().expect("target").unchecked_into();
        if let Some(files) = input.files() {
            let mut p = Picked::default();
            for i in 0..files.length() {
                if let Some(f) = files.get(i) {
                    let path = relative_path(&f);
                    // A folder's path: its folders are made with it.
                    if let Some((dir, _)) = path.rsplit_once('/') {
                        if !p.folders.iter().any(|d| d == dir) {
                            p.folders.push(dir.to_string());
                        }
                    }
                    p.files.push((path, f));
                }
            }
            enqueue(p);
        }
        input.set_value("");
    };

    let count = move |pred: fn(Stage) -> bool| {
        items.with(|v| v.iter().filter(|i| pred(i.stage.get())).count())
    };
    let totals = move || {
        items.with(|v| {
            let (mut done, mut all) = (0u64, 0u64);
            for i in v {
                all += i.size;
                done += match i.stage.get() {
                    Stage::Done => i.size,
                    Stage::Uploading | Stage::Committing => i.progress.get().0,
                    _ => 0,
                };
            }
            (done, all)
        })
    };
    let active = move || count(|s| !finished(s)) > 0;
    let cancel_all = move |_| {
        queue.update_value(VecDeque::clear);
        items.with_untracked(|v| {
            for i in v {
                match i.stage.get_untracked() {
                    Stage::Queued => i.stage.set(Stage::Cancelled),
                    s if !finished(s) => {
                        if let Some(h) = i.abort.get_value() {
                            h.abort();
                        }
                    }
                    _ => {}
                }
            }
        });
    };
    let retry_failed = move |_| {
        let again: Vec<Item> = items.with_untracked(|v| {
            v.iter()
                .filter(|i| matches!(i.stage.get_untracked(), Stage::Failed | Stage::Cancelled))
                .cloned()
                .collect()
        });
        for i in &again {
            i.stage.set(Stage::Queued);
            i.note.set(String::new());
            i.progress.set((0, i.size));
        }
        queue.update_value(|q| q.extend(again));
        pump(queue, running, refresh, banner);
    };

    view! {
        <section class="uploads" aria-label="Uploads">
            <label
                class="dropzone"
                class:hovering=move || hovering.get()
                data-testid="dropzone"
                tabindex="0"
                on:dragover=move |ev: web_sys::DragEvent| {
                    ev.prevent_default();
                    hovering.set(true);
                }
                on:dragleave=move |_| hovering.set(false)
                on:drop=on_drop
            >
                <input type="file" multiple data-testid="file-input" on:change=on_pick />
                <strong>"Drop files or folders here"</strong>
                <span>{move || {
                    let here = open.0.get();
                    if here.is_empty() { " or click to choose".to_string() } else { format!(" (into {here}) or click to choose") }
                }}</span>
            </label>
            <label class="folder-pick">
                <input type="file" multiple data-testid="folder-input" node_ref=folder_input on:change=on_pick />
                <span class="button">"Upload a folder…"</span>
            </label>
            <Show when=move || items.with(|v| !v.is_empty()) || skipped.with(|s| !s.is_empty())>
                <div class="upload-panel" data-testid="upload-panel">
                    <div class="upload-totals" role="status" data-testid="upload-totals"
                        data-done=move || count(|s| s == Stage::Done).to_string()
                        data-failed=move || count(|s| s == Stage::Failed).to_string()
                        data-pending=move || count(|s| !finished(s)).to_string()>
                        {move || {
                            let (done, all) = totals();
                            format!(
                                "{} of {} files uploaded, {} of {}{}",
                                count(|s| s == Stage::Done),
                                items.with(Vec::len),
                                human_size(done),
                                human_size(all),
                                match count(|s| s == Stage::Failed) { 0 => String::new(), n => format!(", {n} failed") },
                            )
                        }}
                        <progress aria-label="Overall upload progress"
                            max=move || totals().1.max(1).to_string() value=move || totals().0.to_string()></progress>
                        <Show when=active>
                            <button class="link" data-testid="cancel-all" on:click=cancel_all>"Cancel all"</button>
                        </Show>
                        <Show when=move || { count(|s| matches!(s, Stage::Failed | Stage::Cancelled)) > 0 }>
                            <button class="link" data-testid="retry-failed" on:click=retry_failed>"Retry failed"</button>
                        </Show>
                        <Show when=move || items.with(|v| v.iter().any(|i| finished(i.stage.get())))>
                            <button class="link" on:click=move |_| items.update(|v| v.retain(|i| !finished(i.stage.get_untracked())))>
                                "Clear finished"
                            </button>
                        </Show>
                    </div>
                    <Show when=move || skipped.with(|s| !s.is_empty())>
                        <details class="skipped" data-testid="skipped">
                            <summary>{move || format!("{} skipped", skipped.with(Vec::len))}</summary>
                            <ul>
                                {move || skipped.get().into_iter().map(|(n, why)| view! {
                                    <li data-name=n.clone()><code>{n.clone()}</code>": "{why}</li>
                                }).collect_view()}
                            </ul>
                            <button class="link" on:click=move |_| skipped.set(Vec::new())>"Dismiss"</button>
                        </details>
                    </Show>
                    <ul class="queue" data-testid="upload-queue" tabindex="0" aria-label="Files being uploaded">
                        <For
                            each=move || {
                                // The queued ones wait out of sight; the
                                // rest are listed.
                                items.get().into_iter().filter(|i| i.stage.get() != Stage::Queued).collect::<Vec<_>>()
                            }
                            key=|i| i.id
                            children=move |item: Item| {
                                let Item { name, size, stage, progress, note, abort, .. } = item;
                                let label = name.clone();
                                view! {
                                    <li
                                        class="upload"
                                        data-testid="upload-item"
                                        data-name=name.clone()
                                        data-stage=move || stage.get().label()
                                    >
                                        <span class="name">{label}</span>
                                        <span class="size">{human_size(size)}</span>
                                        <progress
                                            aria-label=format!("Upload of {name}")
                                            max=move || progress.get().1.max(1).to_string()
                                            value=move || progress.get().0.to_string()
                                        ></progress>
                                        <span class="stage">{move || stage.get().label()}</span>
                                        <span class="note">{move || note.get()}</span>
                                        <Show when=move || matches!(stage.get(), Stage::Hashing | Stage::Uploading)>
                                            <button
                                                class="link"
                                                on:click=move |_| {
                                                    if let Some(h) = abort.get_value() {
                                                        h.abort();
                                                    }
                                                }
                                            >
                                                "Cancel"
                                            </button>
                                        </Show>
                                    </li>
                                }
                            }
                        />
                    </ul>
                </div>
            </Show>
        </section>
    }
}
