//! Proof for whole documents: which origin vouched for the state a document is in.
//!
//! Log replication checks every record against its origin's seal ([`crate::seal`]), but a
//! whole-document state transfer hands over saved Automerge documents whose changes carry no
//! seal of their own. Two facts make them checkable:
//!
//! - A record's hash covers its changes by their Automerge hashes, so what a record vouches
//!   for survives without its change bytes: its [`RecordHeader`].
//! - An Automerge change's hash covers the hashes of the changes it depends on, so vouching
//!   for a document's heads fixes every change of its history.
//!
//! So a responder sends, with each page of documents, the headers of the records that wrote
//! each document's heads, and the few later headers of the same origins that link them to a
//! seal. The requester checks the headers like records, then merges a document only if the
//! newest of the changes it brings are named by authentic headers of that document
//! ([`Attestations`], [`crate::Document::merge_bytes`]). A responder cannot add a change
//! nobody wrote, or move one between documents; what it can still do is send an older state
//! than its version vector claims (see `docs/SECURITY.md`).
//!
//! Every node can give the header of every record it applies (own, received, or proving
//! transferred state): from the change log while it holds the record, and from the header
//! it stores when the log is pruned, so it can prove its documents in turn.

use std::collections::{BTreeMap, HashMap};

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use crate::change_log::{ChangeId, ChangeKind, ChangeRecord};
use crate::ids::DocKey;
use crate::limits::CHANGE_RECORD_BYTES_MAX;
use crate::seal::{change_digest, content_hash, ChangeDigest, RecordHash, Seal};

/// A change record without its change bytes: everything its hash and seal cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordHeader {
    pub id: ChangeId,
    pub doc: DocKey,
    pub kind: ChangeKind,
    pub time_ms: i64,
    pub prev: RecordHash,
    /// The Automerge hashes of the record's changes, in the record's order.
    pub changes: Vec<ChangeDigest>,
    pub seal: Option<Seal>,
}

impl RecordHeader {
    pub fn of(record: &ChangeRecord) -> Self {
        Self::with_digests(record, record.changes.iter().map(|chunk| change_digest(chunk)).collect())
    }

    fn with_digests(record: &ChangeRecord, changes: Vec<ChangeDigest>) -> Self {
        Self {
            id: record.id.clone(),
            doc: record.doc.clone(),
            kind: record.kind,
            time_ms: record.time_ms,
            prev: record.prev,
            changes,
            seal: record.seal,
        }
    }

    /// The hash of the record this is the header of.
    pub fn hash(&self) -> RecordHash {
        content_hash(&self.id, &self.doc, self.kind, self.time_ms, &self.prev, &self.changes)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Encoding into a Vec cannot fail for these plain types.
        bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("record header encodes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, crate::bounded::BoundedDecodeError> {
        crate::bounded::decode(bytes, CHANGE_RECORD_BYTES_MAX)
    }

    /// About how many bytes the header takes on the wire.
    pub fn wire_bytes(&self) -> usize {
        self.id.origin.as_str().len() + self.doc.to_storage_key().len() + 32 * self.changes.len() + 128
    }
}

/// For each document, the changes that authentic headers vouch for, and by which record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Attestations {
    by_doc: BTreeMap<DocKey, HashMap<ChangeDigest, ChangeId>>,
}

impl Attestations {
    /// From headers already checked against their origins' seals.
    pub fn from_verified(headers: &[RecordHeader]) -> Self {
        let mut by_doc: BTreeMap<DocKey, HashMap<ChangeDigest, ChangeId>> = BTreeMap::new();
        for header in headers {
            let doc = by_doc.entry(header.doc.clone()).or_default();
            for digest in &header.changes {
                doc.entry(*digest).or_insert_with(|| header.id.clone());
            }
        }
        Self { by_doc }
    }

    /// The record that vouches for change `hash` of `doc`, if any.
    pub fn vouching(&self, doc: &DocKey, hash: &ChangeHash) -> Option<&ChangeId> {
        self.by_doc.get(doc)?.get(&hash.0)
    }
}
