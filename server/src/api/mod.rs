//! The network edge: one axum router serving native gRPC, grpc-web,
//! gRPC health and reflection, and plain HTTP routes on a single port.
//!
//! - [`guard`]: the one authentication layer every request passes.
//! - [`auth`]: the `CofferAuth` service (log in and out, download links).
//! - [`grpc`]: the `FileStorage` service, a thin adapter over [`Files`].
//! - [`admin`]: the `CofferAdmin` service (cluster status, run a worker).
//! - [`status`]: the one place domain errors become gRPC statuses.
//! - [`limit`]: the time limit on unary calls.
//! - [`http`]: `GET /download/<path>`, file downloads over plain HTTP.
//! - [`revoke`]: open streams end with their caller's login.
//! - [`share`]: the `CofferShare` service and `GET /s/<token>`, share
//!   links anyone can download.
//! - [`web`]: the built web app at `/`; [`web_assets`]: the embedded
//!   app's ETags and compressed forms.
//! - `/dav/`: WebDAV (see [`crate::dav`]).
//! - `/metrics`: Prometheus text; `/healthz`: liveness; `/readyz`:
//!   readiness (the database answers and at least W nodes are up), which
//!   `grpc.health.v1` reports too.

pub mod admin;
pub mod archive;
pub mod auth;
pub mod grpc;
pub mod guard;
pub mod http;
pub mod inline;
pub mod limit;
pub mod revoke;
pub mod share;
pub mod status;
pub mod thumb;
pub mod web;
pub mod web_assets;

use crate::auth::Auth;
use crate::files::Files;
use crate::shares::Shares;
use crate::status::Ops;
use axum::http::{header, HeaderValue, StatusCode};
use axum::routing::get;
use coffer_proto::pb::coffer_admin_server::CofferAdminServer;
use coffer_proto::pb::coffer_auth_server::CofferAuthServer;
use coffer_proto::pb::coffer_share_server::CofferShareServer;
use coffer_proto::pb::file_storage_server::FileStorageServer;
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest gRPC message accepted: a full chunk plus framing.
pub const MAX_MESSAGE_BYTES: usize = coffer_proto::chunking::MAX_CHUNK + 1024 * 1024;

/// What the routes serve.
pub struct Services {
    pub files: Files,
    pub shares: Shares,
    pub ops: Ops,
    pub auth: Auth,
    pub dav: crate::dav::Dav,
}

