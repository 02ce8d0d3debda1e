//! The document state machine: applies committed [`StrongCommand`]s to the node.
//!
//! Its own state is small and lives in the `raft_meta` family next to openraft's pointers:
//! the cluster id, how many changes the cluster has logged (the dense sequence of its
//! change-log origin), and per document the cluster actor's last sequence number and the log
//! index that wrote it. Everything else is ordinary node state: the changes themselves are
//! stored and applied like received records, so they reach every node through replication
//! too, edge nodes included.
//!
//! Crash safety: each entry's document changes and bookkeeping form one atomic write, and
//! openraft's "applied up to" pointer goes last, so after a crash an entry is either entirely
//! stored or entirely absent. Entries whose writes made it but whose pointer did not are
//! replayed; a document whose recorded log index is already at or past the entry recognises
//! the replay and leaves it alone. Commands that share an entry (proposal batching, see
//! `raft/proposer.rs`) write different documents: the leader serialises the writes of a
//! document, and a second write of one document within an entry is refused as stale, so the
//! index still tells a replay from a new write.
//!
//! Applying does not wait for the disk. A committed entry is already durable in the Raft log
//! of a majority, and a crash loses applied entries only from the end (the node's writes are
//! queued in order and a crash keeps a prefix of them), which openraft applies again from the
//! log. So the node's committer syncs them in its own time, shared with every other write;
//! what the state machine wrote but the committer has not yet stored is kept in memory
//! (`Machine::unstored`) for the entries after it to check against, and the records reach
//! replication only once durable. A snapshot is taken only of durable state: building one
//! first waits for everything queued, because openraft may purge the log up to it.
//!
//! On a store without syncs (memory) waiting costs nothing, so there each batch does wait:
//! the node's state then moves in step with openraft's, which is what keeps the simulator's
//! runs of this state machine replayable (nothing is left for another thread to finish
//! while virtual time runs on).
//!
//! Snapshots carry the bookkeeping only. A follower that installs one receives the documents
//! through replication (the cluster's changes are in every member's change log); until then
//! it cannot compute a change that the state machine would accept, so it never acts on a
//! document it does not hold yet.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use statemesh_protocol::bounded::DECODE_BYTES_MAX;
use statemesh_protocol::{ChangeId, ChangeRecord, DocKey, NodeId};

use super::command::{AppliedDoc, ClusterId, DocRead, DocWrite, Outcome, StrongCommand, DOC_COMMAND_KIND};
use crate::node::{Node, NodeError, WriteTicket};
use crate::raft::{Applier, ApplyEntry, ApplyError, CommandResult};
use crate::storage::{codec, key_after, BatchOp, Family, StorageError};

const CLUSTER_KEY: &[u8] = b"sd/cluster";
const COUNT_KEY: &[u8] = b"sd/count";
const DOC_PREFIX: &[u8] = b"sd/doc/";
/// Every key of this state machine starts so (what a snapshot exports).
const PREFIX: &[u8] = b"sd/";

/// What the state machine knows of one document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct DocState {
    /// The cluster actor's last sequence number in this document.
    seq: u64,
    /// The log index of the entry that wrote it.
    index: u64,
}

fn doc_key(doc: &DocKey) -> Vec<u8> {
    let mut key = DOC_PREFIX.to_vec();
    key.extend(doc.to_storage_key());
    key
}

/// The state every entry reads and advances.
#[derive(Debug, Default)]
struct Machine {
    cluster: Option<ClusterId>,
    /// Changes logged under the cluster's origin so far.
    count: u64,
    /// Documents' states written by earlier batches that the node may not have stored yet,
    /// with the write that stores them; dropped once that write is durable.
    unstored: HashMap<DocKey, (DocState, WriteTicket)>,
}

impl Machine {
    /// Forgets states the node has stored by now (they are read from storage again).
    fn forget_stored(&mut self, written: WriteTicket) {
        self.unstored.retain(|_, (_, ticket)| *ticket > written);
    }
}

