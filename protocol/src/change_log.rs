//! Change records: the unit a node logs, numbers and (later) replicates.
//!
//! Every write a node originates becomes one [`ChangeRecord`] numbered `(origin, seq)`, with
//! seqs dense per origin. The record carries the raw Automerge changes it introduced, so any
//! node can serve any origin's log (epidemic relay) and a receiver can apply it to a document
//! without knowing how it was produced. Keys sort by origin then seq, so "everything from
//! origin O after seq S" is one range scan.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{DocKey, NodeId};
use crate::limits::CHANGE_RECORD_BYTES_MAX;
use crate::seal::{RecordHash, Seal};

/// A per-origin sequence number; the first change of an origin is 1.
pub type Seq = u64;

/// The stable identity of one logged change: who originated it and its number there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChangeId {
    pub origin: NodeId,
    pub seq: Seq,
}

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.origin, self.seq)
    }
}

/// What kind of write produced a change; shown in history and the change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Whole-document replacement from JSON.
    Put,
    /// RFC 7386 merge patch.
    Patch,
    /// Document deletion (a tombstone change; history is kept).
    Delete,
    /// Raw Automerge changes submitted by an Automerge-native client.
    Automerge,
    /// A new change restoring an older state of the same document.
    Rollback,
    /// A new change setting the document to its state in a snapshot.
    Restore,
}

impl ChangeKind {
    /// The Automerge commit message used for changes of this kind. Deletion is recognised by
    /// its message (see [`crate::document`]), so these strings are part of the data format.
    pub fn commit_message(self) -> &'static str {
        match self {
            ChangeKind::Put => "statemesh:put",
            ChangeKind::Patch => "statemesh:patch",
            ChangeKind::Delete => "statemesh:delete",
            ChangeKind::Automerge => "statemesh:automerge",
            ChangeKind::Rollback => "statemesh:rollback",
            ChangeKind::Restore => "statemesh:restore",
        }
    }
}

/// One logged write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub id: ChangeId,
    pub doc: DocKey,
    pub kind: ChangeKind,
    /// Wall-clock time at the origin, milliseconds since the Unix epoch (informational only:
    /// nothing orders changes by it).
    pub time_ms: i64,
    /// Raw Automerge change chunks, in an order where dependencies come first.
    pub changes: Vec<Vec<u8>>,
    /// The hash of the origin's previous record ([`crate::seal::NO_PREV`] when the writer did
    /// not know it); see [`crate::seal`].
    pub prev: RecordHash,
    /// The origin's signature, on the records it seals.
    pub seal: Option<Seal>,
}

/// Why stored or received record bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordDecodeError {
    #[error("change record is empty")]
    Empty,
    #[error("change record format {0} is not supported (this node reads format {RECORD_FORMAT})")]
    UnknownFormat(u8),
    #[error(
        "change record format 1 predates origin authentication: this data directory was written by an \
         older statemesh; export its documents with that version and import them into a fresh one"
    )]
    Unsigned,
    #[error(
        "change record format 2 predates proof for transferred documents (its hashes cover change bytes, \
         not change hashes): this data directory was written by an older statemesh; export its documents \
         with that version and import them into a fresh one"
    )]
    Format2,
    #[error("change record is malformed: {0}")]
    Malformed(String),
}

/// The first byte of every encoded record; bump it when the layout or the meaning of a field
/// changes. Format 1 had neither `prev` nor `seal`; format 2 hashed the change bytes where
/// format 3 hashes the changes' Automerge hashes (see [`crate::seal::record_hash`]).
const RECORD_FORMAT: u8 = 3;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

