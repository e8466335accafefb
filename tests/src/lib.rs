//! `coffer-tests`: shared harness for Coffer's end-to-end tests.
//!
//! - [`cli`]: runs the real `coffer` command-line client.
//! - [`garage`]: starts real single-node Garage S3 servers on loopback.
//! - [`postgres`]: starts a throwaway PostgreSQL cluster on loopback.
//! - [`server`]: starts the real `coffer-server` binary and connects clients.
//! - [`data`]: deterministic test content and upload/download helpers.
//! - [`seed`]: a client generated from the tutorial's original proto.

pub mod cli;
pub mod data;
pub mod garage;
pub mod postgres;
pub mod server;

/// Client types generated from the tutorial's unmodified `storage.proto`.
#[allow(clippy::all)]
pub mod seed {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}
