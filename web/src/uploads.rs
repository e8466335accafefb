//! The upload panel: files and whole folders, dropped (several at once) or
//! picked, land under the folder being shown, tree and empty folders
//! included, each name checked by the rules the CLI uses. A few files go
//! at a time, each hashed in slices and sending only the chunks the
//! cluster lacks, so a drop of ten thousand files holds only handles to
//! them. One panel shows the overall progress and each file's, cancels
//! one or all, retries what failed and says what was skipped and why.

use crate::api::{self, BlobSource, SLICE};
use crate::Banner;
use bytes::Bytes;
use coffer_client::format::{count, human_size};
use coffer_client::upload::{ChunkSource, Planner, UploadPlan, UploadReport};
use coffer_client::{Observer, PutMode};
use futures::future::{AbortHandle, Abortable};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::VecDeque;
use wasm_bindgen::JsCast;

/// Files sent at once while any of them is large.
const PARALLEL: usize = 3;
/// Small files sent at once: each costs three round trips and little
/// else, so over a real network more of them overlap (on one machine the
/// browser's CPU is the limit; BENCHMARKS.md). Browsers open six
/// connections to a host over HTTP/1.1, and the change feed holds one.
const PARALLEL_SMALL: usize = 5;
/// Files of at most [`TINY`] bytes sent at once: the client coalesces
/// their calls into `StartUploads`, `PutChunks` and `FinishUploads`
/// batches, so many in flight cost a few requests, not three each, and
/// the server packs their chunks together.
const PARALLEL_TINY: usize = 64;
const TINY: u64 = coffer_client::upload::SMALL_CHUNK as u64;
/// A file this size or smaller is read once, hashed and sent from memory
/// (at most `PARALLEL_SMALL` of them at a time, or `PARALLEL_TINY` if
/// tiny); a larger one is read in
/// slices, twice (once to hash it, once for the chunks the cluster
/// lacks), so its bytes are never all held.
const SMALL: u64 = 1024 * 1024;
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

/// The panel's totals, kept as each file moves on, so a drop of ten
/// thousand files costs the same per change as a drop of one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Files in each stage, indexed by `Stage as usize`.
    files: [usize; 7],
    /// Bytes of every file listed.
    bytes: u64,
    /// Bytes sent: whole files done, and what the ones on the way sent.
    sent: u64,
}

impl Tally {
    fn of(&self, stage: Stage) -> usize {
        self.files[stage as usize]
    }
    fn all(&self) -> usize {
        self.files.iter().sum()
    }
    fn pending(&self) -> usize {
        self.of(Stage::Queued)
            + self.of(Stage::Hashing)
            + self.of(Stage::Uploading)
            + self.of(Stage::Committing)
    }
    fn finished(&self) -> usize {
        self.all() - self.pending()
    }
}