/// What one call to [`Applier::apply`] accumulates over its entries.
#[derive(Default)]
struct Batch {
    /// Documents' state as written by earlier entries of the batch (not yet in storage).
    docs: HashMap<DocKey, DocState>,
    /// Bookkeeping waiting to ride with the next write.
    pending_ops: Vec<BatchOp>,
}

/// The node's [`Applier`].
pub struct DocApplier {
    node: Node,
    machine: Mutex<Machine>,
}

fn storage_error(error: NodeError) -> ApplyError {
    match error {
        NodeError::Storage(e) => ApplyError::Storage(e),
        other => ApplyError::Invalid(other.to_string()),
    }
}

impl DocApplier {
    pub fn open(node: Node) -> Result<Self, StorageError> {
        let machine = load_machine(&node)?;
        Ok(Self { node, machine: Mutex::new(machine) })
    }

    /// The cluster's id, once a command has named it.
    pub fn cluster(&self) -> Option<ClusterId> {
        self.machine.lock().cluster.clone()
    }

    fn doc_state(&self, machine: &Machine, doc: &DocKey, batch: &Batch) -> Result<DocState, ApplyError> {
        if let Some(state) = batch.docs.get(doc).or_else(|| machine.unstored.get(doc).map(|(state, _)| state)) {
            return Ok(*state);
        }
        match self.node.storage().get(Family::RaftMeta, &doc_key(doc))? {
            Some(bytes) => Ok(codec::decode(&bytes, "strong document state")?),
            None => Ok(DocState::default()),
        }
    }

    /// Checks a write command against the state machine: `Ok(Ok(Some(states)))` to apply it
    /// (the written documents' new states), `Ok(Ok(None))` for a replay of an entry already
    /// stored, `Ok(Err(outcome))` for a refusal. `Err` is a failure of storage itself.
    fn check(
        &self,
        machine: &Machine,
        cluster: &ClusterId,
        index: u64,
        writes: &[DocWrite],
        reads: &[DocRead],
        batch: &Batch,
    ) -> Result<Result<Option<Vec<DocState>>, Outcome>, ApplyError> {
        if writes.is_empty() {
            return Ok(Err(Outcome::Invalid("a write command without writes".to_owned())));
        }
        let mut states = Vec::with_capacity(writes.len());
        for (i, write) in writes.iter().enumerate() {
            if writes[..i].iter().any(|w| w.doc == write.doc) || reads.iter().any(|r| r.doc == write.doc) {
                return Ok(Err(Outcome::Invalid(format!("document {} is named twice", write.doc))));
            }
            if batch.docs.get(&write.doc).is_some_and(|state| state.index == index) {
                // An earlier command of the same entry wrote it in this batch, so this is no
                // replay; the leader serialises writes to a document, so plan it again.
                return Ok(Err(Outcome::Stale { doc: write.doc.clone() }));
            }
            let state = self.doc_state(machine, &write.doc, batch)?;
            if state.index >= index {
                // Replayed after a crash: this entry's writes are already stored.
                return Ok(Ok(None));
            }
            if write.changes.is_empty() {
                return Ok(Err(Outcome::Invalid(format!("no change for {}", write.doc))));
            }
            let mut seq = state.seq;
            for bytes in &write.changes {
                let change = match automerge::Change::from_bytes(bytes.clone()) {
                    Ok(change) => change,
                    Err(e) => {
                        let reason = format!("a change for {} is not Automerge: {e}", write.doc);
                        return Ok(Err(Outcome::Invalid(reason)));
                    }
                };
                if change.actor_id() != &cluster.actor() || change.seq() != seq + 1 {
                    return Ok(Err(Outcome::Stale { doc: write.doc.clone() }));
                }
                seq += 1;
            }
            states.push(DocState { seq, index });
        }
        for read in reads {
            if self.doc_state(machine, &read.doc, batch)?.seq != read.seq {
                return Ok(Err(Outcome::Stale { doc: read.doc.clone() }));
            }
        }
        Ok(Ok(Some(states)))
    }

