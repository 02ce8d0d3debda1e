//! What the strong path replicates for documents, and what applying it answers.
//!
//! A command carries finished Automerge changes, computed once by the leader, never an
//! operation each replica would compute again: replicas of an eventual namespace hold
//! different concurrent edits, so recomputing a `put` would yield different bytes on each,
//! and a change logged under one id must be the same everywhere. The leader computes every
//! change as the cluster's own actor on top of what that actor had written to the document;
//! the state machine accepts a change only if it directly follows the last one it committed
//! for that document (`seq` is one more). That check is the whole concurrency control: in a
//! strong namespace, where only the cluster actor writes, "same predecessor" means "same
//! state", so every precondition the leader evaluated still holds when the change applies,
//! and a change computed on stale state is refused as [`Outcome::Stale`] and recomputed.

use std::sync::Arc;

use libp2p_identity::ed25519;
use serde::{Deserialize, Serialize};
use statemesh_protocol::limits::MESSAGE_BYTES_CEILING;
use statemesh_protocol::seal::{key_from_seed, node_id_of, SealChain};
use statemesh_protocol::{ChangeKind, ChangeRecord, DocKey, NodeId};

use crate::raft::Command;
use crate::storage::{codec, StorageError};

/// The command kind of every [`StrongCommand`].
pub const DOC_COMMAND_KIND: u16 = 0x4443;

/// A cluster's identity: chosen once, by the first command the cluster commits. The cluster
/// writes documents as an Automerge actor and logs its changes under a change-log origin,
/// both derived from it, so two clusters never mix their changes.
///
/// It is an ed25519 secret that only the cluster's members hold (it travels in the Raft log
/// and its snapshots, which reach members only): the origin is the key's node id, so every
/// member seals the cluster's records identically (ed25519 signatures are deterministic) and
/// every other node, edge nodes included, checks them like any node's records.
#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "ClusterSeed", into = "ClusterSeed")]
pub struct ClusterId {
    seed: ClusterSeed,
    /// Derived once: the signing key and the origin it signs as.
    derived: Arc<(ed25519::Keypair, NodeId)>,
}

/// What a [`ClusterId`] is stored and replicated as.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSeed(pub [u8; 32]);

impl From<ClusterSeed> for ClusterId {
    fn from(seed: ClusterSeed) -> Self {
        let key = key_from_seed(seed.0);
        let origin = node_id_of(&key.public());
        Self { seed, derived: Arc::new((key, origin)) }
    }
}

impl From<ClusterId> for ClusterSeed {
    fn from(id: ClusterId) -> Self {
        id.seed
    }
}

impl PartialEq for ClusterId {
    fn eq(&self, other: &Self) -> bool {
        self.seed == other.seed
    }
}

impl Eq for ClusterId {}

impl std::fmt::Debug for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_tuple("ClusterId").field(&self.derived.1).finish()
    }
}

impl ClusterId {
    pub fn random() -> Self {
        ClusterSeed(rand::random()).into()
    }

    /// The Automerge actor the cluster writes documents as: its public key.
    pub fn actor(&self) -> automerge::ActorId {
        automerge::ActorId::from(&self.derived.0.public().to_bytes()[..])
    }

    /// The origin the cluster's changes are logged under (a node id no node has, since no
    /// node holds this key as its identity).
    pub fn origin(&self) -> NodeId {
        self.derived.1.clone()
    }

    /// Links the records of one command and seals its last: every member computes the same.
    pub fn seal(&self, records: &mut [ChangeRecord]) {
        let mut chain = SealChain::new(None);
        let count = records.len();
        for (i, record) in records.iter_mut().enumerate() {
            chain.add(record, i + 1 == count, &self.derived.0);
        }
    }
}

/// One document's changes inside a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocWrite {
    pub doc: DocKey,
    pub kind: ChangeKind,
    /// Raw Automerge changes by the cluster actor, consecutive in its sequence (a transaction
    /// may write one document in several steps).
    pub changes: Vec<Vec<u8>>,
}

/// A document a command read without writing it: the cluster actor's sequence number the
/// leader saw, which must still be current when the command applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRead {
    pub doc: DocKey,
    pub seq: u64,
}

/// A replicated command of the document state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrongCommand {
    /// Names the cluster; only the first one committed counts.
    SetCluster(ClusterId),
    /// Changes to distinct documents, applied all together or not at all, provided every
    /// document read is unchanged.
    Write { time_ms: i64, writes: Vec<DocWrite>, reads: Vec<DocRead> },
}

impl StrongCommand {
    pub fn to_command(&self) -> Command {
        Command::new(DOC_COMMAND_KIND, codec::encode(self))
    }

    /// Decodes a command from the Raft log. A leader builds commands from requests members
    /// forwarded, and followers take the log from the leader, so the bytes are bounded like
    /// any peer's (a command never exceeds the Raft message limit).
    pub fn decode(payload: &[u8]) -> Result<Self, StorageError> {
        codec::decode_bounded(payload, "strong command", MESSAGE_BYTES_CEILING)
    }
}

