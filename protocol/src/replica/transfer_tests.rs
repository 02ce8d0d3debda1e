//! State transfer: a replica behind a peer's log horizon fetches whole documents page by
//! page, and only then counts what they cover as held.

use super::*;
use crate::ids::Namespace;
use crate::seal::SealedTip;
use crate::seeded_rng::SplitMix64 as Rng;

fn node(name: &str) -> NodeId {
    let index = ["me", "peer", "origin"].iter().position(|n| *n == name).expect("a known name");
    super::test_keys::node(index)
}

fn doc(id: &str) -> DocState {
    DocState {
        doc: DocKey::new(Namespace::new("ns").expect("ns"), crate::ids::DocId::new(id).expect("id")),
        automerge: vec![1, 2, 3],
    }
}

/// `origin`'s record `seq` of document "a", sealed on its own.
fn sealed_record(origin: &NodeId, seq: Seq) -> ChangeRecord {
    let mut record = ChangeRecord {
        id: ChangeId { origin: origin.clone(), seq },
        doc: doc("a").doc,
        kind: crate::change_log::ChangeKind::Put,
        time_ms: 0,
        changes: vec![super::test_keys::change_chunk(seq)],
        prev: crate::seal::NO_PREV,
        seal: None,
    };
    crate::seal::SealChain::new(None).add(&mut record, true, &super::test_keys::key_of(origin));
    record
}

/// `origin`'s seal on a record at `seq`: what proves a vector entry.
fn tip(origin: &NodeId, seq: Seq) -> SealedTip {
    SealedTip::of(&sealed_record(origin, seq)).expect("sealed")
}

fn vv(entries: &[(&NodeId, Seq)]) -> VersionVector {
    let mut vv = VersionVector::new();
    for (origin, seq) in entries {
        vv.advance(origin, *seq);
    }
    vv
}

fn sent(effects: &[Effect]) -> Vec<&Message> {
    effects.iter().filter_map(|e| if let Effect::Send { message, .. } = e { Some(message) } else { None }).collect()
}

#[test]
fn a_floor_above_what_we_hold_starts_a_paged_transfer_that_completes_the_version_vector() {
    let (me, peer, origin) = (node("me"), node("peer"), node("origin"));
    let mut rng = Rng::new(7);
    let mut replica = Replica::new(me.clone(), vv(&[(&origin, 3)]), ReplicaConfig::default());
    replica.handle(0, &mut rng, Input::PeerConnected(peer.clone()));

    // The peer pruned origin's log below 50: records 50.. come with a floor.
    let response = SyncResponse { records: Vec::new(), more: false, floors: vec![(origin.clone(), 50)] };
    let effects =
        replica.handle(1, &mut rng, Input::Received { from: peer.clone(), message: Message::SyncResponse(response) });
    assert!(
        matches!(sent(&effects)[..], [Message::StateRequest(StateRequest { after: None, .. })]),
        "expected a first state request, got {effects:?}"
    );

    // Page 1 of 2: merged, nothing counted yet, then the next page is asked for.
    let covers = vv(&[(&origin, 80)]);
    let page1 = StateResponse {
        docs: vec![doc("a")],
        next: Some(doc("b").doc),
        vv: covers.clone(),
        tips: vec![tip(&origin, 80)],
        proofs: Vec::new(),
    };
    let effects =
        replica.handle(2, &mut rng, Input::Received { from: peer.clone(), message: Message::StateResponse(page1) });
    assert!(matches!(&effects[..], [Effect::MergeDocs { complete: None, .. }]), "{effects:?}");
    let effects = replica.handle(3, &mut rng, Input::DocsMerged { from: peer.clone() });
    assert!(matches!(sent(&effects)[..], [Message::StateRequest(StateRequest { after: Some(_), .. })]));
    assert_eq!(replica.version_vector().get(&origin), 3, "nothing counts before the last page is merged");

    // Page 2 (last): a later vector on it does not widen what the transfer covers.
    let page2 = StateResponse {
        docs: vec![doc("b")],
        next: None,
        vv: vv(&[(&origin, 95)]),
        tips: vec![tip(&origin, 95)],
        proofs: Vec::new(),
    };
    let effects =
        replica.handle(4, &mut rng, Input::Received { from: peer.clone(), message: Message::StateResponse(page2) });
    let [Effect::MergeDocs { complete: Some(complete), tips, .. }] = &effects[..] else { panic!("{effects:?}") };
    assert_eq!(complete.get(&origin), 80);
    assert_eq!(tips, &vec![tip(&origin, 80)], "the proof is stored with the vector");
    let effects = replica.handle(5, &mut rng, Input::DocsMerged { from: peer.clone() });
    assert_eq!(replica.version_vector().get(&origin), 80);
    assert!(
        matches!(sent(&effects)[..], [Message::SyncRequest(_)]),
        "after the transfer, anti-entropy fetches what lies beyond: {effects:?}"
    );
}

