//! Serves the built web app at `/`: the copy embedded in the binary at
//! build time (see `build.rs`), or a built `dist/` in a directory
//! (`COFFER_WEB_DIR`, for front-end work). index.html answers every unknown
//! path (client-side routing); the content-hashed assets are cached
//! for long (immutable), index.html revalidated every time. The embedded
//! assets carry ETags (a repeat visit's revalidation is a 304); embedded or
//! not, assets go out in the brotli or gzip form tools/web-build made, as
//! the client's `Accept-Encoding` allows (see [`super::web_assets`]).
//! Pages carry a Content-Security-Policy that allows this origin's
//! scripts, the wasm module, and exactly the inline loader index.html
//! carries (by its hash).

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
        let index = embedded::ASSETS
            .iter()
            .find(|(name, _)| *name == "index.html")
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default();
        return with_policy(Router::new().fallback(serve_embedded), &index);
    };
    let index = dir.join("index.html");
    let Ok(html) = std::fs::read_to_string(&index) else {
        return not_built(format!("no {}", index.display()));
    };
    let files = ServeDir::new(dir)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(true)
        .fallback(ServeFile::new(index));
    with_policy(Router::new().fallback_service(files), &html)
}

/// The app's router with its caching, its policy and the gRPC guard.
fn with_policy(app: Router, index_html: &str) -> Router {
    let policy = HeaderValue::from_str(&content_security_policy(index_html))
        .expect("a policy is header text");
    app.layer(middleware::from_fn(cache_headers))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let policy = policy.clone();
            async move {
                let mut resp = next.run(req).await;
                let html = resp
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|ct| ct.starts_with("text/html"));
                if html {
                    resp.headers_mut()
                        .insert(header::CONTENT_SECURITY_POLICY, policy);
                }
                resp
            }
        }))
        .layer(middleware::from_fn(unknown_grpc))
}

/// The policy for a page whose inline scripts are those of `index_html`:
/// scripts from this origin and those exact inline ones, wasm compiled
/// from this origin, requests to this origin only, no framing, no plugins.
pub fn content_security_policy(index_html: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut scripts = String::from("'self' 'wasm-unsafe-eval'");
    for body in inline_scripts(index_html) {
        let digest = sha2::Sha256::digest(body.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest.as_slice());
        scripts.push_str(&format!(" 'sha256-{b64}'"));
    }
    format!(
        "default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The bodies of the `<script>` elements of `html` that have no `src`.
fn inline_scripts(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else {
            break;
        };
        let open = &after[..open_end];
        let body_start = open_end + 1;
        let Some(close) = after[body_start..].find("</script>") else {
            break;
        };
        if !open.contains(" src=") {
            out.push(&after[body_start..body_start + close]);
        }
        rest = &after[body_start + close..];
    }
    out
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

/// One embedded asset by path; index.html for any other path. Sent in
/// the best coding the client accepts that the asset has, with an ETag per
/// coding; a matching `If-None-Match` gets 304.
async fn serve_embedded(req: Request) -> Response {
    use super::web_assets::{acceptable, assets, Coding};
    let path = req.uri().path().trim_start_matches('/');
    let all = assets(embedded::ASSETS);
    let find = |p: &str| all.iter().position(|a| a.name == p);
    let Some(i) = find(path).or_else(|| find("index.html")) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let asset = &all[i];
    let mime = match asset.name.rsplit_once('.').map(|(_, ext)| ext) {
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
    let accept = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let (coding, body): (Coding, &'static [u8]) = acceptable(accept)
        .into_iter()
        .find_map(|c| asset.form(c).map(|b| (c, b)))
        .unwrap_or((Coding::Identity, asset.bytes));
    let etag = match coding.token() {
        Some(t) => format!("{}-{t}\"", asset.etag.trim_end_matches('"')),
        None => asset.etag.clone(),
    };
    let etag = HeaderValue::from_str(&etag).expect("an ETag is header text");
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t.as_bytes() == etag.as_bytes())
        });
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, mime)], body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag);
    if asset.varies() {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Some(t) = coding.token() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(t));
    }
    resp
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

/// Whether `path` names a content-hashed asset: tools/web-build and Trunk name them
/// `name-<hash>.ext`, and the wasm module `name-<hash>_bg.wasm`. Anything
/// else (index.html, the client-side routes that fall back to it) must be
/// revalidated.
fn content_hashed(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|f| {
        f.rsplit_once('.')
            .map(|(stem, _)| stem.strip_suffix("_bg").unwrap_or(stem))
            .and_then(|stem| stem.rsplit_once('-'))
            .is_some_and(|(_, h)| h.len() >= 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

async fn cache_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut resp = next.run(req).await.into_response();
    let served = resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED;
    let value = if content_hashed(&path) && served {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_hashed_names_are_trunks_the_wasm_module_included() {
        use super::content_hashed;
        assert!(content_hashed("/coffer-web-0123456789abcdef.js"));
        assert!(content_hashed("/coffer-web-0123456789abcdef_bg.wasm"));
        assert!(content_hashed("/snippets/x/style-0123456789abcdef.css"));
        assert!(!content_hashed("/index.html"));
        assert!(!content_hashed("/coffer-web_bg.wasm"));
        assert!(!content_hashed("/files/docs"));
        assert!(!content_hashed("/coffer-web-notahash012345678.js"));
    }

    #[test]
    fn the_policy_names_exactly_the_inline_scripts() {
        let html = "<html><script type=\"module\">\nimport init from '/a.js';\n</script>\
                    <script src=\"/b.js\"></script><script>x()</script></html>";
        assert_eq!(
            super::inline_scripts(html),
            ["\nimport init from '/a.js';\n", "x()"]
        );
        let p = super::content_security_policy(html);
        assert_eq!(p.matches("'sha256-").count(), 2, "{p}");
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(p.contains("'wasm-unsafe-eval'"));
        assert!(!p.contains("unsafe-inline"));
    }
}
