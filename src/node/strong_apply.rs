//! The node's side of the strong path: storing the changes Raft committed. (The leader
//! computes them with `Node::plan_atomic`, in `txn/atomic.rs`.)
//!
//! Committed changes are stored like received records (`remote_apply.rs`): logged under the
//! cluster's origin and applied to their documents, with feed events, so every reader, the
//! change feed and replication see them like any other change. What differs is atomicity and
//! ordering: one command's changes (one per document) go to the committer as one write
//! together with the state machine's own bookkeeping. Nothing here waits for the disk: the
//! committer stores the writes in queue order with everyone else's, and hands the records to
//! replication once they are durable.

use std::collections::BTreeMap;
use std::sync::Arc;

use statemesh_protocol::{ChangeRecord, DocKey, Version};

use super::committer::{PendingWrite, WriteTicket};
use super::feed_event::{FeedEvent, FeedPos};
use super::remote_apply::Held;
use super::{DocMeta, Node, NodeError};
use crate::storage::{BatchOp, Family, StorageError};

/// A document after a committed change was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedDoc {
    pub version: Version,
    pub created: bool,
}

impl Node {
    /// Stores committed `records` (each for a different document) and applies them to their
    /// documents, as one atomic write together with `extra_ops`. Does not wait: returns each
    /// document's result and the feed position to wait for.
    ///
    /// A record already held (it arrived through replication before this node applied it)
    /// is not applied twice; one held with other content means this node's history forked
    /// from the cluster's, which is reported as corruption rather than papered over.
    pub(crate) fn submit_committed(
        &self,
        records: Vec<ChangeRecord>,
        extra_ops: Vec<BatchOp>,
    ) -> Result<(Vec<CommittedDoc>, FeedPos), NodeError> {
        let inner = &self.inner;
        let durable_pos = inner.sequencer.durable().pos;
        let by_doc: BTreeMap<DocKey, ChangeRecord> = records.into_iter().map(|r| (r.doc.clone(), r)).collect();
        let handles: Vec<_> = by_doc.keys().map(|key| inner.cache.entry(key, durable_pos)).collect();
        // Locks in key order, like every multi-document section.
        let mut guards: Vec<_> = handles.iter().map(|handle| handle.lock()).collect();
        let mut staged = Vec::with_capacity(by_doc.len());
        for ((key, record), guard) in by_doc.iter().zip(guards.iter_mut()) {
            self.ensure_loaded(key, guard)?;
            let Some(doc) = guard.doc.as_ref() else { return Err(NodeError::NotFound(key.to_string())) };
            let existed = doc.exists();
            let fresh = match self.compare_with_held(record)? {
                Held::No => true,
                Held::Same => false,
                Held::Different => {
                    let reason = format!("committed record {} differs from the one this node holds", record.id);
                    return Err(StorageError::Corrupt(reason).into());
                }
            };
            let mut working = doc.clone();
            if fresh {
                working.apply_changes(&record.changes)?;
            }
            staged.push((fresh, existed, working));
        }
        let mut ops = extra_ops;
        let mut results = Vec::with_capacity(staged.len());
        let mut doc_count_delta = 0;
        let mut fresh_records = Vec::new();
        let mut stored_records = Vec::new();
        for (i, (((key, record), guard), (fresh, existed, working))) in
            by_doc.into_iter().zip(guards.iter_mut()).zip(staged).enumerate()
        {
            let version = working.version();
            let exists = working.exists();
            results.push(CommittedDoc { version: version.clone(), created: exists && !existed });
            if !fresh {
                continue;
            }
            let meta = DocMeta::new(exists, &version, record.time_ms, working.change_count() as u64);
            guard.doc = Some(working);
            guard.json_bytes_bound = None;
            ops.extend(self.document_ops(&key, guard, &record.changes));
            ops.push(BatchOp::Put { family: Family::DocMeta, key: key.to_storage_key(), value: meta.encode() });
            doc_count_delta += i64::from(exists) - i64::from(existed);
            fresh_records.push((i, record, version, exists));
        }
        let count = fresh_records.len();
        let mut positions = Vec::with_capacity(count);
        let submitted = inner.sequencer.submit(0, count, |numbers| {
            let mut events = Vec::with_capacity(count);
            for (n, (doc_index, record, version, exists)) in fresh_records.iter().enumerate() {
                let received = super::change_index::read(&record.changes);
                let event = Arc::new(FeedEvent {
                    pos: numbers.first_pos + n as u64,
                    change: record.id.clone(),
                    doc: record.doc.clone(),
                    kind: record.kind,
                    time_ms: record.time_ms,
                    version: version.to_string(),
                    exists: *exists,
                    author: received.author,
                });
                self.logged_change_ops(record, &received.hashes, &event, &mut ops);
                stored_records.push(record.id.clone());
                positions.push((*doc_index, event.pos, version.clone()));
                events.push(event);
            }
            PendingWrite { ops, doc_count_delta, events, stored_records, ..PendingWrite::default() }
        });
        match submitted {
            Ok(last_pos) => {
                for (doc_index, pos, version) in positions {
                    guards[doc_index].queued(pos, version);
                }
                Ok((results, last_pos))
            }
            Err(error) => {
                // Applied only in memory: forget it so nothing reads it.
                for guard in guards.iter_mut() {
                    guard.doc = None;
                }
                Err(error)
            }
        }
    }

    /// Queues `ops` alone (the state machine's bookkeeping) behind everything queued so far.
    /// Returns its ticket: once it is durable, so is everything queued before it.
    pub(crate) fn submit_ops(&self, ops: Vec<BatchOp>) -> Result<WriteTicket, NodeError> {
        let write = PendingWrite { ops, ..PendingWrite::default() };
        self.inner.sequencer.submit_ticketed(0, 0, |_| write).map(|(_, ticket)| ticket)
    }

    /// The last write that is durable, with every write queued before it.
    pub(crate) fn written_ticket(&self) -> WriteTicket {
        self.inner.sequencer.durable().written
    }

    /// Blocks the calling thread until the write with `ticket` (and all before it) is
    /// durable. For the strong path's state machine, which openraft calls synchronously; the
    /// committer runs on its own thread, so this always makes progress.
    pub(crate) fn wait_written_blocking(&self, ticket: WriteTicket) -> Result<(), NodeError> {
        futures::executor::block_on(self.inner.sequencer.wait_written(ticket))
    }
}
