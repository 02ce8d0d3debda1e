//! statemesh: a peer-to-peer CRDT replication node.
//!
//! This crate is the I/O shell around the sans-IO core in `statemesh-protocol`: it owns the
//! clock, the disk (RocksDB or memory), the HTTP API and the command line, and turns the core's
//! decisions into I/O. See `README.md` for the picture and `docs/` for the details.

pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod identity;
pub mod metrics;
pub mod net;
pub mod node;
pub mod raft;
pub mod snapshot;
pub mod storage;
pub mod strong;
#[doc(hidden)]
pub mod testkit;
pub mod tls;

pub use statemesh_protocol as protocol;
