//! The one mapping from domain errors to gRPC statuses and HTTP codes,
//! and the one place refusals are worded: for people (each refusal's
//! `Display`) and for programs (a reason code in the status details, see
//! [`coffer_proto::reason`]).

use crate::auth::AuthError;
use crate::files::FileError;
use crate::meta::{Conflict, CursorGone, Limit, PathConflict, Stale};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffer_proto::reason;
use std::fmt;
use tonic::{Code, Status};

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Quota { used, more, quota } => write!(
                f,
                "quota exceeded: {used} bytes used of {quota}; this needs {more} more \
                 (delete files and let old versions expire, or ask an admin for more)"
            ),
            Limit::Uploads { max } => write!(
                f,
                "too many open upload sessions: at most {max} per user; finish or let \
                 others expire first"
            ),
            Limit::Versions { max } => write!(
                f,
                "too many versions: at most {max} per user, deleted files' included; delete \
                 files and let old versions expire, or ask an admin to raise \
                 COFFER_MAX_VERSIONS_PER_USER"
            ),
        }
    }
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = match self.latest {
            0 => "there is no such file now".to_string(),
            n => format!("its latest version is {n}"),
        };
        let was = match self.base {
            0 => "expected no file".to_string(),
            n => format!("expected version {n}"),
        };
        write!(
            f,
            "{:?} has changed: {was}, but {now}; nothing was changed",
            self.path
        )
    }
}

impl fmt::Display for CursorGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let CursorGone { cursor, head } = self;
        if cursor > head {
            write!(f, "cursor {cursor} is ahead of the latest change ({head})")?;
        } else {
            write!(f, "cursor {cursor} is older than the changes kept")?;
        }
        write!(f, "; list the files again and continue from a new cursor")
    }
}

impl fmt::Display for PathConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathConflict::NotAFolder { path, file } => write!(
                f,
                "{path:?} cannot be created: {file:?} is a file, not a folder"
            ),
            PathConflict::IsAFolder { path, inside } if inside.is_empty() => {
                write!(f, "{path:?} cannot be a file: it is a folder")
            }
            PathConflict::IsAFolder { path, inside } => write!(
                f,
                "{path:?} cannot be a file: it is a folder holding {inside:?}"
            ),
            PathConflict::NoParent { path, parent } => write!(
                f,
                "{path:?} cannot be created: its folder {parent:?} does not exist"
            ),
            PathConflict::Taken { path } => {
                write!(
                    f,
                    "{path:?} exists: delete it first, or move to another name"
                )
            }
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::User(name) => write!(f, "user {name:?} exists"),
            Conflict::AppPassword(name) => write!(f, "you have an app password named {name:?}"),
        }
    }
}

/// A refusal's reason code and what it is about, for programs.
fn reason_of(e: &FileError) -> Option<(&'static str, Vec<(&'static str, String)>)> {
    Some(match e {
        FileError::Stale(s) => (
            reason::STALE,
            vec![
                ("path", s.path.clone()),
                ("base", s.base.to_string()),
                ("latest", s.latest.to_string()),
            ],
        ),
        FileError::CursorGone(c) => (
            reason::CURSOR_GONE,
            vec![
                ("cursor", c.cursor.to_string()),
                ("head", c.head.to_string()),
            ],
        ),
        FileError::ChunksMissing { missing } => (
            reason::CHUNKS_MISSING,
            vec![("missing", missing.to_string())],
        ),
        FileError::Limit(Limit::Quota { used, more, quota }) => (
            reason::QUOTA,
            vec![
                ("used", used.to_string()),
                ("more", more.to_string()),
                ("quota", quota.to_string()),
            ],
        ),
        FileError::Limit(Limit::Uploads { max }) => {
            (reason::TOO_MANY_UPLOADS, vec![("max", max.to_string())])
        }
        FileError::Limit(Limit::Versions { max }) => {
            (reason::TOO_MANY_VERSIONS, vec![("max", max.to_string())])
        }
        FileError::AlreadyExists(PathConflict::NoParent { path, parent }) => (
            reason::NO_FOLDER,
            vec![("path", path.clone()), ("parent", parent.clone())],
        ),
        FileError::AlreadyExists(p) => {
            let path = match p {
                PathConflict::NotAFolder { path, .. }
                | PathConflict::IsAFolder { path, .. }
                | PathConflict::Taken { path }
                | PathConflict::NoParent { path, .. } => path.clone(),
            };
            (reason::NAME_TAKEN, vec![("path", path)])
        }
        _ => return None,
    })
}

