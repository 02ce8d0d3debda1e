//! Building the swarm: TCP, optionally wrapped in the cluster's pre-shared key, then noise
//! for authentication and encryption and yamux for multiplexing, with DNS resolution so
//! `/dns4/...` addresses (compose service names) work, resolved afresh on every dial (see
//! `dns.rs`).
//!
//! Every TCP connection gives up on a peer that acknowledges nothing for
//! [`UNACKNOWLEDGED_LIMIT`]. Without that bound, a connection to a peer that vanished (a
//! partition, a container cut off its network) lives on for the kernel's default of about 15
//! minutes once its send buffer is full: closing it, as the driver does when pings go
//! unanswered, waits for buffered bytes that can never be delivered. Until the close
//! completes the peer counts as connected, its reconnection is not seen as one, and requests
//! routed to the dead connection vanish without an error, which kept a healed node's writes
//! from reaching the others.

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

/// How long sent bytes may stay unacknowledged before the kernel drops the connection
/// (`TCP_USER_TIMEOUT`). Pings go every 2 s, so a live connection is never idle that long,
/// and the driver closes one whose ping goes 5 s unanswered; this only makes that close
/// finish.
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(10);

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
        // Substreams are opened with multistream-select's lazy variant: the opener proposes
        // its protocol and sends the request right behind the proposal instead of waiting a
        // round trip for the answer (every Raft message and forwarded write opens a
        // substream). A peer that does not speak the protocol refuses it and the request
        // fails as it would have, one round trip later.
        .with_swarm_config(|config| {
            config.with_idle_connection_timeout(idle_timeout).with_substream_upgrade_protocol_override(Version::V1Lazy)
        })
        .build();
    Ok(swarm)
}

/// TCP (inside the cluster key when there is one), noise and yamux: every connection a node
/// makes or accepts.
pub fn authenticated_tcp(
    key: &Keypair,
    psk: Option<PreSharedKey>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let noise = noise::Config::new(key)?;
    let tcp = tcp_transport();
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

/// TCP as every connection uses it: no Nagle delay, a bounded wait for acknowledgements.
fn tcp_transport() -> Boxed<tcp::tokio::TcpStream> {
    tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .map(|stream, _| {
            limit_unacknowledged_time(&stream.0, UNACKNOWLEDGED_LIMIT);
            stream
        })
        .boxed()
}

/// Sets `TCP_USER_TIMEOUT` on a connected socket. Where that fails (or the platform lacks
/// the option) the connection still works, with the kernel's default.
fn limit_unacknowledged_time(stream: &tokio::net::TcpStream, limit: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(limit)) {
        tracing::debug!(%error, "cannot bound the time unacknowledged data may wait (TCP_USER_TIMEOUT)");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (stream, limit);
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use futures::StreamExt;
    use libp2p::core::transport::{DialOpts, ListenerId, PortUse, TransportEvent};
    use libp2p::core::Endpoint;

    use super::*;

    #[tokio::test]
    async fn both_ends_of_a_connection_give_up_on_a_peer_that_acknowledges_nothing() {
        let mut listener = tcp_transport();
        listener.listen_on(ListenerId::next(), "/ip4/127.0.0.1/tcp/0".parse().expect("address")).expect("listen");
        let address = loop {
            if let TransportEvent::NewAddress { listen_addr, .. } = listener.select_next_some().await {
                break listen_addr;
            }
        };
        let mut dialer = tcp_transport();
        let dialing = dialer.dial(address, DialOpts { role: Endpoint::Dialer, port_use: PortUse::New }).expect("dial");
        let accepting = async {
            loop {
                if let TransportEvent::Incoming { upgrade, .. } = listener.select_next_some().await {
                    break upgrade.await;
                }
            }
        };
        let (dialed, accepted) = futures::join!(dialing, accepting);
        for stream in [dialed.expect("dialed"), accepted.expect("accepted")] {
            let limit = socket2::SockRef::from(&stream.0).tcp_user_timeout().expect("read TCP_USER_TIMEOUT");
            assert_eq!(limit, Some(UNACKNOWLEDGED_LIMIT));
        }
    }
}
