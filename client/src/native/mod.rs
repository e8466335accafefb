//! Native-only parts of the SDK: connecting over TCP, and moving local
//! files ([`files`]).

pub mod files;

use crate::{ClientError, Coffer};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// How long connecting to the server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes one response may have in flight before the client acknowledges.
pub const STREAM_WINDOW: u32 = 16 * 1024 * 1024;
/// Bytes all responses together may have in flight.
pub const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// Largest HTTP/2 frame the client accepts: fewer, larger frames per chunk.
pub const MAX_FRAME: u32 = 1024 * 1024;

/// A client of the server at `addr` (e.g. `http://localhost:5000`),
/// connected and ready.
pub async fn connect(addr: &str) -> Result<Coffer<Channel>, ClientError> {
    connect_with(addr, None).await
}

/// Like [`connect`]; an `https://` address is checked against `ca` (PEM
/// certificates) if given, else against the system's trusted roots.
pub async fn connect_with(addr: &str, ca: Option<&[u8]>) -> Result<Coffer<Channel>, ClientError> {
    let unreachable = |reason: String| ClientError::Unreachable {
        addr: addr.to_string(),
        reason,
    };
    let endpoint = Endpoint::from_shared(addr.to_string())
        .map_err(|e| unreachable(format!("invalid address: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        // HTTP/2's default windows (64 KiB to 2 MiB) make a bulk transfer
        // wait for window updates; a download keeps several MiB in flight.
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME);
    let endpoint = if addr.starts_with("https://") {
        let tls = match ca {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        endpoint
            .tls_config(tls)
            .map_err(|e| unreachable(format!("TLS: {}", error_chain(&e))))?
    } else {
        if ca.is_some() {
            return Err(unreachable(
                "a CA certificate was given for a plain http:// address; use https://".into(),
            ));
        }
        endpoint
    };
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