/// Builds the router for every route the server answers.
/// `web_dir` holds a built web app (a `dist/` folder) to serve instead of
/// the one embedded in the binary.
/// Readiness is re-checked for `grpc.health.v1` this often, until `cancel`.
pub async fn router(
    services: Services,
    web_dir: Option<&std::path::Path>,
    request_timeout: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<axum::Router> {
    let Services {
        files,
        shares,
        ops,
        auth,
        dav,
    } = services;
    let api = grpc::FileStorageApi::new(files.clone(), auth.clone());
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<FileStorageServer<grpc::FileStorageApi>>()
        .await;
    tokio::spawn(report_readiness(health, ops.clone(), cancel));
    // v1 and v1alpha: many generic gRPC tools (grpcio-reflection's Python
    // client, older grpcurl, Postman) still ask v1alpha only.
    let described = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(coffer_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = described().build_v1()?;
    let reflection_v1alpha = described().build_v1alpha()?;
    let file_storage = FileStorageServer::new(api)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let grpc = tonic::service::Routes::new(file_storage)
        .add_service(CofferAdminServer::new(admin::AdminApi::new(ops.clone())))
        .add_service(CofferAuthServer::new(auth::AuthApi::new(
            auth.clone(),
            files.clone(),
        )))
        .add_service(CofferShareServer::new(share::ShareApi::new(shares.clone())))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .into_axum_router()
        .layer(tonic_web::GrpcWebLayer::new());
    let ops_for_metrics = ops.clone();
    let auth_for_metrics = auth.clone();
    let files_for_metrics = files.clone();
    let metrics = move || {
        let ops = ops_for_metrics.clone();
        let (checks, throttled) = auth_for_metrics.counters();
        let (read_ahead_kib, pipes_kib) = files_for_metrics.download_budget().used_kib();
        let upload_held = files_for_metrics.upload_held_bytes();
        async move {
            match ops.report().await {
                Ok(r) => {
                    let mut text = crate::status::prometheus(&r);
                    text.push_str(&format!(
                        "# HELP coffer_login_password_checks_total Password hashes checked by logins.\n\
                         # TYPE coffer_login_password_checks_total counter\n\
                         coffer_login_password_checks_total {checks}\n\
                         # HELP coffer_login_throttled_total Logins refused unchecked after recent failures.\n\
                         # TYPE coffer_login_throttled_total counter\n\
                         coffer_login_throttled_total {throttled}\n\
                         # HELP coffer_download_buffer_bytes Bytes downloads hold read ahead (within COFFER_DOWNLOAD_MEMORY_MIB).\n\
                         # TYPE coffer_download_buffer_bytes gauge\n\
                         coffer_download_buffer_bytes {}\n\
                         # HELP coffer_download_pipe_bytes Bytes open downloads reserve for their pipes and network buffers (within COFFER_DOWNLOAD_MEMORY_MIB).\n\
                         # TYPE coffer_download_pipe_bytes gauge\n\
                         coffer_download_pipe_bytes {}\n\
                         # HELP coffer_upload_buffer_bytes Bytes streamed uploads have received and not yet stored.\n\
                         # TYPE coffer_upload_buffer_bytes gauge\n\
                         coffer_upload_buffer_bytes {upload_held}\n",
                        read_ahead_kib * 1024,
                        pipes_kib * 1024
                    ));
                    (StatusCode::OK, text)
                }
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            }
        }
    };
    let web = web::routes(web_dir);
    let dav_service = axum::handler::Handler::with_state(crate::dav::handle, dav);
    Ok(grpc
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz).with_state(ops.clone()))
        .route("/metrics", get(metrics))
        .route(
            "/download/{*path}",
            get(http::file::<false>).with_state((files.clone(), auth.clone())),
        )
        .route(
            "/thumb/{*path}",
            get(thumb::thumbnail).with_state(files.clone()),
        )
        .route(
            "/view/{*path}",
            get(http::file::<true>).with_state((files.clone(), auth.clone())),
        )
        .route(
            "/zip",
            axum::routing::post(archive::download)
                .with_state((files.clone(), auth.clone()))
                .layer(axum::extract::DefaultBodyLimit::max(
                    archive::MAX_FORM_BYTES,
                )),
        )
        .route("/s/{token}", get(share::download).with_state(shares))
        // Every method, WebDAV's own (PROPFIND, LOCK...) included.
        .route_service(crate::dav::PREFIX, dav_service.clone())
        .route_service("/dav/", dav_service.clone())
        .route_service("/dav/{*path}", dav_service)
        // Windows asks the root before mounting `/dav/`; browsers get the
        // web app there.
        .route(
            "/",
            axum::routing::options(crate::dav::root_options).fallback_service(web.clone()),
        )
        // tonic's router already answers unknown gRPC paths; replace that
        // fallback with the web app.
        .fallback_service(web)
        // Unary calls get an answer in bounded time.
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            limit::unary_timeout,
        ))
        // Every route is behind the one authentication layer: native gRPC,
        // grpc-web (converted after it) and plain HTTP.
        .layer(axum::middleware::from_fn_with_state(auth, guard::enforce))
        // Every response: no MIME sniffing, no framing by other sites, no
        // referrer leaking file names.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        )))
}

/// `GET /readyz`: 200 when this server can take uploads, else 503 with the
/// reason. Load balancers and Kubernetes probes send traffic by it.
async fn readyz(axum::extract::State(ops): axum::extract::State<Ops>) -> (StatusCode, String) {
    match ops.readiness().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// Keeps `grpc.health.v1` (the whole server and `FileStorage`) in step
/// with [`readyz`].
async fn report_readiness(
    health: tonic_health::server::HealthReporter,
    ops: Ops,
    cancel: tokio_util::sync::CancellationToken,
) {
    use tonic_health::ServingStatus;
    let mut last = None;
    loop {
        let ready = ops.readiness().await.is_ok();
        if last != Some(ready) {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status("", status).await;
            health
                .set_service_status(
                    <FileStorageServer<grpc::FileStorageApi> as tonic::server::NamedService>::NAME,
                    status,
                )
                .await;
            last = Some(ready);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
