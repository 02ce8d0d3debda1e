//! Storing and applying change records received from peers.
//!
//! Records arrive from gossip and from anti-entropy pages, in any order and possibly twice.
//! They are grouped per document, so each document pays Automerge's per-call cost once per
//! batch (applying costs time proportional to the document's history, whatever the batch
//! size). Each document's group goes to the committer as one write that also holds the
//! records themselves under their `(origin, seq)`, so what was stored survives a restart
//! and is served to other peers from then on; the caller learns a record is persisted only
//! once that write is durable. Records whose Automerge changes wait for missing
//! dependencies are stored as well: Automerge holds them until the dependencies arrive.
//!
//! Namespace rules (schemas, size limits) are not applied here: the origin enforced its own
//! rules when it accepted the write, and a replica that refused a record would never
//! converge. A node reads only the namespaces it declares, whatever it relays.
//!
//! One rule is applied, on members of the Raft cluster: a strong namespace is written only
//! through Raft, under the cluster's origin, so a record of any other origin into a namespace
//! this node declares strong (an origin configured otherwise, or a hostile one) is logged and
//! relayed, so the origin's sequence goes on, but not applied: it would put into a strong
//! document a change the cluster never committed. Nodes outside the cluster do not know its
//! origin and apply such records.

use std::collections::BTreeMap;
use std::sync::Arc;

use statemesh_protocol::change_log::log_key;
use statemesh_protocol::{ChangeId, ChangeRecord, DocKey, Document, NodeId, VersionVector};

use super::committer::{PendingWrite, WriteTicket};
use super::feed_event::{FeedEvent, FeedPos};
use super::write_path::log_op;
use super::{vv_key, DocMeta, Node, NodeError};
use crate::storage::{BatchOp, Family};

/// What became of a batch of received records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemoteApply {
    /// Durably stored (or already held): the replica may count them as received.
    pub persisted: Vec<ChangeId>,
    /// Refused, with the reason (invalid Automerge, or a record contradicting one held).
    pub rejected: Vec<(ChangeId, String)>,
}

impl Node {
    /// Stores `records` and applies them to their documents, then waits until durable. `vv`
    /// is the replica's version vector (what is already durable); its entries for other
    /// origins ride along so a restart starts close to where the node was.
    pub async fn apply_remote(&self, records: Vec<ChangeRecord>, vv: VersionVector) -> Result<RemoteApply, NodeError> {
        let node = self.clone();
        let (report, wait_for, logged_only) =
            tokio::task::spawn_blocking(move || node.apply_remote_blocking(records, &vv))
                .await
                .map_err(|_| NodeError::ShuttingDown)??;
        self.inner.sequencer.wait_durable(wait_for).await?;
        if let Some(ticket) = logged_only {
            self.inner.sequencer.wait_written(ticket).await?;
        }
        Ok(report)
    }

    /// The blocking part of [`Node::apply_remote`]: returns the report, the feed position to
    /// wait for, and the ticket of the write that logs quarantined records, if any.
    fn apply_remote_blocking(
        &self,
        records: Vec<ChangeRecord>,
        vv: &VersionVector,
    ) -> Result<(RemoteApply, FeedPos, Option<WriteTicket>), NodeError> {
        let me = self.node_id().clone();
        let strong_origin = self.inner.strong_origin.lock().clone();
        let mut report = RemoteApply::default();
        let mut by_doc: BTreeMap<DocKey, Vec<ChangeRecord>> = BTreeMap::new();
        let mut quarantined = Vec::new();
        for record in records {
            if record.id.origin == me {
                // Our own log is the authority on our own records; the replica only lets
                // through seqs we already hold.
                report.persisted.push(record.id);
                continue;
            }
            match self.compare_with_held(&record)? {
                Held::No if self.writes_strong_namespace_unbidden(&record, strong_origin.as_ref()) => {
                    quarantined.push(record)
                }
                Held::No => by_doc.entry(record.doc.clone()).or_default().push(record),
                Held::Same => report.persisted.push(record.id),
                Held::Different => {
                    let reason = format!("record {} differs from the one this node holds", record.id);
                    report.rejected.push((record.id, reason));
                }
            }
        }
        let mut vv_ops: Vec<BatchOp> = vv
            .iter()
            .filter(|(origin, _)| *origin != &me)
            .map(|(origin, seq)| BatchOp::Put {
                family: Family::Meta,
                key: vv_key(origin),
                value: seq.to_be_bytes().to_vec(),
            })
            .collect();
        let mut wait_for = 0;
        for (key, group) in by_doc {
            let (applied, last_pos) = self.apply_doc_group(&key, group, std::mem::take(&mut vv_ops), &mut report)?;
            report.persisted.extend(applied);
            wait_for = wait_for.max(last_pos);
        }
        let logged_only = self.log_quarantined(quarantined, vv_ops, &mut report)?;
        self.inner.metrics.remote_changes_applied.inc_by(report.persisted.len() as u64);
        Ok((report, wait_for, logged_only))
    }

    /// Whether `record` writes a namespace this node declares strong under an origin other
    /// than the strong path's cluster (known only on members of the Raft cluster).
    fn writes_strong_namespace_unbidden(&self, record: &ChangeRecord, strong_origin: Option<&NodeId>) -> bool {
        strong_origin.is_some_and(|origin| *origin != record.id.origin)
            && matches!(self.is_strong_namespace(&record.doc.namespace), Ok(true))
    }

