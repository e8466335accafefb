//! The one mapping from domain errors to gRPC statuses and HTTP codes.

use crate::auth::AuthError;
use crate::files::FileError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::Status;

/// A domain error as an HTTP response: the gRPC code's HTTP equivalent and
/// the message as text.
pub fn http_error(e: FileError) -> Response {
    let retry = match &e {
        FileError::TooMany(_) => Some(StatusCode::TOO_MANY_REQUESTS),
        FileError::Busy(_) => Some(StatusCode::SERVICE_UNAVAILABLE),
        _ => None,
    };
    if let Some(code) = retry {
        let mut resp = (code, format!("{e}\n")).into_response();
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
        return resp;
    }
    let status = Status::from(e);
    let code = match status.code() {
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        tonic::Code::ResourceExhausted => StatusCode::INSUFFICIENT_STORAGE,
        tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        tonic::Code::DeadlineExceeded => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, format!("{}\n", status.message())).into_response()
}

/// An authentication error as an HTTP response: 401 (with a
/// `WWW-Authenticate` challenge), 403 or 429.
pub fn http_auth_error(e: AuthError) -> Response {
    let status = Status::from(e);
    let code = match status.code() {
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut resp = (code, format!("{}\n", status.message())).into_response();
    if code == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"coffer\""),
        );
    }
    resp
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        let msg = e.to_string();
        match e {
            AuthError::Unauthenticated(_) => Status::unauthenticated(msg),
            AuthError::Forbidden(_) => Status::permission_denied(msg),
            AuthError::Throttled(_) => Status::resource_exhausted(msg),
            AuthError::Busy => Status::unavailable(msg),
            AuthError::InvalidArgument(_) => Status::invalid_argument(msg),
            AuthError::Meta(m) => Status::from(FileError::from(m)),
            AuthError::Config(_) => {
                tracing::error!(error = %msg, "authentication misconfigured");
                Status::internal(msg)
            }
        }
    }
}

impl From<FileError> for Status {
    fn from(e: FileError) -> Self {
        let msg = e.to_string();
        match e {
            FileError::InvalidPath(_) | FileError::InvalidArgument(_) => {
                Status::invalid_argument(msg)
            }
            FileError::NotFound(_)
            | FileError::VersionNotFound { .. }
            | FileError::SessionNotFound(_) => Status::not_found(msg),
            FileError::ChunksMissing { .. } | FileError::Precondition(_) => {
                Status::failed_precondition(msg)
            }
            FileError::Unavailable(_) => Status::unavailable(msg),
            FileError::Exhausted(_) => {
                tracing::error!(error = %msg, "out of space");
                Status::resource_exhausted(msg)
            }
            FileError::Limit(_) | FileError::TooMany(_) | FileError::Busy(_) => {
                Status::resource_exhausted(msg)
            }
            FileError::AlreadyExists(_) => Status::already_exists(msg),
            FileError::Timeout(_) => Status::deadline_exceeded(msg),
            FileError::DataLoss(_) => {
                tracing::error!(error = %msg, "data loss");
                Status::data_loss(msg)
            }
            FileError::Internal(_) => {
                tracing::error!(error = %msg, "internal error");
                Status::internal(msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn each_error_gets_its_code() {
        let cases = [
            (
                FileError::InvalidArgument("x".into()),
                Code::InvalidArgument,
            ),
            (
                FileError::InvalidPath(coffer_proto::paths::PathError::Empty),
                Code::InvalidArgument,
            ),
            (FileError::NotFound("a".into()), Code::NotFound),
            (
                FileError::VersionNotFound {
                    path: "a".into(),
                    version: 2,
                },
                Code::NotFound,
            ),
            (FileError::SessionNotFound("s".into()), Code::NotFound),
            (
                FileError::ChunksMissing { missing: 1 },
                Code::FailedPrecondition,
            ),
            (
                FileError::Precondition("gone".into()),
                Code::FailedPrecondition,
            ),
            (FileError::Unavailable("down".into()), Code::Unavailable),
            (FileError::DataLoss("gone".into()), Code::DataLoss),
            (FileError::Exhausted("full".into()), Code::ResourceExhausted),
            (FileError::Limit("quota".into()), Code::ResourceExhausted),
            (FileError::AlreadyExists("a".into()), Code::AlreadyExists),
            (FileError::Timeout("idle".into()), Code::DeadlineExceeded),
            (FileError::Internal("bug".into()), Code::Internal),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
    }

    #[test]
    fn metadata_store_failures_say_what_kind_they_are() {
        use crate::meta::MetaError;
        let cases = [
            (MetaError::Full("disk".into()), Code::ResourceExhausted),
            (MetaError::Busy("locked".into()), Code::Unavailable),
            (MetaError::Unreachable("down".into()), Code::Unavailable),
            (MetaError::ChunkDeleting("c".into()), Code::Unavailable),
            (MetaError::Backend("corrupt".into()), Code::Internal),
            (MetaError::MissingChunks(2), Code::FailedPrecondition),
            (MetaError::Limit("quota".into()), Code::ResourceExhausted),
            (MetaError::PathConflict("a".into()), Code::AlreadyExists),
        ];
        for (err, code) in cases {
            let status = Status::from(FileError::from(err));
            assert_eq!(status.code(), code, "{status:?}");
            assert!(!status.message().is_empty());
        }
    }
}
