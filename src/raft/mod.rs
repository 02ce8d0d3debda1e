//! The strong path: commands committed through Raft (the `openraft` crate) before they are
//! acknowledged, for strong namespaces, compare-and-swap and transactions.
//!
//! [`StrongPath`] is the only handle the rest of the node holds. It speaks in our own types
//! ([`Command`], [`CommandResult`], [`NodeInfo`], [`LogPosition`], [`StrongError`]); every
//! openraft type stays inside this module, so the node does not follow openraft's API or
//! version. Three seams connect it to the node:
//!
//! - storage: the Raft log, vote and state-machine pointers live in the `raft_log` and
//!   `raft_meta` column families of the node's [`Storage`] (`log_store.rs`,
//!   `state_machine.rs`, layouts in `docs/STORAGE.md`);
//! - effects: committed commands are handed to an [`Applier`] the node implements, which
//!   writes their effects and the "applied up to" pointer in one atomic batch;
//! - network: RPCs go through a [`RaftTransport`] (libp2p in the node, [`LoopbackNet`] in
//!   tests and the simulator); the receiving side passes bytes to [`StrongPath::handle_rpc`].
//!
//! Every call is bounded by `request_timeout` and says what is known about its outcome: a
//! proposal that fails with [`StrongError::NotLeader`] or [`StrongError::Unavailable`] was
//! never appended where it could commit, so it will not take effect; one that fails with
//! [`StrongError::Indeterminate`] reached a leader's log and may still commit later (the
//! caller retries idempotently or reads to find out).

mod config;
mod events;
mod forward;
mod instruments;
mod kv_applier;
mod log_flush;
mod log_store;
mod loopback;
mod network;
mod proposer;
mod runtime;
mod state_machine;
mod types;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, ServerState};
use serde::Serialize;
use tokio::time::Instant;

pub use config::{RaftConfigError, RaftSettings};
pub use forward::{ForwardHandler, Route};
pub use instruments::RaftInstruments;
pub use kv_applier::{kv_version, KvApplier, KvOp, KvOutcome, Register, KV_COMMAND_KIND};
pub use loopback::{LoopbackNet, LoopbackTransport};
pub use network::{decode_reply, decode_request, sample_encodings, RaftTransport, TransportError};
pub use proposer::{Committed, BATCH_KIND};
pub use runtime::seed_election_timeouts;
pub use state_machine::{Applier, ApplyEntry, ApplyError};
pub use types::{raft_node_id, Command, CommandResult, LogPosition, NodeInfo, RaftNodeId};

use crate::storage::{Storage, StorageError};
use log_store::LogStore;
use network::{Envelope, NetworkFactory, RaftReply, RaftRpc, ReadIndexRefusal};
use proposer::Proposer;
use state_machine::StateMachine;
use types::{LogId, Raft, RaftMetrics};

/// Room an entry needs around its command's payload in an append-entries message.
const ENTRY_OVERHEAD_BYTES: usize = 1024;

/// Why a strong-path call failed, and what is known about its effect.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StrongError {
    /// This node is not the leader. Nothing was appended; send the request to `leader`
    /// (unknown while an election is under way).
    #[error("not the Raft leader{}", leader.as_ref().map(|l| format!("; the leader is {l}")).unwrap_or_default())]
    NotLeader { leader: Option<NodeInfo> },
    /// No quorum could be reached in time. Nothing was appended where it could commit: the
    /// command will not take effect.
    #[error("the strong path is unavailable: {reason}")]
    Unavailable { reason: String },
    /// The command reached the leader's log but was not known to commit in time. It may
    /// still commit (or be discarded) later.
    #[error("outcome unknown: {reason}")]
    Indeterminate { reason: String },
    /// A membership change was refused (another one is in progress, unknown learner, …).
    #[error("membership change refused: {0}")]
    Membership(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Raft has stopped on this node (shut down, or a storage failure stopped it).
    #[error("the strong path has stopped: {0}")]
    Stopped(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The reply to a Raft request, and whether the request was refused as one its sender had
/// no right to send (or could not have sent in good faith).
#[derive(Debug)]
pub struct RpcAnswer {
    pub reply: Vec<u8>,
    pub refused: Option<String>,
}

impl RpcAnswer {
    fn refuse(reason: String) -> Self {
        tracing::warn!(%reason, "refused a raft message");
        Self { reply: network::encode(&RaftReply::Refused(reason.clone())), refused: Some(reason) }
    }
}

/// A read-index request for the member whose peer id is `target`, as encoded on the wire
/// (for tests of how a node treats Raft traffic from peers).
pub fn read_index_request(target: &str) -> Vec<u8> {
    network::encode(&Envelope { target: raft_node_id(target), rpc: RaftRpc::ReadIndex })
}

/// What [`StrongPath::initialize`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initialized {
    /// This call formed the cluster.
    Formed,
    /// The node already had a log or membership; nothing changed.
    AlreadyFormed,
}

/// A node's part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Stopped,
}

