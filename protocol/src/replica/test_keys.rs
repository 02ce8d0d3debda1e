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