impl ChangeRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![RECORD_FORMAT];
        // Encoding into a Vec cannot fail for these plain types.
        bincode::serde::encode_into_std_write(self, &mut out, bincode_config()).expect("change record encodes");
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, RecordDecodeError> {
        let (format, body) = bytes.split_first().ok_or(RecordDecodeError::Empty)?;
        match *format {
            1 => return Err(RecordDecodeError::Unsigned),
            2 => return Err(RecordDecodeError::Format2),
            _ => {}
        }
        if *format != RECORD_FORMAT {
            return Err(RecordDecodeError::UnknownFormat(*format));
        }
        // The limit follows the record's own size, so a forged length inside a record relayed
        // by a peer cannot allocate more than twice the bytes that arrived.
        crate::bounded::decode(body, CHANGE_RECORD_BYTES_MAX).map_err(|e| RecordDecodeError::Malformed(e.to_string()))
    }

    /// Total size of the Automerge payload.
    pub fn payload_bytes(&self) -> usize {
        self.changes.iter().map(Vec::len).sum()
    }
}

/// Storage key of `(origin, seq)`: origin bytes, NUL, seq big-endian (so seqs sort).
pub fn log_key(origin: &NodeId, seq: Seq) -> Vec<u8> {
    let mut key = log_prefix(origin);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key prefix of every record from `origin`.
pub fn log_prefix(origin: &NodeId) -> Vec<u8> {
    let mut key = Vec::with_capacity(origin.as_str().len() + 9);
    key.extend_from_slice(origin.as_str().as_bytes());
    key.push(0);
    key
}

/// Inverse of [`log_key`].
pub fn parse_log_key(key: &[u8]) -> Option<(NodeId, Seq)> {
    let nul = key.iter().position(|b| *b == 0)?;
    let origin = NodeId::new(std::str::from_utf8(&key[..nul]).ok()?).ok()?;
    let seq: [u8; 8] = key[nul + 1..].try_into().ok()?;
    Some((origin, u64::from_be_bytes(seq)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DocId, Namespace};

    fn record() -> ChangeRecord {
        ChangeRecord {
            id: ChangeId { origin: NodeId::new("origin1").unwrap(), seq: 42 },
            doc: DocKey::new(Namespace::new("ns").unwrap(), DocId::new("doc").unwrap()),
            kind: ChangeKind::Patch,
            time_ms: 1_700_000_000_000,
            changes: vec![vec![1, 2, 3], vec![4]],
            prev: [7; 32],
            seal: None,
        }
    }

    #[test]
    fn record_round_trips() {
        let r = record();
        assert_eq!(ChangeRecord::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn corrupt_records_are_refused_not_panicked_on() {
        let bytes = record().encode();
        assert!(matches!(ChangeRecord::decode(&[]), Err(RecordDecodeError::Empty)));
        let mut wrong_format = bytes.clone();
        wrong_format[0] = 9;
        assert!(matches!(ChangeRecord::decode(&wrong_format), Err(RecordDecodeError::UnknownFormat(9))));
        for cut in 1..bytes.len() {
            assert!(ChangeRecord::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut trailing = bytes;
        trailing.push(0);
        assert!(ChangeRecord::decode(&trailing).is_err());
    }

    #[test]
    fn a_record_whose_origin_claims_a_terabyte_is_refused_without_allocating_it() {
        // Format byte, then the origin's length prefix claiming 2^40 bytes: ten bytes that
        // used to be checked against a 64 MiB limit only.
        let mut hostile = vec![RECORD_FORMAT, 0xfd];
        hostile.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(ChangeRecord::decode(&hostile), Err(RecordDecodeError::Malformed(_))));
        // And 32 MiB, which the old fixed limit let through to the allocator.
        let mut hostile = vec![RECORD_FORMAT, 0xfd];
        hostile.extend_from_slice(&(32u64 << 20).to_le_bytes());
        assert!(matches!(ChangeRecord::decode(&hostile), Err(RecordDecodeError::Malformed(_))));
    }

    #[test]
    fn log_keys_sort_by_origin_then_seq() {
        let a = NodeId::new("a").unwrap();
        assert!(log_key(&a, 2) < log_key(&a, 10));
        assert!(log_key(&a, 300) < log_key(&NodeId::new("b").unwrap(), 1));
        assert_eq!(parse_log_key(&log_key(&a, 7)), Some((a, 7)));
    }
}
