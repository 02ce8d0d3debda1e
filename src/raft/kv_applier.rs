//! A small register map applied through Raft: `key → (value, version)` with put, delete and
//! compare-and-swap on the version.
//!
//! It exists so the strong path can be tested end to end (linearizability, CAS races,
//! restarts, snapshots) before the node's document applier is wired in, and so the simulator
//! can drive the real openraft code with a state machine whose correct behaviour is obvious.
//! The version of a key is the log position of the command that last wrote it (see
//! [`kv_version`]): unique, increasing, and the same on every replica. Its records live in
//! `raft_meta` under `kv/`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use statemesh_protocol::bounded::DECODE_BYTES_MAX;
use statemesh_protocol::limits::MESSAGE_BYTES_CEILING;

use super::state_machine::{Applier, ApplyEntry, ApplyError};
use super::types::{Command, CommandResult};
use crate::storage::codec;
use crate::storage::{BatchOp, Family, Storage, StorageError, WriteBatch};

/// The command kind of every [`KvOp`].
pub const KV_COMMAND_KIND: u16 = 0x4b56;

/// Bits of a version that hold the command's slot in its log entry.
const SLOT_BITS: u32 = 16;
const _: () = assert!(super::proposer::BATCH_COMMANDS_MAX <= 1 << SLOT_BITS);

/// The version a command writes: its entry's log index, then its slot among the entry's
/// commands, in one number.
pub fn kv_version(index: u64, slot: u32) -> u64 {
    (index << SLOT_BITS) | u64::from(slot)
}

const KV_PREFIX: &[u8] = b"kv/";

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    pub value: Vec<u8>,
    /// The position of the command that wrote `value` ([`kv_version`]).
    pub version: u64,
}

/// One operation on the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// Writes `value` (or deletes, when `None`) only if the key's version is `expected`
    /// (`None`: only if the key is absent).
    CompareAndSwap {
        key: Vec<u8>,
        expected: Option<u64>,
        value: Option<Vec<u8>>,
    },
}

impl KvOp {
    pub fn to_command(&self) -> Command {
        Command::new(KV_COMMAND_KIND, codec::encode(self))
    }
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOutcome {
    /// The key now holds the written value at `version`.
    Written { version: u64 },
    /// The key is now absent; `existed` tells whether it held anything.
    Deleted { existed: bool },
    /// A compare-and-swap whose expectation did not hold; nothing changed.
    Conflict { current: Option<u64> },
    /// The command was not a [`KvOp`]; nothing changed.
    Rejected { reason: String },
}

impl KvOutcome {
    /// Decodes the result of a proposed [`KvOp`].
    pub fn from_result(result: &CommandResult) -> Result<Self, StorageError> {
        codec::decode(&result.0, "kv outcome")
    }
}

fn register_key(key: &[u8]) -> Vec<u8> {
    let mut out = KV_PREFIX.to_vec();
    out.extend_from_slice(key);
    out
}

/// The register map over a [`Storage`] (the same one the strong path runs on).
pub struct KvApplier {
    storage: Arc<dyn Storage>,
}

impl KvApplier {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    /// The register at `key` as this replica has applied it. Linearizable only after
    /// `StrongPath::read_index` returned.
    pub fn get(&self, key: &[u8]) -> Result<Option<Register>, StorageError> {
        self.storage
            .get(Family::RaftMeta, &register_key(key))?
            .map(|bytes| codec::decode(&bytes, "kv register"))
            .transpose()
    }

    /// Every register, in key order.
    pub fn all(&self) -> Result<Vec<(Vec<u8>, Register)>, StorageError> {
        let rows = self.storage.scan(Family::RaftMeta, KV_PREFIX, KV_PREFIX, usize::MAX)?;
        rows.into_iter()
            .map(|(key, value)| Ok((key[KV_PREFIX.len()..].to_vec(), codec::decode(&value, "kv register")?)))
            .collect()
    }
}

/// Registers as the batch being built has left them, falling back to storage.
struct Pending<'a> {
    storage: &'a dyn Storage,
    written: std::collections::BTreeMap<Vec<u8>, Option<Register>>,
}

