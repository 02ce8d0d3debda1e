//! Protocol stories: replicas exchanging real wire messages over a seeded, lossy network.

use std::collections::{BTreeMap, VecDeque};

use rand_core::RngCore;

use super::*;
use crate::change_log::ChangeKind;
use crate::ids::{DocId, DocKey, Namespace};
use crate::wire::{self, WireLimits};

use crate::seeded_rng::SplitMix64 as Rng;

use super::test_keys::{change_chunk, key_of, node};

/// Record `seq` of `origin`, sealed on its own (as the last record of a batch of one).
fn record(origin: &NodeId, seq: Seq) -> ChangeRecord {
    let mut record = unsealed(origin, seq);
    let hash = crate::seal::record_hash(&record);
    crate::seal::seal(&mut record, &hash, &key_of(origin));
    record
}

fn unsealed(origin: &NodeId, seq: Seq) -> ChangeRecord {
    ChangeRecord {
        id: ChangeId { origin: origin.clone(), seq },
        doc: DocKey::new(Namespace::new("ns").expect("ns"), DocId::new(format!("d{}", seq % 7)).expect("id")),
        kind: ChangeKind::Put,
        time_ms: seq as i64,
        changes: vec![change_chunk(seq)],
        prev: crate::seal::NO_PREV,
        seal: None,
    }
}

/// Records `seqs` of `origin` as one group commit: chained, the last one sealed.
fn batch(origin: &NodeId, seqs: std::ops::RangeInclusive<Seq>) -> Vec<ChangeRecord> {
    let mut chain = crate::seal::SealChain::new(None);
    let last = *seqs.end();
    seqs.map(|seq| {
        let mut record = unsealed(origin, seq);
        chain.add(&mut record, seq == last, &key_of(origin));
        record
    })
    .collect()
}

/// A replica plus the storage it drives: the records it holds.
struct Node {
    replica: Replica,
    store: BTreeMap<ChangeId, ChangeRecord>,
    next_seq: Seq,
}

struct World {
    nodes: Vec<Node>,
    /// (from, to, encoded message)
    network: VecDeque<(usize, usize, Vec<u8>)>,
    /// Storage completions not yet reported: (node, from peer, ids).
    persisting: VecDeque<(usize, Vec<ChangeId>)>,
    rng: Rng,
    now_ms: i64,
    drop_percent: u64,
    /// Pairs that cannot talk (partition).
    cut: Vec<(usize, usize)>,
    rejects: usize,
}