/// What a file in `stage`, `progress` through it, adds to the bytes sent.
fn sent(stage: Stage, progress: (u64, u64), size: u64) -> u64 {
    match stage {
        Stage::Done => size,
        Stage::Uploading | Stage::Committing => progress.0,
        _ => 0,
    }
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

/// The panel's state: every file of the drops so far, the queue, the ones
/// listed, and the totals.
#[derive(Clone, Copy)]
struct Panel {
    tally: RwSignal<Tally>,
    /// Large files being sent.
    large: StoredValue<usize>,
    /// Every file still in the panel, queued or not (Cancel all, Retry
    /// failed and Clear finished walk it; nothing else does).
    all: StoredValue<Vec<Item>>,
    /// The files listed: those started, oldest first, at most
    /// `SHOWN_FINISHED` of them finished.
    shown: RwSignal<Vec<Item>>,
    queue: StoredValue<VecDeque<Item>>,
    running: StoredValue<usize>,
}

impl Panel {
    fn new() -> Self {
        Panel {
            tally: RwSignal::new(Tally::default()),
            all: StoredValue::new(Vec::new()),
            shown: RwSignal::new(Vec::new()),
            queue: StoredValue::new(VecDeque::new()),
            running: StoredValue::new(0),
            large: StoredValue::new(0),
        }
    }

    /// Moves `item` to `stage`, `progress` through it, keeping the totals.
    fn set(&self, item: &Item, stage: Stage, progress: (u64, u64)) {
        let (was, had) = (item.stage.get_untracked(), item.progress.get_untracked());
        if was == stage && had == progress {
            return;
        }
        if was != stage {
            item.stage.set(stage);
        }
        if had != progress {
            item.progress.set(progress);
        }
        self.tally.update(|t| {
            t.files[was as usize] -= 1;
            t.files[stage as usize] += 1;
            t.sent = t.sent - sent(was, had, item.size) + sent(stage, progress, item.size);
        });
    }

    fn stage(&self, item: &Item, stage: Stage) {
        self.set(item, stage, item.progress.get_untracked());
    }

    /// Adds freshly picked files, queued.
    fn add(&self, fresh: Vec<Item>) {
        self.tally.update(|t| {
            t.files[Stage::Queued as usize] += fresh.len();
            t.bytes += fresh.iter().map(|i| i.size).sum::<u64>();
        });
        self.queue.update_value(|q| q.extend(fresh.iter().cloned()));
        self.all.update_value(|v| v.extend(fresh));
    }

    /// Lists `item`, which just started, dropping the oldest finished
    /// rows beyond `SHOWN_FINISHED`.
    fn show(&self, item: Item) {
        self.shown.update(|v| {
            // A file retried moves to the end.
            v.retain(|i| i.id != item.id);
            v.push(item);
            let mut over = v.len().saturating_sub(SHOWN_FINISHED + PARALLEL_TINY);
            v.retain(|i| {
                let gone = over > 0 && finished(i.stage.get_untracked());
                if gone {
                    over -= 1;
                }
                !gone
            });
        });
    }

    /// Forgets the finished files, rows and totals alike.
    fn clear_finished(&self) {
        let mut gone = Tally::default();
        self.all.update_value(|v| {
            v.retain(|i| {
                let s = i.stage.get_untracked();
                if finished(s) {
                    gone.files[s as usize] += 1;
                    gone.bytes += i.size;
                    gone.sent += sent(s, i.progress.get_untracked(), i.size);
                }
                !finished(s)
            })
        });
        self.shown
            .update(|v| v.retain(|i| !finished(i.stage.get_untracked())));
        self.tally.update(|t| {
            for (n, g) in t.files.iter_mut().zip(gone.files) {
                *n -= g;
            }
            t.bytes -= gone.bytes;
            t.sent -= gone.sent;
        });
    }
}

struct Progress(Item, Panel);

impl Observer for Progress {
    fn start(&self, bytes: u64) {
        let stage = if bytes == 0 {
            Stage::Committing
        } else {
            Stage::Uploading
        };
        self.1.set(&self.0, stage, (0, bytes));
    }
    fn advance(&self, bytes: u64) {
        let (done, of) = self.0.progress.get_untracked();
        let done = done + bytes;
        let stage = if done >= of {
            Stage::Committing
        } else {
            Stage::Uploading
        };
        self.1.set(&self.0, stage, (done, of));
    }
}

async fn upload(item: Item, panel: Panel) -> Result<String, String> {
    let blob = gloo_file::Blob::from(item.file.get_value());
    let size = blob.size();
    let mut planner = Planner::new();
    let progress = Progress(item.clone(), panel);
    let report = if size <= SMALL {
        // One read: the bytes hashed are the bytes sent.
        let bytes = Bytes::from(api::read_slice(&blob, 0, size).await?);
        planner.push(&bytes);
        panel.set(&item, Stage::Hashing, (size, size));
        send(&item, &planner.finish(), &bytes, &progress).await?
    } else {
        let mut at = 0;
        while at < size {
            let end = (at + SLICE).min(size);
            planner.push(&api::read_slice(&blob, at, end).await?);
            at = end;
            panel.set(&item, Stage::Hashing, (at, size));
        }
        send(&item, &planner.finish(), &BlobSource(blob), &progress).await?
    };
    Ok(format!(
        "version {}, sent {} of {}",
        report.metadata.version,
        human_size(report.bytes_sent),
        human_size(report.bytes_total)
    ))
}

async fn send(
    item: &Item,
    plan: &UploadPlan,
    source: &impl ChunkSource,
    progress: &Progress,
) -> Result<UploadReport, String> {
    api::client()
        .upload(&item.name, plan, source, None, PutMode::Overwrite, progress)
        .await
        .map_err(|e| e.to_string())
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
    let panel = Panel::new();
    let next_id = StoredValue::new(0u64);
    let hovering = RwSignal::new(false);
    let skipped = RwSignal::new(Vec::<(String, String)>::new());

    // Starts queued files while fewer than PARALLEL run.
    fn pump(panel: Panel, refresh: RwSignal<u64>, banner: Banner) {
        loop {
            let Some(next) = panel.queue.with_value(|q| q.front().map(|i| i.size)) else {
                return;
            };
            let large = next > SMALL || panel.large.get_value() > 0;
            let limit = match (large, next <= TINY) {
                (true, _) => PARALLEL,
                (false, true) => PARALLEL_TINY,
                (false, false) => PARALLEL_SMALL,
            };
            if panel.running.get_value() >= limit {
                return;
            }
            let Some(item) = panel.queue.try_update_value(|q| q.pop_front()).flatten() else {
                return;
            };
            if item.stage.get_untracked() != Stage::Queued {
                continue;
            }
            let large = item.size > SMALL;
            panel.running.update_value(|n| *n += 1);
            if large {
                panel.large.update_value(|n| *n += 1);
            }
            panel.stage(&item, Stage::Hashing);
            panel.show(item.clone());
            let (handle, registration) = AbortHandle::new_pair();
            item.abort.set_value(Some(handle));
            spawn_local(async move {
                let result = Abortable::new(upload(item.clone(), panel), registration).await;
                match result {
                    Ok(Ok(note)) => {
                        panel.stage(&item, Stage::Done);
                        item.note.set(note);
                        crate::live::soon(refresh);
                    }
                    Ok(Err(e)) => {
                        panel.stage(&item, Stage::Failed);
                        banner
                            .0
                            .set(Some(format!("Upload of {} failed: {e}", item.name)));
                        item.note.set(e);
                    }
                    Err(_) => panel.stage(&item, Stage::Cancelled),
                }
                panel.running.update_value(|n| *n -= 1);
                if large {
                    panel.large.update_value(|n| *n -= 1);
                }
                pump(panel, refresh, banner);
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
        panel.add(fresh);
        pump(panel, refresh, banner);
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

    let tally = panel.tally;
    let cancel_all = move |_| {
        panel.queue.update_value(VecDeque::clear);
        panel.all.with_value(|v| {
            for i in v {
                match i.stage.get_untracked() {
                    Stage::Queued => panel.stage(i, Stage::Cancelled),
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
        let again: Vec<Item> = panel.all.with_value(|v| {
            v.iter()
                .filter(|i| matches!(i.stage.get_untracked(), Stage::Failed | Stage::Cancelled))
                .cloned()
                .collect()
        });
        for i in &again {
            panel.set(i, Stage::Queued, (0, i.size));
            i.note.set(String::new());
        }
        panel.queue.update_value(|q| q.extend(again));
        pump(panel, refresh, banner);
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
            <Show when=move || tally.with(|t| t.all() > 0) || skipped.with(|s| !s.is_empty())>
                <div class="upload-panel" data-testid="upload-panel">
                    <div class="upload-totals" role="status" data-testid="upload-totals"
                        data-done=move || tally.with(|t| t.of(Stage::Done)).to_string()
                        data-failed=move || tally.with(|t| t.of(Stage::Failed)).to_string()
                        data-pending=move || tally.with(Tally::pending).to_string()>
                        {move || {
                            let t = tally.get();
                            let also = |n: usize, what: &str| match n { 0 => String::new(), n => format!(", {} {what}", count(n as u64)) };
                            format!(
                                "{} of {} files uploaded, {} of {}{}{}",
                                count(t.of(Stage::Done) as u64),
                                count(t.all() as u64),
                                human_size(t.sent),
                                human_size(t.bytes),
                                also(t.of(Stage::Failed), "failed"),
                                also(t.of(Stage::Cancelled), "cancelled"),
                            )
                        }}
                        <progress aria-label="Overall upload progress"
                            max=move || tally.with(|t| t.bytes.max(1)).to_string() value=move || tally.with(|t| t.sent).to_string()></progress>
                        <Show when=move || tally.with(|t| t.pending() > 0)>
                            <button class="link" data-testid="cancel-all" on:click=cancel_all>"Cancel all"</button>
                        </Show>
                        <Show when=move || tally.with(|t| t.of(Stage::Failed) + t.of(Stage::Cancelled) > 0)>
                            <button class="link" data-testid="retry-failed" on:click=retry_failed>"Retry failed"</button>
                        </Show>
                        <Show when=move || tally.with(|t| t.finished() > 0)>
                            <button class="link" on:click=move |_| panel.clear_finished()>
                                "Clear finished"
                            </button>
                        </Show>
                    </div>
                    <Show when=move || skipped.with(|s| !s.is_empty())>
                        <details class="skipped" data-testid="skipped">
                            <summary>{move || format!("{} skipped", count(skipped.with(Vec::len) as u64))}</summary>
                            <ul>
                                {move || skipped.get().into_iter().map(|(n, why)| view! {
                                    <li data-name=n.clone()><code>{n.clone()}</code>": "{why}</li>
                                }).collect_view()}
                            </ul>
                            <button class="link" on:click=move |_| skipped.set(Vec::new())>"Dismiss"</button>
                        </details>
                    </Show>
                    <ul class="queue" data-testid="upload-queue" tabindex="0" aria-label="Files being uploaded">
                        // The queued ones wait out of sight; the ones
                        // started are listed, the oldest finished leaving.
                        <For
                            each=move || panel.shown.get()
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
