//! The upload queue: a drop zone and file picker for many files at once;
//! each file is hashed in slices, only the chunks the cluster lacks are
//! sent (several at a time), then the version is committed. Every file
//! shows its stage and progress and can be cancelled.

use crate::api::{self, BlobSource, SLICE};
use crate::Banner;
use coffer_client::format::human_size;
use coffer_client::upload::Planner;
use coffer_client::{Observer, PutMode};
use futures::future::{AbortHandle, Abortable};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
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

async fn upload(file: web_sys::File, item: Item) -> Result<String, String> {
    let blob = gloo_file::Blob::from(file);
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

#[component]
pub fn Uploads(refresh: RwSignal<u64>) -> impl IntoView {
    let banner = expect_context::<Banner>();
    let items = RwSignal::new(Vec::<Item>::new());
    let next_id = StoredValue::new(0u64);
    let hovering = RwSignal::new(false);

    let start = move |files: web_sys::FileList| {
        for i in 0..files.length() {
            let Some(file) = files.get(i) else { continue };
            let id = next_id.get_value();
            next_id.set_value(id + 1);
            let item = Item {
                id,
                name: file.name(),
                size: file.size() as u64,
                stage: RwSignal::new(Stage::Hashing),
                progress: RwSignal::new((0, file.size() as u64)),
                note: RwSignal::new(String::new()),
                abort: StoredValue::new(None),
            };
            items.update(|v| v.push(item.clone()));
            let (handle, registration) = AbortHandle::new_pair();
            item.abort.set_value(Some(handle));
            spawn_local(async move {
                let result = Abortable::new(upload(file, item.clone()), registration).await;
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
            });
        }
    };

    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        hovering.set(false);
        if let Some(files) = ev.data_transfer().and_then(|dt| dt.files()) {
            start(files);
        }
    };
    let on_pick = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = ev.target().expect("target").unchecked_into();
        if let Some(files) = input.files() {
            start(files);
        }
        input.set_value("");
    };

    view! {
        <section class="uploads">
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
                <strong>"Drop files here"</strong>
                <span>" or click to choose"</span>
            </label>
            <Show when=move || items.with(|v| v.iter().any(|i| finished(i.stage.get())))>
                <button class="link clear" on:click=move |_| items.update(|v| v.retain(|i| !finished(i.stage.get_untracked())))>
                    "Clear finished"
                </button>
            </Show>
            <ul class="queue" data-testid="upload-queue">
                <For
                    each=move || items.get()
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
        </section>
    }
}