    /// Applies one write command. Returns its outcome.
    fn apply_write(
        &self,
        index: u64,
        time_ms: i64,
        writes: Vec<DocWrite>,
        reads: &[DocRead],
        batch: &mut Batch,
    ) -> Result<Outcome, ApplyError> {
        let mut machine = self.machine.lock();
        let Some(cluster) = machine.cluster.clone() else {
            return Ok(Outcome::Invalid("the cluster has no id yet".to_owned()));
        };
        let states = match self.check(&machine, &cluster, index, &writes, reads, batch)? {
            Ok(Some(states)) => states,
            Ok(None) => return Ok(Outcome::Applied(Vec::new())),
            Err(refusal) => return Ok(refusal),
        };
        let origin: NodeId = cluster.origin();
        let mut ops = std::mem::take(&mut batch.pending_ops);
        let mut records = Vec::with_capacity(writes.len());
        let mut seqs = Vec::with_capacity(writes.len());
        for (write, state) in writes.into_iter().zip(states) {
            machine.count += 1;
            ops.push(BatchOp::Put { family: Family::RaftMeta, key: doc_key(&write.doc), value: codec::encode(&state) });
            batch.docs.insert(write.doc.clone(), state);
            seqs.push((write.doc.clone(), machine.count));
            records.push(ChangeRecord {
                id: ChangeId { origin: origin.clone(), seq: machine.count },
                doc: write.doc,
                kind: write.kind,
                time_ms,
                changes: write.changes,
                prev: statemesh_protocol::seal::NO_PREV,
                seal: None,
            });
        }
        cluster.seal(&mut records);
        ops.push(BatchOp::Put {
            family: Family::RaftMeta,
            key: COUNT_KEY.to_vec(),
            value: codec::encode(&machine.count),
        });
        let (docs, _) = self.node.submit_committed(records, ops).map_err(storage_error)?;
        // `submit_committed` answers in document order, as are `seqs` once sorted.
        seqs.sort();
        let applied = seqs
            .into_iter()
            .zip(docs)
            .map(|((doc, seq), result)| AppliedDoc {
                doc,
                version: result.version.to_string(),
                seq,
                created: result.created,
            })
            .collect();
        Ok(Outcome::Applied(applied))
    }

    fn apply_one(&self, entry: ApplyEntry, batch: &mut Batch) -> Result<Outcome, ApplyError> {
        if entry.command.kind != DOC_COMMAND_KIND {
            return Ok(Outcome::Invalid(format!("unknown command kind {}", entry.command.kind)));
        }
        let command = match StrongCommand::decode(&entry.command.payload) {
            Ok(command) => command,
            Err(e) => return Ok(Outcome::Invalid(e.to_string())),
        };
        match command {
            StrongCommand::SetCluster(id) => {
                let mut machine = self.machine.lock();
                if machine.cluster.is_none() {
                    batch.pending_ops.push(BatchOp::Put {
                        family: Family::RaftMeta,
                        key: CLUSTER_KEY.to_vec(),
                        value: codec::encode(&id),
                    });
                    tracing::info!(cluster = %id.origin(), "the strong path's cluster is named");
                    self.node.set_strong_origin(id.origin());
                    machine.cluster = Some(id.clone());
                }
                Ok(Outcome::Cluster(machine.cluster.clone().unwrap_or(id)))
            }
            StrongCommand::Write { time_ms, writes, reads } => {
                self.apply_write(entry.position.index, time_ms, writes, &reads, batch)
            }
        }
    }
}

fn load_machine(node: &Node) -> Result<Machine, StorageError> {
    let storage = node.storage();
    let cluster = match storage.get(Family::RaftMeta, CLUSTER_KEY)? {
        Some(bytes) => Some(codec::decode::<ClusterId>(&bytes, "strong cluster id")?),
        None => None,
    };
    let count = match storage.get(Family::RaftMeta, COUNT_KEY)? {
        Some(bytes) => codec::decode(&bytes, "strong change count")?,
        None => 0,
    };
    if let Some(cluster) = &cluster {
        node.set_strong_origin(cluster.origin());
    }
    Ok(Machine { cluster, count, unstored: HashMap::new() })
}

