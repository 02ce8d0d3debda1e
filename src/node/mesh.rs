//! What a node says about itself to its peers and to the status page, and what it last heard
//! from each peer it has met.
//!
//! Every node answers its connected peers' status requests with a [`NodeSummary`] (role, Raft
//! term and leader, documents, storage state, admission mode, write rate, version vector,
//! connections), so one node can show the whole mesh: `GET /v1/mesh` and the `/ui` page read
//! this node's summary and the [`MeshPeer`] list the replication layer keeps up to date. The
//! node itself knows nothing of Raft; the strong path, when it runs, registers a
//! [`RaftFacts`] source.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use statemesh_protocol::VersionVector;
use utoipa::ToSchema;

use super::{Node, PeerInfo};
use crate::clock::now_ms;
use crate::config::SecurityConfig;

/// The window the write rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Samples kept for the rate (one per summary, at most one per 250 ms).
const RATE_SAMPLES_MAX: usize = 64;
const RATE_SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A node's account of itself, as its peers and the status page receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeSummary {
    /// The node's peer id.
    pub id: String,
    pub name: Option<String>,
    /// The statemesh version it runs.
    pub version: String,
    pub role: MeshRole,
    /// The strong path's state, on a node that runs it.
    pub raft: Option<RaftFacts>,
    pub documents: i64,
    pub storage: StorageState,
    /// How the node admits peers: `cluster key`, `cluster key + allowlist` or `insecure`.
    pub admission: String,
    /// Changes this node made itself per second, over the last ten seconds.
    pub writes_per_sec: f64,
    /// For each origin node id, the highest change seq held from it contiguously.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub version_vector: VersionVector,
    /// The peers it is connected to now.
    pub connected: Vec<String>,
    pub uptime_ms: i64,
}

/// Where a node stands in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MeshRole {
    /// A voting member of the Raft cluster.
    Voter,
    /// A non-voting member of the Raft cluster.
    Learner,
    /// Outside the Raft membership: replicates documents only.
    Edge,
}

/// Whether the node's storage takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StorageState {
    Ok,
    /// A storage write failed; the node is stopping.
    Failed,
}

/// The strong path's state on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RaftFacts {
    /// `leader`, `follower`, `candidate`, `learner` or `stopped`.
    pub state: String,
    pub term: u64,
    /// The leader's peer id, when this node knows one.
    pub leader: Option<String>,
    pub members: Vec<RaftMemberFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RaftMemberFacts {
    /// The member's peer id.
    pub id: String,
    pub voter: bool,
}

/// Reports the strong path's state (registered by the strong path when it starts).
pub trait RaftFactsSource: Send + Sync {
    /// `None` once the strong path is gone.
    fn raft_facts(&self) -> Option<RaftFacts>;
}

/// A peer this node has met, as the replication layer last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MeshPeer {
    #[serde(flatten)]
    pub info: PeerInfo,
    /// Connected now. A peer that went away stays listed (unreachable) for a while.
    pub connected: bool,
    /// The last time anything was heard from it (ms since the epoch).
    pub last_contact_ms: Option<i64>,
    /// Its own latest summary.
    pub summary: Option<NodeSummary>,
    pub summary_age_ms: Option<i64>,
}

/// The summary's share of the node's state.
pub(super) struct MeshState {
    admission: &'static str,
    raft: Option<Arc<dyn RaftFactsSource>>,
    peers: Vec<MeshPeer>,
    /// (when, own durable seq), oldest first.
    samples: VecDeque<(Instant, u64)>,
}

impl MeshState {
    pub(super) fn new(security: &SecurityConfig) -> Self {
        let admission = match (security.insecure, security.allowed_peers.is_empty()) {
            (true, _) => "insecure",
            (false, true) => "cluster key",
            (false, false) => "cluster key + allowlist",
        };
        Self { admission, raft: None, peers: Vec::new(), samples: VecDeque::new() }
    }