/// A member of the current membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The member's Raft id (derived from its peer id).
    #[schema(value_type = u64)]
    pub id: RaftNodeId,
    pub info: NodeInfo,
    pub voter: bool,
}

/// How far a follower or learner has replicated, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FollowerProgress {
    #[schema(value_type = u64)]
    pub id: RaftNodeId,
    /// The last entry known to match the leader's log.
    pub matched: Option<LogPosition>,
    /// Entries the leader holds beyond `matched`.
    pub lag: u64,
}

/// A snapshot of the strong path's state, for status output and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StrongStatus {
    /// This node's Raft id.
    #[schema(value_type = u64)]
    pub id: RaftNodeId,
    pub role: Role,
    pub term: u64,
    /// The leader's Raft id, when known.
    #[schema(value_type = Option<u64>)]
    pub leader: Option<RaftNodeId>,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<LogPosition>,
    pub snapshot: Option<LogPosition>,
    pub purged: Option<LogPosition>,
    /// On the leader: how long ago a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    pub members: Vec<Member>,
    /// On the leader: every other member's replication progress.
    pub replication: Vec<FollowerProgress>,
}

/// What a node needs to run the strong path.
pub struct StartOptions {
    /// This node's identity and address.
    pub me: NodeInfo,
    pub settings: RaftSettings,
    /// The node's storage; the Raft families live there.
    pub storage: Arc<dyn Storage>,
    /// Applies committed commands; must write into the same `storage`.
    pub applier: Arc<dyn Applier>,
    pub transport: Arc<dyn RaftTransport>,
    /// Where the path's metrics go (`RaftInstruments::default()` when nobody reads them).
    pub instruments: RaftInstruments,
}

struct Inner {
    id: RaftNodeId,
    me: NodeInfo,
    raft: Raft,
    settings: RaftSettings,
    transport: Arc<dyn RaftTransport>,
    max_rpc_bytes: usize,
    /// Answers requests other members forward to this node while it leads.
    forward_handler: std::sync::OnceLock<Arc<dyn ForwardHandler>>,
    /// Batches the commands proposed on this node into log entries.
    proposer: Proposer,
    instruments: RaftInstruments,
}

/// The running strong path of one node. Cheap to clone; clones share the node.
#[derive(Clone)]
pub struct StrongPath {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StrongPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrongPath").field("id", &self.inner.id).field("me", &self.inner.me).finish()
    }
}

/// Who may take a request right now, as this node sees it.
enum LeaderView {
    /// This node leads and a quorum acknowledged it recently.
    Me,
    Other(Option<NodeInfo>),
}

fn stopped(e: impl std::fmt::Display) -> StrongError {
    StrongError::Stopped(e.to_string())
}

/// Our error for openraft's refusal of a write (a proposal or a membership change).
fn write_error(raft: &Raft, e: RaftError<RaftNodeId, ClientWriteError<RaftNodeId, NodeInfo>>) -> StrongError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            let leader = forward
                .leader_node
                .or_else(|| forward.leader_id.and_then(|id| StrongPath::member_info(&raft.metrics().borrow(), id)));
            StrongError::NotLeader { leader }
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => StrongError::Membership(e.to_string()),
        RaftError::Fatal(fatal) => stopped(fatal),
    }
}

fn role_of(state: ServerState) -> Role {
    match state {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Stopped,
    }
}

