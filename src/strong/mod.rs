//! Documents through the strong path: writes committed by Raft before they are acknowledged,
//! compare-and-swap that is linearizable, and reads at `strong`, `bounded` or `eventual`
//! consistency.
//!
//! [`StrongDocs`] sits between the HTTP layer and [`StrongPath`]. A write goes to the leader
//! (forwarded by any other member), which computes the Automerge change as the cluster's
//! actor (`command.rs` explains why the leader and not every replica), proposes it, and
//! answers once it is committed and applied. Writes to one document are serialised on the
//! leader so they do not invalidate each other; a change the state machine finds stale (a
//! new leader that had not applied everything yet) is recomputed after a read barrier.
//!
//! Answers that do not write (a failed precondition, a missing document, a write that would
//! change nothing) are given only after a read barrier, so they too are linearizable: the
//! leader may hold stale state just after an election, and "no" must not come from it.

mod admin;
mod applier;
mod command;
mod error;
mod formation;
mod reads;
pub mod wire;

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use statemesh_protocol::{ChangeId, DocKey, Version};
use tokio::time::Instant;

pub use admin::{ClusterView, StrongNode};
pub use applier::{decode_snapshot, DocApplier};
pub use command::{ClusterId, ClusterSeed, DocRead, DocWrite, Outcome, StrongCommand};
pub use error::{StrongDocError, StrongResult};
pub use formation::{form_cluster, parse_voters, VoterSpec};
pub use reads::{ReadLevel, ReadStamp};

use crate::config::Config;
use crate::node::{
    changed_entry, run_once, txn_keys, CommitSet, Compare, Node, OnceOutcome, PlannedSection, Precondition, TxnOp,
    TxnStep,
};
use crate::raft::{
    ForwardHandler, LogPosition, NodeInfo, RaftNodeId, RaftSettings, RaftTransport, Route, StartOptions, StrongError,
    StrongPath,
};
use reads::Freshness;
use wire::{
    WireAnswer, WireCommit, WireDone, WireFailure, WireOp, WirePrecondition, WireRequest, WireTxn, WireWrite,
    WireWritten,
};

/// Writes to documents whose hashes share a stripe are serialised on the leader.
const WRITE_STRIPES: usize = 4096;
/// Pause before recomputing a change the state machine found stale a second time (the
/// document is still arriving through replication).
const STALE_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// A write the strong path committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrongWritten {
    pub version: Version,
    /// The logged change (under the cluster's origin); `None` when nothing changed.
    pub change: Option<ChangeId>,
    pub created: bool,
    /// The Raft log index the write is at (or, for a write that changed nothing, the index
    /// the read barrier confirmed).
    pub index: Option<u64>,
}

struct Inner {
    node: Node,
    path: StrongPath,
    applier: Arc<DocApplier>,
    stripes: Vec<tokio::sync::Mutex<()>>,
    request_timeout: Duration,
    freshness: Freshness,
}

/// The strong path for documents. Cheap to clone.
#[derive(Clone)]
pub struct StrongDocs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StrongDocs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrongDocs").field("path", &self.inner.path).finish()
    }
}

impl StrongDocs {
    /// Starts the strong path of `node` as `me`, with its RPCs over `transport`.
    pub async fn start(
        node: Node,
        config: &Config,
        me: NodeInfo,
        transport: Arc<dyn RaftTransport>,
    ) -> Result<Self, StrongError> {
        let settings = RaftSettings::from_config(&config.distributed, config.p2p.max_message_bytes)
            .map_err(|e| StrongError::Invalid(e.to_string()))?;
        Self::start_with(node, settings, me, transport).await
    }

