//! What the network layer knows about each connected peer, for status and lag figures.

use std::collections::BTreeMap;

use libp2p::{Multiaddr, PeerId};
use statemesh_protocol::VersionVector;

use crate::node::PeerInfo;

#[derive(Debug, Clone)]
struct Peer {
    address: Multiaddr,
    connected_since_ms: i64,
    last_anti_entropy_ms: Option<i64>,
    /// The version vector the peer sent with its last anti-entropy request.
    their_vv: Option<VersionVector>,
}

#[derive(Debug, Default)]
pub struct PeerTable {
    peers: BTreeMap<PeerId, Peer>,
}

impl PeerTable {
    pub fn connected(&mut self, peer: PeerId, address: Multiaddr, now_ms: i64) {
        self.peers.entry(peer).or_insert(Peer {
            address,
            connected_since_ms: now_ms,
            last_anti_entropy_ms: None,
            their_vv: None,
        });
    }

    pub fn disconnected(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// The peer asked us for what it lacks: remember what it holds.
    pub fn saw_request(&mut self, peer: &PeerId, have: &VersionVector) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.their_vv = Some(have.clone());
        }
    }

    /// An anti-entropy page from the peer arrived.
    pub fn synced(&mut self, peer: &PeerId, now_ms: i64) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.last_anti_entropy_ms = Some(now_ms);
        }
    }

    /// The status view, lags measured against `ours`.
    pub fn view(&self, ours: &VersionVector) -> Vec<PeerInfo> {
        self.peers
            .iter()
            .map(|(id, p)| {
                let (we_lack, they_lack) = p.their_vv.as_ref().map_or((0, 0), |theirs| lag(ours, theirs));
                PeerInfo {
                    id: id.to_string(),
                    address: p.address.to_string(),
                    connected_since_ms: p.connected_since_ms,
                    last_anti_entropy_ms: p.last_anti_entropy_ms,
                    changes_we_lack: we_lack,
                    changes_they_lack: they_lack,
                }
            })
            .collect()
    }
}

/// (changes `theirs` has that `ours` lacks, changes `ours` has that `theirs` lacks).
fn lag(ours: &VersionVector, theirs: &VersionVector) -> (u64, u64) {
    let we_lack = theirs.iter().map(|(origin, seq)| seq.saturating_sub(ours.get(origin))).sum();
    let they_lack = ours.iter().map(|(origin, seq)| seq.saturating_sub(theirs.get(origin))).sum();
    (we_lack, they_lack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use statemesh_protocol::NodeId;

    #[test]
    fn lag_counts_changes_missing_on_each_side() {
        let a = NodeId::new("a").expect("id");
        let b = NodeId::new("b").expect("id");
        let mut ours = VersionVector::new();
        ours.advance(&a, 10);
        let mut theirs = VersionVector::new();
        theirs.advance(&a, 4);
        theirs.advance(&b, 7);
        assert_eq!(lag(&ours, &theirs), (7, 6));
    }
}
