//! Replication messages.
//!
//! Variant order is the wire tag: append new variants at the end, never reorder.

use serde::{Deserialize, Serialize};

use crate::attestation::RecordHeader;
use crate::change_log::{ChangeRecord, Seq};
use crate::ids::{DocKey, NodeId};
use crate::seal::SealedTip;
use crate::version_vector::VersionVector;

/// A push of freshly committed change records (a latency hint: anti-entropy alone
/// guarantees convergence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gossip {
    pub records: Vec<ChangeRecord>,
}

/// Anti-entropy pull: "this is what I hold; send what I lack". O(origins) in size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub have: VersionVector,
    /// The most records the requester wants in one response page.
    pub max_records: u32,
}

/// One page of the records the requester lacks, in (origin, seq) order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub records: Vec<ChangeRecord>,
    /// More records are available: ask again with the updated version vector.
    pub more: bool,
    /// Origins whose log the responder has pruned below the requester's position: the
    /// oldest seq still held. The requester needs whole-document transfer for the gap.
    pub floors: Vec<(NodeId, Seq)>,
}

/// State transfer, for a requester behind the responder's log horizon: "send me a page of
/// your documents, in key order, after `after`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRequest {
    pub after: Option<DocKey>,
    pub max_docs: u32,
}

/// One document's whole state: Automerge bytes (a saved document, possibly followed by
/// change chunks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocState {
    pub doc: DocKey,
    pub automerge: Vec<u8>,
}

/// A page of whole documents. `vv` is the responder's version vector taken before the page
/// was read: every change it covers is in the documents of this and every later page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateResponse {
    pub docs: Vec<DocState>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<DocKey>,
    pub vv: VersionVector,
    /// For each entry of `vv`, its origin's seal on the record at exactly that seq: proof
    /// that the origin wrote that far, so a responder cannot make the requester skip an
    /// origin's future records by claiming seqs nobody wrote.
    pub tips: Vec<SealedTip>,
    /// The headers of the records that brought every change of `docs`, and of the later
    /// records that link them to a seal: the requester merges a change only if one of them
    /// vouches for it (see [`crate::attestation`]).
    pub proofs: Vec<RecordHeader>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Gossip(Gossip),
    SyncRequest(SyncRequest),
    SyncResponse(SyncResponse),
    StateRequest(StateRequest),
    StateResponse(StateResponse),
}

impl Message {
    /// A short name for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Gossip(_) => "gossip",
            Message::SyncRequest(_) => "sync_request",
            Message::SyncResponse(_) => "sync_response",
            Message::StateRequest(_) => "state_request",
            Message::StateResponse(_) => "state_response",
        }
    }
}