    /// [`StrongDocs::start`] with explicit Raft settings (tests use short timeouts).
    pub async fn start_with(
        node: Node,
        settings: RaftSettings,
        me: NodeInfo,
        transport: Arc<dyn RaftTransport>,
    ) -> Result<Self, StrongError> {
        let applier = Arc::new(DocApplier::open(node.clone())?);
        let request_timeout = settings.request_timeout;
        let freshness_interval = settings.heartbeat_interval * 2;
        let path = StrongPath::start(StartOptions {
            me,
            settings,
            storage: node.storage().clone(),
            applier: applier.clone(),
            transport,
            instruments: node.metrics().raft.clone(),
        })
        .await?;
        let stripes = (0..WRITE_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        let docs = Self {
            inner: Arc::new(Inner {
                node,
                path: path.clone(),
                applier,
                stripes,
                request_timeout,
                freshness: Freshness::default(),
            }),
        };
        path.set_forward_handler(Arc::new(LeaderSide { docs: Arc::downgrade(&docs.inner) }));
        docs.inner.node.set_raft_facts(Arc::new(admin::MeshFacts { docs: Arc::downgrade(&docs.inner) }));
        reads::spawn_refresher(Arc::downgrade(&docs.inner), freshness_interval);
        Ok(docs)
    }

    pub fn path(&self) -> &StrongPath {
        &self.inner.path
    }

    /// The cluster's id, once named.
    pub fn cluster(&self) -> Option<ClusterId> {
        self.inner.applier.cluster()
    }

    /// Commits `op` on `key` through Raft, on the leader wherever this node stands.
    pub async fn write(&self, key: &DocKey, op: &TxnOp, pre: &Precondition) -> StrongResult<StrongWritten> {
        if *pre != Precondition::None && !self.inner.node.is_strong_namespace(&key.namespace)? {
            return Err(StrongDocError::Unsupported(format!(
                "compare-and-swap through Raft needs a strong namespace; `{}` is eventual, where concurrent \
                 writes merge (send If-Match without ?consistency=strong, or declare the namespace strong)",
                key.namespace
            )));
        }
        let request = LeaderRequest::Write { key: key.clone(), op: op.clone(), pre: pre.clone() };
        match self.on_leader(request).await? {
            LeaderDone::Written(written) => Ok(written),
            _ => Err(StrongError::Invalid("a write answered as something else".to_owned()).into()),
        }
    }

    /// Runs `request` on the leader: here if this node leads, else forwarded to it.
    pub(crate) async fn on_leader(&self, request: LeaderRequest) -> StrongResult<LeaderDone> {
        let deadline = Instant::now() + self.inner.request_timeout;
        loop {
            let result = match self.inner.path.route().await? {
                Route::Local => self.execute(&request, deadline).await,
                Route::Leader(leader) => self.forward(&leader, &request).await,
            };
            match result {
                // Leadership moved between routing and proposing (here, or on the member this
                // was forwarded to): nothing was appended, so route again while time is left.
                Err(StrongDocError::Strong(StrongError::NotLeader { .. })) if Instant::now() < deadline => continue,
                Err(StrongDocError::Remote { code, .. }) if code == "not_leader" && Instant::now() < deadline => {
                    continue
                }
                other => return other,
            }
        }
    }

    /// Executes `request` on this node, which leads (or is refused by Raft if it no longer does).
    async fn execute(&self, request: &LeaderRequest, deadline: Instant) -> StrongResult<LeaderDone> {
        let path = &self.inner.path;
        Ok(match request {
            LeaderRequest::Write { key, op, pre } => {
                LeaderDone::Written(self.write_as_leader(key, op, pre, deadline).await?)
            }
            LeaderRequest::Txn(txn) => LeaderDone::Txn(self.txn_as_leader(txn, deadline).await?),
            LeaderRequest::Commit(set) => LeaderDone::Txn(self.commit_as_leader(set, deadline).await?),
            LeaderRequest::AddLearner(info) => LeaderDone::Membership(path.add_learner(info.clone()).await?),
            LeaderRequest::Promote(id) => LeaderDone::Membership(path.promote(*id).await?),
            LeaderRequest::Remove(id) => LeaderDone::Membership(path.remove_voter(*id).await?),
        })
    }

    async fn forward(&self, leader: &NodeInfo, request: &LeaderRequest) -> StrongResult<LeaderDone> {
        let answer = self.inner.path.forward(leader, wire::encode(&request.to_wire())).await?;
        let answer: WireAnswer = wire::decode(&answer, "forwarded answer")
            .map_err(|reason| StrongError::Indeterminate { reason: format!("the leader's answer: {reason}") })?;
        match answer.map_err(WireFailure::into_error)? {
            WireDone::Written(written) => {
                let version = written
                    .version
                    .parse::<Version>()
                    .map_err(|e| StrongError::Indeterminate { reason: format!("the leader's version: {e}") })?;
                Ok(LeaderDone::Written(StrongWritten {
                    version,
                    change: written.change,
                    created: written.created,
                    index: written.index,
                }))
            }
            WireDone::Membership(position) => Ok(LeaderDone::Membership(position)),
            WireDone::Txn { body, index } => {
                let body = serde_json::from_str(&body).map_err(|e| StrongError::Indeterminate {
                    reason: format!("the leader's transaction answer: {e}"),
                })?;
                Ok(LeaderDone::Txn(TxnDone { body, index }))
            }
        }
    }

    /// Locks the write stripes of `keys`, in stripe order (so two sections never deadlock).
    async fn lock_stripes(&self, keys: &BTreeSet<DocKey>) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        use std::hash::{Hash, Hasher};
        let stripes: BTreeSet<usize> = keys
            .iter()
            .map(|key| {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut hasher);
                (hasher.finish() % WRITE_STRIPES as u64) as usize
            })
            .collect();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.inner.stripes[stripe].lock().await);
        }
        guards
    }

    /// The cluster id, naming the cluster first if no command has yet.
    async fn cluster_id(&self) -> StrongResult<ClusterId> {
        if let Some(id) = self.inner.applier.cluster() {
            return Ok(id);
        }
        let committed = self.inner.path.propose(StrongCommand::SetCluster(ClusterId::random()).to_command()).await?;
        match Outcome::decode(&committed.result.0).map_err(crate::node::NodeError::from)? {
            Outcome::Cluster(id) => Ok(id),
            other => Err(StrongError::Invalid(format!("naming the cluster answered {other:?}")).into()),
        }
    }

    /// Plans a section on the leader (as the cluster's actor), proposes its changes and
    /// returns once they are applied here. Writes to the same documents are serialised; a
    /// plan the state machine finds stale is recomputed after a read barrier; an answer that
    /// writes nothing (a refusal, a no-op, a read-only section) is given only once a read
    /// barrier shows the state it came from is current.
    async fn commit_section<T>(
        &self,
        keys: &BTreeSet<DocKey>,
        deadline: Instant,
        plan: impl Fn(&automerge::ActorId) -> Result<PlannedSection<T>, crate::node::NodeError>,
    ) -> StrongResult<CommittedSection<T>> {
        let _serialised = self.lock_stripes(keys).await;
        let cluster = self.cluster_id().await?;
        let actor = cluster.actor();
        let mut barrier: Option<u64> = None;
        let mut stale_rounds = 0u32;
        loop {
            let section = match plan(&actor) {
                Ok(section) if !section.writes.is_empty() => section,
                Ok(_) | Err(_) if barrier.is_none() => {
                    barrier = Some(self.barrier().await?);
                    continue;
                }
                Ok(section) => {
                    return Ok(CommittedSection { value: section.value, cluster, applied: Vec::new(), index: barrier })
                }
                Err(refusal) => return Err(refusal.into()),
            };
            let PlannedSection { value, writes, reads, time_ms } = section;
            let command = StrongCommand::Write {
                time_ms,
                writes: writes.into_iter().map(|w| DocWrite { doc: w.key, kind: w.kind, changes: w.changes }).collect(),
                reads: reads.into_iter().map(|(doc, seq)| DocRead { doc, seq }).collect(),
            };
            let committed = self.inner.path.propose(command.to_command()).await?;
            match Outcome::decode(&committed.result.0).map_err(crate::node::NodeError::from)? {
                Outcome::Applied(applied) => {
                    return Ok(CommittedSection { value, cluster, applied, index: Some(committed.position.index) })
                }
                Outcome::Stale { doc } => {
                    if Instant::now() >= deadline {
                        return Err(StrongError::Unavailable {
                            reason: format!("document {doc} is still catching up on this leader"),
                        }
                        .into());
                    }
                    if stale_rounds > 0 {
                        tokio::time::sleep(STALE_RETRY_PAUSE).await;
                    }
                    stale_rounds += 1;
                    barrier = Some(self.barrier().await?);
                }
                Outcome::Invalid(reason) => return Err(StrongError::Invalid(reason).into()),
                Outcome::Cluster(_) => {
                    return Err(StrongError::Invalid("a write was applied as a naming command".to_owned()).into())
                }
            }
        }
    }

    /// One document write, on the leader.
    async fn write_as_leader(
        &self,
        key: &DocKey,
        op: &TxnOp,
        pre: &Precondition,
        deadline: Instant,
    ) -> StrongResult<StrongWritten> {
        let keys = BTreeSet::from([key.clone()]);
        let section = self
            .commit_section(&keys, deadline, |actor| {
                self.inner.node.plan_atomic(&keys, actor, |view| {
                    pre.check(view.doc(key)?)?;
                    view.apply(key, op)?;
                    Ok(view.doc(key)?.version())
                })
            })
            .await?;
        Ok(match section.applied.into_iter().next() {
            Some(doc) => StrongWritten {
                version: doc.version.parse::<Version>().map_err(|e| StrongError::Invalid(e.to_string()))?,
                change: Some(ChangeId { origin: section.cluster.origin(), seq: doc.seq }),
                created: doc.created,
                index: section.index,
            },
            None => StrongWritten { version: section.value, change: None, created: false, index: section.index },
        })
    }

    /// A one-shot transaction, on the leader: compares and the chosen branch are evaluated
    /// on the leader's state and committed only if that state is still current.
    async fn txn_as_leader(&self, txn: &StrongTxn, deadline: Instant) -> StrongResult<TxnDone> {
        let keys = txn_keys(&txn.compares, &txn.success, &txn.failure);
        let section = self
            .commit_section(&keys, deadline, |actor| {
                self.inner
                    .node
                    .plan_atomic(&keys, actor, |view| run_once(view, &txn.compares, &txn.success, &txn.failure))
            })
            .await?;
        let changed = section.changed();
        let (succeeded, results) = section.value;
        let outcome = OnceOutcome { succeeded, results, changed };
        let body = serde_json::to_value(&outcome).map_err(|e| StrongError::Invalid(e.to_string()))?;
        Ok(TxnDone { body, index: section.index })
    }

    /// An interactive transaction's commit, on the leader: its read set is validated against
    /// the leader's state, and committed only if that state is still current.
    async fn commit_as_leader(&self, set: &CommitSet, deadline: Instant) -> StrongResult<TxnDone> {
        let keys = set.keys();
        let section = self
            .commit_section(&keys, deadline, |actor| {
                self.inner.node.plan_atomic(&keys, actor, |view| set.validate_and_apply(view))
            })
            .await?;
        let changed = section.changed();
        Ok(TxnDone { body: serde_json::json!({"committed": true, "changed": changed}), index: section.index })
    }

    /// Commits an interactive transaction (closed with `Node::txn_take`) through Raft, on
    /// the leader wherever this node stands. Returns the response body and the Raft index.
    pub async fn commit(&self, set: CommitSet) -> StrongResult<TxnDone> {
        match self.on_leader(LeaderRequest::Commit(set)).await? {
            LeaderDone::Txn(done) => Ok(done),
            _ => Err(StrongError::Invalid("a commit answered as something else".to_owned()).into()),
        }
    }

    /// Runs the one-shot transaction `txn` through Raft, on the leader wherever this node
    /// stands. Returns the response body (as `POST /v1/txn` answers it) and the Raft index.
    pub async fn txn(&self, txn: StrongTxn) -> StrongResult<TxnDone> {
        match self.on_leader(LeaderRequest::Txn(txn)).await? {
            LeaderDone::Txn(done) => Ok(done),
            _ => Err(StrongError::Invalid("a transaction answered as something else".to_owned()).into()),
        }
    }

    /// A read barrier: waits until this node has applied everything committed before the
    /// call. Returns the index it reflects.
    async fn barrier(&self) -> StrongResult<u64> {
        let started = Instant::now();
        let position = self.inner.path.read_index().await?;
        let index = position.map_or(0, |p| p.index);
        self.inner.freshness.confirmed(started, index);
        Ok(index)
    }

    /// Makes a read at `level` possible on this node (see [`ReadLevel`]), after waiting until
    /// this node has applied `min_index` if given. Returns what the read will reflect.
    pub async fn prepare_read(&self, level: ReadLevel, min_index: Option<u64>) -> StrongResult<ReadStamp> {
        if let Some(index) = min_index {
            self.inner.path.wait_applied_index(index, self.inner.request_timeout).await.map_err(|e| {
                StrongError::Unavailable { reason: format!("this node has not applied index {index} yet: {e}") }
            })?;
        }
        reads::prepare(self, level).await
    }

    /// This node's measured staleness (see `reads.rs`), in milliseconds.
    pub fn staleness_ms(&self) -> Option<u64> {
        self.inner.freshness.staleness().map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// The Raft index this node has applied.
    pub fn applied_index(&self) -> Option<u64> {
        self.inner.path.status().last_applied.map(|p| p.index)
    }

    /// Stops Raft on this node.
    pub async fn shutdown(&self) -> Result<(), StrongError> {
        self.inner.path.shutdown().await
    }
}

