//! Feed events: one per change applied at this node, numbered by the node's feed position.
//!
//! The position is this node's apply order (local writes now, replicated changes later), so a
//! cursor is just a number and resuming is a range scan. The change id `(origin, seq)` is the
//! same on every node, which is what consumers de-duplicate on.

use serde::{Deserialize, Serialize};
use statemesh_protocol::{ChangeId, ChangeKind, DocKey};

use crate::storage::{codec, StorageError};

/// A position in this node's feed; the first change is 1.
pub type FeedPos = u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// The cursor of this event (SSE `id`).
    pub pos: FeedPos,
    /// The stable change id, `origin:seq`.
    pub change: ChangeId,
    pub doc: DocKey,
    pub kind: ChangeKind,
    /// Time of the change at its origin, ms since the epoch.
    pub time_ms: i64,
    /// The document's version after the change.
    pub version: String,
    /// Whether the document exists after the change (false after a delete).
    pub exists: bool,
}

impl FeedEvent {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        codec::decode(bytes, "feed event")
    }

    /// The event as the API shows it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "cursor": self.pos,
            "id": self.change.to_string(),
            "namespace": self.doc.namespace.as_str(),
            "doc": self.doc.doc_id.as_str(),
            "kind": self.kind,
            "time_ms": self.time_ms,
            "version": self.version,
            "deleted": !self.exists,
        })
    }
}

pub fn feed_key(pos: FeedPos) -> Vec<u8> {
    pos.to_be_bytes().to_vec()
}
