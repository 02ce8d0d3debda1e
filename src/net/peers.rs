//! What the network layer knows about each peer it has met, for status, lag figures and the
//! mesh view: connected peers, and for a while the ones that went away (shown unreachable,
//! with what was last heard from them).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use statemesh_protocol::VersionVector;

use crate::node::{MeshPeer, NodeSummary, PeerInfo};

/// Peers that went away and are still listed; beyond this, the longest silent is forgotten.
const DEPARTED_MAX: usize = 64;
/// A peer's status requests are answered at most this often.
const STATUS_ANSWER_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
struct Peer {
    address: Multiaddr,
    connected: bool,
    connected_since_ms: i64,
    last_contact_ms: i64,
    last_anti_entropy_ms: Option<i64>,
    /// The version vector the peer sent with its last anti-entropy request.
    their_vv: Option<VersionVector>,
    /// Its latest summary, and when it arrived.
    summary: Option<(NodeSummary, i64)>,
    /// A status request to it is in flight.
    asking: bool,
    /// When its last status request was answered.
    answered: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct PeerTable {
    peers: BTreeMap<PeerId, Peer>,
}

impl PeerTable {
    pub fn connected(&mut self, peer: PeerId, address: Multiaddr, now_ms: i64) {
        let entry = self.peers.entry(peer).or_insert_with(|| Peer {
            address: address.clone(),
            connected: false,
            connected_since_ms: now_ms,
            last_contact_ms: now_ms,
            last_anti_entropy_ms: None,
            their_vv: None,
            summary: None,
            asking: false,
            answered: None,
        });
        if !entry.connected {
            entry.connected = true;
            entry.address = address;
            entry.connected_since_ms = now_ms;
            entry.last_contact_ms = now_ms;
            entry.asking = false;
        }
    }

    /// The peer's last connection closed: it stays listed, unreachable.
    pub fn disconnected(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.connected = false;
            p.asking = false;
        }
        let departed = self.peers.values().filter(|p| !p.connected).count();
        if departed > DEPARTED_MAX {
            let oldest = self.peers.iter().filter(|(_, p)| !p.connected).min_by_key(|(_, p)| p.last_contact_ms);
            if let Some(oldest) = oldest.map(|(id, _)| *id) {
                self.peers.remove(&oldest);
            }
        }
    }

    /// Connected peers.
    pub fn len(&self) -> usize {
        self.peers.values().filter(|p| p.connected).count()
    }

    /// Something arrived from the peer.
    pub fn heard_from(&mut self, peer: &PeerId, now_ms: i64) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.last_contact_ms = p.last_contact_ms.max(now_ms);
        }
    }

    /// The peer asked us for what it lacks: remember what it holds.
    pub fn saw_request(&mut self, peer: &PeerId, have: &VersionVector, now_ms: i64) {
        self.heard_from(peer, now_ms);
        if let Some(p) = self.peers.get_mut(peer) {
            p.their_vv = Some(have.clone());
        }
    }

    /// An anti-entropy page from the peer arrived.
    pub fn synced(&mut self, peer: &PeerId, now_ms: i64) {
        self.heard_from(peer, now_ms);
        if let Some(p) = self.peers.get_mut(peer) {
            p.last_anti_entropy_ms = Some(now_ms);
        }
    }

    /// Connected peers with no status request in flight; each is marked as being asked.
    pub fn take_due_for_status(&mut self) -> Vec<PeerId> {
        self.peers
            .iter_mut()
            .filter(|(_, p)| p.connected && !p.asking)
            .map(|(id, p)| {
                p.asking = true;
                *id
            })
            .collect()
    }

    /// The status request to `peer` ended, with its summary or without.
    pub fn answered_us(&mut self, peer: &PeerId, summary: Option<NodeSummary>, now_ms: i64) {
        if summary.is_some() {
            self.heard_from(peer, now_ms);
        }
        if let Some(p) = self.peers.get_mut(peer) {
            p.asking = false;
            if let Some(summary) = summary {
                p.summary = Some((summary, now_ms));
            }
        }
    }

    /// Whether to answer `peer`'s status request now (at most one per
    /// [`STATUS_ANSWER_EVERY`]); records the answer if so.
    pub fn may_answer(&mut self, peer: &PeerId, now: Instant) -> bool {
        let Some(p) = self.peers.get_mut(peer) else { return false };
        if p.answered.is_some_and(|at| now.duration_since(at) < STATUS_ANSWER_EVERY) {
            return false;
        }
        p.answered = Some(now);
        true
    }

    /// Every listed peer, lags measured against `ours`.
    pub fn view(&self, ours: &VersionVector, now_ms: i64) -> Vec<MeshPeer> {
        self.peers
            .iter()
            .map(|(id, p)| {
                let (we_lack, they_lack) = p.their_vv.as_ref().map_or((0, 0), |theirs| lag(ours, theirs));
                MeshPeer {
                    info: PeerInfo {
                        id: id.to_string(),
                        address: p.address.to_string(),
                        connected_since_ms: p.connected_since_ms,
                        last_anti_entropy_ms: p.last_anti_entropy_ms,
                        changes_we_lack: we_lack,
                        changes_they_lack: they_lack,
                    },
                    connected: p.connected,
                    last_contact_ms: Some(p.last_contact_ms),
                    summary: p.summary.as_ref().map(|(summary, _)| summary.clone()),
                    summary_age_ms: p.summary.as_ref().map(|(_, at)| now_ms.saturating_sub(*at)),
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
