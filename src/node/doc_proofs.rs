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
use statemesh_protocol::{ChangeId, ChangeRecord, DocKey, Document};

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

    /// Adds the proof of document `doc`, stored as `bytes`. Returns the bytes to serve and
    /// about how many bytes the proof added to the page.
    ///
    /// The served bytes are the stored ones unless the document holds received changes that
    /// wait for dependencies this node lacks: those are no ancestors of its heads, so no
    /// proof covers them, and a requester that holds the dependencies would apply them and
    /// rightly refuse the page. Such a document is served as saved, without them (they reach
    /// the requester through the log like any record).
    pub fn prove(&mut self, doc: &DocKey, bytes: &[u8]) -> Result<(Vec<u8>, usize), StorageError> {
        let document = Document::load(bytes, self.actor.clone())
            .map_err(|e| StorageError::Corrupt(format!("document {doc} does not load: {e}")))?;
        let served = if document.has_queued_changes() { document.save_applied() } else { bytes.to_vec() };
        let mut added = 0;
        for head in document.version().heads() {
            match self.storage.get(Family::DocChanges, &change_index::key(doc, head))? {
                Some(value) => added += self.link_to_seal(ChangeRef::decode(&value)?.change)?,
                None => {
                    tracing::warn!(%doc, head = %head, "no record is indexed for a head; peers will refuse this document")
                }
            }
        }
        Ok((served, added))
    }

    pub fn into_headers(self) -> Vec<RecordHeader> {
        self.headers.into_values().collect()
    }

    /// The header of record `id`: from its change log entry while the log holds it, else as
    /// stored when the entry was pruned or when the record proved a transferred document.
    /// Pruning writes the header in the batch that deletes the entry, so reading the log
    /// first never misses a record between the two.
    fn header(&self, id: &ChangeId) -> Result<Option<RecordHeader>, StorageError> {
        let key = log_key(&id.origin, id.seq);
        if let Some(value) = self.storage.get(Family::ChangeLog, &key)? {
            let record =
                ChangeRecord::decode(&value).map_err(|e| StorageError::Corrupt(format!("record {id}: {e}")))?;
            return Ok(Some(RecordHeader::of(&record)));
        }
        let Some(value) = self.storage.get(Family::RecordHeaders, &key)? else { return Ok(None) };
        RecordHeader::decode(&value).map(Some).map_err(|e| StorageError::Corrupt(format!("record header {id}: {e}")))
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
            let Some(header) = self.header(&at)? else {
                tracing::warn!(record = %at, "a record header is missing; peers will refuse the documents it proves");
                break;
            };
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
