//! `coffer-server`: Coffer's server as a library; the `coffer-server`
//! binary (`main.rs`) only wires these parts together.
//!
//! - [`store`]: the [`store::BlobStore`] trait and its backends (local
//!   directory, S3), plus a fault-injecting decorator.
//! - [`cluster`]: placement, quorum writes, verified reads, node health.
//! - [`meta`]: the metadata layer, written once over an engine seam, and
//!   its SQLite and PostgreSQL adapters.
//! - [`files`]: the domain — uploads, downloads, versions, sessions, and
//!   the change feed (pages after a cursor, and watches).
//! - [`budget`]: the server-wide memory budgets for transfers;
//!   [`download`]: one download's pipe, for gRPC and HTTP alike;
//!   [`zip`]: zip archives written as a stream.
//! - [`shares`]: share links.
//! - [`thumbs`]: thumbnails of images, kept on the nodes.
//! - [`packs`]: the pack format that keeps small chunks together.
//! - [`status`]: what operators see (nodes, replication, workers).
//! - [`auth`]: accounts — passwords, tokens, throttled logins.
//! - [`caller`]: who is calling, as the domain sees it.
//! - [`api`]: gRPC / grpc-web / HTTP on one port, behind one auth layer.
//! - [`dav`]: WebDAV at `/dav/`, over the files domain.
//! - [`workers`]: background tasks.
//! - [`identity`]: the cluster marker on nodes that keeps gc off a
//!   database's strangers.
//! - [`snapshot`]: metadata snapshots on the nodes, and restore from them.
//! - [`commands`]: operator commands (`coffer-server meta restore`, …).
//! - [`tls`]: the rustls configuration of the one port.
//! - [`listen`]: the accept loop and its connection limits; [`per_key`]:
//!   caps on what one address, account or link holds open.
//! - [`config`]: flags and environment, read by the binary only.
//! - [`server`]: [`server::run`], the whole lifecycle on a bound listener.

pub mod api;
pub mod auth;
pub mod budget;
pub mod caller;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod dav;
pub mod download;
pub mod files;
pub mod identity;
pub mod listen;
pub mod meta;
pub mod packs;
pub mod per_key;
pub mod server;
pub mod shares;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod thumbs;
pub mod tls;
pub mod workers;
pub mod zip;
