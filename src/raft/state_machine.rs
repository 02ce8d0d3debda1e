//! The replicated state machine: openraft's side of applying committed entries, with the
//! actual effects delegated to an [`Applier`] that the node provides.
//!
//! Crash safety rests on one rule: the record of how far the state machine has got (last
//! applied log id, last membership, and for an installed snapshot the snapshot itself) is
//! written in the same atomic batch as the effects of those entries. The state machine builds
//! those records as [`BatchOp`]s and hands them to the applier, which must add them to its own
//! batch. After a crash either both the effects and the pointer are on disk or neither is, so
//! openraft never applies an entry twice nor skips one.
//!
//! Snapshots are the applier's export of its whole state, taken while applies are held off so
//! the bytes match the last applied log id exactly. The latest snapshot is kept in `raft_meta`
//! so a restarted leader can still send it to a lagging follower after its log was purged.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::log_store::read_meta;
use super::proposer::unbatch;
use super::types::{
    Command, CommandResult, Entry, LogId, LogPosition, OpenraftStorageError, Snapshot, SnapshotMeta, StoredMembership,
    TypeConfig,
};
use crate::storage::codec;
use crate::storage::{BatchOp, Family, Storage, StorageError, WriteBatch};

/// `raft_meta` key of the id of the last applied entry.
pub(crate) const APPLIED_KEY: &[u8] = b"sm/applied";
/// `raft_meta` key of the last membership the state machine applied.
pub(crate) const MEMBERSHIP_KEY: &[u8] = b"sm/membership";
/// `raft_meta` key of the current snapshot (metadata and the applier's bytes).
pub(crate) const SNAPSHOT_KEY: &[u8] = b"sm/snapshot";

/// One committed command, as the applier receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyEntry {
    /// The log entry that carries the command.
    pub position: LogPosition,
    /// The command's place among the commands of its entry (0 for an entry of one command;
    /// see `proposer.rs`). The pair of index and slot is unique and increasing, so it serves
    /// as a version number for whatever the command writes.
    pub slot: u32,
    pub command: Command,
}

/// Why an applier could not apply, export or install. Any of these stops the strong path on
/// this node: state that failed to persist cannot be reasoned about.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The input cannot be applied at all (an undecodable snapshot, a broken invariant).
    #[error("cannot apply: {0}")]
    Invalid(String),
}

/// The node's side of the state machine.
///
/// Applying must be deterministic: every replica applies the same entries in the same order
/// and must reach the same state and the same results. A command that is refused (a failed
/// compare-and-swap, a validation error) is a *result*, encoded in its [`CommandResult`], not
/// an error; errors are reserved for failures of the machine itself.
pub trait Applier: Send + Sync + 'static {
    /// Applies `entries` (in order) and writes `meta_ops` in the same atomic, durable batch as
    /// their effects. Returns one result per entry. `entries` may be empty (a batch of only
    /// blank or membership entries), and `meta_ops` must be written all the same.
    fn apply(&self, entries: Vec<ApplyEntry>, meta_ops: Vec<BatchOp>) -> Result<Vec<CommandResult>, ApplyError>;

    /// The whole state, encoded. Applies are held off while this runs.
    fn export_snapshot(&self) -> Result<Vec<u8>, ApplyError>;

    /// Replaces the whole state with `bytes` (from [`Applier::export_snapshot`] on another
    /// replica), writing `meta_ops` in the same atomic, durable batch.
    fn install_snapshot(&self, bytes: &[u8], meta_ops: Vec<BatchOp>) -> Result<(), ApplyError>;
}

/// How an entry's result is made from what the applier answered.
enum ResultShape {
    /// Blank and membership entries: nothing was applied.
    Empty,
    /// A plain command: its result.
    One,
    /// A batch of this many commands: their results, encoded in order.
    Batch(usize),
}

/// The snapshot as kept in `raft_meta`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

