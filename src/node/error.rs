//! Errors of the node's document operations, one variant per thing a caller can act on.
//!
//! The HTTP layer maps each variant to a status and a stable `code`; the CLI prints the
//! message. Client mistakes and server trouble stay distinct so a client mistake never shows
//! up as a 5xx.

use statemesh_protocol::{DocError, IdError, Version};

use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid identifier: {0}")]
    InvalidId(#[from] IdError),
    #[error("namespace `{0}` is not declared (namespaces.strict is on)")]
    UnknownNamespace(String),
    #[error("document {0} does not exist")]
    NotFound(String),
    #[error("precondition failed: the document is at version {current}, not {expected}")]
    VersionMismatch { expected: String, current: String },
    #[error("precondition failed: {0}")]
    Precondition(&'static str),
    #[error("namespace `{namespace}` schema rejects the document: {message}")]
    SchemaViolation { namespace: String, message: String },
    #[error("the document would be {size} bytes as JSON; namespace `{namespace}` allows at most {max}")]
    DocumentTooLarge { namespace: String, size: usize, max: u64 },
    #[error("version {0} is not a version of this document")]
    UnknownVersion(Version),
    #[error(transparent)]
    Document(DocError),
    #[error("storage failed; the node is stopping: {0}")]
    Storage(#[from] StorageError),
    #[error("the node is shutting down")]
    ShuttingDown,
}

impl From<DocError> for NodeError {
    fn from(error: DocError) -> Self {
        match error {
            DocError::UnknownVersion(version) => NodeError::UnknownVersion(version),
            other => NodeError::Document(other),
        }
    }
}