/// The leader's side of forwarded writes.
struct LeaderSide {
    docs: Weak<Inner>,
}

#[async_trait]
impl ForwardHandler for LeaderSide {
    async fn handle_forwarded(&self, request: Vec<u8>) -> Result<Vec<u8>, String> {
        let inner = self.docs.upgrade().ok_or_else(|| "the node is stopping".to_owned())?;
        let docs = StrongDocs { inner };
        let request: WireRequest = wire::decode(&request, "forwarded request")?;
        let request = LeaderRequest::from_wire(request)?;
        let deadline = Instant::now() + docs.inner.request_timeout;
        // Handled here or refused: a forwarded request is never forwarded again.
        let done = match docs.inner.path.route().await {
            Ok(Route::Local) => docs.execute(&request, deadline).await,
            Ok(Route::Leader(leader)) => Err(StrongError::NotLeader { leader: Some(leader) }.into()),
            Err(e) => Err(e.into()),
        };
        let answer: WireAnswer = done.map(LeaderDone::into_wire).map_err(|error| {
            let api = crate::api::ApiError::from(error);
            WireFailure { status: api.status.as_u16(), code: api.code.into_owned(), message: api.message }
        });
        Ok(wire::encode(&answer))
    }
}

/// A one-shot transaction for the strong path.
#[derive(Debug, Clone)]
pub struct StrongTxn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnStep>,
    pub failure: Vec<TxnStep>,
}

