//! Cluster administration: status, explicit initialisation, learners, promotion, removal.
//!
//! Membership changes are leader-only in Raft; any member accepts them here and the request
//! names members the way `distributed.voters` does (peer id, address, or both), resolved
//! through the network's address book.

use serde::Serialize;
use tokio::sync::watch;

use super::error::{StrongDocError, StrongResult};
use super::formation::{self, VoterSpec};
use super::{LeaderDone, LeaderRequest, StrongDocs};
use crate::net::AddressBook;
use crate::node::{RaftFacts, RaftFactsSource, RaftMemberFacts};
use crate::raft::{raft_node_id, Initialized, LogPosition, NodeInfo, RaftNodeId, Role, StrongError, StrongStatus};

/// The strong path as a running node holds it: the documents' strong path plus what
/// administration needs to name members.
#[derive(Clone)]
pub struct StrongNode {
    pub docs: StrongDocs,
    pub me: NodeInfo,
    pub book: watch::Receiver<AddressBook>,
    /// `distributed.voters`, parsed.
    pub voters: Vec<VoterSpec>,
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// The cluster's change-log origin, once a strong write has named it.
    pub cluster: Option<String>,
    #[serde(flatten)]
    pub raft: StrongStatus,
    /// This node's measured staleness (see read levels), in milliseconds.
    pub staleness_ms: Option<u64>,
}

impl StrongNode {
    pub fn view(&self) -> ClusterView {
        ClusterView {
            cluster: self.docs.cluster().map(|c| c.origin().to_string()),
            raft: self.docs.path().status(),
            staleness_ms: self.docs.staleness_ms(),
        }
    }

    /// Forms a cluster of `voters` (the configured voters when empty; this node alone when
    /// there are none either).
    pub async fn init(&self, voters: &[String]) -> StrongResult<Initialized> {
        let specs = if voters.is_empty() {
            self.voters.clone()
        } else {
            formation::parse_voters(voters).map_err(|e| StrongDocError::Strong(StrongError::Invalid(e)))?
        };
        let book = self.book.borrow().clone();
        formation::init_now(&self.docs, &specs, &self.me, &book).await
    }

    fn member(&self, text: &str) -> StrongResult<NodeInfo> {
        let spec: VoterSpec = text.parse().map_err(|e: String| StrongDocError::Strong(StrongError::Invalid(e)))?;
        let book = self.book.borrow().clone();
        formation::resolve(&spec, &self.me, &book).ok_or_else(|| {
            StrongError::Invalid(format!(
                "{spec}: no address known for this peer; give it as <multiaddr>/p2p/<peer id>"
            ))
            .into()
        })
    }

    /// The Raft id of a member named by peer id or by a full member address.
    fn member_id(&self, text: &str) -> StrongResult<RaftNodeId> {
        match text.parse::<VoterSpec>() {
            Ok(VoterSpec::Peer(peer)) | Ok(VoterSpec::Both { peer, .. }) => Ok(raft_node_id(&peer.to_string())),
            _ => Ok(self.member(text)?.raft_id()),
        }
    }

    /// Runs a membership change on the leader, wherever this node stands.
    async fn membership(&self, request: LeaderRequest) -> StrongResult<LogPosition> {
        match self.docs.on_leader(request).await? {
            LeaderDone::Membership(position) => Ok(position),
            _ => Err(StrongError::Invalid("a membership change answered as something else".to_owned()).into()),
        }
    }

    pub async fn add_learner(&self, member: &str) -> StrongResult<LogPosition> {
        let info = self.member(member)?;
        self.membership(LeaderRequest::AddLearner(info)).await
    }

    pub async fn promote(&self, member: &str) -> StrongResult<LogPosition> {
        let id = self.member_id(member)?;
        self.membership(LeaderRequest::Promote(id)).await
    }

    pub async fn remove(&self, member: &str) -> StrongResult<LogPosition> {
        let id = self.member_id(member)?;
        self.membership(LeaderRequest::Remove(id)).await
    }
}

/// The strong path's part of the node's summary (see [`crate::node::NodeSummary`]). Holds
/// the path weakly, so the node does not keep a stopped strong path alive.
pub(super) struct MeshFacts {
    pub(super) docs: std::sync::Weak<super::Inner>,
}

impl RaftFactsSource for MeshFacts {
    fn raft_facts(&self) -> Option<RaftFacts> {
        let inner = self.docs.upgrade()?;
        let status = inner.path.status();
        let peer_of = |id: RaftNodeId| status.members.iter().find(|m| m.id == id).map(|m| m.info.peer_id.clone());
        Some(RaftFacts {
            state: role_name(status.role).to_string(),
            term: status.term,
            leader: status.leader.and_then(peer_of),
            members: status
                .members
                .iter()
                .map(|m| RaftMemberFacts { id: m.info.peer_id.clone(), voter: m.voter })
                .collect(),
        })
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Learner => "learner",
        Role::Stopped => "stopped",
    }
}
