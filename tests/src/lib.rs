//! `coffer-tests`: shared harness for Coffer's end-to-end tests.
//!
//! - [`cli`]: runs the real `coffer` command-line client.
//! - [`garage`]: starts real single-node Garage S3 servers on loopback.
//! - [`ports`]: ports for the servers tests start, each handed out once.
//! - [`postgres`]: starts a throwaway PostgreSQL cluster on loopback.
//! - [`server`]: starts the real `coffer-server` binary and connects clients.
//! - [`grpc_web`]: a hand-framed grpc-web client.
//! - [`hostile`]: a fake server that lists names no client may trust.
//! - [`data`]: deterministic test content and upload/download helpers.
//! - [`proxy`]: a fault-injecting TCP proxy (delays, cut links).
//! - [`soak`]: the randomized fault soak and its history checker.
//! - [`seed`]: a client generated from the tutorial's original proto.

pub mod cli;
pub mod data;
pub mod garage;
pub mod grpc_web;
pub mod hostile;
pub mod ports;
pub mod postgres;
pub mod proxy;
pub mod server;
pub mod signal;
pub mod soak;

/// Client types generated from the tutorial's unmodified `storage.proto`.
#[allow(clippy::all)]
pub mod seed {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}