/// Stored keys and values, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Decodes a snapshot another node exported, refusing keys outside this state machine. The
/// bytes come from the leader, so however large the snapshot, nothing in it may claim more
/// than the bytes that arrived.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Entries, ApplyError> {
    let entries: Entries = codec::decode_bounded(bytes, "strong snapshot", DECODE_BYTES_MAX)?;
    if let Some((key, _)) = entries.iter().find(|(key, _)| !key.starts_with(PREFIX)) {
        return Err(ApplyError::Invalid(format!("snapshot key {} is outside the state machine", hex::encode(key))));
    }
    Ok(entries)
}

/// Every key and value of this state machine, in key order.
fn scan_all(node: &Node) -> Result<Entries, StorageError> {
    const PAGE: usize = 4096;
    let storage = node.storage();
    let mut out = Vec::new();
    let mut start = PREFIX.to_vec();
    loop {
        let page = storage.scan(Family::RaftMeta, PREFIX, &start, PAGE)?;
        let done = page.len() < PAGE;
        if let Some((last, _)) = page.last() {
            start = key_after(last);
        }
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

impl Applier for DocApplier {
    fn apply(&self, entries: Vec<ApplyEntry>, meta_ops: Vec<BatchOp>) -> Result<Vec<CommandResult>, ApplyError> {
        let mut batch = Batch::default();
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let outcome = self.apply_one(entry, &mut batch)?;
            results.push(CommandResult(outcome.encode()));
        }
        let Batch { mut pending_ops, docs } = batch;
        pending_ops.extend(meta_ops);
        // Last in the queue: once it is durable, so is every write of this batch.
        let last = self.node.submit_ops(pending_ops).map_err(storage_error)?;
        if self.node.storage().defers_sync() {
            let mut machine = self.machine.lock();
            machine.forget_stored(self.node.written_ticket());
            machine.unstored.extend(docs.into_iter().map(|(doc, state)| (doc, (state, last))));
        } else {
            // Stored once this returns: nothing to keep in memory.
            self.node.wait_written_blocking(last).map_err(storage_error)?;
        }
        Ok(results)
    }

    fn export_snapshot(&self) -> Result<Vec<u8>, ApplyError> {
        let everything = self.node.submit_ops(Vec::new()).map_err(storage_error)?;
        self.node.wait_written_blocking(everything).map_err(storage_error)?;
        Ok(codec::encode(&scan_all(&self.node)?))
    }

    fn install_snapshot(&self, bytes: &[u8], meta_ops: Vec<BatchOp>) -> Result<(), ApplyError> {
        let entries = decode_snapshot(bytes)?;
        let mut machine = self.machine.lock();
        let mut ops: Vec<BatchOp> = scan_all(&self.node)?
            .into_iter()
            .map(|(key, _)| BatchOp::Delete { family: Family::RaftMeta, key })
            .collect();
        ops.extend(entries.into_iter().map(|(key, value)| BatchOp::Put { family: Family::RaftMeta, key, value }));
        ops.extend(meta_ops);
        let last = self.node.submit_ops(ops).map_err(storage_error)?;
        self.node.wait_written_blocking(last).map_err(storage_error)?;
        *machine = load_machine(&self.node)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_claiming_a_terabyte_key_is_refused_without_allocating_it() {
        // Format byte, one entry, whose key claims 2^40 bytes: eleven bytes from a leader
        // that the plain storage codec would have tried to allocate a terabyte for.
        let mut hostile = vec![1, 1, 0xfd];
        hostile.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(decode_snapshot(&hostile), Err(ApplyError::Storage(StorageError::Corrupt(_)))));
    }

    #[test]
    fn an_exported_snapshot_decodes_and_foreign_keys_are_refused() {
        let ours: Entries = vec![(b"sd/doc".to_vec(), vec![1, 2, 3])];
        assert_eq!(decode_snapshot(&codec::encode(&ours)).expect("decodes"), ours);
        let foreign: Entries = vec![(b"kv/x".to_vec(), vec![])];
        assert!(matches!(decode_snapshot(&codec::encode(&foreign)), Err(ApplyError::Invalid(_))));
    }
}
