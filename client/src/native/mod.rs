//! Native-only parts of the SDK: connecting over TCP, and moving local
//! files ([`files`]).

pub mod files;

use crate::{ClientError, Coffer};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// How long connecting to the server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the server at `addr` (e.g. `http://localhost:5000`),
/// connected and ready.
pub async fn connect(addr: &str) -> Result<Coffer<Channel>, ClientError> {
    let unreachable = |reason: String| ClientError::Unreachable {
        addr: addr.to_string(),
        reason,
    };
    let endpoint = Endpoint::from_shared(addr.to_string())
        .map_err(|e| unreachable(format!("invalid address: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?;
    Ok(Coffer::new(channel))
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // Layers often repeat their cause's words; say them once.
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
