//! Replication over libp2p: the shell around the sans-IO replica in `statemesh-protocol`.
//!
//! The replica decides what to send, to whom and when, and what to apply; this module only
//! carries those decisions out: TCP with noise and yamux (inside the cluster's pre-shared key
//! when one is set), gossipsub for pushing new changes, request-response for anti-entropy
//! pages, identify and ping, mDNS discovery and bootstrap redials with backoff. Every
//! message is a versioned wire envelope (see `protocol/PROTOCOL.md`) decoded under explicit
//! limits; a peer that keeps sending invalid ones is disconnected and banned for a while.

mod admission;
mod behaviour;
pub(crate) mod codec;
mod dialer;
mod dns;
mod driver;
mod peers;
mod raft_transport;
mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, Multiaddr};
use rand::SeedableRng;
use statemesh_protocol::replica::{Replica, ReplicaConfig};
use statemesh_protocol::wire::WireLimits;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::node::Node;
use crate::raft::RaftTransport;
pub use admission::{generate_key, stored_key_hex, Admission, AdmissionMode, KeySource, CLUSTER_KEY_FILE};
use behaviour::BehaviourSettings;
use dialer::Dialer;
pub use dialer::{AddressBook, Answered};
use driver::{Driver, DriverParts};
use raft_transport::{HandlerSlot, Libp2pRaftTransport, RAFT_COMMANDS_CAPACITY};
pub use raft_transport::{RaftHandler, RAFT_PROTOCOL};
pub use transport::authenticated_tcp;

/// Gossip topic shared by every node of a cluster (the pre-shared key separates clusters).
pub const GOSSIP_TOPIC: &str = "statemesh/changes/1";
/// How long `start` waits for its listeners to bind.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// An anti-entropy request unanswered for this long is given up (and retried later).
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// Records per anti-entropy page. For changes of a few hundred bytes, the page's byte bound
/// ([`log_page_bytes`]) is reached first.
const PAGE_RECORDS: u32 = 16_384;
/// Received records held out of order at most (beyond them, anti-entropy refetches).
const HELD_RECORDS_MAX: usize = 100_000;
/// Documents per state-transfer page (also bounded by bytes).
const PAGE_DOCS: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: String, reason: String },
}

/// Bytes of records per anti-entropy page: `max_message_bytes` less a sixteenth. Records travel
/// encoded as they are stored (less one format byte each), so what is left covers the message's
/// framing and its floors (at most 140 bytes per origin): with the default 4 MiB, the decoded
/// page stays within `max_message_bytes` up to about 1,800 origins with pruned logs (and the
/// limit a receiver applies to anti-entropy responses is larger still, see `start`).
/// Pages are as large as that allows because each message is compressed on its own: the
/// compressor starts every page without the context of the previous ones, which cost 15-20 %
/// in bytes when a heal's changes were cut into pages of half this size.
fn log_page_bytes(max_message_bytes: usize) -> usize {
    max_message_bytes - max_message_bytes / 16
}

