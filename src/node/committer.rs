//! Group commit: many writers, one durable batch, one fsync.
//!
//! Writers apply their change to the in-memory document, then hand the resulting storage
//! mutations to the [`Sequencer`], which numbers them (the node's per-origin seq) and queues
//! them in seq order. A dedicated thread drains the queue into one [`WriteBatch`], writes it
//! with a synced WAL, and then raises the durable watermark; writers (and readers that saw
//! their changes) wait on that watermark, so nothing is acknowledged or shown before it is on
//! disk. A storage error stops the committer for good: the watermark records the failure and
//! every waiter gets it, rather than the node carrying on half-written.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use libp2p_identity::ed25519;
use parking_lot::{Condvar, Mutex};
use statemesh_protocol::change_log::Seq;
use statemesh_protocol::seal::SealChain;
use statemesh_protocol::{ChangeId, ChangeRecord};
use tokio::sync::{broadcast, watch};

use super::feed_event::{FeedEvent, FeedPos};
use super::retention::Retention;
use super::write_path::log_op;
use super::NodeError;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::storage::{BatchOp, Family, Storage, StorageError, WriteBatch};

/// Meta key holding the live document count.
pub const DOC_COUNT_KEY: &[u8] = b"doc_count";
/// Meta key holding the last feed position written.
pub const FEED_POS_KEY: &[u8] = b"feed_pos";

/// How many live local change records may wait for the replication layer before the
/// slowest subscriber is told it lagged (it then relies on anti-entropy).
const LOCAL_RECORDS_CAPACITY: usize = 16 * 1024;

/// Batches of stored-record ids waiting for replication; a subscriber that falls further
/// behind relies on anti-entropy instead.
const STORED_RECORDS_CAPACITY: usize = 1024;

/// What a queued write (one change, a transaction's changes, or records received from peers)
/// contributes to the next batch. It is never split across batches, which is what makes a
/// transaction atomic.
#[derive(Default)]
pub struct PendingWrite {
    pub ops: Vec<BatchOp>,
    /// Net documents created (+) or deleted (-).
    pub doc_count_delta: i64,
    /// One per change, in numbering order; published to live subscribers once durable.
    pub events: Vec<Arc<FeedEvent>>,
    /// The changes this node originated, in seq order, not yet logged: the committer chains,
    /// seals and logs them, and hands them to replication once durable.
    pub local_records: Vec<Arc<ChangeRecord>>,
    /// Records of other origins stored outside replication (the strong path's committed
    /// changes); their ids are handed to replication once durable.
    pub stored_records: Vec<ChangeId>,
}

/// The numbers [`Sequencer::submit`] hands out: consecutive local seqs from `first_seq` (for
/// changes this node originates) and consecutive feed positions from `first_pos` (for every
/// change, local or received).
#[derive(Debug, Clone, Copy)]
pub struct Numbers {
    pub first_seq: Seq,
    pub first_pos: FeedPos,
}

/// Durability as seen by waiters: every local change up to `seq` and every change up to feed
/// position `pos` is on disk, unless `failed`. Waiters wait on `pos`, which orders local and
/// received changes alike.
#[derive(Debug, Clone, Default)]
pub struct Durable {
    pub seq: Seq,
    pub pos: FeedPos,
    /// Every queued write up to this ticket is on disk, with feed positions or without.
    pub written: WriteTicket,
    pub failed: Option<StorageError>,
}

/// The queue order of a write, counting writes with and without feed positions alike.
pub type WriteTicket = u64;

struct Queue {
    next_seq: Seq,
    next_pos: FeedPos,
    next_ticket: WriteTicket,
    pending: Vec<(WriteTicket, PendingWrite)>,
    stopping: bool,
}

/// Numbers writes and queues them for the committer thread.
pub struct Sequencer {
    queue: Mutex<Queue>,
    wake: Condvar,
    durable: watch::Sender<Durable>,
    live: broadcast::Sender<Arc<FeedEvent>>,
    local_records: broadcast::Sender<Arc<ChangeRecord>>,
    stored_records: broadcast::Sender<Arc<Vec<ChangeId>>>,
}