/// A committed (or read-only) one-shot transaction.
#[derive(Debug, Clone)]
pub struct TxnDone {
    /// The response body, shaped like the eventual `POST /v1/txn`'s.
    pub body: serde_json::Value,
    pub index: Option<u64>,
}

/// What [`StrongDocs::commit_section`] produced.
struct CommittedSection<T> {
    value: T,
    cluster: ClusterId,
    /// The documents written (empty when the section wrote nothing).
    applied: Vec<command::AppliedDoc>,
    /// The Raft index the answer reflects.
    index: Option<u64>,
}

impl<T> CommittedSection<T> {
    /// The transaction answers' `changed` entries: each document written, its version and
    /// its change under the cluster's origin.
    fn changed(&self) -> Vec<serde_json::Value> {
        let origin = self.cluster.origin();
        self.applied
            .iter()
            .map(|doc| {
                let change = ChangeId { origin: origin.clone(), seq: doc.seq };
                changed_entry(&doc.doc, &doc.version, Some(change.to_string()))
            })
            .collect()
    }
}

/// Work only the leader does.
#[derive(Debug, Clone)]
pub(crate) enum LeaderRequest {
    Write { key: DocKey, op: TxnOp, pre: Precondition },
    Txn(StrongTxn),
    Commit(CommitSet),
    AddLearner(NodeInfo),
    Promote(RaftNodeId),
    Remove(RaftNodeId),
}

