//! What a file shown in the browser (`/view/`) is served as, so that
//! nothing in a user's file ever acts with the viewer's session: the type
//! is named by the server from [`coffer_proto::media`] (never sniffed),
//! everything is shown in a sandbox (a unique origin: no cookies, no
//! storage, no script), and what cannot be shown safely is saved instead.

use axum::http::{header, HeaderMap, HeaderValue};
use coffer_proto::media::{media, Media};

/// The policy of every inline response but PDF's: a sandbox with no
/// scripts and no same-origin rights, loading nothing but itself and
/// inline styles, framed only by the app.
pub const SANDBOX: &str = "sandbox; default-src 'none'; img-src 'self' data:; \
     media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'";

/// PDF's policy: Chromium's viewer refuses a sandboxed document; it runs
/// a PDF's own scripts in PDFium, apart from the page's origin.
pub const PDF: &str = "frame-ancestors 'self'";

/// Rewrites a successful file response's headers for showing the file at
/// `path`; a file that cannot be shown safely keeps its attachment.
pub fn present(path: &str, h: &mut HeaderMap) {
    let kind = media(path);
    let Some(ct) = kind.content_type() else {
        return;
    };
    let policy = if kind == Media::Pdf { PDF } else { SANDBOX };
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline"),
    );
    // The web app frames what it shows; nobody else may.
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_file_gets_the_sandbox_and_a_named_type() {
        let mut h = HeaderMap::new();
        present("evil.html", &mut h);
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], SANDBOX);
        assert!(
            SANDBOX.starts_with("sandbox;"),
            "no allow-scripts, no allow-same-origin"
        );
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::CONTENT_DISPOSITION], "inline");
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
        present("tool.exe", &mut h);
        assert_eq!(h[header::CONTENT_DISPOSITION], "attachment");
        assert!(h.get(header::CONTENT_SECURITY_POLICY).is_none());
    }
}
