//! Two versions of a text file side by side: a line diff with three lines
//! of context around each change, computed in the browser from the first
//! [`crate::viewer::TEXT_LIMIT`] bytes of each.

use crate::viewer::read_text;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// One line of a diff: `'-'` only in the older version, `'+'` only in the
/// newer, `' '` in both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub sign: char,
    pub old: Option<usize>,
    pub new: Option<usize>,
    pub text: String,
}

/// The changed regions of `old` against `new`, each with `context` lines
/// of what is unchanged around it.
pub fn hunks(old: &str, new: &str, context: usize) -> Vec<Vec<Line>> {
    use similar::{ChangeTag, TextDiff};
    let diff = TextDiff::from_lines(old, new);
    diff.grouped_ops(context)
        .iter()
        .map(|group| {
            group
                .iter()
                .flat_map(|op| diff.iter_changes(op))
                .map(|c| Line {
                    sign: match c.tag() {
                        ChangeTag::Delete => '-',
                        ChangeTag::Insert => '+',
                        ChangeTag::Equal => ' ',
                    },
                    old: c.old_index().map(|i| i + 1),
                    new: c.new_index().map(|i| i + 1),
                    text: c.value().trim_end_matches(['\n', '\r']).to_string(),
                })
                .collect()
        })
        .collect()
}

#[derive(Clone, PartialEq)]
enum State {
    Loading,
    Ready(Vec<Vec<Line>>, bool),
    NotText,
    Failed(String),
}

/// The comparison of `pair` (file, older version, newer version), over the
/// page while it is set.
#[component]
pub fn Compare(pair: RwSignal<Option<(String, u64, u64)>>) -> impl IntoView {
    let state = RwSignal::new(State::Loading);
    Effect::new(move |_| {
        let Some((name, a, b)) = pair.get() else {
            return;
        };
        state.set(State::Loading);
        spawn_local(async move {
            let s = match (read_text(&name, a).await, read_text(&name, b).await) {
                (Ok(Some((old, m1))), Ok(Some((new, m2)))) => {
                    State::Ready(hunks(&old, &new, 3), m1 || m2)
                }
                (Ok(_), Ok(_)) => State::NotText,
                (Err(e), _) | (_, Err(e)) => State::Failed(e),
            };
            if pair.get_untracked().is_some_and(|p| p == (name, a, b)) {
                state.set(s);
            }
        });
    });
    // The dialog takes the focus, so Escape and screen readers start there.
    let dialog = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        if pair.get().is_some() {
            if let Some(d) = dialog.get() {
                let _ = d.focus();
            }
        }
    });
    let title = move || {
        pair.get()
            .map(|(n, a, b)| format!("{n}: version {a} against version {b}"))
            .unwrap_or_default()
    };
    let body = move || {
        match state.get() {
        State::Loading => view! { <p class="muted">"Comparing…"</p> }.into_any(),
        State::NotText => view! { <p class="muted">"These versions are not text."</p> }.into_any(),
        State::Failed(e) => view! { <p class="error">{format!("Cannot compare: {e}")}</p> }.into_any(),
        State::Ready(h, _) if h.is_empty() => {
            view! { <p class="muted" data-testid="diff-same">"The two versions are the same."</p> }.into_any()
        }
        State::Ready(h, cut) => view! {
            <Show when=move || cut><p class="muted">"Compared over the first 1 MiB of each."</p></Show>
            {h.into_iter()
                .map(|lines| view! {
                    <table class="diff" data-testid="diff-hunk">
                        <tbody>
                            {lines
                                .into_iter()
                                .map(|l| {
                                    let class = match l.sign { '-' => "del", '+' => "ins", _ => "same" };
                                    view! {
                                        <tr class=class data-sign=l.sign.to_string()>
                                            <td class="num">{l.old.map(|n| n.to_string()).unwrap_or_default()}</td>
                                            <td class="num">{l.new.map(|n| n.to_string()).unwrap_or_default()}</td>
                                            <td class="sign" aria-hidden="true">{l.sign.to_string()}</td>
                                            <td class="code">
                                                <span class="sr-only">{match l.sign { '-' => "removed: ", '+' => "added: ", _ => "" }}</span>
                                                {l.text}
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                })
                .collect_view()}
        }
        .into_any(),
    }
    };
    view! {
        <Show when=move || pair.get().is_some()>
            <div class="overlay" on:click=move |_| pair.set(None)>
                <div class="dialog wide" role="dialog" aria-modal="true" aria-label=title data-testid="diff"
                    tabindex="-1" node_ref=dialog on:click=|ev| ev.stop_propagation()
                    on:keydown=move |ev| if ev.key() == "Escape" { pair.set(None) }>
                    <h2>{title}</h2>
                    <button class="link close" aria-label="Close" on:click=move |_| pair.set(None)>"×"</button>
                    <div class="diff-body">{body}</div>
                </div>
            </div>
        </Show>
    }
}
