//! Why a call was refused, for programs: a reason code carried in the
//! status details as a standard `google.rpc.ErrorInfo` (domain `coffer`),
//! so a client branches on `STALE` rather than on a status code that
//! several refusals share. Any gRPC client that reads rich error details
//! (grpcurl, `grpc_status` in Python, tonic-types) sees it too.

use bytes::Bytes;
use prost::Message;
use std::collections::HashMap;

/// The domain of Coffer's reasons.
pub const DOMAIN: &str = "coffer";
const ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// A conditional write's base version is not the file's latest.
pub const STALE: &str = "STALE";
/// A change-feed cursor older than the changes kept, or ahead of them.
pub const CURSOR_GONE: &str = "CURSOR_GONE";
/// A commit named chunks that are not stored yet.
pub const CHUNKS_MISSING: &str = "CHUNKS_MISSING";
/// The write would cross the user's quota.
pub const QUOTA: &str = "QUOTA";
/// The user has as many open uploads as they may.
pub const TOO_MANY_UPLOADS: &str = "TOO_MANY_UPLOADS";
/// The user keeps as many versions as they may.
pub const TOO_MANY_VERSIONS: &str = "TOO_MANY_VERSIONS";
/// A name is a file where a folder is needed, or the other way round, or
/// a move's target exists.
pub const NAME_TAKEN: &str = "NAME_TAKEN";
/// The folder a new name needs does not exist (FAILED_PRECONDITION);
/// `path`, `parent`.
pub const NO_FOLDER: &str = "NO_FOLDER";

#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct ErrorInfo {
    #[prost(string, tag = "1")]
    reason: String,
    #[prost(string, tag = "2")]
    domain: String,
    #[prost(map = "string, string", tag = "3")]
    metadata: HashMap<String, String>,
}

/// A status with `reason` and its `metadata` in its details.
pub fn status(
    code: tonic::Code,
    message: impl Into<String>,
    reason: &str,
    metadata: &[(&str, String)],
) -> tonic::Status {
    let message = message.into();
    let info = ErrorInfo {
        reason: reason.to_string(),
        domain: DOMAIN.to_string(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: ERROR_INFO.to_string(),
            value: info.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(code, message, Bytes::from(details.encode_to_vec()))
}

/// Coffer's reason for `status`, and its metadata, if it carries one.
pub fn of(status: &tonic::Status) -> Option<(String, HashMap<String, String>)> {
    let details = RpcStatus::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .filter(|a| a.type_url == ERROR_INFO)
        .filter_map(|a| ErrorInfo::decode(a.value.as_slice()).ok())
        .find(|i| i.domain == DOMAIN)
        .map(|i| (i.reason, i.metadata))
}

/// One file's refusal in a batch answer, carrying what its status would.
pub fn refusal(status: &tonic::Status) -> crate::pb::FileRefusal {
    let (reason, about) = of(status).unwrap_or_default();
    crate::pb::FileRefusal {
        code: status.code() as i32,
        message: status.message().to_string(),
        reason,
        about,
    }
}

/// The status a single-file call would have answered for `r`.
pub fn refused(r: &crate::pb::FileRefusal) -> tonic::Status {
    let code = tonic::Code::from_i32(r.code);
    if r.reason.is_empty() {
        return tonic::Status::new(code, r.message.clone());
    }
    let about: Vec<(&str, String)> = r
        .about
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    status(code, r.message.clone(), &r.reason, &about)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_travels_in_the_details_and_plain_statuses_have_none() {
        let s = status(
            tonic::Code::FailedPrecondition,
            "changed",
            STALE,
            &[("latest", "3".into())],
        );
        let (reason, meta) = of(&s).unwrap();
        assert_eq!(reason, STALE);
        assert_eq!(meta["latest"], "3");
        assert_eq!(s.message(), "changed");
        assert!(of(&tonic::Status::failed_precondition("changed")).is_none());
    }

    #[test]
    fn a_refusal_in_a_batch_answer_carries_its_status_there_and_back() {
        let s = status(
            tonic::Code::FailedPrecondition,
            "changed",
            STALE,
            &[("latest", "3".into())],
        );
        let back = refused(&refusal(&s));
        assert_eq!(back.code(), tonic::Code::FailedPrecondition);
        assert_eq!(back.message(), "changed");
        assert_eq!(of(&back).unwrap().1["latest"], "3");
        let plain = refused(&refusal(&tonic::Status::not_found("gone")));
        assert_eq!(plain.code(), tonic::Code::NotFound);
        assert!(of(&plain).is_none());
    }
}
