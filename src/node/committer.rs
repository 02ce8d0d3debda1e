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

use parking_lot::{Condvar, Mutex};
use statemesh_protocol::change_log::Seq;
use tokio::sync::{broadcast, watch};

use super::feed_event::{FeedEvent, FeedPos};
use super::retention::Retention;
use super::NodeError;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::storage::{BatchOp, Family, Storage, StorageError, WriteBatch};

/// Meta key holding the live document count.
pub const DOC_COUNT_KEY: &[u8] = b"doc_count";
/// Meta key holding the last feed position written.
pub const FEED_POS_KEY: &[u8] = b"feed_pos";

/// What a queued write (one change, or a transaction's changes) contributes to the next
/// batch. It is never split across batches, which is what makes a transaction atomic.
pub struct PendingWrite {
    pub ops: Vec<BatchOp>,
    /// Net documents created (+) or deleted (-).
    pub doc_count_delta: i64,
    /// One per change, in numbering order; published to live subscribers once durable.
    pub events: Vec<Arc<FeedEvent>>,
}

/// Durability as seen by waiters: everything up to local `seq` and feed position `pos` is on
/// disk, unless `failed`.
#[derive(Debug, Clone, Default)]
pub struct Durable {
    pub seq: Seq,
    pub pos: FeedPos,
    pub failed: Option<StorageError>,
}

struct Queue {
    next_seq: Seq,
    next_pos: FeedPos,
    pending: Vec<PendingWrite>,
    stopping: bool,
}

/// Numbers writes and queues them for the committer thread.
pub struct Sequencer {
    queue: Mutex<Queue>,
    wake: Condvar,
    durable: watch::Sender<Durable>,
    live: broadcast::Sender<Arc<FeedEvent>>,
}

impl Sequencer {
    /// `last_seq` and `last_pos` are what storage already holds; `live_capacity` bounds how
    /// far a live feed subscriber may fall behind before it is told it lagged.
    pub fn new(last_seq: Seq, last_pos: FeedPos, live_capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue {
                next_seq: last_seq + 1,
                next_pos: last_pos + 1,
                pending: Vec::new(),
                stopping: false,
            }),
            wake: Condvar::new(),
            durable: watch::Sender::new(Durable { seq: last_seq, pos: last_pos, failed: None }),
            live: broadcast::Sender::new(live_capacity.max(1)),
        })
    }

    /// Live feed events, published as their batch becomes durable.
    pub fn subscribe_live(&self) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.live.subscribe()
    }

    /// Assigns `count` consecutive (seq, feed position) pairs, lets `build` produce the write
    /// for them, and queues it. Callers hold the documents' locks, so each document's writes
    /// queue in order.
    pub fn submit(&self, count: usize, build: impl FnOnce(&[(Seq, FeedPos)]) -> PendingWrite) -> Result<(), NodeError> {
        let mut queue = self.queue.lock();
        if queue.stopping {
            return Err(NodeError::ShuttingDown);
        }
        if let Some(error) = &self.durable.borrow().failed {
            return Err(NodeError::Storage(error.clone()));
        }
        let numbers: Vec<(Seq, FeedPos)> =
            (0..count as u64).map(|i| (queue.next_seq + i, queue.next_pos + i)).collect();
        let write = build(&numbers);
        debug_assert_eq!(write.events.len(), count);
        queue.next_seq += count as u64;
        queue.next_pos += count as u64;
        queue.pending.push(write);
        self.wake.notify_one();
        Ok(())
    }

    /// Waits until `seq` is durable (returns at once for seq 0).
    pub async fn wait_durable(&self, seq: Seq) -> Result<(), NodeError> {
        let mut rx = self.durable.subscribe();
        let state = rx.wait_for(|d| d.seq >= seq || d.failed.is_some()).await.map_err(|_| NodeError::ShuttingDown)?;
        match &state.failed {
            Some(error) if state.seq < seq => Err(NodeError::Storage(error.clone())),
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
        for write in writes {
            events.extend(write.events);
            parts.doc_count += write.doc_count_delta;
            batch.extend(write.ops);
        }
        let count = events.len();
        let last = events.last().map(|e| (e.change.seq, e.pos));
        batch.extend(prune);
        if let Some((last_seq, last_pos)) = last {
            batch.put(Family::Meta, parts.local_vv_key.clone(), last_seq.to_be_bytes().to_vec());
            batch.put(Family::Meta, DOC_COUNT_KEY.to_vec(), parts.doc_count.to_be_bytes().to_vec());
            batch.put(Family::Meta, FEED_POS_KEY.to_vec(), last_pos.to_be_bytes().to_vec());
        }
        let bytes = batch.payload_bytes();
        match parts.storage.write(batch) {
            Ok(()) => {
                parts.metrics.record_commit(count, bytes, parts.doc_count);
                if let Some((last_seq, last_pos)) = last {
                    sequencer.durable.send_modify(|d| {
                        d.seq = last_seq;
                        d.pos = last_pos;
                    });
                }
                for event in events {
                    // No live subscribers is not an error.
                    let _ = sequencer.live.send(event);
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
