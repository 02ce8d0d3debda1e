//! Forming the cluster: turning `distributed.voters` into Raft members and initialising them.
//!
//! Voters may be listed by peer id, by address, or both (`/ip4/…/tcp/…/p2p/<id>`). Raft needs
//! both, so an address alone is resolved by dialing it: the network's address book records
//! which peer answered there (or that it was this node itself). Once every voter is resolved,
//! each voter initialises the same membership; openraft accepts that on every initial voter
//! (the first membership entry is identical everywhere), and a node that already belongs to a
//! cluster is left as it is, so a restart never re-forms anything.

use std::str::FromStr;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::watch;

use super::error::StrongResult;
use super::StrongDocs;
use crate::net::{AddressBook, Answered};
use crate::raft::{Initialized, NodeInfo, StrongError};

/// How often unresolved voters are looked up again, and how often progress is logged.
const RESOLVE_EVERY: Duration = Duration::from_millis(250);
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// One entry of `distributed.voters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoterSpec {
    Peer(PeerId),
    Address(Multiaddr),
    Both { peer: PeerId, addr: Multiaddr },
}

impl FromStr for VoterSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(peer) = PeerId::from_str(text) {
            return Ok(VoterSpec::Peer(peer));
        }
        let mut addr: Multiaddr =
            text.parse().map_err(|e| format!("`{text}` is neither a peer id nor a multiaddr: {e}"))?;
        match addr.iter().last() {
            Some(Protocol::P2p(peer)) => {
                addr.pop();
                Ok(VoterSpec::Both { peer, addr })
            }
            _ => Ok(VoterSpec::Address(addr)),
        }
    }
}

impl std::fmt::Display for VoterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VoterSpec::Peer(peer) => write!(f, "{peer}"),
            VoterSpec::Address(addr) => write!(f, "{addr}"),
            VoterSpec::Both { peer, addr } => write!(f, "{addr}/p2p/{peer}"),
        }
    }
}

/// Parses every entry of `distributed.voters`.
pub fn parse_voters(voters: &[String]) -> Result<Vec<VoterSpec>, String> {
    voters.iter().map(|v| v.parse()).collect()
}

/// The member `spec` names, if it can be told yet. `me` is this node's own member info.
pub(super) fn resolve(spec: &VoterSpec, me: &NodeInfo, book: &AddressBook) -> Option<NodeInfo> {
    match spec {
        VoterSpec::Both { peer, addr } => Some(NodeInfo::new(peer.to_string(), addr.to_string())),
        VoterSpec::Peer(peer) if peer.to_string() == me.peer_id => Some(me.clone()),
        VoterSpec::Peer(peer) => book
            .iter()
            .find(|(_, answered)| **answered == Answered::Peer(*peer))
            .map(|(addr, _)| NodeInfo::new(peer.to_string(), addr.clone())),
        VoterSpec::Address(addr) => match book.get(&addr.to_string())? {
            Answered::Own => Some(NodeInfo::new(me.peer_id.clone(), addr.to_string())),
            Answered::Peer(peer) => Some(NodeInfo::new(peer.to_string(), addr.to_string())),
        },
    }
}

