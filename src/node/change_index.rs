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

/// What the node reads from a received record's changes, parsing each chunk once: their
/// hashes (for the change index) and the author the origin recorded in the last chunk's
/// commit message (a logged change is one write, whose chunks share a message; `None` where
/// none is recorded).
pub struct ReceivedChanges {
    pub hashes: Vec<ChangeHash>,
    pub author: Option<std::sync::Arc<str>>,
}

pub fn read(changes: &[Vec<u8>]) -> ReceivedChanges {
    let parsed: Vec<automerge::Change> =
        changes.iter().filter_map(|bytes| automerge::Change::from_bytes(bytes.clone()).ok()).collect();
    let author = parsed
        .last()
        .and_then(automerge::Change::message)
        .and_then(statemesh_protocol::CommitMessage::parse)
        .and_then(|message| message.author)
        .map(std::sync::Arc::from);
    ReceivedChanges { hashes: parsed.iter().map(automerge::Change::hash).collect(), author }
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
        let received = read(&authored.changes);
        assert_eq!(received.author.as_deref(), Some("ci"));
        assert_eq!(
            received.hashes,
            authored
                .changes
                .iter()
                .map(|c| automerge::Change::from_bytes(c.clone()).expect("change").hash())
                .collect::<Vec<_>>()
        );
        let unknown = origin.merge_patch(&json!({"a": 2}), 2).expect("patch");
        assert_eq!(read(&unknown.changes).author, None, "written without an author");
        assert_eq!(read(&[]).author, None);
    }
}
