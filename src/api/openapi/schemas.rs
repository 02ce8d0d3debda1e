//! Schemas for the JSON that handlers (and a few node functions) build with `json!`, so it has
//! no Rust type to derive one from. Each type here exists only to document one body exactly as
//! its code writes it; `tests/openapi.rs` checks real answers against them, so a `json!` that
//! changes without its schema here fails there.
#![allow(dead_code, reason = "documentation only: never built, only described")]

use utoipa::ToSchema;

use crate::node::{DocSummary, PeerInfo};
use crate::snapshot::SnapshotInfo;
use crate::strong::ClusterView;

/// Every 4xx and 5xx answer (`ApiError`, src/api/error.rs).
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `not_found`, `precondition_failed`; a leader's code is
    /// relayed as it sent it.
    pub code: String,
    /// For people; its wording may change.
    pub message: String,
}

/// The answer to a document write (`docs::write_response`). The `ETag` header carries the
/// same version.
#[derive(ToSchema)]
pub struct WriteAnswer {
    /// The document's version after the write.
    pub version: String,
    /// The logged change (`origin:seq`); null when the write changed nothing.
    pub change: Option<String>,
    /// Whether the write brought the document into existence.
    pub created: bool,
}

/// `GET /v1/docs/{ns}`: one page of live documents in id order.
#[derive(ToSchema)]
pub struct DocList {
    pub namespace: String,
    pub documents: Vec<DocSummary>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

/// `GET /v1/peers`.
#[derive(ToSchema)]
pub struct PeerList {
    pub peers: Vec<PeerInfo>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(ToSchema)]
pub struct Probe {
    pub status: ProbeStatus,
}

/// `ok` (live), `ready` or `not_ready`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ProbeStatus {
    Ok,
    Ready,
    NotReady,
}

/// What kind of write made a change (the protocol's `ChangeKind`, which cannot derive a
/// schema in this crate).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ChangeKind {
    Put,
    Patch,
    Delete,
    Automerge,
    Rollback,
    Restore,
}

/// One change-feed event (`FeedEvent::to_json`; the event stream's `data:` is the same
/// object).
#[derive(ToSchema)]
pub struct FeedEvent {
    /// This node's feed position of the event: resume after it with `since` or
    /// `Last-Event-ID`.
    pub cursor: u64,
    /// The stable change id, `origin:seq`, the same on every node: what consumers
    /// de-duplicate on.
    pub id: String,
    pub namespace: String,
    pub doc: String,
    pub kind: ChangeKind,
    /// Time of the change at its origin, ms since the epoch.
    pub time_ms: i64,
    /// The document's version after the change.
    pub version: String,
    /// Whether the document is deleted after the change.
    pub deleted: bool,
    /// Who made the change (an API token's name, `anonymous`); null when not recorded.
    pub author: Option<String>,
}

/// One document a transaction changed (`changed_entry`, and an interactive commit's list).
#[derive(ToSchema)]
pub struct ChangedDoc {
    pub namespace: String,
    pub id: String,
    /// The document's version after the transaction.
    pub version: String,
    /// The logged change (`origin:seq`); null when the document did not change.
    pub change: Option<String>,
}

/// A document read inside an interactive transaction.
#[derive(ToSchema)]
pub struct TxnDocument {
    /// The document as the transaction sees it, its own buffered writes applied.
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
    /// The version the transaction read it at.
    pub version: String,
}

/// A write buffered in an interactive transaction.
#[derive(ToSchema)]
pub struct TxnBuffered {
    /// Writes the transaction holds now, this one included.
    pub buffered_writes: usize,
}

/// An interactive transaction committed.
#[derive(ToSchema)]
pub struct TxnCommitted {
    /// Always true.
    pub committed: bool,
    pub changed: Vec<ChangedDoc>,
}

/// An interactive transaction aborted.
#[derive(ToSchema)]
pub struct TxnAborted {
    /// Always true.
    pub aborted: bool,
}

/// `POST /v1/cluster/init`.
#[derive(ToSchema)]
pub struct ClusterFormed {
    /// True when this call formed the cluster; false when the node already had a log or a
    /// membership and nothing changed.
    pub formed: bool,
    pub cluster: ClusterView,
}

/// A membership change committed through Raft.
#[derive(ToSchema)]
pub struct MembershipChanged {
    /// The Raft log index of the membership entry.
    pub committed_at: u64,
    pub term: u64,
}

/// `GET /v1/snapshots`.
#[derive(ToSchema)]
pub struct SnapshotList {
    /// Newest first.
    pub snapshots: Vec<SnapshotInfo>,
}

/// `DELETE /v1/snapshots/{id}`.
#[derive(ToSchema)]
pub struct SnapshotDeleted {
    pub id: String,
    /// Always true.
    pub deleted: bool,
}

/// The levels a write takes in `?consistency=`: `strong` goes through Raft, `eventual` is
/// the local path (`bounded` applies to reads and is refused).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum WriteConsistency {
    Strong,
    Eventual,
}
