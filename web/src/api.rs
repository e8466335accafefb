//! The SDK client for this origin (and URLs on it), files read in
//! slices, and formatting.

use bytes::Bytes;
use coffer_client::{web::WebTransport, ChunkSource, ClientError, Coffer};

thread_local! {
    /// The signed-in user's access token, in memory only.
    static TOKEN: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Sets (or clears) the access token every later call carries.
pub fn set_token(token: Option<String>) {
    TOKEN.with(|t| *t.borrow_mut() = token);
}

/// This page's origin, e.g. `https://files.example.com`.
pub fn origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

/// A path on this server (`/s/…`) as a URL that works anywhere (a URL
/// that already names its host is kept as it is).
pub fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        format!("{}{path}", origin())
    } else {
        path.to_string()
    }
}

thread_local! {
    /// The client of the current token, kept so that clones share its
    /// upload batches (uploads in flight coalesce into a few calls).
    static CLIENT: std::cell::RefCell<Option<(Option<String>, Coffer<WebTransport>)>> =
        const { std::cell::RefCell::new(None) };
}

/// A client of the server that served this page, as the signed-in user.
pub fn client() -> Coffer<WebTransport> {
    let token = TOKEN.with(|t| t.borrow().clone());
    CLIENT.with(|kept| {
        let mut kept = kept.borrow_mut();
        match kept.as_ref() {
            Some((t, c)) if *t == token => c.clone(),
            _ => {
                let mut c = coffer_client::web::connect(&origin());
                if let Some(t) = &token {
                    let _ = c.login(t);
                }
                *kept = Some((token, c.clone()));
                c
            }
        }
    })
}

/// Downloads version `version` (0: the latest) of `path` to the browser's
/// downloads: the server hands out a link that works for about a minute,
/// so no token ever sits in a lasting URL.
pub async fn start_download(path: &str, version: u64) -> Result<(), String> {
    let link = client()
        .download_link(path, version)
        .await
        .map_err(|e| e.to_string())?;
    let window = web_sys::window().ok_or("no window")?;
    window
        .location()
        .assign(&link.url)
        .map_err(|_| "cannot start the download".to_string())
}

/// Downloads `paths` (files, and folders ending in `/`) as one zip: the
/// server hands out a link for this selection, and a form posts the
/// names to it, so the browser saves the streamed archive itself.
pub async fn start_archive(paths: &[String]) -> Result<(), String> {
    use wasm_bindgen::JsCast;
    let link = client()
        .archive_link(paths)
        .await
        .map_err(|e| e.to_string())?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let make = |tag: &str| {
        document
            .create_element(tag)
            .map_err(|_| "cannot build the form")
    };
    let form: web_sys::HtmlFormElement = make("form")?.unchecked_into();
    form.set_method("post");
    form.set_action(&link.url);
    for p in paths {
        let input: web_sys::HtmlInputElement = make("input")?.unchecked_into();
        input.set_type("hidden");
        input.set_name("path");
        input.set_value(p);
        let _ = form.append_child(&input);
    }
    let body = document.body().ok_or("no body")?;
    let _ = body.append_child(&form);
    form.submit().map_err(|_| "cannot start the download")?;
    form.remove();
    Ok(())
}

/// The first `limit` bytes of `url` on this server (a `/view/` link), and
/// whether the file goes on past them.
pub async fn fetch_head(url: &str, limit: u64) -> Result<(Vec<u8>, bool), String> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let fail = |_| "cannot read the file".to_string();
    let init = web_sys::RequestInit::new();
    init.set_method("GET");
    let headers = web_sys::Headers::new().map_err(fail)?;
    headers
        .set("Range", &format!("bytes=0-{}", limit.saturating_sub(1)))
        .map_err(fail)?;
    init.set_headers(&headers);
    let req = web_sys::Request::new_with_str_and_init(url, &init).map_err(fail)?;
    let window = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_request(&req))
        .await
        .map_err(|_| "cannot reach the server".to_string())?
        .unchecked_into();
    if !resp.ok() {
        return Err(format!("the server answered {}", resp.status()));
    }
    // "bytes 0-1048575/52428800": more follows if the total is larger.
    let more = resp
        .headers()
        .get("content-range")
        .ok()
        .flatten()
        .and_then(|r| r.rsplit('/').next().and_then(|t| t.parse::<u64>().ok()))
        .is_some_and(|total| total > limit);
    let buf = JsFuture::from(resp.array_buffer().map_err(fail)?)
        .await
        .map_err(fail)?;
    Ok((js_sys::Uint8Array::new(&buf).to_vec(), more))
}

/// `path` for a URL: each segment percent-encoded, the slashes kept.
pub fn path_encode(path: &str) -> String {
    path.split('/')
        .map(|s| String::from(js_sys::encode_uri_component(s)))
        .collect::<Vec<_>>()
        .join("/")
}

/// The thumbnail of `path` (its latest version), as a URL of a blob held
/// by this page (revoke it with [`forget_url`]); `None` if the server
/// makes none for this file.
pub async fn thumbnail_url(path: &str) -> Option<String> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let token = TOKEN.with(|t| t.borrow().clone());
    let init = web_sys::RequestInit::new();
    let headers = web_sys::Headers::new().ok()?;
    if let Some(t) = token {
        headers.set("Authorization", &format!("Bearer {t}")).ok()?;
    }
    init.set_headers(&headers);
    let url = format!("/thumb/{}?edge=256", path_encode(path));
    let req = web_sys::Request::new_with_str_and_init(&url, &init).ok()?;
    let resp: web_sys::Response = JsFuture::from(web_sys::window()?.fetch_with_request(&req))
        .await
        .ok()?
        .unchecked_into();
    if resp.status() != 200 {
        return None;
    }
    let blob: web_sys::Blob = JsFuture::from(resp.blob().ok()?)
        .await
        .ok()?
        .unchecked_into();
    web_sys::Url::create_object_url_with_blob(&blob).ok()
}

/// Lets the page drop a blob URL made by [`thumbnail_url`].
pub fn forget_url(url: &str) {
    let _ = web_sys::Url::revoke_object_url(url);
}

/// Bytes read from a dropped file at a time, so large files never sit
/// whole in memory.
pub const SLICE: u64 = 4 * 1024 * 1024;

/// Reads `[start, end)` of a browser file.
pub async fn read_slice(blob: &gloo_file::Blob, start: u64, end: u64) -> Result<Vec<u8>, String> {
    let part = blob.slice(start, end);
    gloo_file::futures::read_as_bytes(&part)
        .await
        .map_err(|e| format!("cannot read the file: {e}"))
}

/// A browser file as the SDK's source of chunk bytes.
pub struct BlobSource(pub gloo_file::Blob);

impl ChunkSource for BlobSource {
    async fn read(&self, offset: u64, len: u32) -> Result<Bytes, ClientError> {
        let bytes = read_slice(&self.0, offset, offset + len as u64)
            .await
            .map_err(ClientError::Protocol)?;
        Ok(Bytes::from(bytes))
    }
}

/// `2026-11-24T16:01:02.123Z` -> `2026-11-24 16:01`.
pub fn short_time(rfc3339: &str) -> String {
    rfc3339
        .get(..16)
        .map(|s| s.replace('T', " "))
        .unwrap_or_else(|| rfc3339.to_string())
}
