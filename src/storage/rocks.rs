//! RocksDB storage: one column family per [`Family`], every option set explicitly.
//!
//! Durability: each batch is written with `sync = true`, so it is on disk (WAL fsynced) when
//! [`Storage::write`] returns. Group commit happens one level up (the node's committer hands
//! many writes to one batch), which is where fsyncs are shared. Appends to a document use a
//! merge operator that concatenates, so a write costs the size of its change, not of the
//! document.

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DBCompressionType, DBRecoveryMode, Direction, IteratorMode,
    MergeOperands, Options, WriteOptions, DB,
};

use super::{BatchOp, Family, Storage, StorageError, Visit, WriteBatch};

/// Block compression for RocksDB's SST files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCompression {
    None,
    Zlib,
    Zstd,
    Lz4,
}

/// How to open a RocksDB store.
#[derive(Debug, Clone)]
pub struct RocksOptions {
    pub path: PathBuf,
    pub compression: BlockCompression,
    /// Memtable size per column family.
    pub write_buffer_bytes: usize,
}

pub struct RocksStorage {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for RocksStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStorage").field("path", &self.path).finish()
    }
}

fn concat_merge(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let extra: usize = operands.iter().map(<[u8]>::len).sum();
    let mut out = Vec::with_capacity(existing.map_or(0, <[u8]>::len) + extra);
    if let Some(existing) = existing {
        out.extend_from_slice(existing);
    }
    for operand in operands {
        out.extend_from_slice(operand);
    }
    Some(out)
}

impl RocksStorage {
    pub fn open(options: &RocksOptions) -> Result<Self, StorageError> {
        std::fs::create_dir_all(&options.path)
            .map_err(|e| StorageError::Io(format!("cannot create {}: {e}", options.path.display())))?;
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_paranoid_checks(true);
        db_options.increase_parallelism(2);
        db_options.set_max_open_files(512);
        db_options.set_keep_log_file_num(5);
        db_options.set_max_total_wal_size(256 * 1024 * 1024);
        db_options.set_atomic_flush(true);
        // After a crash, keep the WAL up to its first damaged record: a prefix of the batches
        // (what `write_unsynced` promises), never a batch in part.
        db_options.set_wal_recovery_mode(DBRecoveryMode::PointInTime);

        let families = Family::ALL.iter().map(|family| {
            let mut cf = Options::default();
            let configured = match options.compression {
                BlockCompression::None => DBCompressionType::None,
                BlockCompression::Zlib => DBCompressionType::Zlib,
                BlockCompression::Zstd => DBCompressionType::Zstd,
                BlockCompression::Lz4 => DBCompressionType::Lz4,
            };
            // Freshly flushed data (levels 0-1) is rewritten soon by compaction, so compressing
            // it only burns CPU that writers need; the configured codec applies from level 2,
            // where data settles and most bytes live.
            let mut per_level = [configured; 7];
            per_level[0] = DBCompressionType::None;
            per_level[1] = DBCompressionType::None;
            cf.set_compression_per_level(&per_level);
            cf.set_bottommost_compression_type(configured);
            cf.set_write_buffer_size(options.write_buffer_bytes);
            let mut table = BlockBasedOptions::default();
            table.set_bloom_filter(10.0, false);
            cf.set_block_based_table_factory(&table);
            if *family == Family::Docs {
                cf.set_merge_operator_associative("statemesh.append", concat_merge);
            }
            ColumnFamilyDescriptor::new(family.name(), cf)
        });
        let db = DB::open_cf_descriptors(&db_options, &options.path, families).map_err(|e| {
            let message = e.into_string();
            if message.contains("lock") {
                StorageError::Locked { path: options.path.display().to_string() }
            } else {
                StorageError::Io(message)
            }
        })?;
        Ok(Self { db, path: options.path.clone() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, family: Family) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db
            .cf_handle(family.name())
            .ok_or_else(|| StorageError::Corrupt(format!("column family {} is missing", family.name())))
    }
}

fn io(e: rocksdb::Error) -> StorageError {
    StorageError::Io(e.into_string())
}

impl RocksStorage {
    /// One atomic write; with `sync`, returns once the WAL is on disk.
    fn write_batch(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op {
                BatchOp::Put { family, key, value } => rocks_batch.put_cf(self.cf(*family)?, key, value),
                BatchOp::Append { family, key, value } => rocks_batch.merge_cf(self.cf(*family)?, key, value),
                BatchOp::Delete { family, key } => rocks_batch.delete_cf(self.cf(*family)?, key),
                // An empty or inverted range deletes nothing, as in the memory backend.
                BatchOp::DeleteRange { family, start, end } if start < end => {
                    rocks_batch.delete_range_cf(self.cf(*family)?, start, end);
                }
                BatchOp::DeleteRange { .. } => {}
            }
        }
        let mut write_options = WriteOptions::default();
        write_options.set_sync(sync);
        self.db.write_opt(rocks_batch, &write_options).map_err(io)
    }
}

