//! Copying text to the system clipboard (`navigator.clipboard.writeText`),
//! with a reason when the browser refuses.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Puts `text` on the clipboard. Fails when the page is not a secure
/// context (plain http to another host than localhost has no
/// `navigator.clipboard` at all) or the browser denies the permission.
pub async fn copy(text: &str) -> Result<(), String> {
    let navigator = web_sys::window().ok_or("no window")?.navigator();
    // Checked first: calling a method on the missing object would throw
    // through the wasm instead of returning an error.
    let present = js_sys::Reflect::get(&navigator, &"clipboard".into())
        .is_ok_and(|c| !c.is_undefined() && !c.is_null());
    if !present {
        return Err("this browser offers no clipboard to the page (it needs https)".into());
    }
    JsFuture::from(navigator.clipboard().write_text(text))
        .await
        .map(|_| ())
        .map_err(|e| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the browser refused".into())
        })
}
