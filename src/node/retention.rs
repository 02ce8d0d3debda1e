//! Retention of the change feed and the change log (`history.*`).
//!
//! The feed and the log grow with every write; `history.max_size` bounds how many entries
//! each keeps and `history.retention` how old they may get. Pruning runs inside the committer
//! between batches (at most once a second) and its deletions ride along with the next group
//! commit, so it costs no extra fsync. Each pass deletes what expired as one key range per
//! log, so its cost does not grow with the write rate (a node writing faster than
//! `max_size` per second would otherwise spend its committer on point deletions). The
//! oldest kept feed position is raised *before* the deletions are written, so a concurrent
//! reader sees "expired" rather than a silent gap.
//!
//! What is never pruned: documents and their Automerge history (history listings and `?at=`
//! reads come from the document itself), the change-hash index, and the record headers that
//! prove documents to peers receiving them by state transfer: a pruned record leaves its
//! header in `record_headers`, written in the batch that deletes it (so a pass prunes at most
//! [`AGE_SCAN_MAX`] records of the log, reading each once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use statemesh_protocol::attestation::RecordHeader;
use statemesh_protocol::change_log::{log_key, log_prefix, ChangeRecord};
use statemesh_protocol::NodeId;

use super::feed_event::{feed_key, FeedEvent, FeedPos};
use crate::storage::{BatchOp, Family, Storage, StorageError};

/// Meta key of the oldest kept feed position.
pub const FEED_FLOOR_KEY: &[u8] = b"feed_floor";
/// Most entries one pass reads to find where the expired ones end; a longer run of expired
/// entries is finished by the next passes, one per batch, until caught up.
const AGE_SCAN_MAX: usize = 2048;
/// Entries read per storage scan while looking for the first unexpired one.
const AGE_SCAN_PAGE: usize = 128;
const PRUNE_EVERY: Duration = Duration::from_secs(1);

pub struct Retention {
    max_entries: u64,
    max_age_ms: i64,
    /// Shared with readers: the oldest feed position still stored.
    pub floor: Arc<AtomicU64>,
    log_floor: u64,
    origin: NodeId,
    last_run: Option<Instant>,
    /// The last pass stopped reading before it found the end of the expired entries: run
    /// again at the next batch, not a second later.
    backlog: bool,
}

/// Where a run of expired entries ends: the first number to keep, and whether the walk
/// stopped at its read budget before finding it.
struct AgeWalk {
    keep_from: u64,
    budget_spent: bool,
}

impl Retention {
    pub fn new(max_entries: usize, max_age: Duration, floor: Arc<AtomicU64>, log_floor: u64, origin: NodeId) -> Self {
        Self {
            max_entries: max_entries as u64,
            max_age_ms: i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX),
            floor,
            log_floor,
            origin,
            last_run: None,
            backlog: false,
        }
    }

    /// Deletions due now, if a pruning pass is due. `head` and `local_seq` are durable.
    ///
    /// Whatever the backlog, a pass adds at most two range deletions, two floor updates and
    /// [`AGE_SCAN_MAX`] record headers to the batch: pruning the feed by count reads nothing,
    /// pruning by age reads only until the first entry young enough to keep, and the log's
    /// pruned records are read once for their headers (at most [`AGE_SCAN_MAX`] per pass).
    pub fn due_deletions(
        &mut self,
        storage: &dyn Storage,
        now_ms: i64,
        head: FeedPos,
        local_seq: u64,
    ) -> Result<Vec<BatchOp>, StorageError> {
        if !self.backlog && self.last_run.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return Ok(Vec::new());
        }
        self.last_run = Some(Instant::now());
        let cutoff_ms = now_ms.saturating_sub(self.max_age_ms);
        let (mut ops, feed_backlog) = self.prune_feed(storage, cutoff_ms, head)?;
        let (log_ops, log_backlog) = self.prune_log(storage, cutoff_ms, local_seq)?;
        ops.extend(log_ops);
        self.backlog = feed_backlog || log_backlog;
        Ok(ops)
    }

    /// The feed: events beyond `max_size` or older than `retention`.
    fn prune_feed(
        &mut self,
        storage: &dyn Storage,
        cutoff_ms: i64,
        head: FeedPos,
    ) -> Result<(Vec<BatchOp>, bool), StorageError> {
        let floor = self.floor.load(Ordering::Acquire).max(1);
        let by_count = head.saturating_sub(self.max_entries) + 1;
        let walk = walk_expired(storage, Family::Feed, &[], floor.max(by_count), feed_key, cutoff_ms, |value| {
            let event = FeedEvent::decode(value)?;
            Ok((event.pos, event.time_ms))
        })?;
        let new_floor = walk.keep_from.min(head + 1);
        if new_floor <= floor {
            return Ok((Vec::new(), false));
        }
        self.floor.store(new_floor, Ordering::Release);
        let ops = vec![
            BatchOp::DeleteRange { family: Family::Feed, start: feed_key(floor), end: feed_key(new_floor) },
            BatchOp::Put {
                family: Family::Meta,
                key: FEED_FLOOR_KEY.to_vec(),
                value: new_floor.to_be_bytes().to_vec(),
            },
        ];
        Ok((ops, walk.budget_spent))
    }

    /// The node's own log: records beyond `max_size` or older than `retention`.
    fn prune_log(
        &mut self,
        storage: &dyn Storage,
        cutoff_ms: i64,
        local_seq: u64,
    ) -> Result<(Vec<BatchOp>, bool), StorageError> {
        let floor = self.log_floor.max(1);
        let by_count = local_seq.saturating_sub(self.max_entries) + 1;
        let origin = self.origin.clone();
        let key = |seq| log_key(&origin, seq);
        let walk = walk_expired(
            storage,
            Family::ChangeLog,
            &log_prefix(&origin),
            floor.max(by_count),
            key,
            cutoff_ms,
            |value| {
                let record = ChangeRecord::decode(value).map_err(|e| StorageError::Corrupt(e.to_string()))?;
                Ok((record.id.seq, record.time_ms))
            },
        )?;
        // The newest record always stays: its seal proves how far this node has written (to
        // peers it serves state to) and its hash is what the next record links to.
        let due = walk.keep_from.min(local_seq);
        // Each pruned record leaves its header behind, so a pass prunes at most a bounded run.
        let new_floor = due.min(floor.saturating_add(AGE_SCAN_MAX as u64));
        if new_floor <= floor {
            return Ok((Vec::new(), false));
        }
        let mut ops = header_ops(storage, &origin, floor, new_floor)?;
        self.log_floor = new_floor;
        ops.push(BatchOp::DeleteRange { family: Family::ChangeLog, start: key(floor), end: key(new_floor) });
        ops.push(BatchOp::Put {
            family: Family::Meta,
            key: log_floor_key(&origin),
            value: new_floor.to_be_bytes().to_vec(),
        });
        Ok((ops, walk.budget_spent || new_floor < due))
    }
}