impl StrongPath {
    /// Opens the Raft state in `options.storage` and starts the node. A node that was never
    /// part of a cluster waits, as a learner, to be initialised or added.
    pub async fn start(options: StartOptions) -> Result<Self, StrongError> {
        let StartOptions { me, settings, storage, applier, transport, instruments } = options;
        let config = settings.to_openraft().map_err(|e| StrongError::Invalid(e.to_string()))?;
        let id = me.raft_id();
        let max_rpc_bytes = usize::try_from(settings.max_rpc_bytes).unwrap_or(usize::MAX);
        let network = NetworkFactory {
            me: id,
            transport: transport.clone(),
            max_rpc_bytes,
            backoff_min: settings.heartbeat_interval,
            backoff_max: settings.election_timeout_max,
        };
        let log_store = LogStore::open(storage.clone(), instruments.log_sync.clone())?;
        let state_machine = StateMachine::open(storage, applier)?;
        let raft = Raft::new(id, Arc::new(config), network, log_store, state_machine).await.map_err(stopped)?;
        events::spawn(&raft, settings.quorum_ack_max, instruments.clone());
        tracing::info!(raft_id = id, peer = %me.peer_id, "strong path started");
        let forward_handler = std::sync::OnceLock::new();
        let proposer =
            Proposer::start(raft.clone(), settings.request_timeout, max_rpc_bytes, instruments.batch_commands.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                id,
                me,
                raft,
                settings,
                transport,
                max_rpc_bytes,
                forward_handler,
                proposer,
                instruments,
            }),
        })
    }

    /// This node's Raft id.
    pub fn id(&self) -> RaftNodeId {
        self.inner.id
    }

    pub fn me(&self) -> &NodeInfo {
        &self.inner.me
    }

    fn metrics(&self) -> RaftMetrics {
        self.inner.raft.metrics().borrow().clone()
    }

    fn member_info(metrics: &RaftMetrics, id: RaftNodeId) -> Option<NodeInfo> {
        metrics.membership_config.membership().get_node(&id).cloned()
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.settings.request_timeout
    }

    /// Waits until some node is known to lead. This node counts only while a quorum has
    /// acknowledged it recently (`quorum_ack_max`): a leader that has heard from no quorum
    /// for longer refuses at once (check-quorum), before proposing anything, so the caller
    /// knows the request did not take effect instead of waiting for a timeout whose outcome
    /// would be unknown. Openraft's figure is at most one tick old and only ever too small,
    /// so a refusal is never wrong; a leader just elected waits for its first acknowledgement.
    async fn leader_view(&self, deadline: Instant) -> Result<LeaderView, StrongError> {
        let mut watch = self.inner.raft.metrics();
        let quorum_ack_max = u64::try_from(self.inner.settings.quorum_ack_max.as_millis()).unwrap_or(u64::MAX);
        loop {
            let reason = {
                let metrics = watch.borrow_and_update();
                if let Err(e) = &metrics.running_state {
                    return Err(stopped(e));
                }
                match (metrics.state, metrics.current_leader) {
                    (ServerState::Leader, _) => match metrics.millis_since_quorum_ack {
                        Some(ms) if ms <= quorum_ack_max => return Ok(LeaderView::Me),
                        Some(ms) => {
                            return Err(StrongError::Unavailable {
                                reason: format!(
                                    "this leader has not heard from a quorum of voters for {ms} ms \
                                     (more than {quorum_ack_max} ms); nothing was proposed"
                                ),
                            })
                        }
                        None => "this leader has not yet heard from a quorum".to_owned(),
                    },
                    (_, Some(leader)) if leader != self.inner.id => {
                        return Ok(LeaderView::Other(Self::member_info(&metrics, leader)));
                    }
                    _ => "no leader is elected".to_owned(),
                }
            };
            match tokio::time::timeout_at(deadline, watch.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(StrongError::Stopped("raft metrics closed".to_owned())),
                Err(_) => return Err(StrongError::Unavailable { reason }),
            }
        }
    }

    /// Commits `command` through Raft and returns what applying it produced. Only the leader
    /// accepts proposals; others answer [`StrongError::NotLeader`] so the caller can forward.
    /// Commands proposed while others are in flight share a log entry (`proposer.rs`), each
    /// with its own result.
    pub async fn propose(&self, command: Command) -> Result<Committed, StrongError> {
        let answer = self.propose_unrecorded(command).await;
        self.inner.instruments.record_proposal(&answer);
        answer
    }

    async fn propose_unrecorded(&self, command: Command) -> Result<Committed, StrongError> {
        if command.kind == BATCH_KIND {
            return Err(StrongError::Invalid(format!("command kind {BATCH_KIND} is reserved for batches")));
        }
        if command.payload.len().saturating_add(ENTRY_OVERHEAD_BYTES) > self.inner.max_rpc_bytes {
            return Err(StrongError::Invalid(format!(
                "a command of {} bytes does not fit in a {}-byte Raft message",
                command.payload.len(),
                self.inner.max_rpc_bytes
            )));
        }
        let deadline = self.deadline();
        match self.leader_view(deadline).await? {
            LeaderView::Me => {}
            LeaderView::Other(leader) => return Err(StrongError::NotLeader { leader }),
        }
        self.inner.proposer.propose(command, deadline).await
    }

    /// Makes a linearizable read possible on this node: confirms with a quorum (through the
    /// leader, when this node follows) the index every acknowledged write is at or below,
    /// then waits until this node has applied that far. Reading the applier's state after
    /// this returns observes every write acknowledged before the call began. Returns the
    /// position the read reflects (`None` on an empty log).
    pub async fn read_index(&self) -> Result<Option<LogPosition>, StrongError> {
        let deadline = self.deadline();
        // A leader confirms its leadership with a heartbeat round, even when its last quorum
        // acknowledgement is old; anyone else asks the leader.
        let read = if self.is_leader() {
            self.local_read_index(deadline).await?
        } else {
            match self.leader_view(deadline).await? {
                LeaderView::Me => self.local_read_index(deadline).await?,
                LeaderView::Other(Some(leader)) => self.remote_read_index(&leader, deadline).await?,
                LeaderView::Other(None) => {
                    return Err(StrongError::Unavailable { reason: "the leader's address is unknown".to_owned() })
                }
            }
        };
        self.wait_applied(read, deadline).await
    }

    fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().state == ServerState::Leader
    }

    fn read_refusal(&self, e: RaftError<RaftNodeId, CheckIsLeaderError<RaftNodeId, NodeInfo>>) -> ReadIndexRefusal {
        match e {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)) => {
                let leader = forward
                    .leader_node
                    .or_else(|| forward.leader_id.and_then(|id| Self::member_info(&self.metrics(), id)));
                ReadIndexRefusal::NotLeader { leader }
            }
            RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)) => {
                ReadIndexRefusal::Unavailable { reason: e.to_string() }
            }
            RaftError::Fatal(fatal) => ReadIndexRefusal::Unavailable { reason: fatal.to_string() },
        }
    }

    /// The leader's read index: its commit index once a quorum confirmed its leadership.
    async fn local_read_index(&self, deadline: Instant) -> Result<Option<LogId>, StrongError> {
        match tokio::time::timeout_at(deadline, self.serve_read_index()).await {
            Ok(Ok(read)) => Ok(read),
            Ok(Err(ReadIndexRefusal::NotLeader { leader })) => Err(StrongError::NotLeader { leader }),
            Ok(Err(ReadIndexRefusal::Unavailable { reason })) => Err(StrongError::Unavailable { reason }),
            Err(_) => Err(StrongError::Unavailable { reason: "leadership not confirmed in time".to_owned() }),
        }
    }

    async fn serve_read_index(&self) -> Result<Option<LogId>, ReadIndexRefusal> {
        match self.inner.raft.get_read_log_id().await {
            Ok((read, _applied)) => Ok(read),
            Err(e) => Err(self.read_refusal(e)),
        }
    }

    async fn remote_read_index(&self, leader: &NodeInfo, deadline: Instant) -> Result<Option<LogId>, StrongError> {
        let request = network::encode(&Envelope { target: leader.raft_id(), rpc: RaftRpc::ReadIndex });
        let timeout = deadline.saturating_duration_since(Instant::now());
        let reply =
            network::exchange(self.inner.transport.as_ref(), leader, request, timeout, self.inner.max_rpc_bytes)
                .await
                .map_err(|e| StrongError::Unavailable { reason: format!("read index from the leader: {e}") })?;
        match reply {
            RaftReply::ReadIndex(Ok(read)) => Ok(read),
            RaftReply::ReadIndex(Err(ReadIndexRefusal::NotLeader { leader })) => Err(StrongError::NotLeader { leader }),
            RaftReply::ReadIndex(Err(ReadIndexRefusal::Unavailable { reason })) => {
                Err(StrongError::Unavailable { reason })
            }
            _ => {
                Err(StrongError::Unavailable { reason: "the leader answered read index with another reply".to_owned() })
            }
        }
    }

    async fn wait_applied(&self, read: Option<LogId>, deadline: Instant) -> Result<Option<LogPosition>, StrongError> {
        let Some(read) = read else {
            return Ok(None);
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.inner.raft.wait(Some(timeout)).applied_index_at_least(Some(read.index), "read index").await.map_err(
            |e| StrongError::Unavailable { reason: format!("this node did not apply up to the read index: {e}") },
        )?;
        Ok(Some(LogPosition::from_log_id(&read)))
    }

    /// Waits until this node has applied at least `index`.
    pub async fn wait_applied_index(&self, index: u64, within: Duration) -> Result<(), StrongError> {
        self.inner
            .raft
            .wait(Some(within))
            .applied_index_at_least(Some(index), "applied index")
            .await
            .map(|_| ())
            .map_err(|e| StrongError::Unavailable { reason: e.to_string() })
    }

    /// Waits until a leader is known to this node and returns its id.
    pub async fn wait_for_leader(&self, within: Duration) -> Result<RaftNodeId, StrongError> {
        let metrics = self
            .inner
            .raft
            .wait(Some(within))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|e| StrongError::Unavailable { reason: e.to_string() })?;
        metrics.current_leader.ok_or_else(|| StrongError::Unavailable { reason: "no leader".to_owned() })
    }

    /// Forms a new cluster whose voters are `voters` (this node among them). Safe to call on
    /// every initial voter with the same list; a node that already belongs to a cluster is
    /// left alone.
    pub async fn initialize(&self, voters: Vec<NodeInfo>) -> Result<Initialized, StrongError> {
        let mut members = BTreeMap::new();
        for voter in voters {
            let id = voter.raft_id();
            if let Some(previous) = members.insert(id, voter) {
                return Err(StrongError::Invalid(format!(
                    "voter {previous} is listed twice (or its Raft id collides)"
                )));
            }
        }
        let outcome = tokio::time::timeout_at(self.deadline(), self.inner.raft.initialize(members)).await;
        match outcome {
            Ok(Ok(())) => Ok(Initialized::Formed),
            Ok(Err(RaftError::APIError(InitializeError::NotAllowed(_)))) => Ok(Initialized::AlreadyFormed),
            Ok(Err(RaftError::APIError(InitializeError::NotInMembers(e)))) => Err(StrongError::Invalid(e.to_string())),
            Ok(Err(RaftError::Fatal(fatal))) => Err(stopped(fatal)),
            Err(_) => Err(StrongError::Indeterminate { reason: "initialisation did not finish in time".to_owned() }),
        }
    }

    async fn change(
        &self,
        changes: ChangeMembers<RaftNodeId, NodeInfo>,
        retain: bool,
    ) -> Result<LogPosition, StrongError> {
        match tokio::time::timeout_at(self.deadline(), self.inner.raft.change_membership(changes, retain)).await {
            Ok(Ok(response)) => Ok(LogPosition::from_log_id(&response.log_id)),
            Ok(Err(e)) => Err(write_error(&self.inner.raft, e)),
            Err(_) => Err(StrongError::Indeterminate { reason: "membership change not committed in time".to_owned() }),
        }
    }

    /// Adds `node` as a learner (leader only). Returns once the membership entry commits; the
    /// learner then catches up in the background (see [`StrongStatus::replication`]).
    pub async fn add_learner(&self, node: NodeInfo) -> Result<LogPosition, StrongError> {
        let id = node.raft_id();
        let add = self.inner.raft.add_learner(id, node, false);
        match tokio::time::timeout_at(self.deadline(), add).await {
            Ok(Ok(response)) => Ok(LogPosition::from_log_id(&response.log_id)),
            Ok(Err(e)) => Err(write_error(&self.inner.raft, e)),
            Err(_) => Err(StrongError::Indeterminate { reason: "learner not added in time".to_owned() }),
        }
    }

    /// Makes the learner `id` a voter (leader only).
    pub async fn promote(&self, id: RaftNodeId) -> Result<LogPosition, StrongError> {
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true).await
    }

    /// Removes the voter `id` from the cluster entirely (leader only).
    pub async fn remove_voter(&self, id: RaftNodeId) -> Result<LogPosition, StrongError> {
        self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false).await
    }

    /// Replaces the voter set with `voters`, all of which must already be members. Removed
    /// voters stay as learners when `keep_removed_as_learners`.
    pub async fn change_voters(
        &self,
        voters: BTreeSet<RaftNodeId>,
        keep_removed_as_learners: bool,
    ) -> Result<LogPosition, StrongError> {
        self.change(ChangeMembers::ReplaceAllVoters(voters), keep_removed_as_learners).await
    }

    /// The node's current view of the cluster.
    pub fn status(&self) -> StrongStatus {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<RaftNodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, info)| Member { id: *id, info: info.clone(), voter: voters.contains(id) })
            .collect();
        let last = metrics.last_log_index.unwrap_or(0);
        let replication = metrics
            .replication
            .iter()
            .flatten()
            .filter(|(id, _)| **id != self.inner.id)
            .map(|(id, matched)| FollowerProgress {
                id: *id,
                matched: matched.as_ref().map(LogPosition::from_log_id),
                lag: last.saturating_sub(matched.as_ref().map_or(0, |m| m.index)),
            })
            .collect();
        StrongStatus {
            id: self.inner.id,
            role: if metrics.running_state.is_err() { Role::Stopped } else { role_of(metrics.state) },
            term: metrics.current_term,
            leader: metrics.current_leader,
            last_log_index: metrics.last_log_index,
            last_applied: metrics.last_applied.as_ref().map(LogPosition::from_log_id),
            snapshot: metrics.snapshot.as_ref().map(LogPosition::from_log_id),
            purged: metrics.purged.as_ref().map(LogPosition::from_log_id),
            millis_since_quorum_ack: metrics.millis_since_quorum_ack,
            members,
            replication,
        }
    }

    /// Answers one request from another strong-path node (the bytes its [`RaftTransport`]
    /// carried), sent by the peer `from` (authenticated by the transport); the reply bytes go
    /// back the same way. Never fails: a request that cannot be acted on gets a refusal the
    /// sender understands, and [`RpcAnswer::refused`] says why, so the transport can count it
    /// against the sender.
    pub async fn handle_rpc(&self, from: &str, request: &[u8]) -> RpcAnswer {
        let envelope: Envelope = match network::decode(request, self.inner.max_rpc_bytes) {
            Ok(envelope) => envelope,
            Err(e) => return RpcAnswer::refuse(format!("undecodable raft message: {e}")),
        };
        if envelope.target != self.inner.id {
            // Not an offence: a member that restarted with a new identity at the same address.
            let reason = format!("message for raft node {} reached {}", envelope.target, self.inner.id);
            return RpcAnswer { reply: network::encode(&RaftReply::Refused(reason)), refused: None };
        }
        if let Err(reason) = self.admits(from, &envelope.rpc) {
            return RpcAnswer::refuse(reason);
        }
        let raft = &self.inner.raft;
        let reply = match envelope.rpc {
            RaftRpc::AppendEntries(request) => RaftReply::AppendEntries(raft.append_entries(request).await),
            RaftRpc::Vote(request) => RaftReply::Vote(raft.vote(request).await),
            RaftRpc::InstallSnapshot(request) => RaftReply::InstallSnapshot(raft.install_snapshot(request).await),
            RaftRpc::ReadIndex => RaftReply::ReadIndex(self.serve_read_index().await),
            RaftRpc::Forward(request) => RaftReply::Forwarded(self.serve_forwarded(request).await),
        };
        RpcAnswer { reply: network::encode(&reply), refused: None }
    }

    /// Whether the peer `from` may send `rpc`: only members of this node's membership
    /// (voters and learners) speak Raft to it, and a vote, append or snapshot must come from
    /// the member it names as candidate or leader. A node that belongs to no cluster yet has
    /// no members to ask; it takes the first cluster that contacts it (the peer already
    /// proved it holds the cluster key) and from then on only that cluster's members.
    fn admits(&self, from: &str, rpc: &RaftRpc) -> Result<(), String> {
        let sender = raft_node_id(from);
        let claimed = match rpc {
            RaftRpc::AppendEntries(request) => request.vote.leader_id().voted_for(),
            RaftRpc::Vote(request) => request.vote.leader_id().voted_for(),
            RaftRpc::InstallSnapshot(request) => request.vote.leader_id().voted_for(),
            RaftRpc::ReadIndex | RaftRpc::Forward(_) => None,
        };
        if let Some(claimed) = claimed.filter(|claimed| *claimed != sender) {
            return Err(format!(
                "peer {from} (raft node {sender}) sent a raft message in the name of raft node {claimed}"
            ));
        }
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        if membership.nodes().next().is_none() || membership.get_node(&sender).is_some() {
            Ok(())
        } else {
            Err(format!("peer {from} is not a member of this node's raft cluster"))
        }
    }

    /// Stops Raft on this node. Other handles then fail with [`StrongError::Stopped`].
    pub async fn shutdown(&self) -> Result<(), StrongError> {
        self.inner.raft.shutdown().await.map_err(stopped)?;
        tracing::info!(raft_id = self.inner.id, "strong path stopped");
        Ok(())
    }
}
