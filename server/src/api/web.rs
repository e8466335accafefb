//! Serves the built web app at `/`: the copy embedded in the binary at
//! build time (see `build.rs`), or Trunk's output in a directory
//! (`COFFER_WEB_DIR`, for front-end work). index.html answers every unknown
//! path (client-side routing); Trunk's content-hashed assets are cached
//! for long, index.html not at all.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::path::Path;
use tower_http::services::{ServeDir, ServeFile};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// A router serving the app in `dir`, else the embedded one, or a clear
/// message if there is none.
pub fn routes(dir: Option<&Path>) -> Router {
    let Some(dir) = dir else {
        if embedded::ASSETS.is_empty() {
            return not_built(
                "this coffer-server was built without the web app (build it first: `bash scripts/run.sh` does)".into(),
            );
        }
        return Router::new()
            .fallback(serve_embedded)
            .layer(middleware::from_fn(cache_headers))
            .layer(middleware::from_fn(unknown_grpc));
    };
    let index = dir.join("index.html");
    if !index.is_file() {
        return not_built(format!("no {}", index.display()));
    }
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .fallback(ServeFile::new(index));
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(cache_headers))
        .layer(middleware::from_fn(unknown_grpc))
}

fn not_built(why: String) -> Router {
    let msg = format!(
        "The Coffer web app is not built ({why}). The gRPC and grpc-web API on this port work regardless.\n"
    );
    Router::new()
        .fallback(move || {
            let msg = msg.clone();
            async move { (StatusCode::NOT_FOUND, msg) }
        })
        .layer(middleware::from_fn(unknown_grpc))
}

/// One embedded asset by path; index.html for any other path.
async fn serve_embedded(req: Request) -> Response {
    let path = req.uri().path().trim_start_matches('/');
    let find = |p: &str| embedded::ASSETS.iter().find(|(name, _)| *name == p);
    let (name, bytes) = match find(path).or_else(|| find("index.html")) {
        Some(&(name, bytes)) => (name, bytes),
        None => return StatusCode::NOT_FOUND.into_response(),
    };
    let mime = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, mime)], bytes).into_response()
}

/// A gRPC call to a service or method this server lacks gets UNIMPLEMENTED,
/// not the web app.
async fn unknown_grpc(req: Request, next: Next) -> Response {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if !grpc {
        return next.run(req).await;
    }
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    if let Some(ct) = content_type {
        h.insert(header::CONTENT_TYPE, ct);
    }
    h.insert("grpc-status", HeaderValue::from_static("12"));
    h.insert(
        "grpc-message",
        HeaderValue::from_static("unknown service or method"),
    );
    resp
}

async fn cache_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut resp = next.run(req).await.into_response();
    // Trunk names assets `name-<hash>.ext`; anything else (index.html, the
    // client-side routes that fall back to it) must be revalidated.
    let hashed = path.rsplit('/').next().is_some_and(|f| {
        f.rsplit_once('.')
            .and_then(|(stem, _)| stem.rsplit_once('-'))
            .is_some_and(|(_, h)| h.len() >= 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    let value = if hashed && resp.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    resp
}
