//! Deterministic node identities for the replica's tests: node `i` signs with a key made
//! from a fixed seed, so its records can be sealed like a real node's.

use std::sync::OnceLock;

use libp2p_identity::ed25519;

use crate::ids::NodeId;
use crate::seal::{key_from_seed, node_id_of};

const NODES: usize = 16;

fn nodes() -> &'static [(NodeId, ed25519::Keypair)] {
    static NODES_KEYS: OnceLock<Vec<(NodeId, ed25519::Keypair)>> = OnceLock::new();
    NODES_KEYS.get_or_init(|| {
        (0..NODES)
            .map(|i| {
                let key = key_from_seed([i as u8 + 1; 32]);
                (node_id_of(&key.public()), key)
            })
            .collect()
    })
}

pub fn node(i: usize) -> NodeId {
    nodes()[i].0.clone()
}

pub fn key_of(origin: &NodeId) -> ed25519::Keypair {
    nodes().iter().find(|(id, _)| id == origin).map(|(_, key)| key.clone()).expect("a test node")
}

/// A real Automerge change (the verifier refuses anything else in a record), the same for
/// the same `n`.
pub fn change_chunk(n: u64) -> Vec<u8> {
    use automerge::transaction::{CommitOptions, Transactable};
    let mut doc = automerge::AutoCommit::new().with_actor(automerge::ActorId::from(vec![7u8; 16]));
    doc.put(automerge::ROOT, "n", n).expect("put");
    doc.commit_with(CommitOptions::default().with_time(0));
    doc.get_changes(&[]).last().expect("a change").raw_bytes().to_vec()
}