impl World {
    fn new(n: usize, seed: u64, drop_percent: u64) -> Self {
        let config = ReplicaConfig { page_records: 16, ..ReplicaConfig::default() };
        let nodes = (0..n)
            .map(|i| Node {
                replica: Replica::new(node(i), VersionVector::new(), config.clone()),
                store: BTreeMap::new(),
                next_seq: 1,
            })
            .collect();
        let mut world = World {
            nodes,
            network: VecDeque::new(),
            persisting: VecDeque::new(),
            rng: Rng::new(seed),
            now_ms: 0,
            drop_percent,
            cut: Vec::new(),
            rejects: 0,
        };
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    world.input(a, Input::PeerConnected(node(b)));
                }
            }
        }
        world
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        !self.cut.iter().any(|&(x, y)| (x, y) == (a, b) || (y, x) == (a, b))
    }

    fn index(&self, id: &NodeId) -> usize {
        self.nodes.iter().position(|n| &n.replica.me == id).expect("known node")
    }

    fn input(&mut self, at: usize, input: Input) {
        let now = self.now_ms;
        let effects = {
            let Self { nodes, rng, .. } = self;
            nodes[at].replica.handle(now, rng, input)
        };
        for effect in effects {
            self.effect(at, effect);
        }
    }

    fn send(&mut self, from: usize, to: usize, message: &Message) {
        if self.linked(from, to) && self.rng.next_u64() % 100 >= self.drop_percent {
            self.network.push_back((from, to, wire::encode(message)));
        }
    }

    fn effect(&mut self, at: usize, effect: Effect) {
        match effect {
            Effect::Send { to, message } => {
                let to = self.index(&to);
                self.send(at, to, &message);
            }
            Effect::Broadcast(message) => {
                for to in 0..self.nodes.len() {
                    if to != at {
                        self.send(at, to, &message);
                    }
                }
            }
            Effect::ReadLog { for_peer, have, max_records } => {
                let me = &self.nodes[at];
                let mut records = Vec::new();
                let mut more = false;
                for (origin, from, to) in me.replica.version_vector().ahead_of(&have) {
                    for seq in from + 1..=to {
                        if records.len() == max_records as usize {
                            more = true;
                            break;
                        }
                        let id = ChangeId { origin: origin.clone(), seq };
                        records.push(me.store[&id].clone());
                    }
                }
                self.input(at, Input::LogRead { for_peer, records, more, floors: Vec::new() });
            }
            Effect::Apply { records, .. } => {
                let ids = records.iter().map(|r| r.id.clone()).collect();
                for r in records {
                    self.nodes[at].store.insert(r.id.clone(), r);
                }
                self.persisting.push_back((at, ids));
            }
            Effect::SetTimer { .. } => {}
            Effect::Reject { .. } => self.rejects += 1,
            Effect::ReadDocs { .. } | Effect::MergeDocs { .. } => panic!("no log is pruned in this world"),
        }
    }

    fn write(&mut self, at: usize) {
        let me = node(at);
        let seq = self.nodes[at].next_seq;
        self.nodes[at].next_seq += 1;
        let r = record(&me, seq);
        self.nodes[at].store.insert(r.id.clone(), r.clone());
        self.input(at, Input::LocalCommitted(vec![r]));
    }

    /// Delivers one pending event, chosen at random: a message or a storage completion.
    fn step(&mut self) -> bool {
        self.now_ms += 1;
        let total = self.network.len() + self.persisting.len();
        if total == 0 {
            return false;
        }
        let pick = (self.rng.next_u64() % total as u64) as usize;
        if pick < self.network.len() {
            let (from, to, bytes) = self.network.remove(pick).expect("message");
            let message = wire::decode(&bytes, &WireLimits::default()).expect("decodes");
            self.input(to, Input::Received { from: node(from), message });
        } else {
            let (at, ids) = self.persisting.remove(pick - self.network.len()).expect("completion");
            self.input(at, Input::Persisted(ids));
        }
        true
    }

    fn tick_all(&mut self) {
        self.now_ms += 5_000;
        for at in 0..self.nodes.len() {
            self.input(at, Input::Tick);
        }
    }

    fn run_until_quiet(&mut self) {
        let mut budget = 1_000_000;
        while self.step() {
            budget -= 1;
            assert!(budget > 0, "the network never went quiet");
        }
    }

    fn converged(&self) -> bool {
        let first = &self.nodes[0];
        self.nodes
            .iter()
            .all(|n| n.store == first.store && n.replica.version_vector() == first.replica.version_vector())
    }
}

#[test]
fn gossip_alone_spreads_writes_on_a_reliable_network() {
    let mut world = World::new(3, 1, 0);
    for i in 0..30 {
        world.write(i % 3);
    }
    world.run_until_quiet();
    assert!(world.converged());
    assert_eq!(world.nodes[0].store.len(), 30);
    assert_eq!(world.nodes[2].replica.version_vector().get(&node(0)), 10);
}

#[test]
fn anti_entropy_converges_whatever_the_loss_and_order() {
    for seed in 0..40 {
        let mut world = World::new(4, seed, 30);
        for i in 0..60 {
            world.write((i * 7 + seed as usize) % 4);
            if i % 5 == 0 {
                world.step();
            }
        }
        world.run_until_quiet();
        // Lossless rounds of anti-entropy must finish the job within a bounded number.
        world.drop_percent = 0;
        let mut rounds = 0;
        while !world.converged() {
            rounds += 1;
            assert!(rounds <= 40, "seed {seed}: not converged after {rounds} anti-entropy rounds");
            world.tick_all();
            world.run_until_quiet();
        }
        assert_eq!(world.nodes[0].store.len(), 60, "seed {seed}");
        assert_eq!(world.rejects, 0, "seed {seed}");
        assert!(world.nodes.iter().all(|n| n.replica.held_records() == 0 && n.replica.applying_records() == 0));
    }
}

#[test]
fn a_partitioned_node_catches_up_through_relays_it_never_met_directly() {
    let mut world = World::new(3, 7, 0);
    // Node 0 and node 2 never talk; node 1 relays.
    world.cut.push((0, 2));
    for _ in 0..50 {
        world.write(0);
    }
    world.run_until_quiet();
    for _ in 0..10 {
        world.tick_all();
        world.run_until_quiet();
    }
    assert_eq!(world.nodes[2].replica.version_vector().get(&node(0)), 50);
    assert_eq!(world.nodes[2].store.len(), 50);
}

