//! The libp2p protocols a node runs, composed into one behaviour.
//!
//! - `admission` / `bans`: the allowlist (when configured) and the penalty box; both refuse a
//!   connection before any other protocol sees it.
//! - `limits`: caps on established and pending connections.
//! - `identify`, `ping`: who the peer is and whether the connection is alive.
//! - `gossip`: gossipsub, one topic per cluster, for the low-latency push of new changes;
//!   a message is forwarded only once this node has validated it.
//! - `sync`: request-response for anti-entropy pages.
//! - `raft`: request-response for the strong path's Raft RPCs.
//! - `status`: request-response for each peer's summary of itself (the mesh view); any
//!   admitted peer may ask, at most twice a second.
//! - `mdns`: discovery on the local network (optional).

use std::time::Duration;

use libp2p::allow_block_list::{self, AllowedPeers, BlockedPeers};
use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{connection_limits, gossipsub, identify, mdns, ping, request_response};

use super::codec::{EnvelopeCodec, SYNC_PROTOCOL};
use super::raft_transport::RAFT_PROTOCOL;

/// Raft calls carry their own, shorter timeouts; this only reclaims abandoned streams.
const RAFT_STREAM_TIMEOUT: Duration = Duration::from_secs(30);

const IDENTIFY_PROTOCOL: &str = "/statemesh/id/1";
/// A node's summary of itself (JSON, see `crate::node::NodeSummary`), asked with
/// [`STATUS_REQUEST`].
pub const STATUS_PROTOCOL: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/statemesh/status/1");
pub const STATUS_REQUEST: &[u8] = b"{}";
/// The largest summary accepted: room for a version vector of about 500 origins.
const STATUS_MESSAGE_MAX: usize = 64 * 1024;
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection whose ping goes unanswered is closed (see the driver), so a peer that went
/// away without closing (killed, cut off) is noticed within seconds and redialed, rather than
/// when the kernel's TCP timeout finally fires many minutes later.
const PING_INTERVAL: Duration = Duration::from_secs(2);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How often mDNS asks the local network who is there once it has had an answer. Multicast
/// is lossy and libp2p stops its quick initial probes at the first answer, so with its
/// default (5 min) a node whose answer was lost stayed unfound for minutes; one small query
/// every 10 s, answered by each node, finds it within seconds.
const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(10);

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub admission: Toggle<allow_block_list::Behaviour<AllowedPeers>>,
    pub bans: allow_block_list::Behaviour<BlockedPeers>,
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub gossip: gossipsub::Behaviour,
    pub sync: request_response::Behaviour<EnvelopeCodec>,
    pub raft: request_response::Behaviour<EnvelopeCodec>,
    pub status: request_response::Behaviour<EnvelopeCodec>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// What the behaviour is built from.
pub struct BehaviourSettings<'a> {
    pub allowed: Option<&'a [libp2p::PeerId]>,
    pub max_connections: u32,
    pub max_message_bytes: usize,
    pub sync_message_bytes: usize,
    pub sync_timeout: Duration,
    pub mdns: bool,
}

impl Behaviour {
    pub fn new(key: &Keypair, settings: &BehaviourSettings<'_>) -> Result<Self, String> {
        let peer_id = key.public().to_peer_id();
        let admission = settings.allowed.map(|peers| {
            let mut allow = allow_block_list::Behaviour::<AllowedPeers>::default();
            for peer in peers {
                allow.allow_peer(*peer);
            }
            allow
        });
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(settings.max_connections))
            .with_max_established_per_peer(Some(2))
            .with_max_pending_incoming(Some(settings.max_connections.min(256)))
            .with_max_pending_outgoing(Some(settings.max_connections.min(256)));
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                .with_agent_version(format!("statemesh/{}", env!("CARGO_PKG_VERSION"))),
        );
        let gossip_config = gossipsub::ConfigBuilder::default()
            .max_transmit_size(settings.max_message_bytes)
            .validation_mode(gossipsub::ValidationMode::Strict)
            // Nothing is forwarded before the driver has decoded and checked it: an invalid
            // message stops at the first honest node and counts against whoever sent it.
            .validate_messages()
            .heartbeat_interval(Duration::from_millis(500))
            .build()
            .map_err(|e| format!("gossipsub configuration: {e}"))?;
        let gossip = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config)
            .map_err(|e| format!("gossipsub: {e}"))?;
        let sync = request_response::Behaviour::with_codec(
            EnvelopeCodec::new(settings.sync_message_bytes),
            [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(settings.sync_timeout),
        );
        let raft = request_response::Behaviour::with_codec(
            EnvelopeCodec::new(settings.sync_message_bytes),
            [(RAFT_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(RAFT_STREAM_TIMEOUT),
        );
        let status = request_response::Behaviour::with_codec(
            EnvelopeCodec::new(STATUS_MESSAGE_MAX),
            [(STATUS_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(STATUS_TIMEOUT),
        );
        let mdns = if settings.mdns {
            Some(
                mdns::tokio::Behaviour::new(
                    mdns::Config { query_interval: MDNS_QUERY_INTERVAL, ..mdns::Config::default() },
                    peer_id,
                )
                .map_err(|e| format!("mdns: {e}"))?,
            )
        } else {
            None
        };
        Ok(Self {
            admission: admission.into(),
            bans: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            identify,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL).with_timeout(PING_TIMEOUT)),
            gossip,
            sync,
            raft,
            status,
            mdns: mdns.into(),
        })
    }
}
