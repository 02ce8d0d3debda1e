//! The strong path's vocabulary: node identity, the replicated command and its result, and
//! the openraft type configuration that ties them together.
//!
//! Everything outside `src/raft` speaks in [`RaftNodeId`], [`NodeInfo`], [`Command`] and
//! [`CommandResult`]; the openraft aliases below stay private to this module tree so the rest
//! of the node never depends on openraft's types or version.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A voter's or learner's id inside Raft. openraft wants a small ordered integer, and our
/// nodes are named by libp2p peer ids, so the id is derived from the peer id: the first eight
/// bytes of its SHA-256, big-endian. Every node computes the same id for the same peer
/// without any coordination, and a restart keeps it.
pub type RaftNodeId = u64;

/// The Raft node id of the node whose libp2p peer id (base58 string) is `peer_id`.
pub fn raft_node_id(peer_id: &str) -> RaftNodeId {
    let digest = Sha256::digest(peer_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// How to reach a member: its peer id and a libp2p multiaddr. Stored in the membership, so
/// every member learns how to reach every other from the log itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub peer_id: String,
    pub addr: String,
}

impl NodeInfo {
    pub fn new(peer_id: impl Into<String>, addr: impl Into<String>) -> Self {
        Self { peer_id: peer_id.into(), addr: addr.into() }
    }

    /// The Raft id this member goes by.
    pub fn raft_id(&self) -> RaftNodeId {
        raft_node_id(&self.peer_id)
    }
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.peer_id, self.addr)
    }
}

/// One replicated command. The node decides what `kind` and `payload` mean; Raft only orders
/// and stores them. A kind lets the applier dispatch without decoding the payload first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub kind: u16,
    pub payload: Vec<u8>,
}

impl Command {
    pub fn new(kind: u16, payload: Vec<u8>) -> Self {
        Self { kind, payload }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command(kind {}, {} bytes)", self.kind, self.payload.len())
    }
}

/// What applying a command produced, as the applier encoded it. Blank and membership
/// entries produce an empty result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult(pub Vec<u8>);

openraft::declare_raft_types!(
    /// The openraft type configuration of statemesh's strong path.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = RaftNodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = super::runtime::StrongRuntime,
);

pub(crate) type Raft = openraft::Raft<TypeConfig>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type LogId = openraft::LogId<RaftNodeId>;
pub(crate) type Vote = openraft::Vote<RaftNodeId>;
pub(crate) type StoredMembership = openraft::StoredMembership<RaftNodeId, NodeInfo>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<RaftNodeId, NodeInfo>;
pub(crate) type Snapshot = openraft::Snapshot<TypeConfig>;
pub(crate) type RaftMetrics = openraft::RaftMetrics<RaftNodeId, NodeInfo>;
pub(crate) type OpenraftStorageError = openraft::StorageError<RaftNodeId>;

/// A log position as the rest of the node sees it: the term that wrote the entry and its
/// index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogPosition {
    pub term: u64,
    pub index: u64,
}

impl LogPosition {
    pub(crate) fn from_log_id(log_id: &LogId) -> Self {
        Self { term: log_id.leader_id.term, index: log_id.index }
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.index, self.term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        let a = raft_node_id("12D3KooWA");
        assert_eq!(a, raft_node_id("12D3KooWA"), "the same peer always maps to the same id");
        assert_ne!(a, raft_node_id("12D3KooWB"));
        assert_eq!(NodeInfo::new("12D3KooWA", "/memory/1").raft_id(), a);
    }
}
