//! The write path: apply a change in memory, queue it for group commit, wait until durable.
//!
//! A write of one document and a transaction over several share this code: each touched
//! document's change is *prepared* under its lock (the storage mutations that do not depend
//! on numbering), then the whole group is numbered and queued as one unit, so the committer
//! puts all of it in one atomic batch. Nothing is visible to readers before it is durable
//! (readers wait on the watermark), and a change that cannot be queued is dropped from memory.

use std::sync::Arc;

use automerge::ChangeHash;
use statemesh_protocol::change_log::log_key;
use statemesh_protocol::seal::NO_PREV;
use statemesh_protocol::{ChangeId, ChangeKind, ChangeRecord, DocKey, Document, WriteOutcome};

use super::change_index::{self, ChangeRef};
use super::committer::PendingWrite;
use super::doc_cache::DocEntry;
use super::feed_event::{feed_key, FeedEvent, FeedPos};
use super::{cpu_work, DocMeta, NamespaceRules, Node, NodeError, Precondition, WriteResult, COMPACT_TAIL_BYTES_MIN};
use crate::clock::now_ms;
use crate::storage::{BatchOp, Family};

/// A change applied in memory and waiting to be numbered.
pub(super) struct PreparedChange {
    pub key: DocKey,
    pub kind: ChangeKind,
    /// Who made the change (the API caller), for its feed event.
    pub author: Option<Arc<str>>,
    pub time_ms: i64,
    pub outcome: WriteOutcome,
    pub existed: bool,
    pub exists: bool,
    /// Mutations that do not depend on the change's seq or feed position.
    pub ops: Vec<BatchOp>,
}

impl PreparedChange {
    /// The change as made by `author`.
    pub fn by(mut self, author: Option<Arc<str>>) -> Self {
        self.author = author;
        self
    }
}

impl Node {
    /// Runs `op` on the document under its lock and makes the result durable.
    pub(super) async fn write(
        &self,
        key: &DocKey,
        pre: &Precondition,
        kind: ChangeKind,
        author: Option<Arc<str>>,
        op: impl FnOnce(&mut Document, &NamespaceRules, i64, &mut Option<usize>) -> Result<WriteOutcome, NodeError>,
    ) -> Result<WriteResult, NodeError> {
        let inner = &self.inner;
        let rules = inner.namespaces.writable(&key.namespace)?;
        let _permit = inner.inflight.acquire().await.map_err(|_| NodeError::ShuttingDown)?;
        let entry = inner.cache.entry(key, inner.sequencer.durable().pos);
        let (result, wait_for) = {
            let mut guard = entry.lock();
            let entry = &mut *guard;
            self.ensure_loaded(key, entry)?;
            // A large document makes every step heavy: the edit, the JSON checks, a resave.
            cpu_work(entry.is_large(), || -> Result<_, NodeError> {
                let DocEntry { doc: Some(doc), json_bytes_bound, .. } = entry else {
                    return Err(NodeError::NotFound(key.to_string()));
                };
                let existed = doc.exists();
                pre.check(doc)?;
                let now = now_ms();
                let outcome = op(doc, rules, now, json_bytes_bound)?;
                Ok(if outcome.is_noop() {
                    (WriteResult { version: outcome.version, change: None, created: false }, entry.last_pos)
                } else {
                    let prepared = self.prepare(key, entry, kind, now, existed, outcome).by(author);
                    let (mut results, last_pos) = self.submit_group(vec![prepared], &mut [entry])?;
                    let result = results.pop().ok_or(NodeError::ShuttingDown)?;
                    (result, last_pos)
                })
            })?
        };
        inner.sequencer.wait_durable(wait_for).await?;
        Ok(result)
    }

    /// Builds the numbering-independent mutations of a change applied to `entry`'s document.
    pub(super) fn prepare(
        &self,
        key: &DocKey,
        entry: &mut DocEntry,
        kind: ChangeKind,
        now: i64,
        existed: bool,
        outcome: WriteOutcome,
    ) -> PreparedChange {
        let (exists, changes) = entry.doc.as_ref().map_or((false, 0), |doc| (doc.exists(), doc.change_count()));
        let meta = DocMeta::new(exists, &outcome.version, now, changes as u64);
        let mut ops = self.document_ops(key, entry, &outcome.changes);
        ops.push(BatchOp::Put { family: Family::DocMeta, key: key.to_storage_key(), value: meta.encode() });
        PreparedChange { key: key.clone(), kind, author: None, time_ms: now, outcome, existed, exists, ops }
    }

