//! The Raft log, the vote and the committed pointer, kept in the `raft_log` and `raft_meta`
//! column families.
//!
//! openraft's correctness rests on three promises this store keeps: a vote is on disk before
//! `save_vote` returns, appended entries are on disk before the flush callback fires, and the
//! log never has a hole. Every mutation is one [`WriteBatch`], written in the order openraft
//! issued it. Votes, truncations and purges are durable writes ([`Storage::write`]) that
//! return once synced. Appends are written unsynced (readable at once, as openraft requires)
//! and their callbacks fire once a sync covers them (`log_flush.rs`), so the core keeps
//! replicating and taking writes while the disk works, and appends share syncs. A crash
//! keeps a prefix of the batches, so an unsynced append can vanish but never leave a hole.
//! The committed pointer is a restart hint and is written unsynced too.
//!
//! The last log id and the last purged log id are kept in `raft_meta` too, written in the
//! same batch as the entries they describe, so opening never scans the log.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use parking_lot::Mutex;

use prometheus_client::metrics::histogram::Histogram;

use super::log_flush::LogFlusher;
use super::types::{Entry, LogId, OpenraftStorageError, TypeConfig, Vote};
use crate::storage::codec;
use crate::storage::{key_after, Family, Storage, StorageError, WriteBatch};

/// `raft_meta` key of the last saved vote.
pub(crate) const VOTE_KEY: &[u8] = b"vote";
/// `raft_meta` key of the last saved committed log id.
pub(crate) const COMMITTED_KEY: &[u8] = b"committed";
/// `raft_meta` key of the id of the last entry in `raft_log`.
pub(crate) const LAST_LOG_KEY: &[u8] = b"log/last";
/// `raft_meta` key of the id of the last purged entry.
pub(crate) const LAST_PURGED_KEY: &[u8] = b"log/purged";

