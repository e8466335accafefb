//! The SDK's typed errors.

use thiserror::Error;
use tonic::Code;

/// Why an SDK call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// A file name or prefix that Coffer would reject. (The reason is
    /// part of the message, so it is not also a `source`: a report that
    /// prints the chain would say it twice.)
    #[error("invalid remote name {name:?}: {reason}")]
    InvalidName {
        name: String,
        reason: coffer_proto::paths::PathError,
    },
    /// The file (or that version of it) does not exist; the server's words.
    #[error("{0}")]
    NotFound(String),
    /// The server could not be reached.
    #[error("cannot reach the server at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The browser could not complete the request: the server is down or
    /// the network is gone (fetch failed before any answer).
    #[error("cannot reach the server: {0}")]
    Offline(String),
    /// The server answered with an error; `reason` is its code for
    /// programs (see [`coffer_proto::reason`]), when it named one.
    #[error("server error ({code:?}): {message}")]
    Server {
        code: Code,
        message: String,
        reason: Option<String>,
    },
    /// Downloaded bytes did not hash to the version's content hash.
    #[error("download of {name} is corrupt: expected content hash {expected}, got {actual}")]
    HashMismatch {
        name: String,
        expected: String,
        actual: String,
    },
    /// The server broke the protocol (e.g. asked for a chunk the file lacks).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Reading or writing local data failed (the I/O error is part of
    /// the message, as above).
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
}

impl ClientError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, error: std::io::Error) -> Self {
        ClientError::Io {
            context: context.into(),
            error,
        }
    }

    /// Whether the server refused because the client's view is out of
    /// date: a stale base version, or a change cursor too old to serve.
    pub fn is_stale(&self) -> bool {
        use coffer_proto::reason::{CURSOR_GONE, STALE};
        matches!(
            self,
            ClientError::Server { reason: Some(r), .. } if r == STALE || r == CURSOR_GONE
        )
    }

    /// Whether the target is taken (a move onto a live file).
    pub fn is_already_exists(&self) -> bool {
        matches!(
            self,
            ClientError::Server {
                code: Code::AlreadyExists,
                ..
            }
        )
    }

    /// Whether this is a "does not exist" answer.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::NotFound(_))
    }
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            Code::NotFound => ClientError::NotFound(s.message().to_string()),
            Code::Unknown if is_fetch_failure(s.message()) => ClientError::Offline(format!(
                "the browser's request failed ({})",
                one_line(s.message())
            )),
            code => ClientError::Server {
                code,
                message: one_line(&source_chain(&s)),
                reason: coffer_proto::reason::of(&s).map(|(r, _)| r),
            },
        }
    }
}

/// Whether a status carries a browser's fetch failure: what Chromium,
/// Firefox and Safari say when no HTTP answer came at all.
fn is_fetch_failure(message: &str) -> bool {
    ["Failed to fetch", "NetworkError", "Load failed"]
        .iter()
        .any(|m| message.contains(m))
}

/// The status message followed by its causes, e.g. the transport's reason.
fn source_chain(s: &tonic::Status) -> String {
    let mut out = s.message().to_string();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = cur {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_fetch_failure_reads_as_an_unreachable_server() {
        let e = ClientError::from(tonic::Status::unknown(
            "JS API error: TypeError: Failed to fetch",
        ));
        assert!(matches!(e, ClientError::Offline(_)), "{e:?}");
        assert!(e.to_string().starts_with("cannot reach the server"), "{e}");
        let other = ClientError::from(tonic::Status::unknown("something else"));
        assert!(matches!(other, ClientError::Server { .. }), "{other:?}");
    }

    #[test]
    fn stale_is_the_servers_reason_not_a_guess_from_the_code() {
        use coffer_proto::reason;
        let stale = reason::status(Code::FailedPrecondition, "changed", reason::STALE, &[]);
        assert!(ClientError::from(stale).is_stale());
        let gone = reason::status(Code::FailedPrecondition, "old", reason::CURSOR_GONE, &[]);
        assert!(ClientError::from(gone).is_stale());
        let missing = reason::status(
            Code::FailedPrecondition,
            "2 chunk(s) not stored",
            reason::CHUNKS_MISSING,
            &[],
        );
        assert!(!ClientError::from(missing).is_stale());
        assert!(!ClientError::from(tonic::Status::failed_precondition("x")).is_stale());
    }
}
