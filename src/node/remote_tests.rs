//! Received records: applied in any order, idempotent, durable across restarts with
//! dependencies still missing, and refused when invalid or contradicting what is held.

use serde_json::json;

use super::*;
use crate::config::Config;
use statemesh_protocol::wire::DocState;
use statemesh_protocol::{ChangeRecord, DocError};

fn key(id: &str) -> DocKey {
    DocKey::new(Namespace::new("ns").expect("ns"), DocId::new(id).expect("id"))
}

fn config(dir: Option<&std::path::Path>) -> Config {
    let mut config = Config::default();
    match dir {
        Some(dir) => config.node.data_dir = dir.to_path_buf(),
        None => config.storage.kind = StorageType::Memory,
    }
    config
}

/// Every record `node` has logged, in seq order.
async fn records_of(node: &Node) -> Vec<ChangeRecord> {
    node.read_log(VersionVector::new(), 10_000, usize::MAX).await.expect("read log").records
}

#[tokio::test]
async fn records_apply_in_any_order_and_twice_without_effect() {
    let origin = Node::open(&config(None)).expect("origin");
    let k = key("doc");
    for i in 0..3 {
        origin.patch(&k, &json!({ format!("f{i}"): i }), &Precondition::None).await.expect("patch");
    }
    let mut records = records_of(&origin).await;
    records.reverse();
    let receiver = Node::open(&config(None)).expect("receiver");
    let vv = VersionVector::new();
    let report = receiver.apply_remote(records.clone(), vv.clone()).await.expect("apply");
    assert_eq!(report.persisted.len(), 3);
    assert!(report.rejected.is_empty());
    assert_eq!(receiver.get(&k).await.expect("doc"), origin.get(&k).await.expect("doc"));
    let again = receiver.apply_remote(records, vv).await.expect("apply again");
    assert_eq!(again.persisted.len(), 3, "already held records count as persisted");
    assert_eq!(receiver.get(&k).await.expect("doc"), origin.get(&k).await.expect("doc"));
}

#[tokio::test]
async fn a_change_waiting_for_its_dependency_survives_a_restart() {
    let origin = Node::open(&config(None)).expect("origin");
    let k = key("doc");
    origin.patch(&k, &json!({"a": 1}), &Precondition::None).await.expect("patch");
    origin.patch(&k, &json!({"b": 2}), &Precondition::None).await.expect("patch");
    let records = records_of(&origin).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Node::open(&config(Some(dir.path()))).expect("receiver");
    // The second record first: its change waits inside Automerge for the first.
    receiver.apply_remote(vec![records[1].clone()], VersionVector::new()).await.expect("apply");
    assert!(matches!(receiver.get(&k).await, Err(NodeError::NotFound(_))), "nothing visible yet");
    receiver.shutdown().await.expect("shutdown");
    drop(receiver);

    let reopened = Node::open(&config(Some(dir.path()))).expect("reopen");
    reopened.apply_remote(vec![records[0].clone()], VersionVector::new()).await.expect("apply");
    assert_eq!(reopened.get(&k).await.expect("doc").json, json!({"a": 1, "b": 2}));
    reopened.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn invalid_or_contradicting_records_are_refused_and_change_nothing() {
    let origin = Node::open(&config(None)).expect("origin");
    let k = key("doc");
    origin.patch(&k, &json!({"a": 1}), &Precondition::None).await.expect("patch");
    let record = records_of(&origin).await.remove(0);
    let receiver = Node::open(&config(None)).expect("receiver");
    receiver.apply_remote(vec![record.clone()], VersionVector::new()).await.expect("apply");
    let before = receiver.get(&k).await.expect("doc");

    // Same (origin, seq), other content.
    let mut forged = record.clone();
    forged.kind = ChangeKind::Delete;
    // Not Automerge at all, under a fresh seq.
    let mut garbage = record.clone();
    garbage.id.seq = 2;
    garbage.changes = vec![b"not automerge".to_vec()];
    let report = receiver.apply_remote(vec![forged, garbage], VersionVector::new()).await.expect("apply");
    assert!(report.persisted.is_empty(), "{report:?}");
    assert_eq!(report.rejected.len(), 2, "{report:?}");
    assert!(report.rejected.iter().any(|(_, reason)| reason.contains("differs")));
    assert!(report.rejected.iter().any(|(_, reason)| reason.contains("does not apply")));
    assert_eq!(receiver.get(&k).await.expect("doc"), before);
    assert_eq!(receiver.version_vector().get(origin.node_id()), 0, "nothing was counted as received");
}

#[tokio::test]
async fn log_pages_end_every_run_at_a_seal_and_a_restart_continues_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = Node::open(&config(Some(dir.path()))).expect("origin");
    for i in 0..40 {
        origin.patch(&key(&format!("d{}", i % 3)), &json!({ "i": i }), &Precondition::None).await.expect("patch");
    }
    // The same records as group commits of seven, as a busy origin writes them (only each
    // batch's last record sealed), relayed to another node.
    let signing_key = origin.inner.identity.signing_key();
    let mut chain = statemesh_protocol::seal::SealChain::new(None);
    let mut records = records_of(&origin).await;
    let count = records.len();
    for (i, record) in records.iter_mut().enumerate() {
        chain.add(record, i % 7 == 6 || i + 1 == count, &signing_key);
    }
    let relay = Node::open(&config(None)).expect("relay");
    let report = relay.apply_remote(records, VersionVector::new()).await.expect("apply");
    assert_eq!(report.persisted.len(), 40);
    let mut vv = VersionVector::new();
    vv.advance(origin.node_id(), 40);
    relay.set_replicated_vv(&vv);
    // Every page the relay serves, however small the bound, ends at a seal and checks on its
    // own: the bound cuts back to the last seal, or runs on to the next.
    let mut have = VersionVector::new();
    let mut verifier = statemesh_protocol::seal::SealVerifier::new();
    let mut sizes = Vec::new();
    loop {
        let page = relay.read_log(have.clone(), 3, usize::MAX).await.expect("page");
        if page.records.is_empty() {
            break;
        }
        assert!(page.records.last().is_some_and(|r| r.seal.is_some()), "a page ended on an unsealed record");
        let last = page.records[page.records.len() - 1].id.seq;
        sizes.push(page.records.len());
        let (accepted, refused) = verifier.verify(page.records);
        assert_eq!((accepted.len(), refused.len()), (*sizes.last().expect("size"), 0), "{refused:?}");
        have.advance(origin.node_id(), last);
    }
    assert_eq!(sizes, vec![7, 7, 7, 7, 7, 5]);
    // After a restart, the origin's next record links to the last one it wrote before.
    origin.shutdown().await.expect("shutdown");
    drop(origin);
    let origin = Node::open(&config(Some(dir.path()))).expect("reopen");
    origin.patch(&key("after"), &json!({ "restarted": true }), &Precondition::None).await.expect("patch");
    let all = records_of(&origin).await;
    let (before, after) = (&all[all.len() - 2], &all[all.len() - 1]);
    assert_eq!(after.prev, statemesh_protocol::seal::record_hash(before));
}