/// The `raft_log` key of the entry at `index`: big-endian, so keys sort by index.
pub(crate) fn log_key(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

fn index_of(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] =
        key.try_into().map_err(|_| StorageError::Corrupt(format!("raft log key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Reads an optional record of `raft_meta`.
pub(crate) fn read_meta<T: serde::de::DeserializeOwned>(
    storage: &dyn Storage,
    key: &[u8],
    what: &str,
) -> Result<Option<T>, StorageError> {
    storage.get(Family::RaftMeta, key)?.map(|bytes| codec::decode(&bytes, what)).transpose()
}

/// The two pointers that bound the log, cached from `raft_meta`.
#[derive(Debug, Clone, Default)]
struct Bounds {
    last_purged: Option<LogId>,
    last_log: Option<LogId>,
}

/// openraft's log storage over our [`Storage`].
pub(crate) struct LogStore {
    storage: Arc<dyn Storage>,
    bounds: Arc<Mutex<Bounds>>,
    flusher: LogFlusher,
}

impl LogStore {
    /// Opens the log in `storage`; each sync of it is timed into `log_sync`.
    pub(crate) fn open(storage: Arc<dyn Storage>, log_sync: Histogram) -> Result<Self, StorageError> {
        let bounds = Bounds {
            last_purged: read_meta(storage.as_ref(), LAST_PURGED_KEY, "raft last purged log id")?,
            last_log: read_meta(storage.as_ref(), LAST_LOG_KEY, "raft last log id")?,
        };
        Ok(Self { flusher: LogFlusher::new(storage.clone(), log_sync), storage, bounds: Arc::new(Mutex::new(bounds)) })
    }
}

/// Reads log entries for openraft's replication tasks; cheap to clone.
#[derive(Clone)]
pub(crate) struct LogReader {
    storage: Arc<dyn Storage>,
}

impl LogReader {
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        // The log has no holes, so the first `end - start` entries at or after `start` cover
        // the range; the filter drops what lies past `end` when `start` was already purged.
        let limit = usize::try_from(end - start).unwrap_or(usize::MAX);
        let rows = self.storage.scan(Family::RaftLog, &[], &log_key(start), limit)?;
        let mut entries = Vec::with_capacity(rows.len());
        for (key, value) in rows {
            if index_of(&key)? >= end {
                break;
            }
            entries.push(codec::decode::<Entry>(&value, "raft log entry")?);
        }
        Ok(entries)
    }
}

fn read_err(e: &StorageError) -> OpenraftStorageError {
    StorageIOError::read_logs(e).into()
}

fn write_err(e: &StorageError) -> OpenraftStorageError {
    StorageIOError::write_logs(e).into()
}

fn range_of<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(x) => x.saturating_add(1),
        Bound::Excluded(x) => *x,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, OpenraftStorageError> {
        let (start, end) = range_of(&range);
        self.entries(start, end).map_err(|e| read_err(&e))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, OpenraftStorageError> {
        let (start, end) = range_of(&range);
        LogReader { storage: self.storage.clone() }.entries(start, end).map_err(|e| read_err(&e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, OpenraftStorageError> {
        let bounds = self.bounds.lock().clone();
        // After a snapshot install the purge point can pass the last entry; the log then
        // "ends" at the purge point.
        let last_log_id = bounds.last_log.max(bounds.last_purged);
        Ok(LogState { last_purged_log_id: bounds.last_purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader { storage: self.storage.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), OpenraftStorageError> {
        let mut batch = WriteBatch::new();
        batch.put(Family::RaftMeta, VOTE_KEY.to_vec(), codec::encode(vote));
        self.storage.write(batch).map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, OpenraftStorageError> {
        read_meta(self.storage.as_ref(), VOTE_KEY, "raft vote").map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), OpenraftStorageError> {
        let mut batch = WriteBatch::new();
        match committed {
            Some(log_id) => batch.put(Family::RaftMeta, COMMITTED_KEY.to_vec(), codec::encode(&log_id)),
            None => batch.delete(Family::RaftMeta, COMMITTED_KEY.to_vec()),
        }
        // Only a hint for a faster restart (openraft may re-apply up to it without waiting for
        // a leader), so it rides with the next sync instead of paying its own.
        self.storage.write_unsynced(batch).map_err(|e| write_err(&e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, OpenraftStorageError> {
        read_meta(self.storage.as_ref(), COMMITTED_KEY, "raft committed log id").map_err(|e| read_err(&e))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), OpenraftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::new();
        let mut last = None;
        for entry in entries {
            batch.put(Family::RaftLog, log_key(entry.log_id.index), codec::encode(&entry));
            last = Some(entry.log_id);
        }
        let Some(last) = last else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        batch.put(Family::RaftMeta, LAST_LOG_KEY.to_vec(), codec::encode(&last));
        match self.storage.write_unsynced(batch) {
            Ok(()) => {
                self.bounds.lock().last_log = Some(last);
                self.flusher.after_append(callback);
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(write_err(&e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), OpenraftStorageError> {
        let bounds = self.bounds.lock().clone();
        let Some(last_log) = bounds.last_log.filter(|last| last.index >= log_id.index) else {
            return Ok(());
        };
        // The new last entry is the one just before the cut, unless that one is purged.
        let kept_index = log_id.index.checked_sub(1);
        let new_last = match kept_index {
            Some(index) if bounds.last_purged.is_none_or(|purged| index > purged.index) => {
                let reader = LogReader { storage: self.storage.clone() };
                let kept = reader.entries(index, index + 1).map_err(|e| read_err(&e))?;
                Some(
                    kept.first()
                        .map(|entry| entry.log_id)
                        .ok_or_else(|| read_err(&StorageError::Corrupt(format!("raft log has a hole at {index}"))))?,
                )
            }
            _ => bounds.last_purged,
        };
        let mut batch = WriteBatch::new();
        batch.delete_range(Family::RaftLog, log_key(log_id.index), key_after(&log_key(last_log.index)));
        match new_last {
            Some(last) => batch.put(Family::RaftMeta, LAST_LOG_KEY.to_vec(), codec::encode(&last)),
            None => batch.delete(Family::RaftMeta, LAST_LOG_KEY.to_vec()),
        }
        self.storage.write(batch).map_err(|e| write_err(&e))?;
        self.bounds.lock().last_log = new_last;
        tracing::debug!(since = log_id.index, "raft log truncated");
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), OpenraftStorageError> {
        let bounds = self.bounds.lock().clone();
        if bounds.last_purged.is_some_and(|purged| purged.index >= log_id.index) {
            return Ok(());
        }
        let first = bounds.last_purged.map_or(0, |purged| purged.index + 1);
        // Entries past the last one do not exist (a snapshot install can purge beyond them).
        let upto = bounds.last_log.map_or(log_id.index, |last| last.index.min(log_id.index));
        let mut batch = WriteBatch::new();
        if bounds.last_log.is_some() {
            batch.delete_range(Family::RaftLog, log_key(first), key_after(&log_key(upto)));
        }
        batch.put(Family::RaftMeta, LAST_PURGED_KEY.to_vec(), codec::encode(&log_id));
        self.storage.write(batch).map_err(|e| write_err(&e))?;
        self.bounds.lock().last_purged = Some(log_id);
        tracing::debug!(upto = log_id.index, "raft log purged");
        Ok(())
    }
}