impl Sequencer {
    /// `last_seq` and `last_pos` are what storage already holds; `live_capacity` bounds how
    /// far a live feed subscriber may fall behind before it is told it lagged.
    pub fn new(last_seq: Seq, last_pos: FeedPos, live_capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue {
                next_seq: last_seq + 1,
                next_pos: last_pos + 1,
                next_ticket: 1,
                pending: Vec::new(),
                stopping: false,
            }),
            wake: Condvar::new(),
            durable: watch::Sender::new(Durable { seq: last_seq, pos: last_pos, written: 0, failed: None }),
            live: broadcast::Sender::new(live_capacity.max(1)),
            local_records: broadcast::Sender::new(LOCAL_RECORDS_CAPACITY),
            stored_records: broadcast::Sender::new(STORED_RECORDS_CAPACITY),
        })
    }

    /// This node's own change records, published in seq order as they become durable.
    pub fn subscribe_local_records(&self) -> broadcast::Receiver<Arc<ChangeRecord>> {
        self.local_records.subscribe()
    }

    /// Ids of records of other origins stored outside replication, in batches, as they
    /// become durable.
    pub fn subscribe_stored_records(&self) -> broadcast::Receiver<Arc<Vec<ChangeId>>> {
        self.stored_records.subscribe()
    }

    /// Live feed events, published as their batch becomes durable.
    pub fn subscribe_live(&self) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.live.subscribe()
    }

    /// Assigns `local` consecutive local seqs and `positions` consecutive feed positions, lets
    /// `build` produce the write for them, and queues it. Returns the last feed position
    /// assigned (what to wait for). Callers hold the documents' locks, so each document's
    /// writes queue in order.
    pub fn submit(
        &self,
        local: usize,
        positions: usize,
        build: impl FnOnce(Numbers) -> PendingWrite,
    ) -> Result<FeedPos, NodeError> {
        self.submit_ticketed(local, positions, build).map(|(pos, _)| pos)
    }

    /// [`Sequencer::submit`], also returning the write's ticket: what to wait for with
    /// [`Sequencer::wait_written`] when the write has no feed position of its own.
    pub fn submit_ticketed(
        &self,
        local: usize,
        positions: usize,
        build: impl FnOnce(Numbers) -> PendingWrite,
    ) -> Result<(FeedPos, WriteTicket), NodeError> {
        let mut queue = self.queue.lock();
        if queue.stopping {
            return Err(NodeError::ShuttingDown);
        }
        if let Some(error) = &self.durable.borrow().failed {
            return Err(NodeError::Storage(error.clone()));
        }
        let write = build(Numbers { first_seq: queue.next_seq, first_pos: queue.next_pos });
        debug_assert_eq!(write.events.len(), positions);
        debug_assert_eq!(write.local_records.len(), local);
        queue.next_seq += local as u64;
        queue.next_pos += positions as u64;
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.pending.push((ticket, write));
        self.wake.notify_one();
        Ok((queue.next_pos - 1, ticket))
    }

    /// Waits until feed position `pos` is durable (returns at once for 0).
    pub async fn wait_durable(&self, pos: FeedPos) -> Result<(), NodeError> {
        let mut rx = self.durable.subscribe();
        let state = rx.wait_for(|d| d.pos >= pos || d.failed.is_some()).await.map_err(|_| NodeError::ShuttingDown)?;
        match &state.failed {
            Some(error) if state.pos < pos => Err(NodeError::Storage(error.clone())),
            _ => Ok(()),
        }
    }

    /// Waits until the write with `ticket`, and so every write queued before it, is durable.
    pub async fn wait_written(&self, ticket: WriteTicket) -> Result<(), NodeError> {
        let mut rx = self.durable.subscribe();
        let state =
            rx.wait_for(|d| d.written >= ticket || d.failed.is_some()).await.map_err(|_| NodeError::ShuttingDown)?;
        match &state.failed {
            Some(error) if state.written < ticket => Err(NodeError::Storage(error.clone())),
            _ => Ok(()),
        }
    }

    pub fn durable(&self) -> Durable {
        self.durable.borrow().clone()
    }

    /// A receiver that changes whenever the watermark moves (for the change feed and tests).
    pub fn subscribe(&self) -> watch::Receiver<Durable> {
        self.durable.subscribe()
    }

    /// Asks the committer to finish what is queued and exit.
    pub fn stop(&self) {
        self.queue.lock().stopping = true;
        self.wake.notify_all();
    }
}

/// What the committer thread owns besides the sequencer.
pub struct CommitterParts {
    pub storage: Arc<dyn Storage>,
    pub metrics: Arc<Metrics>,
    pub local_vv_key: Vec<u8>,
    pub doc_count: i64,
    pub max_batch: usize,
    pub retention: Retention,
    /// Links this node's records and seals each batch's last (see `statemesh_protocol::seal`).
    pub chain: SealChain,
    pub signing_key: ed25519::Keypair,
}

