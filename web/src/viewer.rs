//! The viewer: one file shown over the page by its kind (from
//! [`coffer_proto::media`], the table the server serves it by). Images,
//! audio and video come from a `/view/` link (streamed, with ranges);
//! HTML and SVG are framed in a sandbox; text is read up to a limit and
//! Markdown rendered with any raw HTML shown as text; anything else is a
//! download. Previous and next step through the folder's files.

use crate::api;
use crate::Banner;
use coffer_proto::media::{media, Media};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Text shown at most; the rest is a download away.
pub const TEXT_LIMIT: u64 = 1024 * 1024;

#[derive(Clone, PartialEq)]
enum Shown {
    Loading,
    /// A `/view/` link, for the browser to show by kind.
    Link(String),
    Text {
        body: String,
        more: bool,
    },
    Markdown {
        html: String,
        more: bool,
    },
    /// Named as text but not text.
    Binary,
    Failed(String),
}

/// Whether `bytes` look like text: no NUL in the first 8 KiB.
pub fn is_text(bytes: &[u8]) -> bool {
    !bytes[..bytes.len().min(8192)].contains(&0)
}

/// The first [`TEXT_LIMIT`] bytes of version `version` of `name` as text
/// (`None` if it is not text), and whether more follows.
pub async fn read_text(name: &str, version: u64) -> Result<Option<(String, bool)>, String> {
    let link = api::client()
        .view_link(name, version)
        .await
        .map_err(|e| e.to_string())?;
    let (bytes, more) = api::fetch_head(&link.url, TEXT_LIMIT).await?;
    Ok(is_text(&bytes).then(|| (String::from_utf8_lossy(&bytes).into_owned(), more)))
}

async fn load(name: &str) -> Shown {
    let kind = media(name);
    let result = match kind {
        Media::Text { markdown } => read_text(name, 0).await.map(|t| match t {
            None => Shown::Binary,
            Some((text, more)) if markdown => Shown::Markdown {
                html: render_markdown(&text),
                more,
            },
            Some((body, more)) => Shown::Text { body, more },
        }),
        _ => api::client()
            .view_link(name, 0)
            .await
            .map(|l| Shown::Link(l.url))
            .map_err(|e| e.to_string()),
    };
    result.unwrap_or_else(Shown::Failed)
}

/// Markdown as HTML that cannot act: raw HTML becomes text, links go only
/// to the web or mail, and images show their description instead of
/// loading from elsewhere.
pub fn render_markdown(text: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
    let safe = |u: CowStr<'_>| -> bool {
        let l = u.trim().to_ascii_lowercase();
        ["http://", "https://", "mailto:", "#"]
            .iter()
            .any(|p| l.starts_with(p))
    };
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(text, options).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        Event::Start(Tag::Image { .. }) => Event::Start(Tag::Emphasis),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Emphasis),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let dest_url = if safe(dest_url.clone()) {
                dest_url
            } else {
                CowStr::Borrowed("#")
            };
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            })
        }
        e => e,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

/// The kind's name, for tests and styles.
fn kind_name(kind: Media) -> &'static str {
    match kind {
        Media::Image(_) => "image",
        Media::Svg => "svg",
        Media::Audio(_) => "audio",
        Media::Video(_) => "video",
        Media::Pdf => "pdf",
        Media::Html => "html",
        Media::Text { markdown: true } => "markdown",
        Media::Text { markdown: false } => "text",
        Media::Other => "other",
    }
}

