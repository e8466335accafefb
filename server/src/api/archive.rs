//! `POST /zip`: files and folders as one zip archive, streamed. The form
//! body names them (`path=…`, repeated). Browsers submit it with a ticket
//! from `CofferAuth/ArchiveLink` in the query, which opens only the
//! selection it was made for; other clients send their bearer token.

use super::guard::TicketScope;
use crate::caller::Caller;
use crate::files::archive::selection_digest;
use crate::files::{download_keys, Files};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::net::SocketAddr;

/// Most bytes a form naming the selection may take.
pub const MAX_FORM_BYTES: usize = 16 * 1024 * 1024;

/// The names a form body chooses, in order.
pub fn chosen(body: &[u8]) -> Vec<String> {
    form_urlencoded::parse(body)
        .filter(|(k, _)| k == "path")
        .map(|(_, v)| v.into_owned())
        .collect()
}

pub async fn download(
    State((files, auth)): State<(Files, crate::auth::Auth)>,
    caller: Option<Extension<Caller>>,
    scope: Option<Extension<TicketScope>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let Some(Extension(caller)) = caller else {
        return (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    };
    let paths = chosen(&body);
    if let Some(Extension(scope)) = scope {
        if scope.path != selection_digest(&paths) {
            return (
                StatusCode::FORBIDDEN,
                "this download link is for another selection\n",
            )
                .into_response();
        }
    }
    let selection = match files.select(&caller, &paths).await {
        Ok(s) => s,
        Err(e) => return super::status::http_error(e),
    };
    let admitted = match files.admit_download(&download_keys(
        format!("account {}", caller.name),
        Some(addr.ip()),
    )) {
        Ok(a) => a,
        Err(e) => return super::status::http_error(e),
    };
    let name = selection.file_name();
    let sources = files.archive_sources(caller.clone(), selection, admitted);
    let bytes = crate::zip::archive(sources).map(|r| r.map_err(std::io::Error::other));
    let bytes = super::revoke::until_revoked(bytes, auth, caller, || {
        Err(std::io::Error::other("the login has ended"))
    });
    let mut resp = (StatusCode::OK, Body::from_stream(bytes)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(d) = HeaderValue::from_str(&super::http::content_disposition(&name)) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_form_chooses_its_repeated_paths_in_order() {
        assert_eq!(
            super::chosen(b"path=b%2Fc.txt&name=x&path=a+b&path=%C3%BC"),
            vec!["b/c.txt", "a b", "ü"]
        );
    }
}
