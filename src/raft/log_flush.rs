//! Durability of appended Raft log entries, off the runtime's worker threads.
//!
//! openraft hands `append` a callback to call once the entries are on disk. The log store
//! writes entries unsynced (readable at once, as openraft requires) and hands the callback
//! here: one thread syncs and then calls every callback that was waiting when the sync
//! began. So a sync (a fraction of a millisecond, often more on a busy disk) never blocks one
//! of the tokio workers that serve HTTP, the network and the state machine meanwhile.
//! openraft 0.9's core task does wait for the callback before its next step, so one voter
//! has one append in flight at a time; concurrent client writes share a sync by arriving
//! as one batch of entries. Callbacks fire in append order; a failed sync fails every
//! callback it covered, and openraft stops the node on a log write error.
//!
//! A store whose writes are durable as soon as they return (memory) never starts the thread:
//! its callbacks fire inline, which keeps the simulator's runs on one thread.

use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use openraft::storage::LogFlushed;
use parking_lot::Mutex;
use prometheus_client::metrics::histogram::Histogram;

use super::types::TypeConfig;
use crate::storage::Storage;

/// Appends whose callbacks may wait for one sync before `append` itself waits.
const QUEUE_CAPACITY: usize = 4096;

type Callback = LogFlushed<TypeConfig>;

/// Calls append callbacks once their entries are durable.
pub(crate) struct LogFlusher {
    storage: Arc<dyn Storage>,
    /// Each sync's duration.
    log_sync: Histogram,
    /// Started at the first append that needs a sync.
    queue: Mutex<Option<SyncSender<Callback>>>,
}

impl LogFlusher {
    pub(crate) fn new(storage: Arc<dyn Storage>, log_sync: Histogram) -> Self {
        Self { storage, log_sync, queue: Mutex::new(None) }
    }

    /// Calls `callback` once the append just written (unsynced) is on disk.
    pub(crate) fn after_append(&self, callback: Callback) {
        if !self.storage.defers_sync() {
            callback.log_io_completed(Ok(()));
            return;
        }
        let mut queue = self.queue.lock();
        let sender = match queue.as_ref() {
            Some(sender) => sender.clone(),
            None => match self.start() {
                Ok(sender) => queue.insert(sender).clone(),
                Err(e) => {
                    callback.log_io_completed(Err(e));
                    return;
                }
            },
        };
        drop(queue);
        match sender.try_send(callback) {
            Ok(()) => {}
            // The thread is behind by a whole queue: wait for room, which is the back-pressure
            // a synchronous append would have applied anyway.
            Err(TrySendError::Full(callback)) => {
                if let Err(mpsc::SendError(callback)) = sender.send(callback) {
                    callback.log_io_completed(Err(io::Error::other("the raft log flusher stopped")));
                }
            }
            Err(TrySendError::Disconnected(callback)) => {
                callback.log_io_completed(Err(io::Error::other("the raft log flusher stopped")));
            }
        }
    }

    fn start(&self) -> io::Result<SyncSender<Callback>> {
        let (sender, receiver) = mpsc::sync_channel(QUEUE_CAPACITY);
        let storage = self.storage.clone();
        let log_sync = self.log_sync.clone();
        std::thread::Builder::new()
            .name("statemesh-raft-log".to_owned())
            .spawn(move || run(&*storage, &log_sync, &receiver))?;
        Ok(sender)
    }
}

/// Until the store is dropped: wait for a callback, sync once for it and every callback
/// queued behind it, then call them all.
fn run(storage: &dyn Storage, log_sync: &Histogram, receiver: &Receiver<Callback>) {
    while let Ok(first) = receiver.recv() {
        let mut waiting = vec![first];
        waiting.extend(receiver.try_iter());
        let started = std::time::Instant::now();
        let synced = storage.sync();
        log_sync.observe(started.elapsed().as_secs_f64());
        match synced {
            Ok(()) => waiting.into_iter().for_each(|callback| callback.log_io_completed(Ok(()))),
            Err(e) => {
                tracing::error!(error = %e, "syncing the raft log failed");
                for callback in waiting {
                    callback.log_io_completed(Err(io::Error::other(e.to_string())));
                }
            }
        }
    }
}
