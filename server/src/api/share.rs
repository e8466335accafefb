//! Share links on the wire: the `CofferShare` gRPC service (create, list,
//! revoke) and `GET /s/<token>`, which serves the shared version to
//! anyone over plain HTTP, with Range requests. A link's password comes
//! as the password of HTTP Basic authentication (any user name), so
//! browsers ask for it with their own dialog and `curl -u :PASSWORD`
//! works.

use super::guard::caller;
use crate::files::download_keys;
use crate::shares::{ShareError, ShareView, Shares};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use coffer_proto::pb::coffer_share_server::CofferShare;
use coffer_proto::pb::*;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::{Request, Response as GrpcResponse, Status};

pub struct ShareApi {
    shares: Shares,
}

impl ShareApi {
    pub fn new(shares: Shares) -> Self {
        Self { shares }
    }
}

fn link(v: ShareView) -> ShareLink {
    ShareLink {
        id: v.row.id,
        url: v.url,
        file_name: v.row.path,
        version: v.row.number,
        created_at: v.row.created_at,
        expires_at: v.row.expires_at,
        has_password: v.row.password_hash.is_some(),
        revoked: v.row.revoked,
        expired: v.expired,
    }
}

#[tonic::async_trait]
impl CofferShare for ShareApi {
    async fn create_share_link(
        &self,
        req: Request<CreateShareLinkRequest>,
    ) -> Result<GrpcResponse<ShareLink>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let ttl = (r.expires_in_secs != 0).then(|| Duration::from_secs(r.expires_in_secs));
        let v = self
            .shares
            .create(&who, &r.file_name, r.version, ttl, &r.password)
            .await?;
        tracing::info!(user = %who.name, path = %v.row.path, version = v.row.number, "share link created");
        Ok(GrpcResponse::new(link(v)))
    }

    async fn list_share_links(
        &self,
        req: Request<ListShareLinksRequest>,
    ) -> Result<GrpcResponse<ListShareLinksResponse>, Status> {
        let who = caller(&req)?;
        let links = self.shares.list(&who).await?;
        Ok(GrpcResponse::new(ListShareLinksResponse {
            links: links.into_iter().map(link).collect(),
        }))
    }

    async fn revoke_share_link(
        &self,
        req: Request<RevokeShareLinkRequest>,
    ) -> Result<GrpcResponse<RevokeShareLinkResponse>, Status> {
        let who = caller(&req)?;
        self.shares.revoke(&who, &req.into_inner().id).await?;
        Ok(GrpcResponse::new(RevokeShareLinkResponse {}))
    }
}

/// The password of a Basic `Authorization` header, any user name.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.clone(), |(_, p)| p.to_string()),
    )
}

/// `GET /s/<token>`: the shared version, or why not.
pub async fn download(
    State(shares): State<Shares>,
    Path(token): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let password = basic_password(&headers);
    let view = match shares
        .resolve(&token, password.as_deref(), Some(addr.ip()))
        .await
    {
        Ok(v) => v,
        Err(e) => return refusal(e),
    };
    let admitted = match shares.files().admit_download(&download_keys(
        format!("share link {}", view.row.id),
        Some(addr.ip()),
    )) {
        Ok(a) => a,
        Err(e) => return super::status::http_error(e),
    };
    let (v, chunks) = match shares.open(&view).await {
        Ok(found) => found,
        Err(e) => return super::status::http_error(e),
    };
    let mut resp = super::http::serve(shares.files(), &v, chunks, &headers, admitted, None).await;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

/// 404 for what never was (or is gone), 410 for an ended link, 401 with a
/// Basic challenge for a missing or wrong password, 429 while throttled.
fn refusal(e: ShareError) -> Response {
    let text = format!("{e}\n");
    let challenge = |text: String| {
        let mut resp = (StatusCode::UNAUTHORIZED, text).into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Coffer shared file\", charset=\"UTF-8\""),
        );
        resp
    };
    match e {
        ShareError::NotFound => (StatusCode::NOT_FOUND, text).into_response(),
        ShareError::Expired | ShareError::Revoked => (StatusCode::GONE, text).into_response(),
        ShareError::PasswordRequired => challenge(text),
        ShareError::Auth(crate::auth::AuthError::Unauthenticated(_)) => challenge(text),
        ShareError::Auth(a) => {
            let retry = match &a {
                crate::auth::AuthError::Throttled(wait) => Some(wait.as_secs().max(1)),
                _ => None,
            };
            let mut resp = super::status::http_auth_error(a);
            if let Some(secs) = retry {
                resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
            }
            resp
        }
        ShareError::File(f) => super::status::http_error(f),
    }
}