impl StoredSnapshot {
    fn to_snapshot(&self) -> Snapshot {
        Snapshot { meta: self.meta.clone(), snapshot: Box::new(Cursor::new(self.data.clone())) }
    }
}

/// What the state machine has applied, shared with snapshot builders.
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    current_snapshot: Option<StoredSnapshot>,
}

struct Shared {
    storage: Arc<dyn Storage>,
    applier: Arc<dyn Applier>,
    /// Held while applying, exporting or installing, so an export sees exactly the state at
    /// `last_applied` and two of these never interleave.
    applied: Mutex<Applied>,
}

/// openraft's state machine; cloning shares the same state (the clone builds snapshots).
#[derive(Clone)]
pub(crate) struct StateMachine {
    shared: Arc<Shared>,
}

fn meta_ops(
    last_applied: Option<&LogId>,
    membership: &StoredMembership,
    snapshot: Option<&StoredSnapshot>,
) -> Vec<BatchOp> {
    let mut ops = Vec::with_capacity(3);
    ops.push(match last_applied {
        Some(log_id) => {
            BatchOp::Put { family: Family::RaftMeta, key: APPLIED_KEY.to_vec(), value: codec::encode(log_id) }
        }
        None => BatchOp::Delete { family: Family::RaftMeta, key: APPLIED_KEY.to_vec() },
    });
    ops.push(BatchOp::Put { family: Family::RaftMeta, key: MEMBERSHIP_KEY.to_vec(), value: codec::encode(membership) });
    if let Some(snapshot) = snapshot {
        ops.push(BatchOp::Put { family: Family::RaftMeta, key: SNAPSHOT_KEY.to_vec(), value: codec::encode(snapshot) });
    }
    ops
}

impl StateMachine {
    pub(crate) fn open(storage: Arc<dyn Storage>, applier: Arc<dyn Applier>) -> Result<Self, StorageError> {
        let applied = Applied {
            last_applied: read_meta(storage.as_ref(), APPLIED_KEY, "raft last applied log id")?,
            membership: read_meta(storage.as_ref(), MEMBERSHIP_KEY, "raft applied membership")?.unwrap_or_default(),
            current_snapshot: read_meta(storage.as_ref(), SNAPSHOT_KEY, "raft snapshot")?,
        };
        Ok(Self { shared: Arc::new(Shared { storage, applier, applied: Mutex::new(applied) }) })
    }

    // openraft's storage error is large, and its traits return it as it is.
    #[allow(clippy::result_large_err)]
    fn apply_entries(&self, entries: Vec<Entry>) -> Result<Vec<CommandResult>, OpenraftStorageError> {
        let Some(last) = entries.last().map(|entry| entry.log_id) else {
            return Ok(Vec::new());
        };
        let mut applied = self.shared.applied.lock();
        let mut membership = applied.membership.clone();
        // How each entry's result is made from the applier's.
        let mut shapes = Vec::with_capacity(entries.len());
        let mut commands = Vec::new();
        for entry in entries {
            match entry.payload {
                EntryPayload::Normal(command) => {
                    let position = LogPosition::from_log_id(&entry.log_id);
                    match unbatch(&command) {
                        Some(batch) => {
                            shapes.push(ResultShape::Batch(batch.len()));
                            commands.extend((0u32..).zip(batch).map(|(slot, command)| ApplyEntry {
                                position,
                                slot,
                                command,
                            }));
                        }
                        None => {
                            shapes.push(ResultShape::One);
                            commands.push(ApplyEntry { position, slot: 0, command });
                        }
                    }
                }
                EntryPayload::Membership(new) => {
                    shapes.push(ResultShape::Empty);
                    membership = StoredMembership::new(Some(entry.log_id), new);
                }
                EntryPayload::Blank => shapes.push(ResultShape::Empty),
            }
        }
        let expected = commands.len();
        let ops = meta_ops(Some(&last), &membership, None);
        let results = self
            .shared
            .applier
            .apply(commands, ops)
            .map_err(|e| OpenraftStorageError::from(StorageIOError::apply(last, &e)))?;
        if results.len() != expected {
            let e = ApplyError::Invalid(format!("applier returned {} results for {expected} commands", results.len()));
            return Err(StorageIOError::apply(last, &e).into());
        }
        applied.last_applied = Some(last);
        applied.membership = membership;
        drop(applied);
        let mut results = results.into_iter();
        Ok(shapes
            .into_iter()
            .map(|shape| match shape {
                ResultShape::Empty => CommandResult::default(),
                ResultShape::One => results.next().unwrap_or_default(),
                ResultShape::Batch(n) => CommandResult(codec::encode(&results.by_ref().take(n).collect::<Vec<_>>())),
            })
            .collect())
    }

