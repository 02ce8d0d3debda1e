//! Keeping connections to the bootstrap peers: dial at start, redial with exponential
//! backoff (capped by `p2p.reconnect_backoff_max`) whenever a connection fails or closes.
//!
//! The dialer also learns who answers at each address ([`AddressBook`]): the strong path's
//! voters may be configured by address alone, and their peer ids are what Raft needs.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

const BACKOFF_MIN: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Dial at or after this time.
    Waiting {
        at: Instant,
    },
    Dialing,
    Connected {
        peer: PeerId,
    },
    /// The address is this node's own: never dial it.
    Own,
}

#[derive(Debug)]
struct Target {
    addr: Multiaddr,
    state: State,
    backoff: Duration,
    /// The peer that last answered at this address.
    answered: Option<PeerId>,
}

/// Who answered at a dialed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// This node itself.
    Own,
    Peer(PeerId),
}

/// Dialed addresses (as configured) and who answered there, last known.
pub type AddressBook = BTreeMap<String, Answered>;

#[derive(Debug)]
pub struct Dialer {
    targets: Vec<Target>,
    by_connection: HashMap<ConnectionId, usize>,
    backoff_max: Duration,
}

impl Dialer {
    pub fn new(addrs: Vec<Multiaddr>, backoff_max: Duration, now: Instant) -> Self {
        let targets = addrs
            .into_iter()
            .map(|addr| Target { addr, state: State::Waiting { at: now }, backoff: BACKOFF_MIN, answered: None })
            .collect();
        Self { targets, by_connection: HashMap::new(), backoff_max: backoff_max.max(BACKOFF_MIN) }
    }

    /// Addresses that are this node's own listen addresses are never dialed (and the address
    /// book says so at once).
    pub fn mark_own(&mut self, own: &[Multiaddr]) {
        for target in self.targets.iter_mut().filter(|t| own.contains(&t.addr)) {
            target.state = State::Own;
        }
    }

    /// Addresses to dial now; the caller reports each dial's connection id with [`Dialer::dialing`].
    pub fn due(&mut self, now: Instant, is_connected: impl Fn(&PeerId) -> bool) -> Vec<(usize, Multiaddr)> {
        let mut due = Vec::new();
        for (index, target) in self.targets.iter_mut().enumerate() {
            match &target.state {
                State::Waiting { at } if *at <= now => due.push((index, target.addr.clone())),
                State::Connected { peer } if !is_connected(peer) => {
                    target.state = State::Waiting { at: now + target.backoff };
                }
                _ => {}
            }
        }
        due
    }

    pub fn dialing(&mut self, index: usize, connection: ConnectionId) {
        if let Some(target) = self.targets.get_mut(index) {
            target.state = State::Dialing;
            self.by_connection.insert(connection, index);
        }
    }

    /// A dial could not even start (bad address): retry later like a failure.
    pub fn dial_refused(&mut self, index: usize, now: Instant) {
        if let Some(target) = self.targets.get_mut(index) {
            schedule_retry(target, now, self.backoff_max);
        }
    }

    pub fn connected(&mut self, connection: ConnectionId, peer: PeerId) {
        if let Some(target) = self.by_connection.get(&connection).and_then(|i| self.targets.get_mut(*i)) {
            target.state = State::Connected { peer };
            target.backoff = BACKOFF_MIN;
            target.answered = Some(peer);
        }
    }

    /// Who answered at each address so far.
    pub fn book(&self) -> AddressBook {
        self.targets
            .iter()
            .filter_map(|target| {
                let answered = match (&target.state, target.answered) {
                    (State::Own, _) => Answered::Own,
                    (_, Some(peer)) => Answered::Peer(peer),
                    _ => return None,
                };
                Some((target.addr.to_string(), answered))
            })
            .collect()
    }

    /// The dial reached this node itself.
    pub fn own_address(&mut self, connection: ConnectionId) {
        if let Some(index) = self.by_connection.remove(&connection) {
            self.targets[index].state = State::Own;
        }
    }

    /// A dialed connection failed or closed: schedule a redial.
    pub fn ended(&mut self, connection: ConnectionId, now: Instant) {
        if let Some(index) = self.by_connection.remove(&connection) {
            let target = &mut self.targets[index];
            if target.state != State::Own {
                schedule_retry(target, now, self.backoff_max);
            }
        }
    }
}

fn schedule_retry(target: &mut Target, now: Instant, backoff_max: Duration) {
    target.state = State::Waiting { at: now + target.backoff };
    target.backoff = (target.backoff * 2).min(backoff_max);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Multiaddr {
        "/ip4/127.0.0.1/tcp/7701".parse().expect("multiaddr")
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap() {
        let start = Instant::now();
        let mut dialer = Dialer::new(vec![addr()], Duration::from_secs(2), start);
        let mut now = start;
        let mut waits = Vec::new();
        for i in 0..6 {
            let due = dialer.due(now, |_| false);
            assert_eq!(due.len(), 1, "round {i}");
            let connection = ConnectionId::new_unchecked(i);
            dialer.dialing(0, connection);
            assert!(dialer.due(now, |_| false).is_empty(), "no second dial while one is in flight");
            dialer.ended(connection, now);
            let State::Waiting { at } = dialer.targets[0].state else { panic!("not waiting") };
            waits.push(at - now);
            now = at;
        }
        assert_eq!(waits[0], BACKOFF_MIN);
        assert_eq!(waits[1], BACKOFF_MIN * 2);
        assert_eq!(*waits.last().expect("waits"), Duration::from_secs(2));
    }

    #[test]
    fn a_connection_resets_backoff_and_own_addresses_are_dropped() {
        let start = Instant::now();
        let mut dialer = Dialer::new(vec![addr(), addr()], Duration::from_secs(30), start);
        let due = dialer.due(start, |_| false);
        assert_eq!(due.len(), 2);
        dialer.dialing(0, ConnectionId::new_unchecked(1));
        dialer.dialing(1, ConnectionId::new_unchecked(2));
        dialer.ended(ConnectionId::new_unchecked(1), start);
        dialer.connected(ConnectionId::new_unchecked(1), PeerId::random());
        dialer.own_address(ConnectionId::new_unchecked(2));
        let later = start + Duration::from_secs(60);
        assert_eq!(dialer.due(later, |_| false).len(), 1, "only the non-own address is redialed");
    }
}
