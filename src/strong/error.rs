//! Why a strong request failed, in terms a client can act on.

use crate::node::NodeError;
use crate::raft::StrongError;

#[derive(Debug, thiserror::Error)]
pub enum StrongDocError {
    /// The document operation itself was refused (precondition, schema, not found, …).
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The strong path could not carry it (no quorum, no leader, outcome unknown, …).
    #[error(transparent)]
    Strong(#[from] StrongError),
    /// This node does not take part in the strong path.
    #[error("this node does not run the strong path (distributed.enabled is false); send strong requests to a member of the Raft cluster")]
    Disabled,
    /// The request asks for something the strong path does not do.
    #[error("{0}")]
    Unsupported(String),
    /// A bounded read found this node staler than its bound (and the fallback is `refuse`).
    #[error(
        "this node's state may be {} stale, more than the {max_ms} ms bound (distributed.bounded_fallback is refuse)",
        measured_ms.map(|ms| format!("{ms} ms")).unwrap_or_else(|| "arbitrarily".to_owned())
    )]
    TooStale { measured_ms: Option<u64>, max_ms: u64 },
    /// The leader refused or failed the forwarded request; relayed as it answered.
    #[error("{message}")]
    Remote { status: u16, code: String, message: String },
}

/// Result of a strong operation.
pub type StrongResult<T> = Result<T, StrongDocError>;
