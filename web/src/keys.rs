//! Keyboard shortcuts: the list `?` shows, and the rule that typing in a
//! field never triggers one. The file browser acts on them.

use leptos::prelude::*;

/// Every shortcut, as shown by `?`.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("?", "Show or hide these shortcuts"),
    ("/", "Search by name"),
    ("↓ / j, ↑ / k", "Move between rows"),
    ("Space", "Select or unselect the row"),
    ("Shift + click", "Select a range"),
    ("Ctrl + click", "Add to the selection"),
    ("Ctrl + A", "Select everything listed"),
    ("Enter", "Open the folder or preview the file"),
    ("← / →", "Previous or next file in the preview"),
    ("Delete", "Delete the selection"),
    ("Escape", "Close, or clear the selection"),
];

/// Whether a key event belongs to a field being typed in.
pub fn typing(ev: &web_sys::KeyboardEvent) -> bool {
    use wasm_bindgen::JsCast;
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .is_some_and(|el| {
            matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                || el.has_attribute("contenteditable")
        })
}

/// The list of shortcuts, over the page while `open`.
#[component]
pub fn Help(open: RwSignal<bool>) -> impl IntoView {
    view! {
        <Show when=move || open.get()>
            <div class="overlay" on:click=move |_| open.set(false)>
                <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="keys-title" data-testid="shortcuts"
                    on:click=|ev| ev.stop_propagation()>
                    <h2 id="keys-title">"Keyboard shortcuts"</h2>
                    <button class="link close" aria-label="Close" on:click=move |_| open.set(false)>"×"</button>
                    <table class="keys">
                        <tbody>
                            {SHORTCUTS
                                .iter()
                                .map(|(k, what)| view! { <tr><th scope="row"><kbd>{*k}</kbd></th><td>{*what}</td></tr> })
                                .collect_view()}
                        </tbody>
                    </table>
                </div>
            </div>
        </Show>
    }
}
