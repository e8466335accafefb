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

/// A client of the server that served this page, as the signed-in user.
pub fn client() -> Coffer<WebTransport> {
    let mut c = coffer_client::web::connect(&origin());
    if let Some(t) = TOKEN.with(|t| t.borrow().clone()) {
        let _ = c.login(&t);
    }
    c
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