/// What the leader did.
#[derive(Debug, Clone)]
pub(crate) enum LeaderDone {
    Written(StrongWritten),
    Txn(TxnDone),
    Membership(LogPosition),
}

impl LeaderRequest {
    fn to_wire(&self) -> WireRequest {
        match self {
            LeaderRequest::Write { key, op, pre } => WireRequest::Write(WireWrite {
                doc: key.clone(),
                op: WireOp::from_op(op),
                pre: WirePrecondition::from_precondition(pre),
            }),
            LeaderRequest::Txn(txn) => WireRequest::Txn(WireTxn::from_txn(txn)),
            LeaderRequest::Commit(set) => WireRequest::Commit(WireCommit::from_set(set)),
            LeaderRequest::AddLearner(info) => WireRequest::AddLearner(info.clone()),
            LeaderRequest::Promote(id) => WireRequest::Promote(*id),
            LeaderRequest::Remove(id) => WireRequest::Remove(*id),
        }
    }

    fn from_wire(request: WireRequest) -> Result<Self, String> {
        Ok(match request {
            WireRequest::Write(write) => {
                LeaderRequest::Write { key: write.doc, op: write.op.to_op()?, pre: write.pre.to_precondition()? }
            }
            WireRequest::Txn(txn) => LeaderRequest::Txn(txn.into_txn()?),
            WireRequest::Commit(set) => LeaderRequest::Commit(set.into_set()?),
            WireRequest::AddLearner(info) => LeaderRequest::AddLearner(info),
            WireRequest::Promote(id) => LeaderRequest::Promote(id),
            WireRequest::Remove(id) => LeaderRequest::Remove(id),
        })
    }
}

impl LeaderDone {
    fn into_wire(self) -> WireDone {
        match self {
            LeaderDone::Written(written) => WireDone::Written(WireWritten {
                version: written.version.to_string(),
                change: written.change,
                created: written.created,
                index: written.index,
            }),
            LeaderDone::Membership(position) => WireDone::Membership(position),
            LeaderDone::Txn(done) => WireDone::Txn { body: done.body.to_string(), index: done.index },
        }
    }
}
