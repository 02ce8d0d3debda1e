//! Deterministic simulation of statemesh replication (the eventual path).
//!
//! One `u64` seed derives every random choice of a run: the network settings within the
//! scenario's ranges, per-link latencies, loss, duplication and reordering, the fault plan,
//! the workload and the replicas' own random picks. Nodes run the real
//! `statemesh_protocol::replica::Replica` and real Automerge documents over simulated
//! storage; every message goes through the real wire encoding. Checkers in [`checkers`]
//! decide whether the run upheld the protocol's promises, and a failing seed replays exactly.
//!
//! - [`rng`]: the seeded generator. [`trace`]: the hashed event trace. [`clock`]: per-node
//!   clock skew and drift.
//! - [`scenario`]: TOML scenario files. [`faults`]: partition modes, crashes, planted bugs.
//! - [`network`]: latency, loss, duplication, reordering, cuts. [`node`]: replica + storage.
//! - [`world`]: the event queue that runs one seed. [`checkers`]: one property per file.
//! - [`strong_docs`]: the strong path for documents (`StrongDocs` over real nodes) under
//!   isolations and restarts, checked for linearizability, bounded staleness, atomicity and
//!   durability. [`strong`]: the same Raft layer with a register map, a faster model.

pub mod checkers;
pub mod clock;
pub mod faults;
pub mod linearizability;
pub mod network;
pub mod node;
pub mod rng;
pub mod runtime;
pub mod scenario;
pub mod strong;
pub mod strong_docs;
pub mod trace;
pub mod world;

pub use faults::PlantedBug;
pub use scenario::Scenario;
pub use world::{run_seed, Outcome, RunOptions};