#[test]
fn a_version_vector_only_advances_over_durable_contiguous_records() {
    let me = node(9);
    let mut replica = Replica::new(me, VersionVector::new(), ReplicaConfig::default());
    let mut rng = Rng::new(3);
    let peer = node(1);
    replica.handle(0, &mut rng, Input::PeerConnected(peer.clone()));
    let gossip = |seqs: &[Seq]| Input::Received {
        from: peer.clone(),
        message: Message::Gossip(Gossip { records: seqs.iter().map(|s| record(&peer, *s)).collect() }),
    };
    // Seq 2 before seq 1: applied (any order), but the vector waits for the gap.
    let effects = replica.handle(1, &mut rng, gossip(&[2]));
    assert!(matches!(&effects[0], Effect::Apply { records, .. } if records[0].id.seq == 2));
    replica.handle(2, &mut rng, Input::Persisted(vec![ChangeId { origin: peer.clone(), seq: 2 }]));
    assert_eq!(replica.version_vector().get(&peer), 0);
    assert_eq!(replica.held_records(), 1);
    // Seq 1 arrives but is not durable yet: still 0.
    replica.handle(3, &mut rng, gossip(&[1]));
    assert_eq!(replica.version_vector().get(&peer), 0, "persist before advancing");
    replica.handle(4, &mut rng, Input::Persisted(vec![ChangeId { origin: peer.clone(), seq: 1 }]));
    assert_eq!(replica.version_vector().get(&peer), 2);
    assert_eq!(replica.held_records(), 0);
    // Duplicates are ignored.
    assert!(replica.handle(5, &mut rng, gossip(&[1, 2])).iter().all(|e| !matches!(e, Effect::Apply { .. })));
}

#[test]
fn the_next_page_is_fetched_while_the_last_is_stored_and_no_third_waits() {
    let config = ReplicaConfig { page_records: 4, ..ReplicaConfig::default() };
    let mut replica = Replica::new(node(9), VersionVector::new(), config);
    let mut rng = Rng::new(3);
    let (peer, origin) = (node(1), node(2));
    let pulls = |effects: &[Effect]| -> Vec<Seq> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { message: Message::SyncRequest(request), .. } => Some(request.have.get(&origin)),
                _ => None,
            })
            .collect()
    };
    let page = |seqs: std::ops::RangeInclusive<Seq>| Input::Received {
        from: peer.clone(),
        message: Message::SyncResponse(SyncResponse { records: batch(&origin, seqs), more: true, floors: Vec::new() }),
    };
    let ids = |seqs: std::ops::RangeInclusive<Seq>| -> Vec<ChangeId> {
        seqs.map(|seq| ChangeId { origin: origin.clone(), seq }).collect()
    };
    assert_eq!(pulls(&replica.handle(0, &mut rng, Input::PeerConnected(peer.clone()))), vec![0]);
    // The first page goes to storage and the second is asked for past it at once.
    let effects = replica.handle(1, &mut rng, page(1..=4));
    assert_eq!(applied(&effects).len(), 4);
    assert_eq!(pulls(&effects), vec![4], "the request counts the page being stored as held");
    assert_eq!(replica.version_vector().get(&origin), 0, "but the vector waits for durability");
    // With two pages waiting for storage, no third is asked for ...
    let effects = replica.handle(2, &mut rng, page(5..=8));
    assert_eq!(applied(&effects).len(), 4);
    assert!(pulls(&effects).is_empty(), "a third page would wait for storage too");
    // ... until one is durable.
    assert_eq!(pulls(&replica.handle(3, &mut rng, Input::Persisted(ids(1..=4)))), vec![8]);
    assert_eq!(replica.version_vector().get(&origin), 4);
    // A page that fails to store leaves a gap, which the next pull asks for again.
    replica.handle(4, &mut rng, page(9..=12));
    replica.handle(5, &mut rng, Input::ApplyFailed { ids: ids(5..=8), from: peer.clone(), reason: "test".into() });
    replica.handle(6, &mut rng, Input::Persisted(ids(9..=12)));
    assert_eq!(replica.version_vector().get(&origin), 4);
    assert_eq!(pulls(&replica.handle(10_000, &mut rng, Input::Tick)), vec![4], "the gap is pulled again");
}

#[test]
fn records_claiming_our_own_unwritten_seqs_are_rejected() {
    let me = node(0);
    let mut replica = Replica::new(me.clone(), VersionVector::new(), ReplicaConfig::default());
    let mut rng = Rng::new(5);
    let effects = replica.handle(
        0,
        &mut rng,
        Input::Received { from: node(1), message: Message::Gossip(Gossip { records: vec![record(&me, 1)] }) },
    );
    assert!(matches!(&effects[..], [Effect::Reject { .. }]));
    assert_eq!(replica.applying_records(), 0);
}