/// A page of every document `node` holds, with the headers that prove them.
async fn state_page(node: &Node) -> super::state_transfer::DocsPage {
    node.read_docs(None, 1000, usize::MAX).await.expect("read docs")
}

#[tokio::test]
async fn transferred_documents_merge_only_as_far_as_their_proofs_vouch_and_are_proven_on() {
    let origin = Node::open(&config(None)).expect("origin");
    let (k, other) = (key("doc"), key("other"));
    for i in 0..3 {
        origin.patch(&k, &json!({ format!("f{i}"): i }), &Precondition::None).await.expect("patch");
    }
    origin.patch(&other, &json!({"x": 1}), &Precondition::None).await.expect("patch");
    let page = state_page(&origin).await;
    assert_eq!(page.docs.len(), 2);
    assert!(page.proofs.iter().all(|h| h.id.origin == *origin.node_id() && h.seal.is_some()), "{:?}", page.proofs);

    // An honest page merges.
    let receiver = Node::open(&config(None)).expect("receiver");
    let from = origin.node_id().clone();
    receiver.merge_docs(from.clone(), page.docs.clone(), None, Vec::new(), page.proofs.clone()).await.expect("merge");
    assert_eq!(receiver.get(&k).await.expect("doc").json, origin.get(&k).await.expect("doc").json);

    // ... and the receiver proves what it got to the next node, which never met the origin.
    let relayed = state_page(&receiver).await;
    assert_eq!(relayed.proofs, page.proofs);
    let next = Node::open(&config(None)).expect("next");
    let via = receiver.node_id().clone();
    next.merge_docs(via, relayed.docs, None, Vec::new(), relayed.proofs).await.expect("merge relayed");
    assert_eq!(next.get(&other).await.expect("doc").json, json!({"x": 1}));

    // A responder that adds a change of its own making to a proven document is refused, and
    // so is one that passes a proven document off as another.
    let victim = Node::open(&config(None)).expect("victim");
    let doc_state = page.docs.iter().find(|d| d.doc == k).expect("doc").clone();
    let mut forged = Document::load(&doc_state.automerge, automerge::ActorId::from(vec![0x66; 16])).expect("load");
    forged.merge_patch(&json!({"f0": "forged"}), 0).expect("forge");
    let tampered = DocState { doc: k.clone(), automerge: forged.save() };
    let refused = victim.merge_docs(from.clone(), vec![tampered], None, Vec::new(), page.proofs.clone()).await;
    assert!(matches!(refused, Err(NodeError::Document(DocError::Unattested(_)))), "{refused:?}");
    let moved = DocState { doc: key("elsewhere"), automerge: doc_state.automerge.clone() };
    let refused = victim.merge_docs(from, vec![moved], None, Vec::new(), page.proofs).await;
    assert!(matches!(refused, Err(NodeError::Document(DocError::Unattested(_)))), "{refused:?}");
    assert!(matches!(victim.get(&k).await, Err(NodeError::NotFound(_))));
    assert!(matches!(victim.get(&key("elsewhere")).await, Err(NodeError::NotFound(_))));
}

