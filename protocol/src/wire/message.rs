//! Replication messages.
//!
//! Variant order is the wire tag: append new variants at the end, never reorder.

use serde::{Deserialize, Serialize};

use crate::change_log::{ChangeRecord, Seq};
use crate::ids::NodeId;
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Gossip(Gossip),
    SyncRequest(SyncRequest),
    SyncResponse(SyncResponse),
}

impl Message {
    /// A short name for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Gossip(_) => "gossip",
            Message::SyncRequest(_) => "sync_request",
            Message::SyncResponse(_) => "sync_response",
        }
    }
}
