//! WebDAV at `/dav/` on the one port, so Finder, Windows Explorer, GNOME
//! Files, rclone, Cyberduck and phone apps reach each user's own files
//! with nothing of ours installed. The protocol (PROPFIND, PROPPATCH,
//! MKCOL, COPY, MOVE, LOCK, If headers, ranges) is the `dav-server`
//! crate's; what it acts on is ours:
//! - [`fs`]: the caller's namespace over the files domain: every PUT a
//!   new version through the chunker (none if the content is unchanged),
//!   DELETE restorable, MOVE and COPY as the domain's, dead properties in
//!   the metadata;
//! - [`locks`]: class 2 locks in the metadata database, shared by every
//!   server of it;
//! - [`file`]: reads (ranges, chunks fetched ahead) and streamed writes.
//!
//! The guard (`api::guard`) authenticates each request: HTTP Basic with an
//! app password, or a Bearer token. Clients' quirks are handled here:
//! macOS's `._*` and `.DS_Store` files ([`MacFiles`]) and
//! `.metadata_never_index`, Windows' OPTIONS on `/` ([`root_options`]),
//! rclone's and ownCloud clients' `X-OC-Mtime`.

mod file;
pub mod fs;
mod locks;

use crate::caller::Caller;
use crate::files::Files;
use crate::meta::Meta;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes};
use dav_server::fs::{DavFile, DavMetaData, FsFuture};
use dav_server::DavHandler;
use std::net::SocketAddr;

/// Where WebDAV is mounted.
pub const PREFIX: &str = "/dav";

/// What becomes of macOS's `._name` (AppleDouble) and `.DS_Store` files
/// written over WebDAV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MacFiles {
    /// Taken and dropped: they never reach the store, other devices or
    /// the change feed, and are never listed.
    Ignore,
    /// Stored like any file.
    Keep,
}

/// The WebDAV service. Cheap to clone.
#[derive(Clone)]
pub struct Dav {
    handler: DavHandler,
    files: Files,
    meta: Meta,
    mac: MacFiles,
}

impl Dav {
    pub fn new(files: Files, meta: Meta, mac: MacFiles) -> Self {
        let handler = DavHandler::builder()
            .strip_prefix(PREFIX)
            // A folder opened in a browser lists its entries.
            .autoindex(true)
            // Reads hand out slices of whole chunks: no copies to save.
            .read_buf_size(256 * 1024)
            .build_handler();
        Self {
            handler,
            files,
            meta,
            mac,
        }
    }
}

/// The modification time `X-OC-Mtime` (seconds since the epoch) gives an
/// upload, as RFC 3339.
fn oc_mtime(headers: &HeaderMap) -> Option<String> {
    let secs: f64 = headers
        .get("x-oc-mtime")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Serves one WebDAV request, as the caller the guard let through.
pub async fn handle(State(dav): State<Dav>, req: Request) -> Response {
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    };
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if req.method().as_str() == "PROPFIND"
        && req
            .headers()
            .get("depth")
            .is_some_and(|d| d.as_bytes().eq_ignore_ascii_case(b"infinity"))
    {
        // RFC 4918 9.1: a server may refuse to walk a whole tree at once.
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n",
        )
            .into_response();
    }
    let modified = oc_mtime(req.headers());
    let stamped = req.method() == Method::PUT && modified.is_some();
    let fs = fs::CofferFs::new(
        dav.files.clone(),
        dav.meta.clone(),
        caller.clone(),
        file::Stamps {
            modified,
            checksum: None,
        },
        dav.mac,
        addr,
    );
    let mismatch = fs.checksum_mismatch();
    let config = DavHandler::builder()
        .filesystem(Box::new(fs))
        .locksystem(Box::new(locks::DbLocks::new(
            dav.meta.clone(),
            caller.owner,
            PREFIX,
        )))
        .principal(caller.name.clone());
    let resp = dav.handler.handle_with(config, req).await;
    if mismatch.load(std::sync::atomic::Ordering::Relaxed) {
        return (
            StatusCode::BAD_REQUEST,
            "the content does not match its OC-Checksum; nothing was stored\n",
        )
            .into_response();
    }
    let (mut parts, body) = resp.into_parts();
    if stamped && parts.status.is_success() {
        // ownCloud's clients (and rclone) look for this before trusting
        // that the time was kept.
        parts
            .headers
            .insert("x-oc-mtime", HeaderValue::from_static("accepted"));
    }
    Response::from_parts(parts, axum::body::Body::new(body))
}

/// `OPTIONS /`: Windows' WebDAV client (the Mini-Redirector) asks the
/// server's root before it mounts anything under it.
pub async fn root_options() -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert("dav", HeaderValue::from_static("1, 2"));
    h.insert("ms-author-via", HeaderValue::from_static("DAV"));
    h.insert(
        header::ALLOW,
        HeaderValue::from_static("OPTIONS, GET, HEAD, PROPFIND"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

/// A file that takes whatever is written and keeps nothing, and reads as
/// empty: what [`MacFiles::Ignore`] makes of macOS's bookkeeping, and the
/// empty `.metadata_never_index` in the root.
#[derive(Debug, Default)]
struct Discard {
    len: u64,
}

impl DavFile for Discard {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m = file::Meta {
            len: self.len,
            ..file::Meta::empty_file()
        };
        Box::pin(async move { Ok(Box::new(m) as Box<dyn DavMetaData>) })
    }

    fn write_buf(&mut self, buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        self.len += buf.remaining() as u64;
        Box::pin(async { Ok(()) })
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        self.len += buf.len() as u64;
        Box::pin(async { Ok(()) })
    }

    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        Box::pin(async { Ok(Bytes::new()) })
    }

    fn seek(&mut self, _pos: std::io::SeekFrom) -> FsFuture<'_, u64> {
        Box::pin(async { Ok(0) })
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}