/// Puts of the headers of `origin`'s records `from..to`, which are about to leave the log:
/// while a record is in the log its header is read from it, afterwards from these
/// (`record_headers`, see `doc_proofs`). Written in the batch that deletes the records, so a
/// reader looking in the log first and the headers second never misses one.
fn header_ops(storage: &dyn Storage, origin: &NodeId, from: u64, to: u64) -> Result<Vec<BatchOp>, StorageError> {
    let mut ops = Vec::new();
    let mut start = log_key(origin, from);
    loop {
        let page = storage.scan(Family::ChangeLog, &log_prefix(origin), &start, AGE_SCAN_PAGE)?;
        for (key, value) in &page {
            let record = ChangeRecord::decode(value).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            if record.id.seq >= to {
                return Ok(ops);
            }
            ops.push(BatchOp::Put {
                family: Family::RecordHeaders,
                key: key.clone(),
                value: RecordHeader::of(&record).encode(),
            });
        }
        match page.last() {
            Some((last, _)) if page.len() == AGE_SCAN_PAGE => start = crate::storage::key_after(last),
            _ => return Ok(ops),
        }
    }
}

/// Walks a numbered log from `from` while its entries are older than `cutoff_ms`. `key` maps
/// a number to its storage key and `number_and_time` reads an entry's own number and time.
fn walk_expired(
    storage: &dyn Storage,
    family: Family,
    prefix: &[u8],
    from: u64,
    key: impl Fn(u64) -> Vec<u8>,
    cutoff_ms: i64,
    number_and_time: impl Fn(&[u8]) -> Result<(u64, i64), StorageError>,
) -> Result<AgeWalk, StorageError> {
    let mut keep_from = from;
    let mut read = 0;
    loop {
        let page = storage.scan(family, prefix, &key(keep_from), AGE_SCAN_PAGE)?;
        for (_, value) in &page {
            let (number, time_ms) = number_and_time(value)?;
            if time_ms >= cutoff_ms {
                return Ok(AgeWalk { keep_from, budget_spent: false });
            }
            keep_from = number + 1;
            read += 1;
            if read >= AGE_SCAN_MAX {
                return Ok(AgeWalk { keep_from, budget_spent: true });
            }
        }
        if page.len() < AGE_SCAN_PAGE {
            return Ok(AgeWalk { keep_from, budget_spent: false });
        }
    }
}

