//! `coffer-client`: an async SDK for Coffer, and the `coffer` command-line
//! tool built on it.
//!
//! - [`Coffer`]: the client, generic over the tonic transport ([`Transport`]),
//!   so one code path serves tonic's native `Channel` and the browser's
//!   grpc-web client. Listing, metadata, versions, restore, delete, cluster
//!   status and workers, with an optional bearer token on every request.
//! - [`upload`]: delta uploads through the chunked session: [`UploadPlan`]
//!   chunks and hashes locally with the shared scheme, and
//!   [`Coffer::upload`] sends only the chunks the cluster lacks.
//! - [`download`]: streamed downloads verified against the content hash.
//! - [`plan`]: what a sync pass does, decided from three trees (local,
//!   server, last synced) with no I/O.
//! - [`native`] (feature `native`): connecting over TCP, and file uploads
//!   and downloads that never leave a half-written file behind.
//! - [`web`] (feature `wasm`): connecting from a browser.
//!
//! - [`format`]: sizes for people to read.
//! - [`local_path`]: the one rule by which a name the server lists becomes
//!   a path on this computer (no climbing out, names every OS can hold).
//!
//! Errors are [`ClientError`]; progress is reported through [`Observer`].

mod batch;
mod client;
pub mod download;
mod error;
pub mod format;
pub mod local_path;
mod observer;
pub mod plan;
mod retry;
pub mod upload;

#[cfg(feature = "native")]
pub mod native;
#[cfg(feature = "wasm")]
pub mod web;

pub use client::{normalize as normalize_name, Coffer, Transport, Watch};
pub use coffer_proto::pb;
pub use coffer_proto::put::PutMode;
pub use error::ClientError;
pub use observer::{NoProgress, Observer};
pub use upload::{ChunkSource, UploadPlan, UploadReport};

/// Metadata of one file version, as the server reports it.
pub type Metadata = pb::MetadataResponse;
