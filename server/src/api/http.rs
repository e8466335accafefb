//! Plain HTTP routes beside gRPC: `GET /download/<path>[?version=N]`
//! streams a file version, so browsers save large files straight to disk
//! instead of holding them in memory; `GET /view/<path>` streams it to be
//! shown in the browser, under the rules of [`crate::api::inline`].
//! [`serve`] answers any file version over HTTP, with single-range
//! requests; share links use it too.

use super::guard::TicketScope;
use crate::caller::Caller;
use crate::files::{download_keys, Admitted, FileVersion, Files};
use crate::meta::ChunkRef;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Deserialize)]
pub struct DownloadQuery {
    #[serde(default)]
    version: u64,
}

/// Streams version `version` (latest if 0 or absent) of `path`, as the
/// caller the guard let through: saved (`/download/`, `INLINE` false) or
/// shown in the browser under [`crate::api::inline`]'s rules (`/view/`).
/// A download ticket reaches only the file and version it names.
pub async fn file<const INLINE: bool>(
    State((files, auth)): State<(Files, crate::auth::Auth)>,
    Path(path): Path<String>,
    Query(q): Query<DownloadQuery>,
    caller: Option<Extension<Caller>>,
    scope: Option<Extension<TicketScope>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let request = Asked {
        path,
        version: q.version,
        caller,
        scope,
        addr,
    };
    let shown = if INLINE { Shown::Inline } else { Shown::Saved };
    answer(files, auth, request, &headers, shown).await
}

/// How a response presents the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Saved under its name.
    Saved,
    /// Shown in the browser where that is safe, else saved.
    Inline,
}

/// A request for one file version, as the guard let it through.
struct Asked {
    path: String,
    version: u64,
    caller: Option<Extension<Caller>>,
    scope: Option<Extension<TicketScope>>,
    addr: SocketAddr,
}

async fn answer(
    files: Files,
    auth: crate::auth::Auth,
    asked: Asked,
    headers: &HeaderMap,
    shown: Shown,
) -> Response {
    let Asked {
        path,
        version,
        caller,
        scope,
        addr,
    } = asked;
    let q = DownloadQuery { version };
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
    let admitted = match files.admit_download(&download_keys(
        format!("account {}", caller.name),
        Some(addr.ip()),
    )) {
        Ok(a) => a,
        Err(e) => return super::status::http_error(e),
    };
    let (v, chunks) = match files
        .open(&caller, &path, (q.version != 0).then_some(q.version))
        .await
    {
        Ok(found) => found,
        Err(e) => return super::status::http_error(e),
    };
    let mut resp = serve(&files, &v, chunks, headers, admitted, Some((auth, caller))).await;
    if shown == Shown::Inline && resp.status().is_success() {
        super::inline::present(&v.path, resp.headers_mut());
    }
    resp
}

/// Answers a GET of version `v` (its chunks `chunks`): the whole content,
/// or the one byte range a `Range` header asks for (206; 416 if it lies
/// outside the content). A malformed or multi-range header is ignored, as
/// HTTP allows, and the whole content sent. With `login`, the body ends
/// early once that caller's login ends.
pub async fn serve(
    files: &Files,
    v: &FileVersion,
    chunks: Vec<ChunkRef>,
    headers: &HeaderMap,
    admitted: Admitted,
    login: Option<(crate::auth::Auth, Caller)>,
) -> Response {
    let range = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| http_range_header::parse_range_header(r).ok())
        .map(|r| r.validate(v.size));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, v.size),
        Some(Ok(ranges)) if ranges.len() == 1 => (
            StatusCode::PARTIAL_CONTENT,
            *ranges[0].start(),
            *ranges[0].end() + 1,
        ),
        Some(Ok(_)) => (StatusCode::OK, 0, v.size),
        Some(Err(_)) => {
            let mut resp = (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range outside the file\n",
            )
                .into_response();
            if let Ok(cr) = HeaderValue::from_str(&format!("bytes */{}", v.size)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, cr);
            }
            return resp;
        }
    };
    // Only the chunks the range touches are read. An error after the
    // headers are sent ends the body early; the client sees a short
    // download rather than wrong bytes.
    let pieces = match crate::download::pipe(files, chunks, start, end, Some(admitted)).await {
        Ok(p) => p,
        Err(e) => return super::status::http_error(e),
    };
    let pieces = pieces.map(|r| r.map_err(std::io::Error::other));
    let body = match login {
        Some((auth, who)) => {
            Body::from_stream(super::revoke::until_revoked(pieces, auth, who, || {
                Err(std::io::Error::other("the login has ended"))
            }))
        }
        None => Body::from_stream(pieces),
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, (end - start).into());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(cr) = HeaderValue::from_str(&format!("bytes {start}-{}/{}", end - 1, v.size)) {
            h.insert(header::CONTENT_RANGE, cr);
        }
    }
    let base = v.path.rsplit('/').next().unwrap_or(&v.path);
    if let Ok(d) = HeaderValue::from_str(&content_disposition(base)) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", v.hash)) {
        h.insert(header::ETAG, etag);
    }
    h.insert("x-coffer-version", v.number.into());
    resp
}

/// `Content-Disposition` for saving as `name`: an ASCII fallback for old
/// clients and the exact UTF-8 name (RFC 6266 / 5987).
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '%' => c,
            _ => '_',
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        percent_encode(name)
    )
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
    fn dispositions_carry_an_ascii_fallback_and_the_exact_name() {
        assert_eq!(
            super::content_disposition("résumé \"v2\".pdf"),
            "attachment; filename=\"r_sum_ _v2_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22.pdf"
        );
    }

    #[test]
    fn file_names_are_percent_encoded() {
        assert_eq!(
            super::percent_encode("a b/ü\".txt"),
            "a%20b%2F%C3%BC%22.txt"
        );
    }
}