/// `addr` without a trailing `/p2p/<peer id>`.
pub fn without_peer_id(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    if matches!(addr.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

/// The running replication layer.
pub struct Network {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    listen_addrs: Vec<Multiaddr>,
    raft_transport: Libp2pRaftTransport,
    raft_handler: HandlerSlot,
    address_book: watch::Receiver<AddressBook>,
}

impl Network {
    /// Starts listening, dials the bootstrap peers and runs replication for `node` until
    /// [`Network::shutdown`].
    pub async fn start(node: Node, config: &Config) -> Result<Self, NetError> {
        let p2p = &config.p2p;
        let admission = Admission::resolve(&config.security, &config.node.data_dir).map_err(NetError::Setup)?;
        admission.log(&config.node.data_dir);
        let max_message_bytes = usize::try_from(p2p.max_message_bytes).unwrap_or(usize::MAX);
        // A single record can be as large as the largest request body; a sync response must
        // still be able to carry it.
        let max_body = usize::try_from(config.api.max_body_bytes).unwrap_or(usize::MAX);
        let sync_message_bytes = max_message_bytes.max(max_body.saturating_mul(2).saturating_add(1 << 20));
        let settings = BehaviourSettings {
            allowed: admission.allowlist.peers(),
            max_connections: p2p.max_connections,
            max_message_bytes,
            sync_message_bytes,
            sync_timeout: SYNC_TIMEOUT,
            mdns: p2p.mdns,
        };
        let mut swarm =
            transport::build_swarm(node.identity().keypair().clone(), admission.psk, &settings, p2p.idle_timeout)
                .map_err(NetError::Setup)?;
        let topic = gossipsub::IdentTopic::new(GOSSIP_TOPIC);
        swarm
            .behaviour_mut()
            .gossip
            .subscribe(&topic)
            .map_err(|e| NetError::Setup(format!("gossip subscription: {e}")))?;
        let listen_addrs = listen(&mut swarm, &p2p.listen).await?;
        let mut bootstrap = p2p
            .bootstrap
            .iter()
            .map(|a| a.parse::<Multiaddr>().map_err(|e| NetError::Setup(format!("p2p.bootstrap `{a}`: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        // Voters listed by address are dialed too: formation must learn who answers there.
        if config.distributed.enabled {
            for voter in &config.distributed.voters {
                if let Ok(addr) = voter.parse::<Multiaddr>() {
                    if !bootstrap.contains(&addr) {
                        bootstrap.push(addr);
                    }
                }
            }
        }
        // Subscribe first: every commit is then either in the version vector read next or
        // reported through the subscription.
        let local_records = node.subscribe_local_records();
        let stored_records = node.subscribe_stored_records();
        let replica = Replica::new(
            node.node_id().clone(),
            node.version_vector(),
            ReplicaConfig {
                anti_entropy_interval_ms: i64::try_from(p2p.anti_entropy_interval.as_millis()).unwrap_or(i64::MAX),
                sync_timeout_ms: i64::try_from(SYNC_TIMEOUT.as_millis()).unwrap_or(i64::MAX),
                page_records: PAGE_RECORDS,
                held_records_max: HELD_RECORDS_MAX,
                page_docs: PAGE_DOCS,
            },
        );
        let (commands_tx, commands) = tokio::sync::mpsc::channel(RAFT_COMMANDS_CAPACITY);
        let raft_handler = HandlerSlot::default();
        let mut dialer = Dialer::new(bootstrap, p2p.reconnect_backoff_max, Instant::now());
        let own: Vec<Multiaddr> = listen_addrs.iter().map(without_peer_id).collect();
        dialer.mark_own(&own);
        let (address_book, address_book_rx) = watch::channel(dialer.book(&own));
        let driver = Driver::new(DriverParts {
            node: node.clone(),
            swarm,
            replica,
            rng: rand::rngs::StdRng::from_entropy(),
            topic,
            wire_limits: WireLimits { message_bytes_max: sync_message_bytes },
            log_page_bytes: log_page_bytes(max_message_bytes),
            docs_page_bytes: max_message_bytes / 2,
            gossip_window: p2p.gossip_batch_window,
            dialer,
            commands,
            raft_handler: raft_handler.clone(),
            local_records,
            stored_records,
            address_book,
            own_addrs: own,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(driver.run(stopped));
        tracing::info!(peer_id = %node.node_id(), addresses = ?listen_addrs, "replication started");
        Ok(Self {
            stop,
            task,
            listen_addrs,
            raft_transport: Libp2pRaftTransport::new(commands_tx),
            raft_handler,
            address_book: address_book_rx,
        })
    }

    /// The strong path's transport over this network.
    pub fn raft_transport(&self) -> Arc<dyn RaftTransport> {
        Arc::new(self.raft_transport.clone())
    }

    /// Routes inbound Raft requests to `handler` (once; later calls are ignored).
    pub fn serve_raft(&self, handler: Arc<dyn RaftHandler>) {
        let _ = self.raft_handler.set(handler);
    }

    /// The addresses actually bound (port 0 resolved), each ending in `/p2p/<peer id>`.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// Who answered at each dialed bootstrap (or voter) address, as it becomes known.
    pub fn address_book(&self) -> watch::Receiver<AddressBook> {
        self.address_book.clone()
    }

    /// Stops replication and closes every connection.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds every configured address and waits until each reports where it listens.
async fn listen(
    swarm: &mut libp2p::Swarm<behaviour::Behaviour>,
    addresses: &[String],
) -> Result<Vec<Multiaddr>, NetError> {
    let local = *swarm.local_peer_id();
    let mut pending = 0;
    for address in addresses {
        let addr: Multiaddr = address
            .parse()
            .map_err(|e| NetError::Listen { address: address.clone(), reason: format!("not a multiaddr: {e}") })?;
        swarm.listen_on(addr).map_err(|e| NetError::Listen { address: address.clone(), reason: e.to_string() })?;
        pending += 1;
    }
    let mut bound = Vec::new();
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while bound.len() < pending {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some()).await.map_err(|_| {
            NetError::Listen { address: addresses.join(", "), reason: "timed out waiting to listen".to_string() }
        })?;
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                bound.push(address.with_p2p(local).unwrap_or_else(|addr| addr));
            }
            SwarmEvent::ListenerError { error, .. } | SwarmEvent::ListenerClosed { reason: Err(error), .. } => {
                return Err(NetError::Listen { address: addresses.join(", "), reason: error.to_string() });
            }
            _ => {}
        }
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use statemesh_protocol::limits::NODE_ID_BYTES_MAX;
    use statemesh_protocol::wire::{self, Message, SyncResponse, WireLimits};
    use statemesh_protocol::{ChangeId, ChangeKind, ChangeRecord, DocId, DocKey, Namespace, NodeId};

    use super::log_page_bytes;

    fn record(origin: &NodeId, seq: u64) -> ChangeRecord {
        ChangeRecord {
            id: ChangeId { origin: origin.clone(), seq },
            doc: DocKey::new(Namespace::new("bench").expect("namespace"), DocId::new("doc").expect("doc id")),
            kind: ChangeKind::Patch,
            time_ms: 1_764_000_000_000,
            changes: vec![seq.to_le_bytes().repeat(40)],
            prev: [seq as u8; 32],
            seal: None,
        }
    }

    fn origin(i: usize) -> NodeId {
        let id = format!("{i}{}", "o".repeat(NODE_ID_BYTES_MAX));
        NodeId::new(&id[..NODE_ID_BYTES_MAX]).expect("node id")
    }

    #[test]
    fn a_full_log_page_with_a_thousand_floors_decodes_within_max_message_bytes() {
        let max = 4 << 20;
        let budget = log_page_bytes(max);
        let writer = origin(0);
        // Filled as the node's log reader fills a page: stored record bytes up to the budget.
        let (mut records, mut stored) = (Vec::new(), 0);
        loop {
            let next = record(&writer, records.len() as u64 + 1);
            let len = next.encode().len();
            if stored + len > budget {
                break;
            }
            stored += len;
            records.push(next);
        }
        assert!(budget - stored < 400, "the page is full");
        let floors = (1..=1000).map(|i| (origin(i), 7)).collect();
        let page = Message::SyncResponse(SyncResponse { records, more: true, floors });
        let decoded = wire::decode(&wire::encode(&page), &WireLimits { message_bytes_max: max });
        assert_eq!(decoded.expect("decodes within max_message_bytes"), page);
    }
}
