//! Decoded documents kept in memory, loaded on first use and evicted when cold.
//!
//! Each document sits behind its own lock, so writers to different documents proceed in
//! parallel and a slow load blocks only that document. A document is evicted only when no
//! request holds it and everything written to it is durable; otherwise a reload from storage
//! could miss a queued change and fork the document's history under our own actor.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use statemesh_protocol::{DocKey, Document, Version};

use super::feed_event::FeedPos;

/// How many recent versions an entry remembers for snapshot reads.
const VERSIONS_KEPT: usize = 32;

/// A cached document and what the write path needs to know about its storage.
pub struct DocEntry {
    /// `None` until loaded (the first request to lock the entry loads it).
    pub doc: Option<Document>,
    /// Feed position of the last change applied to `doc` (0: none since load); the entry
    /// may be evicted once it is durable.
    pub last_pos: FeedPos,
    /// Bytes appended to the stored value since it was last written whole.
    pub appended_bytes: usize,
    /// Size of the last whole save.
    pub saved_bytes: usize,
    /// An upper bound of the document's size as JSON (`None`: unknown), so size limits can
    /// be checked without rendering the document on every write.
    pub json_bytes_bound: Option<usize>,
    /// Recent `(feed position, version)` pairs, oldest first: the document was at `version`
    /// from that position until the next entry. Transactions read snapshots through it.
    pub versions: VecDeque<(FeedPos, Version)>,
}

impl DocEntry {
    /// Whether the stored document is large enough that Automerge work on it is heavy
    /// (see [`super::cpu_work`]).
    pub fn is_large(&self) -> bool {
        self.saved_bytes + self.appended_bytes >= super::CPU_HEAVY_BYTES
    }

    /// A change to `doc` was queued at feed position `pos`, leaving it at `version`.
    pub fn queued(&mut self, pos: FeedPos, version: Version) {
        self.last_pos = pos;
        self.remember_version(pos, version);
    }

    pub fn remember_version(&mut self, pos: FeedPos, version: Version) {
        if self.versions.len() == VERSIONS_KEPT {
            self.versions.pop_front();
        }
        self.versions.push_back((pos, version));
    }

    /// The version the document had at feed position `pos`, if still remembered.
    pub fn version_at(&self, pos: FeedPos) -> Option<&Version> {
        self.versions.iter().rev().find(|(at, _)| *at <= pos).map(|(_, version)| version)
    }
}

struct Slot {
    entry: Arc<Mutex<DocEntry>>,
    last_used: u64,
}

pub struct DocCache {
    slots: Mutex<HashMap<DocKey, Slot>>,
    capacity: usize,
    clock: AtomicU64,
}

impl DocCache {
    pub fn new(capacity: usize) -> Self {
        Self { slots: Mutex::new(HashMap::new()), capacity: capacity.max(1), clock: AtomicU64::new(0) }
    }

    /// The entry for `key`, created empty (unloaded) if absent.
    pub fn entry(&self, key: &DocKey, durable_pos: FeedPos) -> Arc<Mutex<DocEntry>> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get_mut(key) {
            slot.last_used = tick;
            return slot.entry.clone();
        }
        if slots.len() >= self.capacity {
            evict_coldest(&mut slots, self.capacity / 8 + 1, durable_pos);
        }
        let entry = Arc::new(Mutex::new(DocEntry {
            doc: None,
            last_pos: 0,
            appended_bytes: 0,
            saved_bytes: 0,
            json_bytes_bound: None,
            versions: VecDeque::new(),
        }));
        slots.insert(key.clone(), Slot { entry: entry.clone(), last_used: tick });
        entry
    }

    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }
}

/// Removes up to `count` of the least recently used evictable entries.
fn evict_coldest(slots: &mut HashMap<DocKey, Slot>, count: usize, durable_pos: FeedPos) {
    let mut candidates: Vec<(u64, DocKey)> = slots
        .iter()
        .filter(|(_, slot)| {
            // Only the cache holds it, and all its writes are on disk.
            Arc::strong_count(&slot.entry) == 1 && slot.entry.try_lock().is_some_and(|e| e.last_pos <= durable_pos)
        })
        .map(|(key, slot)| (slot.last_used, key.clone()))
        .collect();
    if candidates.len() > count {
        candidates.select_nth_unstable(count);
        candidates.truncate(count);
    }
    for (_, key) in candidates {
        slots.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statemesh_protocol::{DocId, Namespace};

    fn key(i: usize) -> DocKey {
        DocKey::new(Namespace::new("ns").expect("ns"), DocId::new(format!("d{i}")).expect("id"))
    }

    #[test]
    fn cold_entries_are_evicted_but_held_or_undurable_ones_stay() {
        let cache = DocCache::new(8);
        let held = cache.entry(&key(0), 0);
        let undurable = cache.entry(&key(1), 0);
        undurable.lock().last_pos = 5;
        drop(undurable);
        for i in 2..40 {
            cache.entry(&key(i), 0);
        }
        assert!(cache.len() <= 10, "cache grew to {}", cache.len());
        let slots = cache.slots.lock();
        assert!(slots.contains_key(&key(0)), "an entry in use must not be evicted");
        assert!(slots.contains_key(&key(1)), "an entry with undurable writes must not be evicted");
        drop(slots);
        drop(held);
    }
}
