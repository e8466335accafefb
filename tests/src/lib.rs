//! `coffer-tests`: shared harness for Coffer's end-to-end tests.
//!
//! - [`garage`]: starts real single-node Garage S3 servers on loopback.

pub mod garage;
