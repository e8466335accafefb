//! Plain HTTP routes beside gRPC: `GET /download/<path>[?version=N]`
//! streams a file version, so browsers save large files straight to disk
//! instead of holding them in memory.

use super::guard::TicketScope;
use crate::caller::Caller;
use crate::files::Files;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct DownloadQuery {
    #[serde(default)]
    version: u64,
}

/// Streams version `version` (latest if 0 or absent) of `path`, as the
/// caller the guard let through; a download ticket reaches only the file
/// and version it names.
pub async fn download(
    State(files): State<Files>,
    Path(path): Path<String>,
    Query(q): Query<DownloadQuery>,
    caller: Option<Extension<Caller>>,
    scope: Option<Extension<TicketScope>>,
) -> Response {
    let Some(Extension(caller)) = caller else {
        return (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    };
    if let Some(Extension(scope)) = scope {
        if scope.path != path || scope.version != q.version {
            return (
                StatusCode::FORBIDDEN,
                "this download link is for another file\n",
            )
                .into_response();
        }
    }
    let (v, chunks) = match files
        .open(&caller, &path, (q.version != 0).then_some(q.version))
        .await
    {
        Ok(found) => found,
        Err(e) => return super::status::http_error(e),
    };
    // An error after the headers are sent ends the body early; the client
    // sees a short download rather than wrong bytes.
    let body = Body::from_stream(
        files
            .read_chunks(chunks)
            .map(|r| r.map_err(std::io::Error::other)),
    );
    let base = v.path.rsplit('/').next().unwrap_or(&v.path);
    let disposition = format!("attachment; filename*=UTF-8''{}", percent_encode(base));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, v.size.into());
    if let Ok(d) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", v.hash)) {
        h.insert(header::ETAG, etag);
    }
    h.insert("x-coffer-version", v.number.into());
    resp
}

/// A file path for a URL: each segment percent-encoded, the slashes kept.
pub fn path_encode(path: &str) -> String {
    path.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// RFC 5987 encoding for a `filename*` parameter.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_are_percent_encoded() {
        assert_eq!(
            super::percent_encode("a b/ü\".txt"),
            "a%20b%2F%C3%BC%22.txt"
        );
    }
}
