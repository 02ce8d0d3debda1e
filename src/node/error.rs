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
    #[error(
        "namespace `{0}` is strong: it accepts only writes committed through Raft \
         (send them with ?consistency=strong to a node with distributed.enabled)"
    )]
    StrongNamespace(String),
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
    #[error("cannot roll back {steps} changes: the document has {changes} (use 1 to {max})", max = changes.saturating_sub(1))]
    RollbackTooFar { steps: usize, changes: usize },
    #[error(transparent)]
    Document(DocError),
    #[error("transaction {0} does not exist (never began, already committed or aborted)")]
    TxnNotFound(String),
    #[error("transaction {0} expired (concurrency.transaction_timeout) and was aborted")]
    TxnExpired(String),
    #[error("transaction conflict on {key}: {reason}; nothing was applied")]
    TxnConflict { key: String, reason: String },
    #[error("timed out waiting for the lock on {0} (concurrency.lock_timeout)")]
    LockTimeout(String),
    #[error("too many open transactions (concurrency.max_transactions = {0})")]
    TooManyTransactions(usize),
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