    /// Numbers the prepared changes and queues them as one atomic unit. `entries[i]` is the
    /// locked entry of `prepared[i]`; on failure their in-memory documents are dropped.
    /// Returns one result per change and the feed position to wait for.
    pub(super) fn submit_group(
        &self,
        prepared: Vec<PreparedChange>,
        entries: &mut [&mut DocEntry],
    ) -> Result<(Vec<WriteResult>, FeedPos), NodeError> {
        let inner = &self.inner;
        let origin = self.node_id().clone();
        let count = prepared.len();
        let mut assigned = Vec::with_capacity(count);
        let submitted = inner.sequencer.submit(count, count, |numbers| {
            let mut ops = Vec::new();
            let mut events = Vec::with_capacity(count);
            let mut local_records = Vec::with_capacity(count);
            let mut doc_count_delta = 0;
            for (i, change) in prepared.into_iter().enumerate() {
                let (seq, pos) = (numbers.first_seq + i as u64, numbers.first_pos + i as u64);
                let id = ChangeId { origin: origin.clone(), seq };
                let version = change.outcome.version.clone();
                let event = Arc::new(FeedEvent {
                    pos,
                    change: id.clone(),
                    doc: change.key.clone(),
                    kind: change.kind,
                    time_ms: change.time_ms,
                    version: version.to_string(),
                    exists: change.exists,
                    author: change.author,
                });
                ops.extend(change.ops);
                // Chained, sealed and logged by the committer, which sees the seq order.
                let record = ChangeRecord {
                    id: id.clone(),
                    doc: change.key.clone(),
                    kind: change.kind,
                    time_ms: change.time_ms,
                    changes: change.outcome.changes,
                    prev: NO_PREV,
                    seal: None,
                };
                self.indexed_change_ops(&record, &change.outcome.hashes, &event, &mut ops);
                doc_count_delta += i64::from(change.exists) - i64::from(change.existed);
                events.push(event);
                local_records.push(Arc::new(record));
                assigned.push((id, pos, version, change.exists && !change.existed));
            }
            PendingWrite { ops, doc_count_delta, events, local_records, ..PendingWrite::default() }
        });
        let last_pos = match submitted {
            Ok(last_pos) => last_pos,
            Err(error) => {
                // The changes exist only in memory: forget them so nothing reads them.
                for entry in entries.iter_mut() {
                    entry.doc = None;
                }
                return Err(error);
            }
        };
        let results = assigned
            .into_iter()
            .zip(entries.iter_mut())
            .map(|((id, pos, version, created), entry)| {
                entry.queued(pos, version.clone());
                WriteResult { version, change: Some(id), created }
            })
            .collect();
        Ok((results, last_pos))
    }

    /// The mutations every logged change brings, made here or received, besides the record
    /// itself: its entries in the change-hash index and its feed event (when history is kept).
    /// `hashes` are those of `record.changes`, when the caller knows them (see
    /// [`Node::received_change_ops`] for records that arrive as bytes).
    pub(super) fn indexed_change_ops(
        &self,
        record: &ChangeRecord,
        hashes: &[ChangeHash],
        event: &FeedEvent,
        ops: &mut Vec<BatchOp>,
    ) {
        let change_ref = ChangeRef { change: record.id.clone(), pos: event.pos }.encode();
        for hash in hashes {
            ops.push(BatchOp::Put {
                family: Family::DocChanges,
                key: change_index::key(&record.doc, hash),
                value: change_ref.clone(),
            });
        }
        ops.extend(self.feed_op(event));
    }

    /// [`Node::indexed_change_ops`] and the record under its `(origin, seq)`: for records that
    /// arrive sealed (received, or committed by the strong path).
    pub(super) fn logged_change_ops(
        &self,
        record: &ChangeRecord,
        hashes: &[ChangeHash],
        event: &FeedEvent,
        ops: &mut Vec<BatchOp>,
    ) {
        self.indexed_change_ops(record, hashes, event, ops);
        ops.push(log_op(record));
    }

    /// The feed event's own mutation, when `history.enabled` keeps events for replay.
    pub(super) fn feed_op(&self, event: &FeedEvent) -> Option<BatchOp> {
        self.inner.history_enabled.then(|| BatchOp::Put {
            family: Family::Feed,
            key: feed_key(event.pos),
            value: event.encode(),
        })
    }

    /// The storage mutation for a document's new changes: append them, or, once the appended
    /// tail has grown past the last whole save, store the whole document again.
    ///
    /// A document holding received changes that wait for missing dependencies is never saved
    /// whole: the save would drop them, so their raw bytes stay in the appended tail.
    pub(super) fn document_ops(&self, key: &DocKey, entry: &mut DocEntry, changes: &[Vec<u8>]) -> Vec<BatchOp> {
        let added: usize = changes.iter().map(Vec::len).sum();
        let storage_key = key.to_storage_key();
        let queued = entry.doc.as_ref().is_some_and(Document::has_queued_changes);
        if !queued && entry.appended_bytes + added > entry.saved_bytes.max(COMPACT_TAIL_BYTES_MIN) {
            let saved = entry.doc.as_ref().map(Document::save).unwrap_or_default();
            entry.saved_bytes = saved.len();
            entry.appended_bytes = 0;
            vec![BatchOp::Put { family: Family::Docs, key: storage_key, value: saved }]
        } else {
            entry.appended_bytes += added;
            vec![BatchOp::Append { family: Family::Docs, key: storage_key, value: changes.concat() }]
        }
    }
}

/// The change log's entry for `record`. Its header (what proves the record's changes to peers
/// that receive whole documents) is read from this entry while it exists and written apart
/// only when the entry is pruned ([`super::retention`]), so a write stores it once.
pub(super) fn log_op(record: &ChangeRecord) -> BatchOp {
    BatchOp::Put { family: Family::ChangeLog, key: log_key(&record.id.origin, record.id.seq), value: record.encode() }
}
