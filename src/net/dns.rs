//! How `/dns4/...` and `/dns6/...` addresses are resolved: through the system's resolver
//! configuration, asking the name server again on every dial.
//!
//! The resolver libp2p uses (hickory) keeps each answer for its TTL by default. Bootstrap
//! addresses are names of nodes that can come back elsewhere: a compose service restarted
//! with a new address keeps its name, and Docker's DNS answers with a TTL of 600 s. With the
//! cache, a redial after such a restart would reach the old address (or whichever node now
//! holds it) for up to ten minutes. Dials are rare (bootstrap redials with backoff, voters
//! looked up during formation), so asking every time costs one round trip to a local name
//! server per dial and nothing else.

use std::time::Duration;

use libp2p::dns::{ResolverConfig, ResolverOpts};

/// The system's resolver configuration, with answers never reused (see the module doc).
pub(super) fn resolver_settings() -> std::io::Result<(ResolverConfig, ResolverOpts)> {
    let (config, options) = hickory_resolver::system_conf::read_system_conf()?;
    Ok((config, uncached(options)))
}

/// `options` with every answer, found or not found, expiring as soon as it is returned.
fn uncached(mut options: ResolverOpts) -> ResolverOpts {
    options.positive_min_ttl = None;
    options.negative_min_ttl = None;
    options.positive_max_ttl = Some(Duration::ZERO);
    options.negative_max_ttl = Some(Duration::ZERO);
    options
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;

    use hickory_resolver::config::NameServerConfigGroup;
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::TokioResolver;
    use tokio::net::UdpSocket;

    use super::*;

    /// The TTL Docker's embedded DNS server gives its answers.
    const DOCKER_TTL_SECS: u32 = 600;

    /// A name server on loopback that answers every A query with 10.0.0.N and a 600 s TTL,
    /// N counting the queries it has answered (1, 2, ...).
    async fn moving_name_server() -> (SocketAddr, Arc<AtomicU8>) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let addr = socket.local_addr().expect("local addr");
        let answered = Arc::new(AtomicU8::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(reply) = answer_a(&buf[..len], Ipv4Addr::new(10, 0, 0, n)) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        (addr, answered)
    }

    /// A response to `query` (one question) carrying `ip` as its only answer.
    fn answer_a(query: &[u8], ip: Ipv4Addr) -> Option<Vec<u8>> {
        const HEADER: usize = 12;
        // The question: a name (labels up to the zero byte), then type and class.
        let name_end = HEADER + query.get(HEADER..)?.iter().position(|&b| b == 0)? + 1;
        let question = query.get(HEADER..name_end + 4)?;
        let mut reply = Vec::with_capacity(HEADER + question.len() + 16);
        reply.extend_from_slice(&query[..2]); // id
        reply.extend_from_slice(&[0x81, 0x80]); // response, recursion desired and available
        reply.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]); // 1 question, 1 answer
        reply.extend_from_slice(question);
        reply.extend_from_slice(&[0xc0, 0x0c]); // the name, by pointer to the question's
        reply.extend_from_slice(&[0, 1, 0, 1]); // A, IN
        reply.extend_from_slice(&DOCKER_TTL_SECS.to_be_bytes());
        reply.extend_from_slice(&[0, 4]);
        reply.extend_from_slice(&ip.octets());
        Some(reply)
    }

    async fn resolve_twice(options: ResolverOpts) -> (Vec<Ipv4Addr>, u8) {
        let (server, answered) = moving_name_server().await;
        let servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        let resolver = TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            .with_options(options)
            .build();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let lookup = resolver.ipv4_lookup("node2.statemesh.test.").await.expect("lookup");
            seen.extend(lookup.iter().map(|a| a.0));
        }
        (seen, answered.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn every_lookup_asks_the_name_server_again_despite_a_long_ttl() {
        let (seen, answered) = resolve_twice(uncached(ResolverOpts::default())).await;
        assert_eq!(seen, [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(answered, 2);
    }

    #[tokio::test]
    async fn the_default_options_would_keep_the_first_answer() {
        // What `uncached` guards against: without it the second lookup returns the old address.
        let (seen, answered) = resolve_twice(ResolverOpts::default()).await;
        assert_eq!(seen, [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(answered, 1);
    }

    #[test]
    fn only_caching_is_changed_from_the_system_options() {
        let mut system = ResolverOpts::default();
        system.ndots = 3;
        system.attempts = 4;
        let options = uncached(system.clone());
        assert_eq!((options.ndots, options.attempts, options.timeout), (3, 4, system.timeout));
        assert_eq!(options.positive_max_ttl, Some(Duration::ZERO));
        assert_eq!(options.negative_max_ttl, Some(Duration::ZERO));
    }
}
