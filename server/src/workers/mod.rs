//! Background workers. Each takes a cancellation token and finishes its
//! current step before it stops.
//!
//! - [`replica_log`]: records every replica outcome the cluster reports.

pub mod replica_log;
