//! Snapshots: a consistent point-in-time export of every namespace, in one self-describing
//! file that any node can verify and restore.
//!
//! The node produces a [`SnapshotBody`] (every document's Automerge bytes and existence, the
//! version vector, read at one storage point in time) and restores one as new changes through
//! its ordinary write path (`src/node/snapshot_ops.rs`). This module owns everything between
//! that body and the disk:
//!
//! - [`body`]: the body's types and their serde shape, shared by all formats;
//! - [`format`]: the fixed file header (magic, versions, codes, lengths, SHA-256) and its checks;
//! - [`codec`]: the serialization format × compression matrix, bounded on the way in;
//! - [`file`]: writing a file atomically and reading one back, verified before it is decoded;
//! - [`store`]: the snapshot directory: ids, listing, deletion and pruning;
//! - [`ops`]: create (export, write, prune) and restore (read, verify, restore) for a node;
//! - [`scheduler`]: periodic snapshots for `snapshots.enabled`;
//! - [`progress`] and [`report`]: what long work reports while running and when done.
//!
//! The order of checks on the way in is the point of the design: the header's magic and
//! version, then the file length, then the checksum over the whole payload, and only then
//! decompression (capped at the length the header promised) and decoding (which never
//! panics and never allocates more than its input justifies). A corrupt, truncated or
//! foreign file is therefore refused before anything in the node is touched. See
//! `docs/SNAPSHOTS.md` for the layout and the operator's view.

pub mod body;
pub mod codec;
mod error;
pub mod file;
pub mod format;
pub mod ops;
pub mod progress;
pub mod report;
pub mod scheduler;
pub mod store;

use std::path::PathBuf;

pub use body::{SnapshotBody, SnapshotDoc};
pub use error::SnapshotError;
pub use file::{read_file, write_file, WrittenFile};
pub use progress::{Phase, Progress};
pub use report::{CreatedSnapshot, RestoreFailure, RestoreReport};
pub use scheduler::Scheduler;
pub use store::{SnapshotInfo, SnapshotStore};

use crate::config::{Compression, Config, SerializationFormat};

/// The largest decompressed body a node accepts (16 GiB). Decompression stops there, so a
/// small hostile file cannot make the node allocate without bound.
pub const MAX_BODY_BYTES: u64 = 16 << 30;

/// Where and how a node writes snapshots, from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    pub dir: PathBuf,
    pub format: SerializationFormat,
    pub compression: Compression,
    /// Snapshot files kept in `dir` after every create; older ones are removed.
    pub max_snapshots: usize,
    pub enabled: bool,
    pub interval: std::time::Duration,
}

impl SnapshotSettings {
    /// `storage.format`, `snapshots.compression`, `Config::snapshot_dir()` and the schedule.
    pub fn from_config(config: &Config) -> Self {
        Self {
            dir: config.snapshot_dir(),
            format: config.storage.format,
            compression: config.snapshots.compression,
            max_snapshots: config.snapshots.max_snapshots.max(1),
            enabled: config.snapshots.enabled,
            interval: config.snapshots.interval,
        }
    }

    pub fn store(&self) -> SnapshotStore {
        SnapshotStore::new(self.dir.clone())
    }
}
