//! Helpers for the integration tests and benchmarks: in-process replicating nodes on real
//! loopback sockets, and convergence checks. Not part of the node itself.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use statemesh_protocol::{DocId, DocKey, Namespace, VersionVector};

use crate::config::{Config, StorageType};
use crate::net::Network;
use crate::node::{Node, Precondition};

/// A node with its replication layer (which can be stopped and restarted to cut it off).
pub struct Member {
    pub node: Node,
    pub config: Config,
    net: Option<Network>,
    /// Where it last listened, so a reconnect comes back on the same ports and peers that
    /// knew it find it again.
    last_listen: Vec<String>,
}

impl Member {
    /// Opens a node from `config` (not yet replicating).
    pub fn open(config: Config) -> Self {
        let node = Node::open(&config).expect("node opens");
        Self { node, config, net: None, last_listen: Vec::new() }
    }

    /// Starts replication, bootstrapping from `peers`' listen addresses.
    pub async fn connect(&mut self, peers: &[String]) {
        assert!(self.net.is_none(), "already replicating");
        let mut config = self.config.clone();
        config.p2p.bootstrap = peers.to_vec();
        if !self.last_listen.is_empty() {
            config.p2p.listen = self.last_listen.clone();
        }
        let net = Network::start(self.node.clone(), &config).await.expect("replication starts");
        self.last_listen = net
            .listen_addrs()
            .iter()
            .map(|a| a.to_string().split("/p2p/").next().unwrap_or_default().to_string())
            .collect();
        self.net = Some(net);
    }

    /// Stops replication: the node keeps serving locally, cut off from its peers.
    pub async fn disconnect(&mut self) {
        if let Some(net) = self.net.take() {
            net.shutdown().await;
        }
    }

    /// The running replication layer, if any.
    pub fn network(&self) -> Option<&Network> {
        self.net.as_ref()
    }

    /// Where peers can reach this node (empty when not replicating).
    pub fn addrs(&self) -> Vec<String> {
        self.net.as_ref().map(|n| n.listen_addrs().iter().map(ToString::to_string).collect()).unwrap_or_default()
    }

    /// Stops replication and the node (for a restart from the same data directory).
    pub async fn stop(mut self) -> Config {
        self.disconnect().await;
        self.node.shutdown().await.expect("clean shutdown");
        self.config
    }
}

/// The cluster key test nodes share (a node without it cannot reach them).
pub const TEST_CLUSTER_KEY: &str = "7e57c1a55e7e57c1a55e7e57c1a55e7e57c1a55e7e57c1a55e7e57c1a55e7e57";

/// A configuration for one test node: loopback only, no LAN discovery, fast anti-entropy,
/// the test cluster's key.
pub fn member_config(data_dir: Option<&Path>) -> Config {
    let mut config = Config::default();
    config.security.psk = Some(TEST_CLUSTER_KEY.to_string());
    match data_dir {
        Some(dir) => config.node.data_dir = dir.to_path_buf(),
        None => config.storage.kind = StorageType::Memory,
    }
    config.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".to_string()];
    config.p2p.mdns = false;
    config.p2p.anti_entropy_interval = Duration::from_millis(200);
    config.p2p.reconnect_backoff_max = Duration::from_secs(1);
    config
}

/// Strong-path timings short enough for tests on loopback (elections in well under a second).
pub fn quick_raft_settings() -> crate::raft::RaftSettings {
    crate::raft::RaftSettings {
        heartbeat_interval: Duration::from_millis(50),
        election_timeout_min: Duration::from_millis(300),
        election_timeout_max: Duration::from_millis(600),
        request_timeout: Duration::from_secs(3),
        quorum_ack_max: Duration::from_millis(600),
        ..crate::raft::RaftSettings::default()
    }
}

/// Starts `count` in-memory members, each bootstrapping from the first.
pub async fn memory_cluster(count: usize) -> Vec<Member> {
    let mut members: Vec<Member> = (0..count).map(|_| Member::open(member_config(None))).collect();
    members[0].connect(&[]).await;
    let seed = members[0].addrs();
    for member in members.iter_mut().skip(1) {
        member.connect(&seed).await;
    }
    members
}

pub fn key(namespace: &str, id: &str) -> DocKey {
    DocKey::new(Namespace::new(namespace).expect("namespace"), DocId::new(id).expect("doc id"))
}