    // openraft's storage error is large, and its traits return it as it is.
    #[allow(clippy::result_large_err)]
    fn build(&self) -> Result<Snapshot, OpenraftStorageError> {
        let (last_applied, membership, data) = {
            let applied = self.shared.applied.lock();
            let data = self.shared.applier.export_snapshot().map_err(|e| {
                OpenraftStorageError::from(StorageIOError::read_state_machine(&StorageError::Io(e.to_string())))
            })?;
            (applied.last_applied, applied.membership.clone(), data)
        };
        // The id only has to tell snapshots apart; the state at a log id is the same on every
        // replica, so the log id names it without any randomness.
        let snapshot_id = match &last_applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id.term, log_id.leader_id.node_id, log_id.index),
            None => "empty".to_owned(),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id },
            data,
        };
        let snapshot = stored.to_snapshot();
        let mut applied = self.shared.applied.lock();
        // An install that landed meanwhile may have brought a newer snapshot; keep that one.
        let newer_exists = applied
            .current_snapshot
            .as_ref()
            .is_some_and(|current| current.meta.last_log_id >= stored.meta.last_log_id);
        if !newer_exists {
            let mut batch = WriteBatch::new();
            batch.put(Family::RaftMeta, SNAPSHOT_KEY.to_vec(), codec::encode(&stored));
            self.shared.storage.write(batch).map_err(|e| {
                OpenraftStorageError::from(StorageIOError::write_snapshot(Some(stored.meta.signature()), &e))
            })?;
            tracing::info!(snapshot = %stored.meta.snapshot_id, bytes = stored.data.len(), "raft snapshot built");
            applied.current_snapshot = Some(stored);
        }
        Ok(snapshot)
    }

    // openraft's storage error is large, and its traits return it as it is.
    #[allow(clippy::result_large_err)]
    fn install(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<(), OpenraftStorageError> {
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let mut applied = self.shared.applied.lock();
        let ops = meta_ops(meta.last_log_id.as_ref(), &meta.last_membership, Some(&stored));
        self.shared.applier.install_snapshot(&stored.data, ops).map_err(|e| {
            OpenraftStorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &sm_err(&e)))
        })?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        tracing::info!(snapshot = %meta.snapshot_id, bytes = stored.data.len(), "raft snapshot installed");
        applied.current_snapshot = Some(stored);
        Ok(())
    }
}

fn sm_err(e: &ApplyError) -> StorageError {
    match e {
        ApplyError::Storage(e) => e.clone(),
        ApplyError::Invalid(reason) => StorageError::Corrupt(reason.clone()),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, OpenraftStorageError> {
        self.build()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), OpenraftStorageError> {
        let applied = self.shared.applied.lock();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, OpenraftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.apply_entries(entries.into_iter().collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, OpenraftStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), OpenraftStorageError> {
        self.install(meta, snapshot.into_inner())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, OpenraftStorageError> {
        Ok(self.shared.applied.lock().current_snapshot.as_ref().map(StoredSnapshot::to_snapshot))
    }
}