impl Pending<'_> {
    fn current(&self, key: &[u8]) -> Result<Option<Register>, StorageError> {
        match self.written.get(key) {
            Some(register) => Ok(register.clone()),
            None => self
                .storage
                .get(Family::RaftMeta, &register_key(key))?
                .map(|bytes| codec::decode(&bytes, "kv register"))
                .transpose(),
        }
    }

    fn apply(&mut self, entry: &ApplyEntry) -> Result<KvOutcome, StorageError> {
        if entry.command.kind != KV_COMMAND_KIND {
            return Ok(KvOutcome::Rejected { reason: format!("unknown command kind {}", entry.command.kind) });
        }
        // Log entries come from the leader, which built them from clients' requests.
        let op: KvOp = match codec::decode_bounded(&entry.command.payload, "kv op", MESSAGE_BYTES_CEILING) {
            Ok(op) => op,
            Err(e) => return Ok(KvOutcome::Rejected { reason: e.to_string() }),
        };
        let version = kv_version(entry.position.index, entry.slot);
        Ok(match op {
            KvOp::Put { key, value } => {
                self.written.insert(key, Some(Register { value, version }));
                KvOutcome::Written { version }
            }
            KvOp::Delete { key } => {
                let existed = self.current(&key)?.is_some();
                self.written.insert(key, None);
                KvOutcome::Deleted { existed }
            }
            KvOp::CompareAndSwap { key, expected, value } => {
                let current = self.current(&key)?.map(|register| register.version);
                if current != expected {
                    return Ok(KvOutcome::Conflict { current });
                }
                match value {
                    Some(value) => {
                        self.written.insert(key, Some(Register { value, version }));
                        KvOutcome::Written { version }
                    }
                    None => {
                        self.written.insert(key, None);
                        KvOutcome::Deleted { existed: current.is_some() }
                    }
                }
            }
        })
    }
}

impl Applier for KvApplier {
    fn apply(&self, entries: Vec<ApplyEntry>, meta_ops: Vec<BatchOp>) -> Result<Vec<CommandResult>, ApplyError> {
        let mut pending = Pending { storage: self.storage.as_ref(), written: Default::default() };
        let mut results = Vec::with_capacity(entries.len());
        for entry in &entries {
            results.push(CommandResult(codec::encode(&pending.apply(entry)?)));
        }
        let mut batch = WriteBatch::new();
        for (key, register) in pending.written {
            match register {
                Some(register) => batch.put(Family::RaftMeta, register_key(&key), codec::encode(&register)),
                None => batch.delete(Family::RaftMeta, register_key(&key)),
            }
        }
        batch.extend(meta_ops);
        self.storage.write(batch)?;
        Ok(results)
    }

    fn export_snapshot(&self) -> Result<Vec<u8>, ApplyError> {
        Ok(codec::encode(&self.all()?))
    }

    fn install_snapshot(&self, bytes: &[u8], meta_ops: Vec<BatchOp>) -> Result<(), ApplyError> {
        let registers: Vec<(Vec<u8>, Register)> = codec::decode_bounded(bytes, "kv snapshot", DECODE_BYTES_MAX)
            .map_err(|e| ApplyError::Invalid(e.to_string()))?;
        let mut batch = WriteBatch::new();
        for (key, _) in self.storage.scan(Family::RaftMeta, KV_PREFIX, KV_PREFIX, usize::MAX)? {
            batch.delete(Family::RaftMeta, key);
        }
        for (key, register) in registers {
            batch.put(Family::RaftMeta, register_key(&key), codec::encode(&register));
        }
        batch.extend(meta_ops);
        self.storage.write(batch)?;
        Ok(())
    }
}