impl Storage for RocksStorage {
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.write_batch(batch, true)
    }

    /// The batch is in the WAL file (the OS holds it) and the memtable; RocksDB's WAL
    /// recovery keeps a prefix of the batches after a crash, never part of one.
    fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.write_batch(batch, false)
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true).map_err(io)
    }

    fn defers_sync(&self) -> bool {
        true
    }

    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.cf(family)?, key).map_err(io)
    }

    fn scan(
        &self,
        family: Family,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<super::Entry>, StorageError> {
        let from = if start > prefix { start } else { prefix };
        let iter = self.db.iterator_cf(self.cf(family)?, IteratorMode::From(from, Direction::Forward));
        let mut out = Vec::new();
        for entry in iter {
            let (key, value) = entry.map_err(io)?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((key.into_vec(), value.into_vec()));
        }
        Ok(out)
    }

    fn visit_consistent(&self, families: &[Family], visit: Visit<'_>) -> Result<(), StorageError> {
        // One RocksDB snapshot pins a sequence number for every family, so all iterators
        // read the same point in time while writers carry on.
        let snapshot = self.db.snapshot();
        for family in families {
            let mut read = rocksdb::ReadOptions::default();
            // A whole-store scan would evict the hot blocks readers need.
            read.fill_cache(false);
            for entry in snapshot.iterator_cf_opt(self.cf(*family)?, read, IteratorMode::Start) {
                let (key, value) = entry.map_err(io)?;
                visit(*family, &key, &value)?;
            }
        }
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        Family::ALL
            .iter()
            .filter_map(|family| self.cf(*family).ok())
            .flat_map(|cf| {
                ["rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables"]
                    .map(|property| self.db.property_int_value_cf(cf, property).ok().flatten().unwrap_or(0))
            })
            .sum()
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true).map_err(io)?;
        let families: Vec<_> = Family::ALL.iter().filter_map(|f| self.cf(*f).ok()).collect();
        self.db.flush_cfs_opt(&families, &rocksdb::FlushOptions::default()).map_err(io)
    }

    fn kind(&self) -> &'static str {
        "rocksdb"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> RocksOptions {
        RocksOptions { path: dir.join("db"), compression: BlockCompression::Zstd, write_buffer_bytes: 4 << 20 }
    }

    #[test]
    fn rocksdb_backend_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let counter = std::sync::atomic::AtomicUsize::new(0);
        super::super::conformance::run_all(&|| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let sub = dir.path().join(n.to_string());
            Box::new(RocksStorage::open(&options(&sub)).expect("open")) as Box<dyn Storage>
        });
    }

    #[test]
    fn everything_written_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = RocksStorage::open(&options(dir.path())).expect("open");
            let mut batch = WriteBatch::new();
            batch.put(Family::Meta, b"k".to_vec(), b"v".to_vec());
            batch.append(Family::Docs, b"d".to_vec(), b"ab".to_vec());
            store.write(batch).expect("write");
            let mut batch = WriteBatch::new();
            batch.append(Family::Docs, b"d".to_vec(), b"cd".to_vec());
            store.write(batch).expect("write");
        }
        let store = RocksStorage::open(&options(dir.path())).expect("reopen");
        assert_eq!(store.get(Family::Meta, b"k").expect("get"), Some(b"v".to_vec()));
        assert_eq!(store.get(Family::Docs, b"d").expect("get"), Some(b"abcd".to_vec()));
    }

    #[test]
    fn a_second_process_cannot_open_the_same_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = RocksStorage::open(&options(dir.path())).expect("open");
        assert!(matches!(RocksStorage::open(&options(dir.path())), Err(StorageError::Locked { .. })));
    }
}
