//! Durable key-value storage behind one small trait, with RocksDB and in-memory backends.
//!
//! The node never talks to RocksDB directly: it builds a [`WriteBatch`] of puts, appends and
//! deletes across column families and hands it to [`Storage::write`], which returns only once
//! the batch is durable (WAL synced) and applies it atomically. Both backends pass the same
//! conformance suite (`conformance.rs`), so `storage.type: memory` behaves like RocksDB
//! except that nothing survives the process.

pub mod codec;
mod memory;
mod rocks;

#[cfg(test)]
mod conformance;

pub use memory::MemoryStorage;
pub use rocks::{BlockCompression, RocksOptions, RocksStorage};

/// The column families. Each holds one kind of record; see `docs/STORAGE.md` for layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `namespace NUL doc_id` → Automerge bytes: a saved document followed by appended
    /// change chunks (compacted back into one saved document from time to time).
    Docs,
    /// `namespace NUL doc_id` → [`crate::node::DocMeta`]: existence, version, timestamps.
    DocMeta,
    /// `origin NUL seq(be)` → encoded change record: the per-origin log replication serves.
    ChangeLog,
    /// Node-level metadata: version vector entries, counters, identity checks.
    Meta,
    /// `position(be)` → feed event: every change applied at this node, in apply order.
    Feed,
    /// `namespace NUL doc_id NUL change hash` → which logged change (origin, seq) and feed
    /// position introduced an Automerge change, for history listings.
    DocChanges,
    /// `origin NUL seq(be)` → [`statemesh_protocol::attestation::RecordHeader`] of a record
    /// whose changes some document holds but the change log does not (pruned, or the
    /// changes came by state transfer): what proves those changes to a peer.
    RecordHeaders,
    /// `index(be)` → encoded Raft log entry: the strong path's replicated log (`src/raft`).
    RaftLog,
    /// The strong path's small records: vote, committed and purged log ids, last applied log
    /// id and membership, and the current state-machine snapshot.
    RaftMeta,
}

impl Family {
    pub const ALL: [Family; 9] = [
        Family::Docs,
        Family::DocMeta,
        Family::ChangeLog,
        Family::Meta,
        Family::Feed,
        Family::DocChanges,
        Family::RecordHeaders,
        Family::RaftLog,
        Family::RaftMeta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Docs => "docs",
            Family::DocMeta => "doc_meta",
            Family::ChangeLog => "change_log",
            Family::Meta => "meta",
            Family::Feed => "feed",
            Family::DocChanges => "doc_changes",
            Family::RecordHeaders => "record_headers",
            Family::RaftLog => "raft_log",
            Family::RaftMeta => "raft_meta",
        }
    }
}

/// One mutation inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put {
        family: Family,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Appends `value` to whatever the key holds (or creates it).
    Append {
        family: Family,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        family: Family,
        key: Vec<u8>,
    },
    /// Deletes every key in `start..end` (end excluded): one operation however many keys the
    /// range holds, which is what makes pruning a log's old end cheap.
    DeleteRange {
        family: Family,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

/// Mutations applied atomically and durably together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, family: Family, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(BatchOp::Put { family, key, value });
    }

    pub fn append(&mut self, family: Family, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(BatchOp::Append { family, key, value });
    }

    pub fn delete(&mut self, family: Family, key: Vec<u8>) {
        self.ops.push(BatchOp::Delete { family, key });
    }

    /// Deletes every key from `start` (included) to `end` (excluded).
    pub fn delete_range(&mut self, family: Family, start: Vec<u8>, end: Vec<u8>) {
        self.ops.push(BatchOp::DeleteRange { family, start, end });
    }

    /// Appends already-built operations.
    pub fn extend(&mut self, ops: impl IntoIterator<Item = BatchOp>) {
        self.ops.extend(ops);
    }

    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes of keys and values, for metrics.
    pub fn payload_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                BatchOp::Put { key, value, .. } | BatchOp::Append { key, value, .. } => key.len() + value.len(),
                BatchOp::Delete { key, .. } => key.len(),
                BatchOp::DeleteRange { start, end, .. } => start.len() + end.len(),
            })
            .sum()
    }
}

/// A storage failure. The node treats any of these on the write path as fatal.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage at {path} is already in use by another process")]
    Locked { path: String },
}

/// The callback of [`Storage::visit_consistent`]: one entry (family, key, value) at a time.
/// (The same type as writing `&mut dyn FnMut(…)` in place.)
pub type Visit<'a> = &'a mut dyn FnMut(Family, &[u8], &[u8]) -> Result<(), StorageError>;

/// A key and its value, as scans return them.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A key-value store with atomic, durable batches.
pub trait Storage: Send + Sync + 'static {
    /// Applies `batch` atomically; returns once it is durable.
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError>;

    /// Applies `batch` atomically and makes it visible to readers at once, without waiting
    /// for the disk. On a store that [defers syncs](Storage::defers_sync) the batch is durable
    /// only once a later [`Storage::sync`] (or durable [`Storage::write`]) returns; a crash
    /// before that loses it whole, together with every batch written after it, never a part
    /// of one and never out of order. Lets a caller keep working while the disk catches up,
    /// then pay one sync for many batches.
    fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.write(batch)
    }

    /// Makes every batch written so far durable.
    fn sync(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Whether [`Storage::write_unsynced`] leaves durability to a later sync (RocksDB), or
    /// makes a batch as durable as this store makes anything when it returns (memory), so
    /// that waiting for durability costs nothing.
    fn defers_sync(&self) -> bool {
        false
    }

    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Up to `limit` entries whose keys start with `prefix` and are `>= start`, in key order.
    fn scan(&self, family: Family, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<Entry>, StorageError>;

    /// Calls `visit` with every entry of each of `families` (in that order, keys ascending
    /// within a family), all read at one point in time: batches written meanwhile are not
    /// seen, and no batch is ever seen in part. Writers are not held up while `visit` runs.
    /// Snapshots use this for a consistent export. The first error from `visit` stops it.
    fn visit_consistent(&self, families: &[Family], visit: Visit<'_>) -> Result<(), StorageError>;

    /// Approximate bytes used on disk (or in memory).
    fn size_bytes(&self) -> u64;

    /// Flushes buffered state so a clean shutdown leaves no recovery work.
    fn flush(&self) -> Result<(), StorageError>;

    /// `"rocksdb"` or `"memory"`, for status output.
    fn kind(&self) -> &'static str;
}

/// The smallest key greater than every key starting with `key` as a whole key: `key ++ [0]`.
/// Used to resume a scan strictly after `key`.
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}
