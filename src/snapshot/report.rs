//! What a create or a restore did, as the API returns it and the CLI prints it.

use serde::{Deserialize, Serialize};

use super::store::SnapshotInfo;

/// A snapshot just written, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedSnapshot {
    #[serde(flatten)]
    pub info: SnapshotInfo,
    pub elapsed_ms: u64,
}

/// The outcome of a restore. Documents that failed (a namespace schema that now refuses the
/// snapshot's content, for instance) are listed; every other document equals the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreReport {
    /// The snapshot restored (its id inside the file).
    pub id: String,
    /// Documents in the snapshot, deleted ones included.
    pub documents: u64,
    /// Documents that needed new changes to equal the snapshot.
    pub restored: u64,
    /// Documents that already equalled the snapshot.
    pub unchanged: u64,
    /// Live documents absent from the snapshot, deleted by the restore.
    pub deleted: u64,
    /// Documents that could not be restored; `failures` lists the first of them.
    pub failed: u64,
    pub failures: Vec<RestoreFailure>,
    pub elapsed_ms: u64,
}

/// One document a restore could not bring to the snapshot's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreFailure {
    pub namespace: String,
    pub id: String,
    pub error: String,
}

/// At most this many failures are listed in a report (all are counted).
pub const FAILURES_LISTED_MAX: usize = 100;

impl RestoreReport {
    pub(crate) fn record_failure(&mut self, failure: RestoreFailure) {
        self.failed += 1;
        if self.failures.len() < FAILURES_LISTED_MAX {
            self.failures.push(failure);
        }
    }
}
