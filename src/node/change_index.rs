//! The per-document index from an Automerge change hash to the logged change that carried it.
//!
//! Automerge knows a change's actor, time and message, but not which node logged it under
//! which `(origin, seq)`, nor where it sits in this node's feed. History listings join the two
//! through this index, written in the same batch as the change.

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use statemesh_protocol::{ChangeId, DocKey};

use super::feed_event::FeedPos;
use crate::storage::{codec, StorageError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRef {
    pub change: ChangeId,
    pub pos: FeedPos,
}

impl ChangeRef {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        codec::decode(bytes, "change index")
    }
}

/// `namespace NUL doc_id NUL hash`.
pub fn key(doc: &DocKey, hash: &ChangeHash) -> Vec<u8> {
    let mut key = doc.to_storage_key();
    key.push(0);
    key.extend_from_slice(&hash.0);
    key
}

/// The hashes of raw change chunks (chunks that do not parse are skipped: they came from the
/// node's own document and parse by construction).
pub fn hashes(changes: &[Vec<u8>]) -> Vec<ChangeHash> {
    changes.iter().filter_map(|bytes| automerge::Change::from_bytes(bytes.clone()).ok()).map(|c| c.hash()).collect()
}

/// The author a received change's origin recorded in its commit message (the last chunk's:
/// a logged change is one write, whose chunks share a message); `None` if none is recorded.
pub fn author(changes: &[Vec<u8>]) -> Option<std::sync::Arc<str>> {
    let change = automerge::Change::from_bytes(changes.last()?.clone()).ok()?;
    let message = change.message()?;
    statemesh_protocol::CommitMessage::parse(message).and_then(|m| m.author).map(std::sync::Arc::from)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use statemesh_protocol::Document;

    use super::*;

    #[test]
    fn a_received_change_shows_the_author_its_origin_recorded() {
        let mut origin = Document::new(automerge::ActorId::random());
        let authored = origin.put_by(&json!({"a": 1}), 1, Some("ci")).expect("put");
        assert_eq!(author(&authored.changes).as_deref(), Some("ci"));
        let unknown = origin.merge_patch(&json!({"a": 2}), 2).expect("patch");
        assert_eq!(author(&unknown.changes), None, "written without an author");
        assert_eq!(author(&[]), None);
    }
}
