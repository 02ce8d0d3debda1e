//! Received records: applied in any order, idempotent, durable across restarts with
//! dependencies still missing, and refused when invalid or contradicting what is held.

use serde_json::json;

use super::*;
use crate::config::Config;
use statemesh_protocol::ChangeRecord;

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
