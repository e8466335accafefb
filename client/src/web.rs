//! Connecting from a browser: grpc-web through tonic-web-wasm-client.

use crate::Coffer;

/// The browser's grpc-web transport.
pub type WebTransport = tonic_web_wasm_client::Client;

/// A client of the server at `base_url` (e.g. `https://coffer.example`).
pub fn connect(base_url: &str) -> Coffer<WebTransport> {
    Coffer::new(tonic_web_wasm_client::Client::new(base_url.to_string()))
}