/// Starts the committer thread. It exits after [`Sequencer::stop`] once the queue is empty,
/// or at the first storage error.
pub fn spawn(sequencer: Arc<Sequencer>, parts: CommitterParts) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("statemesh-commit".to_string()).spawn(move || run(&sequencer, parts))
}

fn run(sequencer: &Sequencer, mut parts: CommitterParts) {
    loop {
        let writes = {
            let mut queue = sequencer.queue.lock();
            if queue.pending.is_empty() && !queue.stopping {
                // Wake at least this often so retention also runs on an idle node.
                sequencer.wake.wait_for(&mut queue, Duration::from_secs(1));
            }
            if queue.pending.is_empty() && queue.stopping {
                return;
            }
            let take = queue.pending.len().min(parts.max_batch);
            queue.pending.drain(..take).collect::<Vec<_>>()
        };
        let durable = sequencer.durable();
        let prune = parts.retention.due_deletions(parts.storage.as_ref(), now_ms(), durable.pos, durable.seq);
        let prune = match prune {
            Ok(ops) => ops,
            Err(error) => {
                tracing::warn!(%error, "retention pass failed; will retry");
                Vec::new()
            }
        };
        if writes.is_empty() && prune.is_empty() {
            continue;
        }
        let mut batch = WriteBatch::new();
        let mut events = Vec::new();
        let mut local_records = Vec::new();
        let mut stored_records = Vec::new();
        let last_ticket = writes.last().map(|(ticket, _)| *ticket);
        for (_, write) in writes {
            events.extend(write.events);
            local_records.extend(write.local_records);
            stored_records.extend(write.stored_records);
            parts.doc_count += write.doc_count_delta;
            batch.extend(write.ops);
        }
        let local_records = seal_and_log(&mut parts, local_records, &mut batch);
        let count = events.len();
        let last_pos = events.last().map(|e| e.pos);
        let last_seq = local_records.last().map(|r| r.id.seq);
        batch.extend(prune);
        if let Some(last_seq) = last_seq {
            batch.put(Family::Meta, parts.local_vv_key.clone(), last_seq.to_be_bytes().to_vec());
        }
        if let Some(last_pos) = last_pos {
            batch.put(Family::Meta, DOC_COUNT_KEY.to_vec(), parts.doc_count.to_be_bytes().to_vec());
            batch.put(Family::Meta, FEED_POS_KEY.to_vec(), last_pos.to_be_bytes().to_vec());
        }
        let bytes = batch.payload_bytes();
        let started = std::time::Instant::now();
        match parts.storage.write(batch) {
            Ok(()) => {
                parts.metrics.record_commit(count, bytes, parts.doc_count, started.elapsed().as_secs_f64());
                if last_pos.is_some() || last_ticket.is_some() {
                    sequencer.durable.send_modify(|d| {
                        d.seq = last_seq.unwrap_or(d.seq);
                        d.pos = last_pos.unwrap_or(d.pos);
                        d.written = last_ticket.unwrap_or(d.written);
                    });
                }
                // No subscribers is not an error, for either channel.
                for event in events {
                    let _ = sequencer.live.send(event);
                }
                for record in local_records {
                    let _ = sequencer.local_records.send(record);
                }
                if !stored_records.is_empty() {
                    let _ = sequencer.stored_records.send(Arc::new(stored_records));
                }
            }
            Err(error) => {
                tracing::error!(%error, "storage write failed; refusing further writes");
                parts.metrics.storage_errors.inc();
                sequencer.durable.send_modify(|d| d.failed = Some(error));
                return;
            }
        }
    }
}

/// Links the batch's own records into this node's chain, in seq order, seals the last one
/// (and any that closes a full span), and adds them to the batch. A failed write stops the
/// committer, so the chain never runs ahead of what is stored.
fn seal_and_log(
    parts: &mut CommitterParts,
    records: Vec<Arc<ChangeRecord>>,
    batch: &mut WriteBatch,
) -> Vec<Arc<ChangeRecord>> {
    let count = records.len();
    records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            let mut record = Arc::unwrap_or_clone(record);
            parts.chain.add(&mut record, i + 1 == count, &parts.signing_key);
            batch.extend([log_op(&record)]);
            Arc::new(record)
        })
        .collect()
}