#[test]
fn our_own_records_relayed_back_up_to_the_durable_seq_are_no_offence() {
    // A peer may fetch this node's newest records from its log as soon as they are durable
    // and relay them back before their gossip reached the replica; the shell reports how far
    // the log reaches first (`LocalDurable`), and then they are ours, known, not a claim.
    let me = node(0);
    let mut replica = Replica::new(me.clone(), VersionVector::new(), ReplicaConfig::default());
    let mut rng = Rng::new(9);
    replica.handle(0, &mut rng, Input::LocalDurable(3));
    let relayed = SyncResponse { records: (1..=3).map(|seq| record(&me, seq)).collect(), more: false, floors: vec![] };
    let effects =
        replica.handle(1, &mut rng, Input::Received { from: node(1), message: Message::SyncResponse(relayed) });
    assert!(effects.iter().all(|e| !matches!(e, Effect::Reject { .. } | Effect::Apply { .. })), "{effects:?}");
    // One seq beyond what the log holds is still refused.
    let beyond = SyncResponse { records: vec![record(&me, 4)], more: false, floors: vec![] };
    let effects =
        replica.handle(2, &mut rng, Input::Received { from: node(1), message: Message::SyncResponse(beyond) });
    assert!(matches!(&effects[..], [Effect::Reject { .. }]), "{effects:?}");
}

#[test]
fn records_stored_by_another_path_count_once_contiguous() {
    let me = node(0);
    let cluster = node(7);
    let mut replica = Replica::new(me.clone(), VersionVector::new(), ReplicaConfig::default());
    let mut rng = Rng::new(11);
    let id = |seq| ChangeId { origin: cluster.clone(), seq };
    replica.handle(0, &mut rng, Input::StoredLocally(vec![id(2), id(3)]));
    assert_eq!(replica.version_vector().get(&cluster), 0, "a gap at seq 1 keeps the vector back");
    assert_eq!(replica.held_records(), 2);
    replica.handle(1, &mut rng, Input::StoredLocally(vec![id(1)]));
    assert_eq!(replica.version_vector().get(&cluster), 3);
    assert_eq!(replica.held_records(), 0);
    // Our own origin is never advanced this way.
    replica.handle(2, &mut rng, Input::StoredLocally(vec![ChangeId { origin: me.clone(), seq: 1 }]));
    assert_eq!(replica.version_vector().get(&me), 0);
}

#[test]
fn a_failed_pull_frees_anti_entropy_before_its_timeout() {
    let me = node(0);
    let config = ReplicaConfig { anti_entropy_interval_ms: 100, ..ReplicaConfig::default() };
    let mut replica = Replica::new(me, VersionVector::new(), config);
    let mut rng = Rng::new(3);
    let requests = |effects: &[Effect]| {
        effects.iter().filter(|e| matches!(e, Effect::Send { message: Message::SyncRequest(_), .. })).count()
    };
    assert_eq!(requests(&replica.handle(0, &mut rng, Input::PeerConnected(node(1)))), 1);
    // While the request is outstanding, no other pull starts.
    assert_eq!(requests(&replica.handle(200, &mut rng, Input::Tick)), 0);
    // A failure reported for another peer changes nothing.
    replica.handle(250, &mut rng, Input::SyncFailed(node(2)));
    assert_eq!(requests(&replica.handle(300, &mut rng, Input::Tick)), 0);
    // Reported for this one, the next anti-entropy round pulls again, long before the
    // request's timeout.
    replica.handle(350, &mut rng, Input::SyncFailed(node(1)));
    assert_eq!(requests(&replica.handle(400, &mut rng, Input::Tick)), 1);
}

fn rejected(effects: &[Effect]) -> Vec<&str> {
    effects
        .iter()
        .filter_map(|e| if let Effect::Reject { reason, .. } = e { Some(reason.as_str()) } else { None })
        .collect()
}

fn applied(effects: &[Effect]) -> Vec<ChangeId> {
    effects
        .iter()
        .filter_map(|e| if let Effect::Apply { records, .. } = e { Some(records) } else { None })
        .flatten()
        .map(|r| r.id.clone())
        .collect()
}

fn gossip_from(replica: &mut Replica, relay: &NodeId, records: Vec<ChangeRecord>) -> Vec<Effect> {
    let mut rng = Rng::new(1);
    replica.handle(0, &mut rng, Input::Received { from: relay.clone(), message: Message::Gossip(Gossip { records }) })
}