/// One applied document, as the state machine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedDoc {
    pub doc: DocKey,
    /// The document's version after the change, as text.
    pub version: String,
    /// The change-log sequence number under the cluster's origin.
    pub seq: u64,
    pub created: bool,
}

/// What applying a [`StrongCommand`] produced; the same on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The cluster is named (by this command or an earlier one).
    Cluster(ClusterId),
    Applied(Vec<AppliedDoc>),
    /// A change was computed on state that another committed change has since replaced
    /// (or the cluster id it was computed for is not the cluster's): nothing was applied.
    Stale {
        doc: DocKey,
    },
    /// The command cannot be applied at all; nothing was applied.
    Invalid(String),
}

impl Outcome {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        codec::decode(bytes, "strong command outcome")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_outcomes_round_trip() {
        let key = DocKey::new(
            statemesh_protocol::Namespace::new("orders").expect("namespace"),
            statemesh_protocol::DocId::new("a1").expect("id"),
        );
        let command = StrongCommand::Write {
            time_ms: 7,
            writes: vec![DocWrite { doc: key.clone(), kind: ChangeKind::Put, changes: vec![vec![1, 2, 3]] }],
            reads: vec![DocRead { doc: key.clone(), seq: 4 }],
        };
        let encoded = command.to_command();
        assert_eq!(encoded.kind, DOC_COMMAND_KIND);
        assert_eq!(StrongCommand::decode(&encoded.payload).expect("decodes"), command);
        let outcome = Outcome::Stale { doc: key };
        assert_eq!(Outcome::decode(&outcome.encode()).expect("decodes"), outcome);
        assert!(StrongCommand::decode(b"\x01garbage").is_err());
    }

    #[test]
    fn a_command_claiming_a_terabyte_of_changes_is_refused_without_allocating_it() {
        // Format byte, `Write` (variant 1), time 0, one write whose namespace string claims
        // 2^40 bytes: fifteen bytes that the plain storage codec would have tried to honour.
        let mut hostile = vec![1, 1, 0, 1, 0xfd];
        hostile.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(StrongCommand::decode(&hostile), Err(StorageError::Corrupt(_))));
        // The same shape claiming 1 GiB of change bytes, after a real document key.
        let key = DocKey::new(
            statemesh_protocol::Namespace::new("orders").expect("namespace"),
            statemesh_protocol::DocId::new("a1").expect("id"),
        );
        let honest = StrongCommand::Write {
            time_ms: 0,
            writes: vec![DocWrite { doc: key, kind: ChangeKind::Put, changes: vec![vec![9]] }],
            reads: vec![],
        };
        let mut hostile = honest.to_command().payload;
        // The last three bytes are: change length 1, the change byte 9, zero reads.
        let at = hostile.len() - 3;
        hostile.truncate(at);
        hostile.push(0xfd);
        hostile.extend_from_slice(&(1u64 << 30).to_le_bytes());
        assert!(matches!(StrongCommand::decode(&hostile), Err(StorageError::Corrupt(_))));
    }

    #[test]
    fn clusters_are_distinct_origins_whose_sealed_records_any_node_can_check() {
        let (a, b): (ClusterId, ClusterId) = (ClusterSeed([1; 32]).into(), ClusterSeed([2; 32]).into());
        assert_ne!(a.origin(), b.origin());
        assert_ne!(a.actor(), b.actor());
        // The seed round-trips, and the secret stays out of debug output.
        let decoded: ClusterId = codec::decode(&codec::encode(&a), "cluster id").expect("decodes");
        assert_eq!(decoded, a);
        assert!(!format!("{a:?}").contains("1, 1"));
        let record = |seq| ChangeRecord {
            id: statemesh_protocol::ChangeId { origin: a.origin(), seq },
            doc: DocKey::new(
                statemesh_protocol::Namespace::new("orders").expect("namespace"),
                statemesh_protocol::DocId::new("a1").expect("id"),
            ),
            kind: ChangeKind::Put,
            time_ms: 0,
            // The verifier takes nothing but real Automerge changes.
            changes: statemesh_protocol::Document::new(a.actor())
                .put(&serde_json::json!({ "n": seq }), 0)
                .expect("put")
                .changes,
            prev: statemesh_protocol::seal::NO_PREV,
            seal: None,
        };
        let mut records = vec![record(1), record(2)];
        a.seal(&mut records);
        let (accepted, refused) = statemesh_protocol::seal::SealVerifier::new().verify(records.clone());
        assert_eq!((accepted.len(), refused.len()), (2, 0));
        // Sealing is deterministic: every member logs byte-identical records.
        let mut again = vec![record(1), record(2)];
        a.seal(&mut again);
        assert_eq!(again, records);
        // Another cluster's key does not vouch for this cluster's origin.
        let mut forged = vec![record(3)];
        b.seal(&mut forged);
        let (accepted, _) = statemesh_protocol::seal::SealVerifier::new().verify(forged);
        assert!(accepted.is_empty());
    }
}