#[tokio::test]
async fn a_document_with_changes_waiting_for_dependencies_is_served_without_them() {
    let origin = Node::open(&config(None)).expect("origin");
    let k = key("doc");
    for i in 0..3 {
        origin.patch(&k, &json!({ format!("f{i}"): i }), &Precondition::None).await.expect("patch");
    }
    let records = records_of(&origin).await;
    // The relay lacks the middle change, so the last one waits inside its document.
    let relay = Node::open(&config(None)).expect("relay");
    relay.apply_remote(vec![records[0].clone(), records[2].clone()], VersionVector::new()).await.expect("apply");
    // The requester holds the middle change: given the waiting one, it could apply it, and
    // no proof of the relay's would vouch for it.
    let requester = Node::open(&config(None)).expect("requester");
    requester.apply_remote(records[..2].to_vec(), VersionVector::new()).await.expect("apply");
    let page = state_page(&relay).await;
    let from = relay.node_id().clone();
    requester.merge_docs(from, page.docs, None, Vec::new(), page.proofs).await.expect("an honest relay's page merges");
    assert_eq!(requester.get(&k).await.expect("doc").json, json!({"f0": 0, "f1": 1}));
    // The waiting change comes with its record, as every change does.
    requester.apply_remote(vec![records[2].clone()], VersionVector::new()).await.expect("apply");
    assert_eq!(requester.get(&k).await.expect("doc").json, origin.get(&k).await.expect("doc").json);
}

#[tokio::test]
async fn a_member_logs_but_does_not_apply_records_of_other_origins_into_a_strong_namespace() {
    use crate::config::{NamespaceConsistency, NamespacePolicy};
    // The origin does not declare `reg` strong, so it writes there eventually.
    let origin = Node::open(&config(None)).expect("origin");
    let (strong_doc, plain_doc) =
        (DocKey::new(Namespace::new("reg").expect("ns"), DocId::new("r").expect("id")), key("p"));
    origin.patch(&strong_doc, &json!({"v": "unbidden"}), &Precondition::None).await.expect("patch");
    origin.patch(&plain_doc, &json!({"v": "fine"}), &Precondition::None).await.expect("patch");
    let records = records_of(&origin).await;

    let mut declared = config(None);
    declared.namespaces.declared.insert(
        "reg".to_owned(),
        NamespacePolicy { consistency: NamespaceConsistency::Strong, ..NamespacePolicy::default() },
    );
    // A member of the Raft cluster knows the cluster's origin.
    let member = Node::open(&declared).expect("member");
    let cluster = Node::open(&config(None)).expect("stands in for the cluster's origin");
    member.set_strong_origin(cluster.node_id().clone());
    let report = member.apply_remote(records.clone(), VersionVector::new()).await.expect("apply");
    assert_eq!(report.persisted.len(), 2, "both count as received: the origin's sequence goes on");
    assert!(matches!(member.get(&strong_doc).await, Err(NodeError::NotFound(_))), "not applied");
    assert_eq!(member.get(&plain_doc).await.expect("doc").json, json!({"v": "fine"}));
    for record in &records {
        let key = statemesh_protocol::change_log::log_key(&record.id.origin, record.id.seq);
        let logged = member.inner.storage.get(crate::storage::Family::ChangeLog, &key).expect("get");
        assert_eq!(logged, Some(record.encode()), "{} is logged, to be relayed", record.id);
    }
    assert_eq!(member.inner.metrics.remote_records_quarantined.get(), 1);

    // A node outside the cluster cannot tell the cluster's origin from another: it applies.
    let edge = Node::open(&declared).expect("edge");
    edge.apply_remote(records, VersionVector::new()).await.expect("apply");
    assert_eq!(edge.get(&strong_doc).await.expect("doc").json, json!({"v": "unbidden"}));
}
