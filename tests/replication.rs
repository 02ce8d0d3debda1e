//! Replication between real nodes on loopback: convergence under concurrent writes, after
//! a partition, after a long absence, and admission (pre-shared key, allowlist).

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use statemesh::node::{Node, NodeError};
use statemesh::protocol::wire::{self, Gossip, Message, SyncRequest};
use statemesh::protocol::DocKey;
use statemesh::testkit::{
    assert_identical, eventually, key, member_config, memory_cluster, patch, publish_raw_gossip, same_version_vectors,
    send_raw_requests, Member,
};

const CONVERGE: Duration = Duration::from_secs(60);

fn nodes(members: &[Member]) -> Vec<&Node> {
    members.iter().map(|m| &m.node).collect()
}

fn docs(prefix: &str, count: usize) -> Vec<DocKey> {
    (0..count).map(|i| key("shared", &format!("{prefix}{i}"))).collect()
}

/// Every member writes `per_node` patches spread over `keys`, all members at once.
async fn write_concurrently(members: &[&Member], keys: &[DocKey], per_node: usize, tag: &str) {
    join_all(members.iter().enumerate().map(|(m, member)| async move {
        for i in 0..per_node {
            let key = &keys[(i + m) % keys.len()];
            patch(&member.node, key, json!({ format!("{tag}{m}_{i}"): i, "last": format!("{tag}{m}") })).await;
        }
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_on_five_nodes_converge_to_identical_documents() {
    let members = memory_cluster(5).await;
    let keys = docs("doc", 8);
    write_concurrently(&members.iter().collect::<Vec<_>>(), &keys, 40, "n").await;
    let all = nodes(&members);
    eventually(CONVERGE, "version vectors agree", || async { same_version_vectors(&all) }).await;
    assert_eq!(all[0].version_vector().len(), 5, "every origin is known everywhere");
    assert_identical(&all, &keys).await;
    let doc = all[0].get(&keys[0]).await.expect("doc");
    for m in 0..5 {
        assert!(
            doc.json.as_object().expect("object").keys().any(|k| k.starts_with(&format!("n{m}_"))),
            "writes from node {m} are present"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_with_writes_on_both_sides_heals_to_identical_state() {
    let mut members = memory_cluster(4).await;
    let keys = docs("p", 5);
    // Split {0, 1} | {2, 3}: 2 and 3 leave and find only each other.
    members[2].disconnect().await;
    members[3].disconnect().await;
    members[2].connect(&[]).await;
    let side_b = members[2].addrs();
    members[3].connect(&side_b).await;
    eventually(CONVERGE, "2 and 3 connected to each other only", || async {
        members[2].node.peers().len() == 1 && members[0].node.peers().len() == 1
    })
    .await;

    let (a, b) = members.split_at(2);
    write_concurrently(&a.iter().collect::<Vec<_>>(), &keys, 30, "a").await;
    write_concurrently(&b.iter().collect::<Vec<_>>(), &keys, 30, "b").await;
    let b_origin = b[0].node.node_id().clone();
    let a_origin = a[0].node.node_id().clone();
    eventually(CONVERGE, "each side converged internally", || async {
        same_version_vectors(&[&a[0].node, &a[1].node]) && same_version_vectors(&[&b[0].node, &b[1].node])
    })
    .await;
    assert_eq!(a[0].node.version_vector().get(&b_origin), 0, "side A saw nothing from side B");
    assert_eq!(b[0].node.version_vector().get(&a_origin), 0, "side B saw nothing from side A");

    // Heal: node 2 rejoins node 0.
    let seed = members[0].addrs();
    members[2].disconnect().await;
    members[2].connect(&seed).await;
    let all = nodes(&members);
    eventually(CONVERGE, "all four converge after the heal", || async { same_version_vectors(&all) }).await;
    assert_identical(&all, &keys).await;
    let merged = all[3].get(&keys[0]).await.expect("doc");
    let fields = merged.json.as_object().expect("object");
    assert!(fields.keys().any(|k| k.starts_with("a0_")) && fields.keys().any(|k| k.starts_with("b0_")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_down_for_thousands_of_writes_catches_up_and_keeps_what_it_received() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let mut members: Vec<Member> = dirs.iter().map(|d| Member::open(member_config(Some(d.path())))).collect();
    members[0].connect(&[]).await;
    let seed = members[0].addrs();
    members[1].connect(&seed).await;
    members[2].connect(&seed).await;
    let keys = docs("c", 300);
    patch(&members[2].node, &keys[0], json!({"before": true})).await;
    eventually(CONVERGE, "initial write replicated", || async { same_version_vectors(&nodes(&members)) }).await;

    let absent = members.pop().expect("third member");
    let absent_config = absent.stop().await;
    let writers: Vec<&Member> = members.iter().collect();
    write_concurrently(&writers, &keys, 1500, "w").await;

    let mut back = Member::open(absent_config);
    back.connect(&seed).await;
    members.push(back);
    let all = nodes(&members);
    eventually(CONVERGE, "the returning node catches up", || async { same_version_vectors(&all) }).await;
    assert_identical(&all, &keys[..20]).await;
    let caught_up = members[2].node.version_vector();
    assert!(caught_up.iter().map(|(_, seq)| seq).sum::<u64>() >= 3001);

    // What it received is durable: reopened without any peer, it still has all of it.
    let config = members.pop().expect("member").stop().await;
    let reopened = Member::open(config);
    assert_eq!(reopened.node.version_vector(), caught_up);
    assert_identical(&[&members[0].node, &reopened.node], &keys[..20]).await;
}

/// Connects `witness` and `stranger` to `origin`; then waits until `witness` (an admitted
/// node) has a write made on `origin` after `stranger` connected, and checks that `stranger`
/// never got any of it, nor `origin` anything from it.
async fn assert_isolated(mut origin: Member, mut witness: Member, mut stranger: Member) {
    origin.connect(&[]).await;
    let seed = origin.addrs();
    witness.connect(&seed).await;
    stranger.connect(&seed).await;
    let key_origin = key("shared", "from-origin");
    let key_stranger = key("shared", "from-stranger");
    patch(&stranger.node, &key_stranger, json!({"x": 1})).await;
    // Give the stranger several anti-entropy rounds' worth of time to try.
    tokio::time::sleep(Duration::from_secs(2)).await;
    patch(&origin.node, &key_origin, json!({"x": 1})).await;
    eventually(CONVERGE, "the admitted node receives the write", || async {
        witness.node.get(&key_origin).await.is_ok()
    })
    .await;
    assert!(matches!(stranger.node.get(&key_origin).await, Err(NodeError::NotFound(_))), "the stranger read data");
    assert!(matches!(origin.node.get(&key_stranger).await, Err(NodeError::NotFound(_))), "the stranger wrote data");
    assert_eq!(origin.node.version_vector().get(stranger.node.node_id()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_the_wrong_pre_shared_key_is_refused() {
    let with_key = |psk: &str| {
        let mut config = member_config(None);
        config.security.psk = Some(psk.repeat(32));
        Member::open(config)
    };
    assert_isolated(with_key("aa"), with_key("aa"), with_key("bb")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_missing_from_the_allowlist_is_refused() {
    let witness = Member::open(member_config(None));
    let mut config = member_config(None);
    config.security.allowed_peers = vec![witness.node.node_id().to_string()];
    assert_isolated(Member::open(config), witness, Member::open(member_config(None))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_behind_a_pruned_log_receives_whole_documents_and_converges() {
    let mut config = member_config(None);
    config.history.max_size = 20;
    let mut origin = Member::open(config);
    let keys = docs("t", 10);
    for i in 0..200 {
        patch(&origin.node, &keys[i % keys.len()], json!({ format!("f{i}"): i })).await;
    }
    // Retention keeps only the newest 20 records of the origin's log.
    eventually(CONVERGE, "the origin's log is pruned", || async {
        let page = origin.node.read_log(Default::default(), 10, 1 << 20).await.expect("read log");
        !page.floors.is_empty()
    })
    .await;
    origin.connect(&[]).await;
    let mut late = Member::open(member_config(None));
    late.connect(&origin.addrs()).await;
    eventually(CONVERGE, "the late node converges", || async { same_version_vectors(&[&origin.node, &late.node]) })
        .await;
    assert_identical(&[&origin.node, &late.node], &keys).await;
    // A node that reaches only the late one gets the documents from it: the late node holds
    // none of the origin's records, only the proof that came with the documents.
    let mut later = Member::open(member_config(None));
    later.connect(&late.addrs()).await;
    eventually(CONVERGE, "a node behind the late one converges", || async {
        same_version_vectors(&[&origin.node, &later.node])
    })
    .await;
    assert_identical(&[&origin.node, &later.node], &keys).await;
    later.disconnect().await;
    // Writes after the transfer flow by log range again.
    patch(&origin.node, &keys[0], json!({"after": true})).await;
    eventually(CONVERGE, "a later write arrives", || async {
        late.node.get(&keys[0]).await.is_ok_and(|d| d.json.get("after").is_some())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_gossip_stops_at_the_first_node_and_its_sender_is_cut_off() {
    // Two honest nodes; a peer holding the cluster key connects to the first one only.
    let mut members = memory_cluster(2).await;
    let target = members[0].addrs()[0].clone();
    let first = members[0].node.metrics().p2p_rejected.get();
    let second = members[1].node.metrics().p2p_rejected.get();

    // It publishes garbage on the gossip topic: undecodable bytes and a message of the wrong kind.
    let wrong_kind = wire::encode(&Message::SyncRequest(SyncRequest { have: Default::default(), max_records: 1 }));
    let mut garbage: Vec<Vec<u8>> = vec![wrong_kind];
    garbage.extend((0..24).map(|i| vec![i as u8; 32]));
    let published = publish_raw_gossip(&target, garbage, Duration::from_secs(2)).await;
    assert_eq!(published, 25);

    // The first node refuses each and cuts the sender off; it forwards none of them, so the
    // second node never sees one.
    eventually(CONVERGE, "the first node refuses the garbage", || async {
        members[0].node.metrics().p2p_rejected.get() - first >= 17
    })
    .await;
    assert_eq!(members[1].node.metrics().p2p_rejected.get(), second, "invalid gossip was forwarded");

    // The honest nodes still replicate.
    let doc = key("shared", "after-garbage-gossip");
    patch(&members[0].node, &doc, json!({"ok": true})).await;
    eventually(CONVERGE, "replication continues", || async { members[1].node.get(&doc).await.is_ok() }).await;
    members[1].disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_messages_are_refused_counted_and_a_repeat_offender_is_cut_off() {
    let mut members = memory_cluster(2).await;
    let target = members[0].addrs()[0].clone();
    let before = members[0].node.metrics().p2p_rejected.get();

    // A well-formed request is answered.
    let valid = wire::encode(&Message::SyncRequest(SyncRequest { have: Default::default(), max_records: 10 }));
    let answered = send_raw_requests(&target, vec![valid]).await;
    assert!(matches!(&answered[..], [Ok(bytes)] if wire::decode(bytes, &Default::default()).is_ok()));

    // Garbage, a wrong wire version, and a message of the wrong kind: none is answered, each
    // is counted, and after enough of them the sender is disconnected and refused.
    let mut wrong_version = wire::encode(&Message::Gossip(Gossip { records: Vec::new() }));
    wrong_version[2] = 99;
    let wrong_kind = wire::encode(&Message::Gossip(Gossip { records: Vec::new() }));
    let mut bad: Vec<Vec<u8>> = vec![b"not a statemesh message".to_vec(), wrong_version, wrong_kind];
    bad.extend((0..20).map(|i| vec![i as u8; 64]));
    let outcomes = send_raw_requests(&target, bad).await;
    assert!(outcomes.iter().all(Result::is_err), "an invalid request was answered: {outcomes:?}");
    let rejected = members[0].node.metrics().p2p_rejected.get() - before;
    assert!(rejected >= 17, "only {rejected} refusals counted");

    // The node is unharmed: it still replicates with its legitimate peer.
    let doc = key("shared", "after-attack");
    patch(&members[0].node, &doc, json!({"ok": true})).await;
    eventually(CONVERGE, "replication continues", || async { members[1].node.get(&doc).await.is_ok() }).await;
    members[1].disconnect().await;
}
