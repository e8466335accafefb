//! The one enforcement layer: every request through the port passes here,
//! native gRPC, grpc-web (converted to gRPC after it) and plain HTTP
//! alike. It decides what a route needs, checks the caller's token,
//! and hands the [`Caller`] on in the request's extensions, where the
//! services take it from.

use super::status::http_auth_error;
use crate::auth::{Auth, AuthError};
use crate::caller::Caller;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tonic::Status;

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone: the web app's files, liveness, readiness, health, server
    /// reflection, logging in, share links (which check their own password).
    Open,
    /// A logged-in user.
    User,
    /// A logged-in admin.
    Admin,
    /// An admin, or the scrape token.
    Metrics,
    /// A logged-in user, or a download ticket for that file (or that
    /// archive's selection).
    Download,
    /// WebDAV: a user by HTTP Basic with an app password, or by a Bearer
    /// token.
    Dav,
}

/// The gRPC methods anyone may call. Server reflection is open too (by
/// prefix, below): it describes the services exactly as the public
/// `proto/storage.proto` does, and generic tools such as grpcurl need it
/// before they can even send a login.
const OPEN_METHODS: &[&str] = &["/CofferAuth/Login", "/CofferAuth/Refresh"];

/// Path prefixes of the gRPC services that need a user. Decided by path,
/// never by content type, so no request reaches a service unchecked by
/// calling itself something else.
const USER_SERVICES: &[&str] = &["/FileStorage/", "/CofferAuth/", "/CofferShare/"];

/// What a request for `path` needs.
pub fn need(path: &str) -> Need {
    if OPEN_METHODS.contains(&path)
        || path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.")
    {
        Need::Open
    } else if path.starts_with("/CofferAdmin/") {
        Need::Admin
    } else if USER_SERVICES.iter().any(|p| path.starts_with(p)) {
        Need::User
    } else if path == "/metrics" {
        Need::Metrics
    } else if ["/download/", "/view/", "/thumb/"]
        .iter()
        .any(|p| path.starts_with(p))
        || path == "/zip"
    {
        Need::Download
    } else if path == crate::dav::PREFIX || path.starts_with("/dav/") {
        Need::Dav
    } else {
        Need::Open
    }
}

/// A download authorised by a ticket: only this file and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketScope {
    pub path: String,
    pub version: u64,
}

/// The request's content type if it is gRPC or grpc-web: a refusal then
/// goes back as a gRPC status in that content type.
pub fn grpc_content_type(req: &Request) -> Option<header::HeaderValue> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .filter(|v| {
            v.to_str()
                .is_ok_and(|ct| ct.starts_with("application/grpc"))
        })
}

/// The middleware.
pub async fn enforce(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let content_type = grpc_content_type(&req);
    let need = need(req.uri().path());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // A refusal in the caller's protocol: a trailers-only gRPC status
    // (grpc-web clients read it from the headers alike), else HTTP.
    let refuse = |e: AuthError| -> Response {
        match &content_type {
            Some(ct) => {
                let mut resp = Status::from(e).into_http::<axum::body::Body>();
                resp.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
                resp
            }
            None => http_auth_error(e),
        }
    };
    let caller = match need {
        Need::Open => None,
        Need::Dav => {
            match dav_caller(&auth, secure(&req), peer_of(&req), authorization.as_deref()).await {
                Ok(c) => Some(c),
                Err(resp) => return resp,
            }
        }
        Need::Metrics => match auth.may_scrape(authorization.as_deref()).await {
            Ok(()) => None,
            Err(e) => return refuse(e),
        },
        Need::Download if authorization.is_none() && auth.enabled() => {
            let ticket = req.uri().query().and_then(ticket_of);
            let Some(ticket) = ticket else {
                return refuse(AuthError::Unauthenticated(
                    "authentication required: a bearer token, or a download link from \
                     CofferAuth/DownloadLink"
                        .into(),
                ));
            };
            match auth.redeem(&ticket).await {
                Ok((caller, path, version)) => {
                    req.extensions_mut().insert(TicketScope { path, version });
                    Some(caller)
                }
                Err(e) => return refuse(e),
            }
        }
        Need::User | Need::Admin | Need::Download => {
            match auth.authenticate(authorization.as_deref()).await {
                Ok(c) if need == Need::Admin && !c.is_admin() => {
                    return refuse(AuthError::Forbidden(format!(
                        "{} is for admins; {} is not one",
                        req.uri().path(),
                        c.name
                    )))
                }
                Ok(c) => Some(c),
                Err(e) => return refuse(e),
            }
        }
    };
    if let Some(c) = caller {
        req.extensions_mut().insert(c);
    } else if !auth.enabled() {
        req.extensions_mut().insert(Caller::anyone());
    }
    next.run(req).await.into_response()
}