#[test]
fn a_chained_batch_relayed_by_anyone_is_accepted_with_one_seal() {
    let (me, origin, relay) = (node(0), node(1), node(2));
    let mut replica = Replica::new(me, VersionVector::new(), ReplicaConfig::default());
    let records = batch(&origin, 1..=5);
    assert_eq!(records.iter().filter(|r| r.seal.is_some()).count(), 1, "one seal per group commit");
    let effects = gossip_from(&mut replica, &relay, records);
    assert!(rejected(&effects).is_empty(), "{effects:?}");
    assert_eq!(applied(&effects).len(), 5);
}

#[test]
fn a_record_forged_under_another_origin_is_refused_and_its_sender_blamed() {
    // The relay makes up origin's next seq, with empty changes, sealed with its own key.
    let (me, origin, relay) = (node(0), node(1), node(2));
    let mut replica = Replica::new(me, VersionVector::new(), ReplicaConfig::default());
    let mut forged = unsealed(&origin, 1);
    forged.changes.clear();
    let hash = crate::seal::record_hash(&forged);
    crate::seal::seal(&mut forged, &hash, &key_of(&relay));
    let effects = gossip_from(&mut replica, &relay, vec![forged, unsealed(&origin, 2)]);
    assert!(applied(&effects).is_empty(), "{effects:?}");
    let reasons = rejected(&effects);
    assert_eq!(reasons.len(), 1, "one offence per message");
    assert!(reasons[0].contains("seal its origin did not make"), "{reasons:?}");
    // The origin's real record 1 is still welcome afterwards.
    let effects = gossip_from(&mut replica, &relay, batch(&origin, 1..=1));
    assert_eq!(applied(&effects), vec![ChangeId { origin, seq: 1 }]);
}

#[test]
fn an_altered_record_breaks_its_link_and_only_it_and_what_it_vouched_for_are_refused() {
    let (me, origin, relay) = (node(0), node(1), node(2));
    let mut replica = Replica::new(me, VersionVector::new(), ReplicaConfig::default());
    let mut records = batch(&origin, 1..=4);
    records[1].changes = vec![b"not what origin wrote".to_vec()];
    let effects = gossip_from(&mut replica, &relay, records);
    // 3 and 4 are vouched for by the seal on 4; 2 no longer hashes to what 3 names, and 1 was
    // vouched for only by 2.
    let ids: Vec<Seq> = applied(&effects).iter().map(|id| id.seq).collect();
    assert_eq!(ids, vec![3, 4]);
    assert_eq!(rejected(&effects).len(), 1);
}

#[test]
fn a_record_moved_to_another_seq_or_a_batch_without_its_seal_is_refused() {
    let (me, origin, relay) = (node(0), node(1), node(2));
    let mut replica = Replica::new(me, VersionVector::new(), ReplicaConfig::default());
    // Replayed as seq 7: the seal signs seq 1.
    let mut moved = record(&origin, 1);
    moved.id.seq = 7;
    // The tail of a batch without the record that seals it proves nothing.
    let mut tail = batch(&origin, 10..=12);
    tail.pop();
    let mut records = vec![moved];
    records.extend(tail);
    let effects = gossip_from(&mut replica, &relay, records);
    assert!(applied(&effects).is_empty(), "{effects:?}");
    assert!(rejected(&effects)[0].contains("and 2 more"), "{effects:?}");
}

#[test]
fn records_of_an_origin_that_is_no_ed25519_identity_are_refused() {
    let (me, relay) = (node(0), node(2));
    let mut replica = Replica::new(me, VersionVector::new(), ReplicaConfig::default());
    let stranger = NodeId::new("notapeerid").expect("node id");
    let effects = gossip_from(&mut replica, &relay, vec![unsealed(&stranger, 1)]);
    assert!(applied(&effects).is_empty());
    assert!(rejected(&effects)[0].contains("not an ed25519 node id"), "{effects:?}");
}

#[test]
fn a_sealed_tip_checks_on_its_own_and_only_for_its_own_seq() {
    let origin = node(1);
    let records = batch(&origin, 1..=3);
    let mut verifier = crate::seal::SealVerifier::new();
    let tip = crate::seal::SealedTip::of(&records[2]).expect("the last record is sealed");
    assert_eq!(verifier.check_tip(&tip), Ok(()));
    assert!(crate::seal::SealedTip::of(&records[1]).is_none());
    let mut claimed = tip.clone();
    claimed.id.seq = 1_000_000;
    assert!(verifier.check_tip(&claimed).is_err());
}
