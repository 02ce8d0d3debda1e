//! Origin authentication between real nodes: a peer holding the cluster key sends records
//! under another node's origin (forged, altered, renumbered, or claiming the receiver's own
//! seqs) over the real libp2p gossip path. None is stored or relayed, the sender is cut
//! off, and the honest origin's real records still arrive everywhere afterwards. The same for
//! messages whose length fields claim far more than they carry.

use std::time::Duration;

use serde_json::json;
use statemesh::protocol::seal::{key_from_seed, record_hash, seal, NO_PREV};
use statemesh::protocol::wire::{self, Gossip, Message};
use statemesh::protocol::{ChangeId, ChangeKind, ChangeRecord, VersionVector};
use statemesh::testkit::{eventually, key, memory_cluster, patch, publish_raw_gossip};

const CONVERGE: Duration = Duration::from_secs(60);

fn gossip(records: Vec<ChangeRecord>) -> Vec<u8> {
    wire::encode(&Message::Gossip(Gossip { records }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_forged_altered_or_renumbered_under_another_origin_are_refused_everywhere() {
    // Three honest nodes; the hostile peer holds the cluster key and talks to node 0 only.
    let mut members = memory_cluster(3).await;
    let doc = key("shared", "ledger");
    patch(&members[1].node, &doc, json!({"balance": 10})).await;
    patch(&members[1].node, &doc, json!({"balance": 20})).await;
    let origin = members[1].node.node_id().clone();
    eventually(CONVERGE, "node 1's writes reach everyone", || async {
        members.iter().all(|m| m.node.version_vector().get(&origin) == 2)
    })
    .await;
    let real = members[1].node.read_log(VersionVector::new(), 100, usize::MAX).await.expect("node 1's log").records;
    assert_eq!(real.len(), 2);
    let version_before: Vec<String> = {
        let mut versions = Vec::new();
        for member in &members {
            versions.push(member.node.get(&doc).await.expect("doc").version.to_string());
        }
        versions
    };

    // 1. Node 1's next seq, with no changes (it would make every node skip the real one),
    //    sealed with the attacker's own key.
    let attacker_key = key_from_seed([0x66; 32]);
    let mut forged = ChangeRecord {
        id: ChangeId { origin: origin.clone(), seq: 3 },
        doc: doc.clone(),
        kind: ChangeKind::Delete,
        time_ms: 0,
        changes: Vec::new(),
        prev: NO_PREV,
        seal: None,
    };
    let hash = record_hash(&forged);
    seal(&mut forged, &hash, &attacker_key);
    // 2. Node 1's real record with other changes under its seal.
    let mut altered = real[1].clone();
    altered.id.seq = 4;
    altered.changes = real[0].changes.clone();
    // 3. Node 1's real first record renumbered as its next one.
    let mut renumbered = real[0].clone();
    renumbered.id.seq = 3;
    // 4. The same, unsealed, in node 0's own name.
    let mut in_target_name = real[0].clone();
    in_target_name.id.origin = members[0].node.node_id().clone();
    in_target_name.id.seq = 1;
    in_target_name.seal = None;

    let refused_before: Vec<u64> = members.iter().map(|m| m.node.metrics().p2p_rejected.get()).collect();
    let mut payloads = Vec::new();
    for round in 0..5 {
        payloads.push(gossip(vec![forged.clone()]));
        payloads.push(gossip(vec![altered.clone()]));
        payloads.push(gossip(vec![renumbered.clone()]));
        let mut mine = in_target_name.clone();
        mine.time_ms = round;
        payloads.push(gossip(vec![mine]));
    }
    let target = members[0].addrs()[0].clone();
    assert_eq!(publish_raw_gossip(&target, payloads, Duration::from_secs(2)).await, 20);

    // Node 0 refuses every one (and bans the sender after 16); none reaches nodes 1 and 2.
    eventually(CONVERGE, "node 0 refuses the records", || async {
        members[0].node.metrics().p2p_rejected.get() - refused_before[0] >= 17
    })
    .await;
    for (i, member) in members.iter().enumerate().skip(1) {
        assert_eq!(member.node.metrics().p2p_rejected.get(), refused_before[i], "node {i} saw a forged record");
    }
    for (member, before) in members.iter().zip(&version_before) {
        assert_eq!(member.node.version_vector().get(&origin), 2, "a forged seq counted as held");
        assert_eq!(member.node.version_vector().get(members[0].node.node_id()), 0);
        let now = member.node.get(&doc).await.expect("doc");
        assert_eq!(&now.version.to_string(), before, "the document changed");
        assert_eq!(now.json, json!({"balance": 20}));
    }

    // Node 1's real next write still reaches everyone (nothing took its seq), and the honest
    // nodes stay connected to each other.
    patch(&members[1].node, &doc, json!({"balance": 30})).await;
    eventually(CONVERGE, "the real seq 3 arrives everywhere", || async {
        let mut all = true;
        for member in &members {
            all &= member.node.get(&doc).await.is_ok_and(|d| d.json == json!({"balance": 30}));
        }
        all
    })
    .await;
    let honest: Vec<String> = members[1..].iter().map(|m| m.node.node_id().to_string()).collect();
    let peers: Vec<String> = members[0].node.peers().into_iter().map(|p| p.id).collect();
    assert!(honest.iter().all(|id| peers.contains(id)), "honest peers were cut off: {peers:?}");
    for member in members.iter_mut() {
        member.disconnect().await;
    }
}

/// A wire envelope around `payload`, uncompressed, as any peer may frame one.
fn envelope(payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![b'S', b'M', wire::VERSION, 0];
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// bincode's varint for a u64 length: the `0xfd` marker, then eight bytes.
fn claimed_length(length: u64) -> Vec<u8> {
    let mut bytes = vec![0xfd];
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_claiming_huge_lengths_are_refused_without_allocating_and_the_sender_cut_off() {
    let mut members = memory_cluster(2).await;
    let target = members[0].addrs()[0].clone();
    let before = members[0].node.metrics().p2p_rejected.get();
    // Gossip (variant 0) claiming 2^40 records; and one record whose origin claims 2^40
    // bytes; and an anti-entropy request (variant 1) whose version vector claims 2^40 entries.
    let mut many_records = vec![0];
    many_records.extend(claimed_length(1 << 40));
    let mut huge_origin = vec![0, 1];
    huge_origin.extend(claimed_length(1 << 40));
    let mut huge_vector = vec![1];
    huge_vector.extend(claimed_length(1 << 40));
    // Well framed: what refuses them is the payload's bounded decoding, not the envelope.
    for payload in [&many_records, &huge_origin, &huge_vector] {
        let refused = wire::decode(&envelope(payload), &wire::WireLimits::default());
        assert!(matches!(refused, Err(wire::WireError::BadPayload(_))), "{refused:?}");
    }
    let mut gossip = Vec::new();
    for _ in 0..9 {
        gossip.push(envelope(&many_records));
        gossip.push(envelope(&huge_origin));
    }
    assert_eq!(publish_raw_gossip(&target, gossip, Duration::from_secs(2)).await, 18);
    let answered = statemesh::testkit::send_raw_requests(&target, vec![envelope(&huge_vector)]).await;
    assert!(answered.iter().all(Result::is_err), "a hostile request was answered: {answered:?}");
    eventually(CONVERGE, "node 0 refuses them", || async {
        members[0].node.metrics().p2p_rejected.get() - before >= 17
    })
    .await;
    // Both nodes are up and still replicate with each other.
    let doc = key("shared", "after-length-claims");
    patch(&members[0].node, &doc, json!({"ok": true})).await;
    eventually(CONVERGE, "replication continues", || async { members[1].node.get(&doc).await.is_ok() }).await;
    for member in members.iter_mut() {
        member.disconnect().await;
    }
}
