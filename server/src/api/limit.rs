//! A time limit on unary calls: a request whose answer takes longer than
//! the request time-out gets DEADLINE_EXCEEDED (HTTP 504), and its work
//! is dropped. Streams of file data (uploads, downloads, share links) are
//! not bounded in total: they are bounded by the idle time-out instead.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Paths whose calls stream file data for as long as the file needs.
fn streams(path: &str) -> bool {
    matches!(
        path,
        "/FileStorage/UploadFile" | "/FileStorage/DownloadFile" | "/FileStorage/WatchChanges"
    ) || path.starts_with("/download/")
        || path.starts_with("/s/")
        || path.starts_with("/dav/")
        || path.starts_with("/grpc.reflection.")
}

/// The middleware.
pub async fn unary_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    if streams(req.uri().path()) {
        return next.run(req).await;
    }
    let grpc = super::guard::grpc_content_type(&req);
    let path = req.uri().path().to_string();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(%path, secs = limit.as_secs(), "request timed out");
            let msg = format!("{path} took longer than {} s", limit.as_secs());
            match grpc {
                Some(ct) => {
                    let mut resp =
                        tonic::Status::deadline_exceeded(msg).into_http::<axum::body::Body>();
                    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
                    resp
                }
                None => (StatusCode::GATEWAY_TIMEOUT, format!("{msg}\n")).into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_file_data_streams_escape_the_limit() {
        assert!(super::streams("/FileStorage/UploadFile"));
        assert!(super::streams("/download/a.txt"));
        assert!(super::streams("/s/abc"));
        assert!(!super::streams("/FileStorage/PutChunk"));
        assert!(!super::streams("/FileStorage/ListFiles"));
        assert!(!super::streams("/CofferAdmin/RunWorker"));
    }
}
