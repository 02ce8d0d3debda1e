//! Retention of the change feed and the change log (`history.*`).
//!
//! The feed and the log grow with every write; `history.max_size` bounds how many entries
//! each keeps and `history.retention` how old they may get. Pruning runs inside the committer
//! between batches (at most once a second) and its deletions ride along with the next group
//! commit, so it costs no extra fsync. The oldest kept feed position is raised *before* the
//! deletions are written, so a concurrent reader sees "expired" rather than a silent gap.
//!
//! What is never pruned: documents and their Automerge history (history listings and `?at=`
//! reads come from the document itself), and the change-hash index.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use statemesh_protocol::change_log::{log_key, log_prefix, ChangeRecord};
use statemesh_protocol::NodeId;

use super::feed_event::{feed_key, FeedEvent, FeedPos};
use crate::storage::{BatchOp, Family, Storage, StorageError};

/// Meta key of the oldest kept feed position.
pub const FEED_FLOOR_KEY: &[u8] = b"feed_floor";
/// Most deletions added to one batch, so pruning a backlog never makes one batch huge.
const DELETES_PER_BATCH_MAX: usize = 2048;
const PRUNE_EVERY: Duration = Duration::from_secs(1);

pub struct Retention {
    max_entries: u64,
    max_age_ms: i64,
    /// Shared with readers: the oldest feed position still stored.
    pub floor: Arc<AtomicU64>,
    log_floor: u64,
    origin: NodeId,
    last_run: Option<Instant>,
    /// The last pass hit its deletion budget: run again at the next batch, not a second later.
    backlog: bool,
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
        let mut ops = self.prune_feed(storage, cutoff_ms, head)?;
        let feed_deletes = ops.len();
        ops.extend(self.prune_log(storage, cutoff_ms, local_seq, DELETES_PER_BATCH_MAX.saturating_sub(ops.len()))?);
        // A pass that used (nearly) its whole budget leaves more to do: keep pruning with
        // every batch until caught up, so deletion keeps pace with any write rate.
        self.backlog = feed_deletes >= DELETES_PER_BATCH_MAX || ops.len() >= DELETES_PER_BATCH_MAX;
        Ok(ops)
    }

    fn prune_feed(
        &mut self,
        storage: &dyn Storage,
        cutoff_ms: i64,
        head: FeedPos,
    ) -> Result<Vec<BatchOp>, StorageError> {
        let floor = self.floor.load(Ordering::Acquire).max(1);
        let by_count = head.saturating_sub(self.max_entries) + 1;
        let mut new_floor = floor.max(by_count);
        // Age: walk forward from the floor while events are older than the cutoff.
        let entries = storage.scan(Family::Feed, &[], &feed_key(new_floor), DELETES_PER_BATCH_MAX)?;
        for (_, value) in &entries {
            let event = FeedEvent::decode(value)?;
            if event.time_ms >= cutoff_ms || event.pos > head {
                break;
            }
            new_floor = event.pos + 1;
        }
        let new_floor = new_floor.min(floor + DELETES_PER_BATCH_MAX as u64);
        if new_floor <= floor {
            return Ok(Vec::new());
        }
        self.floor.store(new_floor, Ordering::Release);
        let mut ops: Vec<BatchOp> =
            (floor..new_floor).map(|pos| BatchOp::Delete { family: Family::Feed, key: feed_key(pos) }).collect();
        ops.push(BatchOp::Put {
            family: Family::Meta,
            key: FEED_FLOOR_KEY.to_vec(),
            value: new_floor.to_be_bytes().to_vec(),
        });
        Ok(ops)
    }

    /// The node's own log: records beyond `max_size` or older than `retention`.
    fn prune_log(
        &mut self,
        storage: &dyn Storage,
        cutoff_ms: i64,
        local_seq: u64,
        budget: usize,
    ) -> Result<Vec<BatchOp>, StorageError> {
        let floor = self.log_floor.max(1);
        let by_count = local_seq.saturating_sub(self.max_entries) + 1;
        let mut new_floor = floor.max(by_count).min(floor + budget as u64);
        let prefix = log_prefix(&self.origin);
        let entries = storage.scan(Family::ChangeLog, &prefix, &log_key(&self.origin, new_floor), budget.min(1024))?;
        for (_, value) in &entries {
            let record = ChangeRecord::decode(value).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            if record.time_ms >= cutoff_ms || record.id.seq > local_seq || new_floor >= floor + budget as u64 {
                break;
            }
            new_floor = record.id.seq + 1;
        }
        if new_floor <= floor {
            return Ok(Vec::new());
        }
        self.log_floor = new_floor;
        let mut ops: Vec<BatchOp> = (floor..new_floor)
            .map(|seq| BatchOp::Delete { family: Family::ChangeLog, key: log_key(&self.origin, seq) })
            .collect();
        ops.push(BatchOp::Put {
            family: Family::Meta,
            key: log_floor_key(&self.origin),
            value: new_floor.to_be_bytes().to_vec(),
        });
        Ok(ops)
    }
}

/// Meta key of the oldest kept log seq of `origin`.
pub fn log_floor_key(origin: &NodeId) -> Vec<u8> {
    let mut key = b"log_floor/".to_vec();
    key.extend_from_slice(origin.as_str().as_bytes());
    key
}
