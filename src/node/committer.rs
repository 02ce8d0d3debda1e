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

use parking_lot::{Condvar, Mutex};
use statemesh_protocol::change_log::Seq;
use tokio::sync::watch;

use super::NodeError;
use crate::metrics::Metrics;
use crate::storage::{BatchOp, Family, Storage, StorageError, WriteBatch};

/// Meta key holding the live document count.
pub const DOC_COUNT_KEY: &[u8] = b"doc_count";

/// What a queued write contributes to the next batch.
pub struct PendingWrite {
    pub seq: Seq,
    pub ops: Vec<BatchOp>,
    /// +1 when the write created a document, -1 when it deleted one.
    pub doc_count_delta: i64,
}

/// Durability as seen by waiters: everything up to `seq` is on disk, unless `failed`.
#[derive(Debug, Clone, Default)]
pub struct Durable {
    pub seq: Seq,
    pub failed: Option<StorageError>,
}

struct Queue {
    next_seq: Seq,
    pending: Vec<PendingWrite>,
    stopping: bool,
}

/// Numbers writes and queues them for the committer thread.
pub struct Sequencer {
    queue: Mutex<Queue>,
    wake: Condvar,
    durable: watch::Sender<Durable>,
}

impl Sequencer {
    /// `last_seq` is the highest seq already durable (from storage at start-up).
    pub fn new(last_seq: Seq) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue { next_seq: last_seq + 1, pending: Vec::new(), stopping: false }),
            wake: Condvar::new(),
            durable: watch::Sender::new(Durable { seq: last_seq, failed: None }),
        })
    }

    /// Assigns the next seq, lets `build` produce the write for it, and queues it.
    /// Callers hold the document's lock, so a document's writes queue in seq order.
    pub fn submit(&self, build: impl FnOnce(Seq) -> PendingWrite) -> Result<Seq, NodeError> {
        let mut queue = self.queue.lock();
        if queue.stopping {
            return Err(NodeError::ShuttingDown);
        }
        if let Some(error) = &self.durable.borrow().failed {
            return Err(NodeError::Storage(error.clone()));
        }
        let seq = queue.next_seq;
        let write = build(seq);
        debug_assert_eq!(write.seq, seq);
        queue.next_seq += 1;
        queue.pending.push(write);
        self.wake.notify_one();
        Ok(seq)
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

/// Starts the committer thread. It exits after [`Sequencer::stop`] once the queue is empty,
/// or at the first storage error.
pub fn spawn(
    sequencer: Arc<Sequencer>,
    storage: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
    local_vv_key: Vec<u8>,
    mut doc_count: i64,
    max_batch: usize,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("statemesh-commit".to_string()).spawn(move || loop {
        let writes = {
            let mut queue = sequencer.queue.lock();
            while queue.pending.is_empty() && !queue.stopping {
                sequencer.wake.wait(&mut queue);
            }
            if queue.pending.is_empty() {
                return;
            }
            let take = queue.pending.len().min(max_batch);
            queue.pending.drain(..take).collect::<Vec<_>>()
        };
        let Some(last_seq) = writes.last().map(|w| w.seq) else { continue };
        let mut batch = WriteBatch::new();
        let count = writes.len();
        for write in writes {
            doc_count += write.doc_count_delta;
            for op in write.ops {
                match op {
                    BatchOp::Put { family, key, value } => batch.put(family, key, value),
                    BatchOp::Append { family, key, value } => batch.append(family, key, value),
                    BatchOp::Delete { family, key } => batch.delete(family, key),
                }
            }
        }
        batch.put(Family::Meta, local_vv_key.clone(), last_seq.to_be_bytes().to_vec());
        batch.put(Family::Meta, DOC_COUNT_KEY.to_vec(), doc_count.to_be_bytes().to_vec());
        let bytes = batch.payload_bytes();
        match storage.write(batch) {
            Ok(()) => {
                metrics.record_commit(count, bytes, doc_count);
                sequencer.durable.send_modify(|d| d.seq = last_seq);
            }
            Err(error) => {
                tracing::error!(%error, "storage write failed; refusing further writes");
                metrics.storage_errors.inc();
                sequencer.durable.send_modify(|d| d.failed = Some(error));
                return;
            }
        }
    })
}
