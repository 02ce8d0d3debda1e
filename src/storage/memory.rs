//! In-memory storage: the same contract as RocksDB, nothing on disk.
//!
//! Used for `storage.type: memory` (ephemeral nodes, tests) and by the simulator. Batches are
//! applied under one lock, so they are atomic exactly as RocksDB's are.

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;

use super::{BatchOp, Family, Storage, StorageError, Visit, WriteBatch};

/// One column family's ordered entries.
type Table = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
pub struct MemoryStorage {
    families: RwLock<HashMap<Family, Table>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemoryStorage {
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut families = self.families.write();
        for op in batch.ops {
            match op {
                BatchOp::Put { family, key, value } => {
                    families.entry(family).or_default().insert(key, value);
                }
                BatchOp::Append { family, key, value } => {
                    families.entry(family).or_default().entry(key).or_default().extend_from_slice(&value);
                }
                BatchOp::Delete { family, key } => {
                    families.entry(family).or_default().remove(&key);
                }
                BatchOp::DeleteRange { family, start, end } => {
                    if start < end {
                        let table = families.entry(family).or_default();
                        let doomed: Vec<Vec<u8>> = table.range(start..end).map(|(key, _)| key.clone()).collect();
                        for key in doomed {
                            table.remove(&key);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.families.read().get(&family).and_then(|f| f.get(key).cloned()))
    }

    fn scan(
        &self,
        family: Family,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<super::Entry>, StorageError> {
        let families = self.families.read();
        let Some(entries) = families.get(&family) else {
            return Ok(Vec::new());
        };
        let from = if start > prefix { start } else { prefix };
        Ok(entries
            .range(from.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn visit_consistent(&self, families: &[Family], visit: Visit<'_>) -> Result<(), StorageError> {
        // A copy taken under one read lock is the point in time; visiting the copy keeps the
        // lock short and lets `visit` take as long as it likes without stalling writers.
        let copies: Vec<(Family, BTreeMap<_, _>)> = {
            let all = self.families.read();
            families.iter().map(|family| (*family, all.get(family).cloned().unwrap_or_default())).collect()
        };
        for (family, entries) in &copies {
            for (key, value) in entries {
                visit(*family, key, value)?;
            }
        }
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        let families = self.families.read();
        families.values().flat_map(|f| f.iter()).map(|(k, v)| (k.len() + v.len()) as u64).sum()
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_backend_passes_the_conformance_suite() {
        super::super::conformance::run_all(&|| Box::new(MemoryStorage::new()) as Box<dyn Storage>);
    }
}
