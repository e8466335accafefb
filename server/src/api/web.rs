//! Serves the built web app (Trunk's `dist/`) at `/`: index.html for every
//! unknown path (client-side routing), long-lived caching for Trunk's
//! content-hashed assets, no caching for index.html.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::path::Path;
use tower_http::services::{ServeDir, ServeFile};

/// A router serving the app in `dir`, or a clear message if it is not built.
pub fn routes(dir: &Path) -> Router {
    let index = dir.join("index.html");
    if !index.is_file() {
        let msg = format!(
            "The Coffer web app is not built (no {}). `bash scripts/run.sh` builds it; the gRPC and grpc-web API on this port work regardless.\n",
            index.display()
        );
        return Router::new()
            .fallback(move || {
                let msg = msg.clone();
                async move { (StatusCode::NOT_FOUND, msg) }
            })
            .layer(middleware::from_fn(unknown_grpc));
    }
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .fallback(ServeFile::new(index));
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(cache_headers))
        .layer(middleware::from_fn(unknown_grpc))
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
