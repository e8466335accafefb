//! `GET /thumb/<path>?edge=256|1080[&version=N]`: a JPEG thumbnail of an
//! image (see [`crate::files::Files::thumbnail`]), for the signed-in user
//! or a link to that file. An image that has none (damaged, too large,
//! too many pixels, not an image) answers 422 with the reason, which
//! clients show as a placeholder.

use super::guard::TicketScope;
use crate::caller::Caller;
use crate::files::{Files, Thumb};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct ThumbQuery {
    #[serde(default = "default_edge")]
    edge: u32,
    #[serde(default)]
    version: u64,
}

fn default_edge() -> u32 {
    crate::thumbs::EDGES[0]
}

pub async fn thumbnail(
    State(files): State<Files>,
    Path(path): Path<String>,
    Query(q): Query<ThumbQuery>,
    caller: Option<Extension<Caller>>,
    scope: Option<Extension<TicketScope>>,
    headers: HeaderMap,
) -> Response {
    let Some(Extension(caller)) = caller else {
        return (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    };
    if let Some(Extension(scope)) = scope {
        if scope.path != path || scope.version != q.version {
            return (StatusCode::FORBIDDEN, "this link is for another file\n").into_response();
        }
    }
    let version = (q.version != 0).then_some(q.version);
    let (v, thumb) = match files.thumbnail(&caller, &path, version, q.edge).await {
        Ok(found) => found,
        Err(e) => return super::status::http_error(e),
    };
    // The same content at the same edge is the same picture.
    let etag = format!("\"{}-{}\"", &v.hash[..v.hash.len().min(32)], q.edge);
    let mut resp = match thumb {
        Thumb::Jpeg(_)
            if headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|m| m.as_bytes() == etag.as_bytes()) =>
        {
            StatusCode::NOT_MODIFIED.into_response()
        }
        Thumb::Jpeg(bytes) => {
            let mut r = bytes.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
            r
        }
        Thumb::None(why) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("no thumbnail: {why}\n"),
            )
                .into_response()
        }
    };
    let h = resp.headers_mut();
    if let Ok(e) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, e);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    resp
}
