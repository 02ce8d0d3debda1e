//! A simulated node: the real `Replica` plus simulated durable storage.
//!
//! Storage is what survives a crash: the change records (per `(origin, seq)`) and the
//! Automerge documents they were applied to. The replica, its timer and anything not yet
//! durable are volatile; a restart rebuilds the replica from the version vector that the
//! stored records imply, exactly as the real node does from RocksDB.

use std::collections::BTreeMap;

use automerge::ActorId;
use serde_json::{json, Value};
use statemesh_protocol::replica::{Replica, ReplicaConfig};
use statemesh_protocol::seal::{key_from_seed, node_id_of, SealChain, SigningKey, NO_PREV};
use statemesh_protocol::{ChangeId, ChangeKind, ChangeRecord, DocKey, Document, NodeId, Seq, VersionVector};

use crate::clock::NodeClock;

/// The durable part of a node.
#[derive(Default)]
pub struct Storage {
    pub records: BTreeMap<ChangeId, ChangeRecord>,
    pub docs: BTreeMap<DocKey, Document>,
}

impl Storage {
    /// Highest contiguous seq per origin among the stored records: what a restarted
    /// replica may claim to hold.
    pub fn version_vector(&self) -> VersionVector {
        let mut vv = VersionVector::new();
        // Records iterate in (origin, seq) order, so one pass finds each contiguous prefix.
        for id in self.records.keys() {
            if id.seq == vv.get(&id.origin) + 1 {
                vv.advance(&id.origin, id.seq);
            }
        }
        vv
    }

    /// Stores records and applies them to their documents, as one storage batch would.
    pub fn apply(&mut self, actor: &ActorId, records: Vec<ChangeRecord>) -> Result<(), String> {
        for record in records {
            let doc = self.docs.entry(record.doc.clone()).or_insert_with(|| Document::new(actor.clone()));
            doc.apply_changes(&record.changes).map_err(|e| format!("record {}: {e}", record.id))?;
            self.records.insert(record.id.clone(), record);
        }
        Ok(())
    }
}

/// What a local write does to its document.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Put(Value),
    Patch(Value),
    Delete,
}

pub struct SimNode {
    pub id: NodeId,
    /// The identity its records are sealed with (`id` is its node id).
    key: SigningKey,
    pub actor: ActorId,
    /// `None` while crashed.
    pub replica: Option<Replica>,
    /// Bumped on every crash, so completions and timers of a previous life are ignored.
    pub incarnation: u64,
    pub storage: Storage,
    /// Local writes acknowledged but not yet stored (only under `PlantedBug::AckBeforeStore`).
    pub unstored: Vec<ChangeRecord>,
    /// The time of the tick currently scheduled, so stale timer events are skipped.
    pub timer_at: Option<i64>,
    /// The version vector after the previous step, for the monotonicity checker.
    pub last_vv: VersionVector,
    /// This node's clock: every time value its replica and its writes see goes through it.
    pub clock: NodeClock,
}

impl SimNode {
    pub fn new(index: usize, config: ReplicaConfig, clock: NodeClock) -> Self {
        let key = node_key(index);
        let id = node_id_of(&key.public());
        let mut actor = b"statemesh-sim-".to_vec();
        actor.extend_from_slice(&(index as u16).to_be_bytes());
        let replica = Replica::new(id.clone(), VersionVector::new(), config);
        Self {
            id,
            key,
            actor: ActorId::from(actor),
            replica: Some(replica),
            incarnation: 0,
            storage: Storage::default(),
            unstored: Vec::new(),
            timer_at: None,
            last_vv: VersionVector::new(),
            clock,
        }
    }

    pub fn is_up(&self) -> bool {
        self.replica.is_some()
    }

    /// The next seq this node numbers a write with. Derived from what it has written
    /// (stored or merely acknowledged), like the real node's counter.
    pub fn next_seq(&self) -> Seq {
        let stored = self.storage.version_vector().get(&self.id);
        let unstored = self.unstored.iter().map(|r| r.id.seq).max().unwrap_or(0);
        stored.max(unstored) + 1
    }

    /// Makes a real Automerge change on this node's copy of `doc` at global time `at_ms`
    /// (stamped with this node's clock) and wraps it as the next record. `None` when the
    /// write changes nothing.
    pub fn local_write(&mut self, doc: &DocKey, op: &WriteOp, at_ms: i64) -> Result<Option<ChangeRecord>, String> {
        let now_ms = self.clock.local(at_ms);
        let seq = self.next_seq();
        let document = self.storage.docs.entry(doc.clone()).or_insert_with(|| Document::new(self.actor.clone()));
        let (kind, outcome) = match op {
            WriteOp::Put(body) => (ChangeKind::Put, document.put(body, now_ms)),
            WriteOp::Patch(patch) => (ChangeKind::Patch, document.merge_patch(patch, now_ms)),
            WriteOp::Delete => (ChangeKind::Delete, document.delete(now_ms)),
        };
        let outcome = outcome.map_err(|e| format!("local write to {doc:?}: {e}"))?;
        if outcome.is_noop() {
            return Ok(None);
        }
        let mut record = ChangeRecord {
            id: ChangeId { origin: self.id.clone(), seq },
            doc: doc.clone(),
            kind,
            time_ms: now_ms,
            changes: outcome.changes,
            prev: NO_PREV,
            seal: None,
        };
        // Each simulated write is its own group commit, sealed like the real committer's.
        SealChain::new(None).add(&mut record, true, &self.key);
        Ok(Some(record))
    }

    /// Reads up to `max` records that `have` lacks, in (origin, seq) order, as storage would
    /// answer `Effect::ReadLog`. Stops early at a record storage does not have.
    pub fn read_log(&self, have: &VersionVector, max: u32) -> (Vec<ChangeRecord>, bool) {
        let Some(replica) = &self.replica else { return (Vec::new(), false) };
        let mut records = Vec::new();
        for (origin, from, to) in replica.version_vector().ahead_of(have) {
            for seq in from + 1..=to {
                if records.len() == max as usize {
                    return (records, true);
                }
                match self.storage.records.get(&ChangeId { origin: origin.clone(), seq }) {
                    Some(record) => records.push(record.clone()),
                    None => return (records, false),
                }
            }
        }
        (records, false)
    }
}

/// Node `index`'s identity, the same in every run (traces name nodes `n000`, `n001`, …).
fn node_key(index: usize) -> SigningKey {
    let mut seed = [0x5e; 32];
    seed[..8].copy_from_slice(&(index as u64).to_be_bytes());
    key_from_seed(seed)
}

/// A deterministic workload operation for a write drawn as `(kind_roll, field, value)`.
pub fn write_op(kind_roll: u64, put_percent: u64, delete_percent: u64, field: u64, value: u64, by: usize) -> WriteOp {
    if kind_roll < delete_percent {
        WriteOp::Delete
    } else if kind_roll < delete_percent + put_percent {
        WriteOp::Put(json!({ "by": by, "value": value, "nested": { "f": field } }))
    } else {
        WriteOp::Patch(json!({ format!("f{field}"): value, "last": by }))
    }
}
