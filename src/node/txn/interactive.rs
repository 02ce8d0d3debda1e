//! Interactive transactions: begin, read, buffer writes, commit or abort.
//!
//! `concurrency.model` decides what reads see and what commit checks:
//!
//! - `mvcc`: reads see the document as of the transaction's snapshot (the feed position at
//!   begin); commit fails if any document read or written changed after the snapshot
//!   (first committer wins, snapshot isolation without write skew on the touched set).
//! - `optimistic` (and `lock_free`, which maps to it: no locks, validation at commit): reads
//!   see the latest state; commit fails if a document read has changed since it was read.
//! - `pessimistic`: the first read or write of a document takes an exclusive lock on it for
//!   the rest of the transaction (waiters queue up to `concurrency.lock_timeout`); commit
//!   still validates like `optimistic`, which also covers plain writes made outside any
//!   transaction (they do not take these locks).
//!
//! Writes are buffered and applied at commit in one atomic section, all or nothing. Open
//! transactions are bounded by `max_transactions` and expire after `transaction_timeout`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use statemesh_protocol::{merge_patch_json, DocKey, Version};
use uuid::Uuid;

use super::super::{FeedPos, Node, NodeError};
use super::atomic::{AtomicView, TxnOp};
use crate::config::{ConcurrencyConfig, ConcurrencyModel};

/// How often a lock waiter re-checks for expired holders.
const LOCK_POLL: Duration = Duration::from_millis(50);

struct Txn {
    snapshot: FeedPos,
    deadline: Instant,
    /// The version each document had when this transaction first read it.
    reads: BTreeMap<DocKey, Version>,
    writes: Vec<(DocKey, TxnOp)>,
    /// Pessimistic locks held (document keys).
    locks: BTreeSet<DocKey>,
}

/// What `begin` returns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TxnInfo {
    /// Names the transaction in the `/v1/txn/{txn}/...` routes.
    pub id: String,
    pub model: ConcurrencyModel,
    /// Feed position the transaction's snapshot is taken at.
    #[schema(value_type = u64)]
    pub snapshot: FeedPos,
    pub timeout_ms: u64,
}

/// A document as read inside a transaction (`None`: it does not exist there).
#[derive(Debug, Clone, PartialEq)]
pub struct TxnRead {
    pub json: Option<Value>,
    pub version: Version,
}

/// The open transactions of a node.
pub struct Transactions {
    open: Mutex<HashMap<Uuid, Txn>>,
    /// Pessimistic locks: document → owning transaction.
    locks: Mutex<HashMap<DocKey, Uuid>>,
    model: ConcurrencyModel,
    max: usize,
    timeout: Duration,
    lock_timeout: Duration,
}

impl Transactions {
    pub fn new(config: &ConcurrencyConfig) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            model: config.model,
            max: config.max_transactions,
            timeout: config.transaction_timeout,
            lock_timeout: config.lock_timeout,
        }
    }

    /// Drops expired transactions, releasing their locks.
    fn reap(&self, open: &mut HashMap<Uuid, Txn>) {
        let now = Instant::now();
        let expired: Vec<Uuid> = open.iter().filter(|(_, t)| t.deadline <= now).map(|(id, _)| *id).collect();
        if expired.is_empty() {
            return;
        }
        let mut locks = self.locks.lock();
        for id in expired {
            if let Some(txn) = open.remove(&id) {
                for key in txn.locks {
                    locks.remove(&key);
                }
            }
        }
    }

    fn release(&self, id: &Uuid, txn: &Txn) {
        let mut locks = self.locks.lock();
        for key in &txn.locks {
            if locks.get(key) == Some(id) {
                locks.remove(key);
            }
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.lock().len()
    }
}

fn snapshot_gone(key: &DocKey) -> NodeError {
    NodeError::TxnConflict {
        key: key.to_string(),
        reason: "the document's state at the transaction's snapshot is no longer available; retry".to_string(),
    }
}

fn parse_id(id: &str) -> Result<Uuid, NodeError> {
    Uuid::parse_str(id).map_err(|_| NodeError::TxnNotFound(id.to_string()))
}