/// Resolves every voter (waiting for the network to reach them) and forms the cluster from
/// them if this node is one of them and belongs to no cluster yet. Runs until done; progress
/// is logged.
pub async fn form_cluster(
    docs: StrongDocs,
    voters: Vec<VoterSpec>,
    me: NodeInfo,
    mut book: watch::Receiver<AddressBook>,
) {
    let started = tokio::time::Instant::now();
    let mut next_report = started + REPORT_EVERY;
    loop {
        if !docs.path().status().members.is_empty() {
            tracing::info!("the strong path already belongs to a cluster");
            return;
        }
        let current = book.borrow_and_update().clone();
        let resolved: Vec<Option<NodeInfo>> = voters.iter().map(|spec| resolve(spec, &me, &current)).collect();
        if resolved.iter().all(Option::is_some) {
            let members: Vec<NodeInfo> = resolved.into_iter().flatten().collect();
            if !members.iter().any(|m| m.peer_id == me.peer_id) {
                tracing::info!("this node is not among distributed.voters: it waits to be added as a learner");
                return;
            }
            match initialize(&docs, members).await {
                Ok(()) => return,
                Err(error) => tracing::warn!(%error, "forming the cluster failed; retrying"),
            }
        } else if tokio::time::Instant::now() >= next_report {
            next_report += REPORT_EVERY;
            let missing: Vec<String> =
                voters.iter().zip(&resolved).filter(|(_, r)| r.is_none()).map(|(spec, _)| spec.to_string()).collect();
            tracing::info!(waiting_for = ?missing, elapsed = ?started.elapsed(), "forming the cluster: voters not reached yet");
        }
        let _ = tokio::time::timeout(RESOLVE_EVERY, book.changed()).await;
    }
}

async fn initialize(docs: &StrongDocs, members: Vec<NodeInfo>) -> StrongResult<()> {
    let ids: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    match docs.path().initialize(members).await? {
        Initialized::Formed => tracing::info!(voters = ?ids, "formed the cluster"),
        Initialized::AlreadyFormed => tracing::info!("the cluster was already formed"),
    }
    Ok(())
}

/// `statemesh cluster init`: forms a cluster of `voters` now (this node alone when empty).
pub async fn init_now(
    docs: &StrongDocs,
    voters: &[VoterSpec],
    me: &NodeInfo,
    book: &AddressBook,
) -> StrongResult<Initialized> {
    let mut members = Vec::with_capacity(voters.len().max(1));
    for spec in voters {
        let member = resolve(spec, me, book).ok_or_else(|| StrongError::Invalid(format!(
            "voter {spec} is not reachable yet: list it with its peer id (…/p2p/<id>) or wait until this node has connected to it"
        )))?;
        members.push(member);
    }
    if members.is_empty() {
        members.push(me.clone());
    }
    Ok(docs.path().initialize(members).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_as_peer_address_or_both() {
        let peer = PeerId::random();
        assert_eq!(peer.to_string().parse::<VoterSpec>(), Ok(VoterSpec::Peer(peer)));
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/7701".parse().expect("addr");
        assert_eq!("/ip4/127.0.0.1/tcp/7701".parse::<VoterSpec>(), Ok(VoterSpec::Address(addr.clone())));
        let both = format!("/ip4/127.0.0.1/tcp/7701/p2p/{peer}");
        assert_eq!(both.parse::<VoterSpec>(), Ok(VoterSpec::Both { peer, addr }));
        assert!("node-1".parse::<VoterSpec>().is_err());
    }

    #[test]
    fn addresses_resolve_through_the_address_book() {
        let me = NodeInfo::new(PeerId::random().to_string(), "/ip4/127.0.0.1/tcp/1");
        let other = PeerId::random();
        let mut book = AddressBook::new();
        let own: VoterSpec = "/ip4/127.0.0.1/tcp/1".parse().expect("spec");
        let theirs: VoterSpec = "/dns4/node2/tcp/7701".parse().expect("spec");
        assert_eq!(resolve(&theirs, &me, &book), None, "not dialed yet");
        book.insert("/ip4/127.0.0.1/tcp/1".to_owned(), Answered::Own);
        book.insert("/dns4/node2/tcp/7701".to_owned(), Answered::Peer(other));
        assert_eq!(resolve(&own, &me, &book), Some(me.clone()));
        assert_eq!(resolve(&theirs, &me, &book), Some(NodeInfo::new(other.to_string(), "/dns4/node2/tcp/7701")));
        assert_eq!(
            resolve(&VoterSpec::Peer(other), &me, &book),
            Some(NodeInfo::new(other.to_string(), "/dns4/node2/tcp/7701"))
        );
    }
}
