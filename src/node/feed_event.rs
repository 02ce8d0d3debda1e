//! Feed events: one per change applied at this node, numbered by the node's feed position.
//!
//! The position is this node's apply order (local writes now, replicated changes later), so a
//! cursor is just a number and resuming is a range scan. The change id `(origin, seq)` is the
//! same on every node, which is what consumers de-duplicate on.
//!
//! Events are stored (bincode, positional): the `author` added later is the last field, and
//! an event stored before it decodes through [`StoredBeforeAuthor`].

use std::sync::Arc;

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
    /// Who made the change, as its origin recorded it in the commit message; `None` when
    /// not recorded.
    pub author: Option<Arc<str>>,
}

/// The stored shape of events written before `author` existed.
#[derive(Deserialize)]
struct StoredBeforeAuthor {
    pos: FeedPos,
    change: ChangeId,
    doc: DocKey,
    kind: ChangeKind,
    time_ms: i64,
    version: String,
    exists: bool,
}

impl FeedEvent {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        codec::decode(bytes, "feed event").or_else(|error| {
            let old: StoredBeforeAuthor = codec::decode(bytes, "feed event").map_err(|_| error)?;
            let StoredBeforeAuthor { pos, change, doc, kind, time_ms, version, exists } = old;
            Ok(Self { pos, change, doc, kind, time_ms, version, exists, author: None })
        })
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
            "author": self.author.as_deref(),
        })
    }
}

pub fn feed_key(pos: FeedPos) -> Vec<u8> {
    pos.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use statemesh_protocol::{DocId, Namespace, NodeId};

    use super::*;

    #[derive(Serialize)]
    struct WrittenBeforeAuthor<'a> {
        pos: FeedPos,
        change: &'a ChangeId,
        doc: &'a DocKey,
        kind: ChangeKind,
        time_ms: i64,
        version: &'a str,
        exists: bool,
    }

    #[test]
    fn events_stored_before_authorship_still_decode_without_an_author() {
        let doc = DocKey::new(Namespace::new("users").expect("ns"), DocId::new("ada").expect("id"));
        let origin = NodeId::new("12D3KooWQ6abDAdYjVPZ8YG33yENyaqiQo4TSnceUyeL1EAGqffB").expect("node id");
        let change = ChangeId { origin, seq: 3 };
        let old = codec::encode(&WrittenBeforeAuthor {
            pos: 9,
            change: &change,
            doc: &doc,
            kind: ChangeKind::Put,
            time_ms: 5,
            version: "0",
            exists: true,
        });
        let decoded = FeedEvent::decode(&old).expect("old event decodes");
        assert_eq!((decoded.pos, decoded.author), (9, None));

        let new = FeedEvent { author: Some(Arc::from("ci")), ..decoded };
        assert_eq!(FeedEvent::decode(&new.encode()).expect("new event decodes"), new);
    }
}
