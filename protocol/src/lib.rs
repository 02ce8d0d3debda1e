//! The sans-IO core of statemesh.
//!
//! Everything that decides *what* a node stores, versions and (later) replicates lives here,
//! free of clocks, sockets, threads and disks: callers pass the current time and any
//! randomness in, and turn the returned values into I/O. That keeps the same code usable by
//! the node (`src/`), by unit tests that read like protocol stories, and by the deterministic
//! simulator, where a failing seed must replay exactly.
//!
//! - [`ids`]: validated names for nodes, namespaces and documents.
//! - [`version`]: a document version (Automerge heads) and its text form (the HTTP `ETag`).
//! - [`version_vector`]: per-origin causality summaries of what a node holds.
//! - [`document`]: JSON and raw-Automerge operations on one document.
//! - [`change_log`]: the per-origin change records that replication serves.
//! - [`limits`]: the bounds every input is checked against.
//! - [`bounded`]: bincode decoding whose allocations follow the input's size.
//! - [`wire`]: the replication messages and their versioned envelope (`PROTOCOL.md`).
//! - [`seal`]: origin authentication of change records (hash chains and signatures).
//! - [`attestation`]: record headers, the proof that goes with whole documents.
//! - [`replica`]: the replication state machine (anti-entropy, gossip, apply ordering).
//! - [`seeded_rng`]: a deterministic generator for tests and the simulator.

pub mod attestation;
pub mod bounded;
pub mod change_log;
pub mod document;
pub mod ids;
pub mod limits;
pub mod replica;
pub mod seal;
pub mod seeded_rng;
pub mod version;
pub mod version_vector;
pub mod wire;

pub use change_log::{ChangeId, ChangeKind, ChangeRecord, Seq};
pub use document::{is_deletion, merge_patch_json, CommitMessage, DocError, Document, WriteOutcome};
pub use ids::{DocId, DocKey, IdError, Namespace, NodeId};
pub use version::{Version, VersionParseError};
pub use version_vector::VersionVector;
