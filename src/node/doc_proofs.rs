//! The proof served with whole documents: for each document, the headers of the records that
//! wrote its heads, and the headers that link each of those to its origin's next seal (see
//! `statemesh_protocol::attestation`).
//!
//! The heads are read from the very bytes being served, not from the document's metadata: a
//! write between reading the two would otherwise prove heads the peer is not sent, and the
//! peer would rightly refuse the page.

use std::collections::BTreeMap;

use automerge::ActorId;
use statemesh_protocol::attestation::RecordHeader;
use statemesh_protocol::change_log::log_key;
use statemesh_protocol::seal::SEAL_SPAN_RECORDS;
use statemesh_protocol::{ChangeId, DocKey, Document};

use super::change_index::{self, ChangeRef};
use crate::storage::{Family, Storage, StorageError};

/// Collects the headers proving a page of documents, each header once.
pub(super) struct Prover<'a> {
    storage: &'a dyn Storage,
    actor: ActorId,
    headers: BTreeMap<ChangeId, RecordHeader>,
}

impl<'a> Prover<'a> {
    pub fn new(storage: &'a dyn Storage, actor: ActorId) -> Self {
        Self { storage, actor, headers: BTreeMap::new() }
    }

    /// Adds the proof of document `doc`, stored as `bytes`; returns about how many bytes
    /// it added to the page.
    pub fn prove(&mut self, doc: &DocKey, bytes: &[u8]) -> Result<usize, StorageError> {
        let document = Document::load(bytes, self.actor.clone())
            .map_err(|e| StorageError::Corrupt(format!("document {doc} does not load: {e}")))?;
        let mut added = 0;
        for head in document.version().heads() {
            match self.storage.get(Family::DocChanges, &change_index::key(doc, head))? {
                Some(value) => added += self.link_to_seal(ChangeRef::decode(&value)?.change)?,
                None => {
                    tracing::warn!(%doc, head = %head, "no record is indexed for a head; peers will refuse this document")
                }
            }
        }
        Ok(added)
    }

    pub fn into_headers(self) -> Vec<RecordHeader> {
        self.headers.into_values().collect()
    }

    /// The header of `id` and those after it up to the first sealed one: a header already
    /// collected was collected with its link, so the walk stops there too.
    fn link_to_seal(&mut self, id: ChangeId) -> Result<usize, StorageError> {
        let mut added = 0;
        let mut at = id;
        for _ in 0..=SEAL_SPAN_RECORDS {
            if self.headers.contains_key(&at) {
                break;
            }
            let Some(value) = self.storage.get(Family::RecordHeaders, &log_key(&at.origin, at.seq))? else {
                tracing::warn!(record = %at, "a record header is missing; peers will refuse the documents it proves");
                break;
            };
            let header =
                RecordHeader::decode(&value).map_err(|e| StorageError::Corrupt(format!("record header {at}: {e}")))?;
            let sealed = header.seal.is_some();
            added += header.wire_bytes();
            self.headers.insert(at.clone(), header);
            if sealed {
                break;
            }
            at.seq += 1;
        }
        Ok(added)
    }
}