    /// Logs `records` without applying them (so they are relayed and their origin's sequence
    /// goes on), with the version-vector entries no document write carried. Returns the
    /// write's ticket.
    fn log_quarantined(
        &self,
        records: Vec<ChangeRecord>,
        vv_ops: Vec<BatchOp>,
        report: &mut RemoteApply,
    ) -> Result<Option<WriteTicket>, NodeError> {
        if records.is_empty() {
            return Ok(None);
        }
        // One line per batch, not per record: a peer sending many must not flood the log.
        let first = &records[0];
        tracing::warn!(
            record = %first.id,
            doc = %first.doc,
            count = records.len(),
            "a record under a node's origin writes a strong namespace: logged and relayed, not applied \
             (only the Raft cluster writes strong namespaces; check the origin's namespace configuration)"
        );
        self.inner.metrics.remote_records_quarantined.inc_by(records.len() as u64);
        let mut ops: Vec<BatchOp> = records.iter().map(log_op).collect();
        ops.extend(vv_ops);
        let write = PendingWrite { ops, ..PendingWrite::default() };
        let (_, ticket) = self.inner.sequencer.submit_ticketed(0, 0, |_| write)?;
        report.persisted.extend(records.into_iter().map(|record| record.id));
        Ok(Some(ticket))
    }

    /// Whether this node already stores a record under the same `(origin, seq)`.
    pub(super) fn compare_with_held(&self, record: &ChangeRecord) -> Result<Held, NodeError> {
        let Some(bytes) = self.inner.storage.get(Family::ChangeLog, &log_key(&record.id.origin, record.id.seq))? else {
            return Ok(Held::No);
        };
        let held = ChangeRecord::decode(&bytes).map_err(|e| crate::storage::StorageError::Corrupt(e.to_string()))?;
        Ok(if &held == record { Held::Same } else { Held::Different })
    }

    /// Applies one document's records under its lock and queues them as one write. Returns
    /// the ids applied and the last feed position assigned; refused records go to `report`.
    fn apply_doc_group(
        &self,
        key: &DocKey,
        group: Vec<ChangeRecord>,
        extra_ops: Vec<BatchOp>,
        report: &mut RemoteApply,
    ) -> Result<(Vec<ChangeId>, FeedPos), NodeError> {
        let inner = &self.inner;
        let handle = inner.cache.entry(key, inner.sequencer.durable().pos);
        let mut guard = handle.lock();
        let entry = &mut *guard;
        self.ensure_loaded(key, entry)?;
        let Some(doc) = entry.doc.as_mut() else { return Ok((Vec::new(), 0)) };
        let existed = doc.exists();
        let accepted = apply_isolating_invalid(doc, group, report);
        if accepted.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let version = doc.version();
        let exists = doc.exists();
        let meta = DocMeta::new(
            exists,
            &version,
            accepted.iter().map(|r| r.time_ms).max().unwrap_or_default(),
            doc.change_count() as u64,
        );
        // Documents are loaded lazily, so the size bound must be recomputed on next use.
        entry.json_bytes_bound = None;
        let chunks: Vec<Vec<u8>> = accepted.iter().flat_map(|r| r.changes.iter().cloned()).collect();
        let mut ops = self.document_ops(key, entry, &chunks);
        ops.push(BatchOp::Put { family: Family::DocMeta, key: key.to_storage_key(), value: meta.encode() });
        ops.extend(extra_ops);
        let count = accepted.len();
        let ids: Vec<ChangeId> = accepted.iter().map(|r| r.id.clone()).collect();
        let version_text = version.to_string();
        let submitted = inner.sequencer.submit(0, count, |numbers| {
            let mut events = Vec::with_capacity(count);
            for (i, record) in accepted.iter().enumerate() {
                let received = super::change_index::read(&record.changes);
                let event = Arc::new(FeedEvent {
                    pos: numbers.first_pos + i as u64,
                    change: record.id.clone(),
                    doc: key.clone(),
                    kind: record.kind,
                    time_ms: record.time_ms,
                    version: version_text.clone(),
                    exists,
                    author: received.author,
                });
                self.logged_change_ops(record, &received.hashes, &event, &mut ops);
                events.push(event);
            }
            PendingWrite {
                ops,
                doc_count_delta: i64::from(exists) - i64::from(existed),
                events,
                ..PendingWrite::default()
            }
        });
        match submitted {
            Ok(last_pos) => {
                entry.queued(last_pos, version);
                Ok((ids, last_pos))
            }
            Err(error) => {
                // Applied only in memory: forget it so nothing reads it.
                entry.doc = None;
                Err(error)
            }
        }
    }
}

pub(super) enum Held {
    No,
    Same,
    Different,
}

/// Applies every record's changes in one call; if that fails, applies them one record at a
/// time so only the invalid ones are refused. Returns the records applied.
fn apply_isolating_invalid(
    doc: &mut Document,
    group: Vec<ChangeRecord>,
    report: &mut RemoteApply,
) -> Vec<ChangeRecord> {
    let all: Vec<Vec<u8>> = group.iter().flat_map(|r| r.changes.iter().cloned()).collect();
    if doc.apply_changes(&all).is_ok() {
        return group;
    }
    let mut accepted = Vec::with_capacity(group.len());
    for record in group {
        match doc.apply_changes(&record.changes) {
            Ok(_) => accepted.push(record),
            Err(error) => {
                let reason = format!("record {} does not apply: {error}", record.id);
                report.rejected.push((record.id, reason));
            }
        }
    }
    accepted
}