/// The WebDAV caller: HTTP Basic with an app password (over TLS, unless
/// the operator takes it over plain HTTP too), or a Bearer token. A
/// refusal challenges for Basic where Basic would be taken, so file
/// managers ask for the password.
async fn dav_caller(
    auth: &Auth,
    secure: bool,
    addr: Option<std::net::IpAddr>,
    authorization: Option<&str>,
) -> Result<Caller, Response> {
    if !auth.enabled() {
        return Ok(Caller::anyone());
    }
    let basic_taken = secure || auth.basic_over_http();
    let refuse = |e: AuthError| {
        let mut resp = http_auth_error(e);
        if basic_taken && resp.status() == axum::http::StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"Coffer\", charset=\"UTF-8\""),
            );
        }
        resp
    };
    let basic = authorization.and_then(|h| {
        h.get(..6)
            .filter(|s| s.eq_ignore_ascii_case("basic "))
            .map(|_| &h[6..])
    });
    match (authorization, basic) {
        (_, Some(_)) if !basic_taken => Err(refuse(AuthError::Forbidden(
            "HTTP Basic carries the password in the clear, so this server takes it only over \
             HTTPS; use https://, or an admin may allow it with COFFER_DAV_BASIC_OVER_HTTP=true"
                .into(),
        ))),
        (_, Some(credentials)) => auth.basic(credentials, addr).await.map_err(refuse),
        (Some(_), None) => auth.authenticate(authorization).await.map_err(refuse),
        (None, None) => Err(refuse(AuthError::Unauthenticated(
            "authentication required: your user name and an app password \
             (`coffer app-password create NAME`)"
                .into(),
        ))),
    }
}

/// Whether `req` came over TLS (see [`crate::listen::Secure`]).
fn secure(req: &Request) -> bool {
    req.extensions()
        .get::<crate::listen::Secure>()
        .is_some_and(|s| s.0)
}

/// The client's address the accept loop resolved for `req`.
fn peer_of(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The `ticket` parameter of a query string.
fn ticket_of(query: &str) -> Option<String> {
    url_params(query)
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v)
}

fn url_params(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // Tickets are JWTs: URL-safe already; no decoding needed.
        (k.to_string(), v.to_string())
    })
}

/// The client's address, as the accept loop resolved it (a trusted
/// proxy's `X-Forwarded-For` included).
pub fn peer<T>(req: &tonic::Request<T>) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| req.remote_addr().map(|a| a.ip()))
}

/// The caller the guard let through. Services behind the guard always
/// find one; its absence is a wiring bug, answered as UNAUTHENTICATED
/// rather than served to nobody in particular.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no caller: authentication required"))
}

/// The caller the guard let through, if they are an admin: services for
/// admins check this themselves, so a wiring mistake in the guard's table
/// does not open them to everyone.
pub fn admin<T>(req: &tonic::Request<T>) -> Result<Caller, Status> {
    let c = caller(req)?;
    if !c.is_admin() {
        return Err(Status::permission_denied(format!(
            "this call is for admins; {} is not one",
            c.name
        )));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_what_they_should() {
        assert_eq!(need("/CofferAuth/Login"), Need::Open);
        assert_eq!(need("/CofferAuth/Refresh"), Need::Open);
        assert_eq!(need("/CofferAuth/Logout"), Need::User);
        assert_eq!(need("/CofferAuth/WhoAmI"), Need::User);
        assert_eq!(need("/grpc.health.v1.Health/Check"), Need::Open);
        assert_eq!(need("/FileStorage/UploadFile"), Need::User);
        assert_eq!(need("/CofferAdmin/RunWorker"), Need::Admin);
        assert_eq!(
            need("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Need::Open
        );
        assert_eq!(
            need("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Need::Open
        );
        assert_eq!(need("/metrics"), Need::Metrics);
        assert_eq!(need("/download/a.txt"), Need::Download);
        assert_eq!(need("/CofferShare/CreateShareLink"), Need::User);
        assert_eq!(need("/CofferShare/ListShareLinks"), Need::User);
        assert_eq!(need("/s/0123abcd"), Need::Open);
        assert_eq!(need("/healthz"), Need::Open);
        assert_eq!(need("/readyz"), Need::Open);
        assert_eq!(need("/"), Need::Open);
        assert_eq!(need("/index.html"), Need::Open);
        assert_eq!(ticket_of("version=2&ticket=a.b.c"), Some("a.b.c".into()));
        assert_eq!(ticket_of("version=2"), None);
    }
}