#[test]
fn unsolicited_state_pages_are_ignored_and_a_failed_merge_ends_the_transfer() {
    let (me, peer) = (node("me"), node("peer"));
    let mut rng = Rng::new(9);
    let mut replica = Replica::new(me, VersionVector::new(), ReplicaConfig::default());
    replica.handle(0, &mut rng, Input::PeerConnected(peer.clone()));
    let stray =
        StateResponse { docs: vec![doc("x")], next: None, vv: VersionVector::new(), tips: vec![], proofs: Vec::new() };
    let effects =
        replica.handle(1, &mut rng, Input::Received { from: peer.clone(), message: Message::StateResponse(stray) });
    assert!(effects.is_empty(), "{effects:?}");

    let floors = vec![(node("origin"), 10)];
    let response = SyncResponse { records: Vec::new(), more: false, floors };
    replica.handle(2, &mut rng, Input::Received { from: peer.clone(), message: Message::SyncResponse(response) });
    let page =
        StateResponse { docs: vec![doc("x")], next: None, vv: VersionVector::new(), tips: vec![], proofs: Vec::new() };
    replica.handle(3, &mut rng, Input::Received { from: peer.clone(), message: Message::StateResponse(page) });
    let effects = replica.handle(4, &mut rng, Input::MergeFailed { from: peer.clone(), reason: "bad".into() });
    assert!(matches!(&effects[..], [Effect::Reject { .. }]));
    // A new floor can start a new transfer.
    let response = SyncResponse { records: Vec::new(), more: false, floors: vec![(node("origin"), 10)] };
    let effects = replica.handle(5, &mut rng, Input::Received { from: peer, message: Message::SyncResponse(response) });
    assert!(sent(&effects).iter().any(|m| matches!(m, Message::StateRequest(_))));
}

#[test]
fn state_requests_are_served_from_storage_within_the_page_limit() {
    let mut rng = Rng::new(1);
    let config = ReplicaConfig { page_docs: 10, ..ReplicaConfig::default() };
    let mut replica = Replica::new(node("me"), VersionVector::new(), config);
    let request = StateRequest { after: None, max_docs: 10_000 };
    let effects =
        replica.handle(0, &mut rng, Input::Received { from: node("peer"), message: Message::StateRequest(request) });
    assert!(matches!(&effects[..], [Effect::ReadDocs { max_docs: 10, .. }]), "{effects:?}");
}

#[test]
fn a_transferred_vector_counts_only_as_far_as_its_origins_sealed_it() {
    // The responder claims origin wrote up to 1,000,000 (to make us skip its real records),
    // proves 80 for another origin, and claims seqs of ours.
    let (me, peer, origin) = (node("me"), node("peer"), node("origin"));
    let other = super::test_keys::node(5);
    let mut rng = Rng::new(3);
    let mut replica = Replica::new(me.clone(), vv(&[(&me, 2)]), ReplicaConfig::default());
    replica.handle(0, &mut rng, Input::PeerConnected(peer.clone()));
    let response = SyncResponse { records: Vec::new(), more: false, floors: vec![(other.clone(), 50)] };
    replica.handle(1, &mut rng, Input::Received { from: peer.clone(), message: Message::SyncResponse(response) });
    let mut forged = tip(&origin, 7);
    forged.id.seq = 1_000_000;
    let claims = vv(&[(&origin, 1_000_000), (&other, 80), (&me, 40)]);
    let page = StateResponse {
        docs: vec![doc("a")],
        next: None,
        vv: claims,
        tips: vec![forged, tip(&other, 80)],
        proofs: Vec::new(),
    };
    let effects =
        replica.handle(2, &mut rng, Input::Received { from: peer.clone(), message: Message::StateResponse(page) });
    assert!(effects.iter().any(|e| matches!(e, Effect::Reject { from, .. } if *from == peer)), "{effects:?}");
    let Some(Effect::MergeDocs { complete: Some(complete), .. }) =
        effects.iter().find(|e| matches!(e, Effect::MergeDocs { .. }))
    else {
        panic!("{effects:?}")
    };
    assert_eq!(complete.get(&origin), 0, "an unproven claim is not merged");
    assert_eq!(complete.get(&other), 80);
    assert_eq!(complete.get(&me), 2, "only this node knows how far it wrote");
    replica.handle(3, &mut rng, Input::DocsMerged { from: peer.clone() });
    assert_eq!(replica.version_vector().get(&origin), 0);
    assert_eq!(replica.version_vector().get(&other), 80);
}

#[test]
fn only_headers_their_origins_sealed_reach_the_merge_and_a_forged_one_counts_against_the_sender() {
    let (me, peer, origin) = (node("me"), node("peer"), node("origin"));
    let mut rng = Rng::new(5);
    let mut replica = Replica::new(me.clone(), VersionVector::new(), ReplicaConfig::default());
    replica.handle(0, &mut rng, Input::PeerConnected(peer.clone()));
    let response = SyncResponse { records: Vec::new(), more: false, floors: vec![(origin.clone(), 50)] };
    replica.handle(1, &mut rng, Input::Received { from: peer.clone(), message: Message::SyncResponse(response) });

    let honest = RecordHeader::of(&sealed_record(&origin, 3));
    // The responder claims origin's record 4 vouched for a change of its own making.
    let mut forged = RecordHeader::of(&sealed_record(&origin, 4));
    forged.changes = vec![[9; 32]];
    let page = StateResponse {
        docs: vec![doc("a")],
        next: None,
        vv: VersionVector::new(),
        tips: Vec::new(),
        proofs: vec![forged, honest.clone()],
    };
    let effects =
        replica.handle(2, &mut rng, Input::Received { from: peer.clone(), message: Message::StateResponse(page) });
    let rejections: Vec<&String> = effects
        .iter()
        .filter_map(|e| if let Effect::Reject { reason, .. } = e { Some(reason) } else { None })
        .collect();
    assert_eq!(rejections.len(), 1, "{effects:?}");
    assert!(rejections[0].contains(":4"), "{rejections:?}");
    let Some(Effect::MergeDocs { proofs, .. }) = effects.iter().find(|e| matches!(e, Effect::MergeDocs { .. })) else {
        panic!("{effects:?}")
    };
    assert_eq!(proofs, &vec![honest]);
}