/// One file's refusal in a batch answer: what its own call would have
/// answered.
pub fn refusal(e: FileError) -> coffer_proto::pb::FileRefusal {
    reason::refusal(&Status::from(e))
}

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
        if let Some((why, about)) = reason_of(&e) {
            let code = match e {
                FileError::Limit(_) => Code::ResourceExhausted,
                FileError::AlreadyExists(PathConflict::NoParent { .. }) => Code::FailedPrecondition,
                FileError::AlreadyExists(_) => Code::AlreadyExists,
                _ => Code::FailedPrecondition,
            };
            return reason::status(code, msg, why, &about);
        }
        match e {
            FileError::InvalidPath(_) | FileError::InvalidArgument(_) => {
                Status::invalid_argument(msg)
            }
            FileError::NotFound(_)
            | FileError::VersionNotFound { .. }
            | FileError::SessionNotFound(_) => Status::not_found(msg),
            FileError::ChunksMissing { .. }
            | FileError::Stale(_)
            | FileError::CursorGone(_)
            | FileError::Precondition(_) => Status::failed_precondition(msg),
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
            (
                FileError::Limit(Limit::Uploads { max: 1 }),
                Code::ResourceExhausted,
            ),
            (
                FileError::AlreadyExists(PathConflict::Taken { path: "a".into() }),
                Code::AlreadyExists,
            ),
            (FileError::Timeout("idle".into()), Code::DeadlineExceeded),
            (FileError::Internal("bug".into()), Code::Internal),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
    }

    #[test]
    fn refusals_carry_a_reason_for_programs_and_words_for_people() {
        let cases = [
            (
                FileError::Stale(Stale {
                    path: "a".into(),
                    base: 1,
                    latest: 2,
                }),
                reason::STALE,
                "\"a\" has changed: expected version 1, but its latest version is 2; nothing was changed",
            ),
            (
                FileError::CursorGone(CursorGone { cursor: 9, head: 3 }),
                reason::CURSOR_GONE,
                "cursor 9 is ahead of the latest change (3); list the files again and continue from a new cursor",
            ),
            (
                FileError::Limit(Limit::Quota {
                    used: 5,
                    more: 6,
                    quota: 10,
                }),
                reason::QUOTA,
                "quota exceeded: 5 bytes used of 10; this needs 6 more (delete files and let old versions expire, or ask an admin for more)",
            ),
            (
                FileError::ChunksMissing { missing: 2 },
                reason::CHUNKS_MISSING,
                "2 chunk(s) of the upload are not stored yet; send them with PutChunk",
            ),
        ];
        for (err, why, words) in cases {
            let status = Status::from(err);
            assert_eq!(status.message(), words);
            assert_eq!(reason::of(&status).unwrap().0, why);
        }
        let plain = Status::from(FileError::Precondition("gone".into()));
        assert!(
            reason::of(&plain).is_none(),
            "no reason where none is named"
        );
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
            (
                MetaError::Limit(Limit::Versions { max: 1 }),
                Code::ResourceExhausted,
            ),
            (
                MetaError::PathConflict(PathConflict::Taken { path: "a".into() }),
                Code::AlreadyExists,
            ),
        ];
        for (err, code) in cases {
            let status = Status::from(FileError::from(err));
            assert_eq!(status.code(), code, "{status:?}");
            assert!(!status.message().is_empty());
        }
    }
}
