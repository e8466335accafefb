//! Progress reporting: what a transfer tells its caller as it goes.

/// Receives progress of an upload or download. Every method has a no-op
/// default, so an implementation overrides only what it shows.
pub trait Observer {
    /// An upload session is open (`resumed`: an earlier one was continued).
    /// Called before any chunk is sent, so the caller can record the id.
    fn session(&self, _upload_id: &str, _resumed: bool) {}
    /// The transfer will move `bytes` bytes.
    fn start(&self, _bytes: u64) {}
    /// `bytes` more bytes have been moved.
    fn advance(&self, _bytes: u64) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Observer for NoProgress {}