    /// Records `seq` at `now` and returns the rate over the window.
    fn writes_per_sec(&mut self, now: Instant, seq: u64) -> f64 {
        let due = self.samples.back().is_none_or(|(at, _)| now.duration_since(*at) >= RATE_SAMPLE_EVERY);
        if due {
            self.samples.push_back((now, seq));
        }
        while self.samples.len() > RATE_SAMPLES_MAX
            || self.samples.front().is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let Some(&(since, first)) = self.samples.front() else { return 0.0 };
        let elapsed = now.duration_since(since).as_secs_f64();
        if elapsed < 0.5 {
            return 0.0;
        }
        seq.saturating_sub(first) as f64 / elapsed
    }
}

impl Node {
    /// This node's account of itself.
    pub fn summary(&self) -> NodeSummary {
        let own_seq = self.durable_local_seq();
        let (raft, admission, writes_per_sec, connected) = {
            let mut mesh = self.inner.mesh.lock();
            let raft = mesh.raft.as_ref().and_then(|source| source.raft_facts());
            let rate = mesh.writes_per_sec(Instant::now(), own_seq);
            let connected = mesh.peers.iter().filter(|p| p.connected).map(|p| p.info.id.clone()).collect();
            (raft, mesh.admission, rate, connected)
        };
        let me = self.node_id().as_str();
        let role = raft.as_ref().and_then(|r| r.members.iter().find(|m| m.id == me)).map_or(MeshRole::Edge, |m| {
            if m.voter {
                MeshRole::Voter
            } else {
                MeshRole::Learner
            }
        });
        let storage =
            if self.inner.sequencer.durable().failed.is_some() { StorageState::Failed } else { StorageState::Ok };
        NodeSummary {
            id: me.to_string(),
            name: self.inner.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            role,
            raft,
            documents: self.inner.metrics.documents.get(),
            storage,
            admission: admission.to_string(),
            writes_per_sec: (writes_per_sec * 10.0).round() / 10.0,
            version_vector: self.version_vector(),
            connected,
            uptime_ms: now_ms() - self.inner.started_ms,
        }
    }

    /// Lets the summary report the strong path's state.
    pub fn set_raft_facts(&self, source: Arc<dyn RaftFactsSource>) {
        self.inner.mesh.lock().raft = Some(source);
    }

    /// Every peer this node has met recently, connected or not.
    pub fn mesh_peers(&self) -> Vec<MeshPeer> {
        self.inner.mesh.lock().peers.clone()
    }

    /// Replaces the peer list (the replication layer's report).
    pub fn set_mesh_peers(&self, peers: Vec<MeshPeer>) {
        self.inner.mesh.lock().peers = peers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_rate_is_measured_over_the_recent_window() {
        let mut state = MeshState::new(&SecurityConfig::default());
        let start = Instant::now();
        assert_eq!(state.writes_per_sec(start, 0), 0.0);
        // 100 writes a second for 20 seconds: the rate shows 100.
        let mut rate = 0.0;
        for second in 1..=20u64 {
            rate = state.writes_per_sec(start + Duration::from_secs(second), second * 100);
        }
        assert!((rate - 100.0).abs() < 1e-9, "rate {rate}");
        // Then nothing for 11 seconds: the window holds no writes.
        let later = start + Duration::from_secs(31);
        assert_eq!(state.writes_per_sec(later, 2000), 0.0);
        assert_eq!(state.writes_per_sec(later + Duration::from_secs(1), 2000), 0.0);
    }

    #[test]
    fn admission_is_named_from_the_security_settings() {
        let mut security = SecurityConfig::default();
        assert_eq!(MeshState::new(&security).admission, "cluster key");
        security.allowed_peers = vec!["12D3KooW".into()];
        assert_eq!(MeshState::new(&security).admission, "cluster key + allowlist");
        security.insecure = true;
        assert_eq!(MeshState::new(&security).admission, "insecure");
    }
}