/// The viewer over the page while `target` names a file; `siblings` are
/// the files of the open folder, in the order shown, for previous and
/// next.
#[component]
pub fn Viewer(target: RwSignal<Option<String>>, siblings: Signal<Vec<String>>) -> impl IntoView {
    let banner = expect_context::<Banner>();
    let shown = RwSignal::new(Shown::Loading);
    Effect::new(move |_| {
        let Some(name) = target.get() else {
            return;
        };
        shown.set(Shown::Loading);
        spawn_local(async move {
            let s = load(&name).await;
            if target.get_untracked().as_deref() == Some(name.as_str()) {
                shown.set(s);
            }
        });
    });
    let step = move |by: isize| {
        let Some(now) = target.get_untracked() else {
            return;
        };
        let all = siblings.get_untracked();
        let Some(at) = all.iter().position(|n| *n == now) else {
            return;
        };
        let next = at as isize + by;
        if next >= 0 && (next as usize) < all.len() {
            target.set(Some(all[next as usize].clone()));
        }
    };
    let has = move |by: isize| {
        let (Some(now), all) = (target.get(), siblings.get()) else {
            return false;
        };
        all.iter()
            .position(|n| *n == now)
            .is_some_and(|at| at as isize + by >= 0 && ((at as isize + by) as usize) < all.len())
    };
    let dialog = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        if target.get().is_some() {
            if let Some(d) = dialog.get() {
                let _ = d.focus();
            }
        }
    });
    let keys = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
        "Escape" => {
            ev.stop_propagation();
            target.set(None);
        }
        "ArrowLeft" => step(-1),
        "ArrowRight" => step(1),
        _ => {}
    };
    let name = move || target.get().unwrap_or_default();
    let base = move || {
        let n = name();
        n.rsplit('/').next().unwrap_or(&n).to_string()
    };
    let body = move || {
        let kind = media(&name());
        match shown.get() {
            Shown::Loading => view! { <p class="muted">"Loading…"</p> }.into_any(),
            Shown::Failed(e) => view! { <p class="error">{format!("Cannot show this file: {e}")}</p> }.into_any(),
            Shown::Binary => view! { <p class="muted">"This file is not text; download it to open it."</p> }.into_any(),
            Shown::Text { body, more } => view! {
                <pre class="text" data-testid="viewer-text">{body}</pre>
                <Show when=move || more><p class="muted">"Showing the first 1 MiB; download the file for the rest."</p></Show>
            }
            .into_any(),
            Shown::Markdown { html, more } => view! {
                <article class="markdown" data-testid="viewer-markdown" inner_html=html></article>
                <Show when=move || more><p class="muted">"Showing the first 1 MiB; download the file for the rest."</p></Show>
            }
            .into_any(),
            Shown::Link(url) => match kind {
                Media::Image(_) => view! { <img class="media" src=url alt=base() data-testid="viewer-image" /> }.into_any(),
                Media::Audio(_) => view! { <audio controls src=url data-testid="viewer-audio"></audio> }.into_any(),
                Media::Video(_) => view! { <video class="media" controls src=url data-testid="viewer-video"></video> }.into_any(),
                Media::Pdf => view! { <iframe class="frame" src=url title=base() data-testid="viewer-pdf"></iframe> }.into_any(),
                // No permissions at all: a unique origin without script,
                // as the server's own policy says too.
                Media::Html | Media::Svg => view! {
                    <iframe class="frame" sandbox="" src=url title=base() data-testid="viewer-frame"></iframe>
                }
                .into_any(),
                Media::Text { .. } | Media::Other => view! {
                    <p class="muted">"There is no preview for this kind of file."</p>
                }
                .into_any(),
            },
        }
    };
    let download = move |_| {
        let n = name();
        spawn_local(async move {
            if let Err(e) = api::start_download(&n, 0).await {
                banner.0.set(Some(format!("Cannot download {n}: {e}")));
            }
        });
    };
    view! {
        <Show when=move || target.get().is_some()>
            <div class="overlay" on:click=move |_| target.set(None)>
                <div class="dialog viewer" role="dialog" aria-modal="true" aria-label=move || format!("Preview of {}", base())
                    data-testid="viewer" data-kind=move || kind_name(media(&name())) data-name=name
                    tabindex="-1" node_ref=dialog on:keydown=keys on:click=|ev| ev.stop_propagation()>
                    <header class="viewer-head">
                        <h2>{base}</h2>
                        <button class="link" aria-label="Previous file" data-testid="viewer-prev"
                            disabled=move || !has(-1) on:click=move |_| step(-1)>"‹ Previous"</button>
                        <button class="link" aria-label="Next file" data-testid="viewer-next"
                            disabled=move || !has(1) on:click=move |_| step(1)>"Next ›"</button>
                        <button class="link" on:click=download>"Download"</button>
                        <button class="link close" aria-label="Close" on:click=move |_| target.set(None)>"×"</button>
                    </header>
                    <div class="viewer-body">{body}</div>
                </div>
            </div>
        </Show>
    }
}

/// A small picture of the image `name` for its row, fetched with the
/// page's token and dropped with the row; nothing if the server makes
/// none.
#[component]
pub fn Thumbnail(name: String) -> impl IntoView {
    let url = RwSignal::new(None::<String>);
    spawn_local(async move {
        if let Some(u) = api::thumbnail_url(&name).await {
            // The row may be gone already: then so is the picture.
            if let Some(unused) = url.try_set(Some(u)).flatten() {
                api::forget_url(&unused);
            }
        }
    });
    on_cleanup(move || {
        if let Some(u) = url.try_get_untracked().flatten() {
            api::forget_url(&u);
        }
    });
    view! {
        <span class="thumb" aria-hidden="true">
            {move || url.get().map(|u| view! { <img src=u alt="" data-testid="thumbnail" /> })}
        </span>
    }
}