pub async fn patch(node: &Node, key: &DocKey, patch: Value) {
    node.patch(key, &patch, &Precondition::None).await.expect("patch");
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether every node holds the same version vector.
pub fn same_version_vectors(nodes: &[&Node]) -> bool {
    let first: VersionVector = nodes[0].version_vector();
    nodes.iter().all(|n| n.version_vector() == first)
}

/// Asserts every node has identical heads and JSON for each of `keys`.
pub async fn assert_identical(nodes: &[&Node], keys: &[DocKey]) {
    for key in keys {
        let first = nodes[0].get(key).await.expect("document on the first node");
        for (i, node) in nodes.iter().enumerate().skip(1) {
            let other = node.get(key).await.unwrap_or_else(|e| panic!("{key} on node {i}: {e}"));
            assert_eq!(other.version, first.version, "{key}: heads differ on node {i}");
            assert_eq!(other.json, first.json, "{key}: JSON differs on node {i}");
        }
    }
}

/// Sends each payload as an anti-entropy request to `target` (a multiaddr ending in
/// `/p2p/<peer id>`) from a throwaway identity holding the test cluster's key, one after
/// another, and returns each outcome: the response bytes, or why there was none. For testing
/// how a node treats bad input from a peer it admits.
pub async fn send_raw_requests(target: &str, payloads: Vec<Vec<u8>>) -> Vec<Result<Vec<u8>, String>> {
    send_raw(target, crate::net::codec::SYNC_PROTOCOL, payloads).await
}

/// [`send_raw_requests`] on the strong path's Raft protocol.
pub async fn send_raw_raft_requests(target: &str, payloads: Vec<Vec<u8>>) -> Vec<Result<Vec<u8>, String>> {
    send_raw(target, crate::net::RAFT_PROTOCOL, payloads).await
}

/// A Raft request for the node whose peer id is `target` (a read-index query, the kind
/// that any member may send), as the strong path encodes it.
pub fn raft_read_index_request(target: &str) -> Vec<u8> {
    crate::raft::read_index_request(target)
}

/// Publishes each payload on the gossip topic from a throwaway identity holding the test
/// cluster's key, connected to `target` alone, once `target` has subscribed; then keeps the
/// connection up for `linger` so the payloads are delivered. Returns how many were published.
pub async fn publish_raw_gossip(target: &str, payloads: Vec<Vec<u8>>, linger: Duration) -> usize {
    use futures::StreamExt;
    use libp2p::gossipsub;
    use libp2p::swarm::SwarmEvent;

    let addr: libp2p::Multiaddr = target.parse().expect("target multiaddr");
    let mut swarm = hostile_peer(|key| {
        let config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(200))
            .build()
            .expect("gossipsub configuration");
        gossipsub::Behaviour::<gossipsub::IdentityTransform>::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            config,
        )
        .expect("gossipsub")
    });
    let topic = gossipsub::IdentTopic::new(crate::net::GOSSIP_TOPIC);
    swarm.behaviour_mut().subscribe(&topic).expect("subscribe");
    swarm.dial(addr).expect("dial");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Err(_) => panic!("{target} did not subscribe to the gossip topic within 10 s"),
            Ok(SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. })) => break,
            Ok(_) => {}
        }
    }
    let mut published = 0;
    for payload in payloads {
        if swarm.behaviour_mut().publish(topic.clone(), payload).is_ok() {
            published += 1;
        }
    }
    let _ = tokio::time::timeout(linger, async {
        loop {
            swarm.select_next_some().await;
        }
    })
    .await;
    published
}

/// A swarm of a throwaway identity on the node's own transport, holding the test cluster's
/// key (a peer the nodes admit), running `behaviour`.
fn hostile_peer<B: libp2p::swarm::NetworkBehaviour>(
    behaviour: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> libp2p::Swarm<B> {
    let security = crate::config::SecurityConfig { psk: Some(TEST_CLUSTER_KEY.to_string()), ..Default::default() };
    let psk = crate::net::Admission::resolve(&security, Path::new(".")).expect("the test key").psk;
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| {
            crate::net::authenticated_tcp(key, psk).map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        })
        .expect("transport")
        .with_behaviour(|key| behaviour(key))
        .expect("behaviour")
        .build()
}

async fn send_raw(
    target: &str,
    protocol: libp2p::StreamProtocol,
    payloads: Vec<Vec<u8>>,
) -> Vec<Result<Vec<u8>, String>> {
    use futures::StreamExt;
    use libp2p::multiaddr::Protocol;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;

    use crate::net::codec::EnvelopeCodec;

    let addr: libp2p::Multiaddr = target.parse().expect("target multiaddr");
    let Some(Protocol::P2p(peer)) = addr.iter().last() else { panic!("target has no /p2p/ peer id") };
    let mut swarm = hostile_peer(|_| {
        request_response::Behaviour::with_codec(
            EnvelopeCodec::new(64 << 20),
            [(protocol, ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
        )
    });
    swarm.dial(addr).expect("dial");
    let mut outcomes = Vec::new();
    for payload in payloads {
        swarm.behaviour_mut().send_request(&peer, payload);
        let outcome = loop {
            let event = tokio::time::timeout(Duration::from_secs(10), swarm.select_next_some()).await;
            match event {
                Err(_) => break Err("no answer within 10 s".to_string()),
                Ok(SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                })) => break Ok(response),
                Ok(SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. })) => {
                    break Err(error.to_string())
                }
                Ok(_) => {}
            }
        };
        outcomes.push(outcome);
    }
    outcomes
}