/// Meta key of the oldest kept log seq of `origin`.
pub fn log_floor_key(origin: &NodeId) -> Vec<u8> {
    let mut key = b"log_floor/".to_vec();
    key.extend_from_slice(origin.as_str().as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use statemesh_protocol::{ChangeId, ChangeKind, DocId, DocKey, Namespace};

    use super::*;
    use crate::storage::{MemoryStorage, WriteBatch};

    const NOW_MS: i64 = 10_000_000;
    const OLD: u64 = 4_000;
    const ALL: u64 = 5_000;

    /// A feed and a change log of `ALL` entries each, the first `OLD` of them written before
    /// the retention window.
    fn store_with_old_entries(origin: &NodeId) -> MemoryStorage {
        let storage = MemoryStorage::new();
        let doc = DocKey::new(Namespace::new("ns").expect("ns"), DocId::new("d").expect("id"));
        let mut batch = WriteBatch::new();
        for n in 1..=ALL {
            let time_ms = if n <= OLD { 0 } else { NOW_MS };
            let id = ChangeId { origin: origin.clone(), seq: n };
            let event = FeedEvent {
                pos: n,
                change: id.clone(),
                doc: doc.clone(),
                kind: ChangeKind::Patch,
                time_ms,
                version: String::new(),
                exists: true,
                author: None,
            };
            let record = ChangeRecord {
                id,
                doc: doc.clone(),
                kind: ChangeKind::Patch,
                time_ms,
                changes: Vec::new(),
                prev: [0; 32],
                seal: None,
            };
            batch.put(Family::Feed, feed_key(n), event.encode());
            batch.put(Family::ChangeLog, log_key(origin, n), record.encode());
        }
        storage.write(batch).expect("write");
        storage
    }

    fn apply(storage: &MemoryStorage, ops: Vec<BatchOp>) {
        let mut batch = WriteBatch::new();
        batch.extend(ops);
        storage.write(batch).expect("write");
    }

    fn count(storage: &MemoryStorage, family: Family) -> usize {
        storage.scan(family, b"", b"", usize::MAX).expect("scan").len()
    }

    #[test]
    fn expired_entries_go_in_ranges_over_as_many_passes_as_the_read_budget_needs() {
        let origin = NodeId::new("origin").expect("node id");
        let storage = store_with_old_entries(&origin);
        let floor = Arc::new(AtomicU64::new(1));
        let mut retention = Retention::new(100_000, Duration::from_secs(3600), floor.clone(), 1, origin.clone());

        let first = retention.due_deletions(&storage, NOW_MS, ALL, ALL).expect("pass");
        let ranges = first.iter().filter(|op| matches!(op, BatchOp::DeleteRange { .. })).count();
        let headers =
            first.iter().filter(|op| matches!(op, BatchOp::Put { family: Family::RecordHeaders, .. })).count();
        assert_eq!(
            (first.len(), ranges, headers),
            (4 + AGE_SCAN_MAX, 2, AGE_SCAN_MAX),
            "one range and one floor per log"
        );
        assert_eq!(floor.load(Ordering::Acquire), 1 + AGE_SCAN_MAX as u64, "stops at its read budget");
        apply(&storage, first);

        // The backlog is worked off at the next batch, without waiting a second.
        let second = retention.due_deletions(&storage, NOW_MS, ALL, ALL).expect("pass");
        apply(&storage, second);
        assert_eq!(floor.load(Ordering::Acquire), OLD + 1);
        assert!(!retention.backlog, "caught up: the next pass waits its second again");

        assert_eq!(count(&storage, Family::Feed), (ALL - OLD) as usize);
        assert_eq!(count(&storage, Family::ChangeLog), (ALL - OLD) as usize);
        assert_eq!(count(&storage, Family::RecordHeaders), OLD as usize, "every pruned record leaves its header");
        assert!(storage.get(Family::Feed, &feed_key(OLD + 1)).expect("get").is_some(), "nothing young is deleted");
        assert_eq!(
            storage.get(Family::Meta, &log_floor_key(&origin)).expect("get"),
            Some((OLD + 1).to_be_bytes().to_vec())
        );
    }

    #[test]
    fn pruning_by_count_keeps_the_newest_and_leaves_the_headers_of_the_rest() {
        let origin = NodeId::new("origin").expect("node id");
        let storage = store_with_old_entries(&origin);
        let floor = Arc::new(AtomicU64::new(1));
        // A year-long window keeps everything by age; only the count bounds the logs.
        let mut retention = Retention::new(100, Duration::from_secs(86_400 * 365), floor.clone(), 1, origin.clone());
        let mut passes = 0;
        loop {
            let ops = retention.due_deletions(&storage, NOW_MS, ALL, ALL).expect("pass");
            apply(&storage, ops);
            passes += 1;
            if !retention.backlog {
                break;
            }
        }
        assert_eq!(passes, (ALL - 100).div_ceil(AGE_SCAN_MAX as u64), "a bounded run of the log per pass");
        assert_eq!(floor.load(Ordering::Acquire), ALL - 99);
        assert_eq!(count(&storage, Family::Feed), 100);
        assert_eq!(count(&storage, Family::ChangeLog), 100);
        assert_eq!(count(&storage, Family::RecordHeaders), (ALL - 100) as usize);
        let key = log_key(&origin, 1);
        let header = storage.get(Family::RecordHeaders, &key).expect("get").expect("the first record's header");
        assert_eq!(RecordHeader::decode(&header).expect("decode").id.seq, 1);
    }
}