impl Node {
    fn txns(&self) -> &Transactions {
        &self.inner.transactions
    }

    pub fn txn_begin(&self) -> Result<TxnInfo, NodeError> {
        let txns = self.txns();
        let mut open = txns.open.lock();
        txns.reap(&mut open);
        if open.len() >= txns.max {
            return Err(NodeError::TooManyTransactions(txns.max));
        }
        let id = Uuid::new_v4();
        let snapshot = self.feed_head();
        open.insert(
            id,
            Txn {
                snapshot,
                deadline: Instant::now() + txns.timeout,
                reads: BTreeMap::new(),
                writes: Vec::new(),
                locks: BTreeSet::new(),
            },
        );
        Ok(TxnInfo {
            id: id.to_string(),
            model: txns.model,
            snapshot,
            timeout_ms: u64::try_from(txns.timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Runs `f` on the open transaction `id`, or explains why it is not open.
    fn with_txn<T>(&self, id: &Uuid, f: impl FnOnce(&mut Txn) -> Result<T, NodeError>) -> Result<T, NodeError> {
        let txns = self.txns();
        let mut open = txns.open.lock();
        match open.get_mut(id) {
            Some(txn) if txn.deadline <= Instant::now() => {
                if let Some(txn) = open.remove(id) {
                    txns.release(id, &txn);
                }
                Err(NodeError::TxnExpired(id.to_string()))
            }
            Some(txn) => f(txn),
            None => Err(NodeError::TxnNotFound(id.to_string())),
        }
    }

    /// Takes the pessimistic lock on `key` for `id`, waiting up to `lock_timeout`.
    async fn txn_lock(&self, id: &Uuid, key: &DocKey) -> Result<(), NodeError> {
        if self.txns().model != ConcurrencyModel::Pessimistic {
            return Ok(());
        }
        let deadline = Instant::now() + self.txns().lock_timeout;
        loop {
            {
                let txns = self.txns();
                let mut open = txns.open.lock();
                txns.reap(&mut open);
                let Some(txn) = open.get_mut(id) else {
                    return Err(NodeError::TxnExpired(id.to_string()));
                };
                let mut locks = txns.locks.lock();
                match locks.get(key) {
                    Some(owner) if owner != id => {}
                    _ => {
                        locks.insert(key.clone(), *id);
                        txn.locks.insert(key.clone());
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(NodeError::LockTimeout(key.to_string()));
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }

    /// Reads `key` inside transaction `id`: its own buffered writes first, then the state the
    /// model prescribes.
    pub async fn txn_read(&self, id: &str, key: &DocKey) -> Result<TxnRead, NodeError> {
        let id = parse_id(id)?;
        self.txn_lock(&id, key).await?;
        let (snapshot, recorded, buffered) = self.with_txn(&id, |txn| {
            let buffered: Vec<TxnOp> = txn.writes.iter().filter(|(k, _)| k == key).map(|(_, op)| op.clone()).collect();
            Ok((txn.snapshot, txn.reads.get(key).cloned(), buffered))
        })?;
        let model = self.txns().model;
        let base = self
            .read_entry(key, |entry| {
                let doc = entry.doc.as_ref().ok_or_else(|| NodeError::NotFound(key.to_string()))?;
                let version = match (&recorded, model) {
                    (Some(version), _) => version.clone(),
                    (None, ConcurrencyModel::Mvcc) => {
                        entry.version_at(snapshot).cloned().ok_or_else(|| snapshot_gone(key))?
                    }
                    (None, _) => doc.version(),
                };
                let json = if doc.exists_at(&version) { Some(doc.to_json_at(&version)?) } else { None };
                Ok(TxnRead { json, version })
            })
            .await?;
        if recorded.is_none() {
            self.with_txn(&id, |txn| {
                txn.reads.entry(key.clone()).or_insert_with(|| base.version.clone());
                Ok(())
            })?;
        }
        let mut json = base.json;
        for op in buffered {
            json = match op {
                TxnOp::Put(body) => Some(body),
                TxnOp::Patch(patch) => {
                    let mut merged = json.unwrap_or_else(|| Value::Object(Default::default()));
                    merge_patch_json(&mut merged, &patch);
                    Some(merged)
                }
                TxnOp::Delete => None,
            };
        }
        Ok(TxnRead { json, version: base.version })
    }

    /// Buffers a write in transaction `id`.
    pub async fn txn_write(&self, id: &str, key: &DocKey, op: TxnOp) -> Result<usize, NodeError> {
        let id = parse_id(id)?;
        // Strong namespaces too: their writes commit through Raft (see `CommitSet`).
        self.inner.namespaces.rules(&key.namespace)?;
        self.txn_lock(&id, key).await?;
        let snapshot = self.with_txn(&id, |txn| Ok(txn.snapshot))?;
        // Under MVCC a blind write still must not overwrite a change made after the snapshot.
        let base = if self.txns().model == ConcurrencyModel::Mvcc {
            Some(
                self.read_entry(key, |entry| entry.version_at(snapshot).cloned().ok_or_else(|| snapshot_gone(key)))
                    .await?,
            )
        } else {
            None
        };
        self.with_txn(&id, |txn| {
            if let Some(version) = base {
                txn.reads.entry(key.clone()).or_insert(version);
            }
            txn.writes.push((key.clone(), op));
            Ok(txn.writes.len())
        })
    }

    pub fn txn_abort(&self, id: &str) -> Result<(), NodeError> {
        let id = parse_id(id)?;
        let txns = self.txns();
        let mut open = txns.open.lock();
        match open.remove(&id) {
            Some(txn) => {
                txns.release(&id, &txn);
                Ok(())
            }
            None => Err(NodeError::TxnNotFound(id.to_string())),
        }
    }

    /// Closes transaction `id` for commit: what it read (and at which version) and what it
    /// wrote. Fails if it does not exist or expired.
    pub fn txn_take(&self, id: &str) -> Result<CommitSet, NodeError> {
        let uuid = parse_id(id)?;
        let txns = self.txns();
        let mut open = txns.open.lock();
        let txn = open.remove(&uuid).ok_or_else(|| NodeError::TxnNotFound(id.to_string()))?;
        txns.release(&uuid, &txn);
        if txn.deadline <= Instant::now() {
            return Err(NodeError::TxnExpired(id.to_string()));
        }
        Ok(CommitSet { reads: txn.reads, writes: txn.writes })
    }

    /// Validates and applies transaction `id` atomically; it is closed either way.
    pub async fn txn_commit(&self, id: &str) -> Result<Vec<(DocKey, super::super::WriteResult)>, NodeError> {
        self.txn_commit_set(self.txn_take(id)?, None).await
    }

    /// Validates and applies a closed transaction atomically, on this node.
    pub async fn txn_commit_set(
        &self,
        set: CommitSet,
        author: Option<std::sync::Arc<str>>,
    ) -> Result<Vec<(DocKey, super::super::WriteResult)>, NodeError> {
        let ((), results) = self.atomic(&set.keys(), author, |view| set.validate_and_apply(view)).await?;
        Ok(results.into_iter().collect())
    }
}

/// A closed transaction, ready to commit.
#[derive(Debug, Clone)]
pub struct CommitSet {
    /// The version each document had when the transaction first read it.
    pub reads: BTreeMap<DocKey, Version>,
    pub writes: Vec<(DocKey, TxnOp)>,
}

impl CommitSet {
    /// Every document the transaction read or wrote.
    pub fn keys(&self) -> BTreeSet<DocKey> {
        self.reads.keys().chain(self.writes.iter().map(|(k, _)| k)).cloned().collect()
    }

    /// Inside an atomic section: fails if a document read has changed since, else applies
    /// the buffered writes.
    pub fn validate_and_apply(&self, view: &mut AtomicView<'_>) -> Result<(), NodeError> {
        for (key, seen) in &self.reads {
            let current = view.doc(key)?.version();
            if &current != seen {
                return Err(NodeError::TxnConflict {
                    key: key.to_string(),
                    reason: format!("changed from version {seen} to {current} since this transaction read it"),
                });
            }
        }
        for (key, op) in &self.writes {
            view.apply(key, op)?;
        }
        Ok(())
    }
}
