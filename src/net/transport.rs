//! Building the swarm: TCP, optionally wrapped in the cluster's pre-shared key, then noise
//! for authentication and encryption and yamux for multiplexing, with DNS resolution so
//! `/dns4/...` addresses (compose service names) work, resolved afresh on every dial (see
//! `dns.rs`).

use std::time::Duration;

use futures::future::Either;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport};
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::{noise, tcp, yamux, PeerId, Swarm, SwarmBuilder};

use super::behaviour::{Behaviour, BehaviourSettings};
use super::dns;

type BoxedError = Box<dyn std::error::Error + Send + Sync>;

/// How long dialing (TCP connect plus the handshakes) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn build_swarm(
    key: Keypair,
    psk: Option<PreSharedKey>,
    settings: &BehaviourSettings<'_>,
    idle_timeout: Duration,
) -> Result<Swarm<Behaviour>, String> {
    let (dns_config, dns_options) = dns::resolver_settings().map_err(|e| format!("DNS resolver: {e}"))?;
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| authenticated_tcp(key, psk).map_err(BoxedError::from))
        .map_err(|e| format!("transport: {e}"))?
        .with_dns_config(dns_config, dns_options)
        .with_behaviour(|key| Behaviour::new(key, settings).map_err(BoxedError::from))
        .map_err(|e| format!("protocols: {e}"))?
        .with_swarm_config(|config| config.with_idle_connection_timeout(idle_timeout))
        .build();
    Ok(swarm)
}

fn authenticated_tcp(
    key: &Keypair,
    psk: Option<PreSharedKey>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let noise = noise::Config::new(key)?;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    // With a key, every byte (the noise handshake included) travels inside the private network.
    let base = match psk {
        Some(psk) => tcp
            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
            .map(|socket, _| Either::Left(socket))
            .boxed(),
        None => tcp.map(|socket, _| Either::Right(socket)).boxed(),
    };
    Ok(base
        .upgrade(Version::V1)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .timeout(CONNECT_TIMEOUT)
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}
