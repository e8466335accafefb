//! `coffer-proto`: the contract every side of Coffer shares.
//!
//! - [`pb`]: the generated gRPC types for `storage.proto` (service
//!   `FileStorage`, wire-compatible with the tutorial's API).
//! - [`chunking`]: the content-defined chunking scheme (FastCDC v2020 with
//!   fixed parameters, BLAKE3 ids). Server, CLI and web app chunk
//!   identically, so dedup works across clients.
//! - [`paths`]: how file names are validated and normalised.
//! - [`media`]: what kind of media a file is, for showing it.
//!
//! No I/O happens here, and the crate builds for `wasm32-unknown-unknown`.

pub mod chunking;
pub mod media;
pub mod paths;
pub mod put;
pub mod reason;

/// Generated protobuf messages and the `FileStorage` client (and server,
/// with the `server` feature).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}

/// The encoded `FileDescriptorSet` of `storage.proto`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/storage_descriptor.bin"));
