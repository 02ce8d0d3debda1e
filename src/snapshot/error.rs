//! Why a snapshot operation failed, one variant per thing the caller can act on.
//!
//! The API maps these to statuses and stable codes (`src/api/snapshots.rs`); the CLI prints
//! the message. Every variant that describes a bad file is raised before the node is touched.

use crate::node::NodeError;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot `{0}` does not exist")]
    NotFound(String),
    #[error("{0} does not exist")]
    FileNotFound(String),
    #[error(
        "`{0}` is not a valid snapshot id (1 to 100 characters of A-Z a-z 0-9 _ -, as listed by `GET /v1/snapshots`)"
    )]
    InvalidId(String),
    #[error("{0} is not a statemesh snapshot (it does not start with the snapshot magic bytes)")]
    Foreign(String),
    #[error(
        "{path} has snapshot header version {found}, which this node cannot read (it reads version {})",
        super::format::HEADER_VERSION
    )]
    UnsupportedVersion { path: String, found: u8 },
    #[error("{path} is truncated: a complete snapshot would be {expected} bytes, the file has {found}")]
    Truncated { path: String, expected: u64, found: u64 },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{path} would decompress to {bytes} bytes, more than the {max}-byte limit")]
    TooLarge { path: String, bytes: u64, max: u64 },
    #[error("snapshot file I/O failed on {path}: {message}")]
    Io { path: String, message: String },
    #[error("cannot encode the snapshot: {0}")]
    Encode(String),
    #[error("a snapshot restore is already running on this node")]
    Busy,
    #[error(transparent)]
    Node(#[from] NodeError),
}

impl SnapshotError {
    /// Whether the error says the file itself is unusable (so nothing was changed).
    pub fn is_bad_file(&self) -> bool {
        matches!(
            self,
            SnapshotError::Foreign(_)
                | SnapshotError::UnsupportedVersion { .. }
                | SnapshotError::Truncated { .. }
                | SnapshotError::Corrupt { .. }
                | SnapshotError::TooLarge { .. }
        )
    }
}

impl From<crate::storage::StorageError> for SnapshotError {
    fn from(error: crate::storage::StorageError) -> Self {
        SnapshotError::Node(NodeError::Storage(error))
    }
}
