//! Node behaviour through the library API, on both storage backends.

use serde_json::json;

use super::*;
use crate::config::Config;
use statemesh_protocol::change_log::log_key;
use statemesh_protocol::ChangeRecord;

fn key(ns: &str, id: &str) -> DocKey {
    DocKey::new(Namespace::new(ns).expect("ns"), DocId::new(id).expect("id"))
}

fn memory_config() -> Config {
    let mut config = Config::default();
    config.storage.kind = StorageType::Memory;
    config
}

fn rocks_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.node.data_dir = dir.to_path_buf();
    config
}

async fn with_each_backend(test: impl AsyncFn(Node)) {
    test(Node::open(&memory_config()).expect("memory node")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::open(&rocks_config(dir.path())).expect("rocks node");
    test(node.clone()).await;
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn written_documents_read_back_with_their_version() {
    with_each_backend(async |node| {
        let k = key("users", "ada");
        let written = node.put(&k, &json!({"name": "Ada"}), &Precondition::None).await.expect("put");
        assert!(written.created);
        let read = node.get(&k).await.expect("get");
        assert_eq!(read.json, json!({"name": "Ada"}));
        assert_eq!(read.version, written.version);
        let patched = node.patch(&k, &json!({"born": 1815}), &Precondition::None).await.expect("patch");
        assert_eq!(node.get(&k).await.expect("get").json, json!({"name": "Ada", "born": 1815}));
        assert_ne!(patched.version, written.version);
    })
    .await;
}

#[tokio::test]
async fn every_change_is_logged_with_a_dense_seq_and_advances_the_version_vector() {
    with_each_backend(async |node| {
        for i in 0..5 {
            node.put(&key("ns", &format!("d{i}")), &json!({"i": i}), &Precondition::None).await.expect("put");
        }
        let unchanged = node.put(&key("ns", "d0"), &json!({"i": 0}), &Precondition::None).await.expect("put");
        assert_eq!(unchanged.change, None, "a write that changes nothing is not logged");
        assert_eq!(node.version_vector().get(node.node_id()), 5);
        for seq in 1..=5 {
            let bytes = node.inner.storage.get(Family::ChangeLog, &log_key(node.node_id(), seq)).expect("get");
            let record = ChangeRecord::decode(&bytes.expect("record present")).expect("decodes");
            assert_eq!(record.id.seq, seq);
            assert_eq!(record.kind, ChangeKind::Put);
            assert_eq!(record.changes.len(), 1);
        }
    })
    .await;
}

#[tokio::test]
async fn preconditions_make_writes_compare_and_swap() {
    with_each_backend(async |node| {
        let k = key("ns", "cas");
        let absent = Precondition::Absent;
        let v1 = node.put(&k, &json!({"n": 1}), &absent).await.expect("create").version;
        assert!(matches!(node.put(&k, &json!({"n": 9}), &absent).await, Err(NodeError::Precondition(_))));
        let v2 = node.put(&k, &json!({"n": 2}), &Precondition::IfMatch(v1.clone())).await.expect("cas").version;
        let stale = node.put(&k, &json!({"n": 3}), &Precondition::IfMatch(v1)).await;
        assert!(matches!(stale, Err(NodeError::VersionMismatch { .. })));
        assert_eq!(node.get(&k).await.expect("get").version, v2);
        assert_eq!(node.get(&k).await.expect("get").json, json!({"n": 2}));
    })
    .await;
}

#[tokio::test]
async fn deleted_documents_are_gone_from_reads_listings_and_counts() {
    with_each_backend(async |node| {
        node.put(&key("ns", "a"), &json!({}), &Precondition::None).await.expect("put");
        node.put(&key("ns", "b"), &json!({}), &Precondition::None).await.expect("put");
        node.delete(&key("ns", "a"), &Precondition::None).await.expect("delete");
        assert!(matches!(node.get(&key("ns", "a")).await, Err(NodeError::NotFound(_))));
        assert!(matches!(node.delete(&key("ns", "a"), &Precondition::None).await, Err(NodeError::NotFound(_))));
        let ids: Vec<_> =
            node.list(&Namespace::new("ns").expect("ns"), None, 10).expect("list").into_iter().map(|d| d.id).collect();
        assert_eq!(ids, vec!["b"]);
        assert_eq!(node.status().documents, 1);
    })
    .await;
}

#[tokio::test]
async fn listing_pages_through_ids_in_order() {
    with_each_backend(async |node| {
        for i in 0..25 {
            node.put(&key("pages", &format!("doc{i:02}")), &json!({}), &Precondition::None).await.expect("put");
        }
        node.put(&key("other", "x"), &json!({}), &Precondition::None).await.expect("put");
        let ns = Namespace::new("pages").expect("ns");
        let mut seen = Vec::new();
        let mut after: Option<DocId> = None;
        loop {
            let page = node.list(&ns, after.as_ref(), 10).expect("list");
            if page.is_empty() {
                break;
            }
            after = Some(DocId::new(page.last().expect("non-empty").id.clone()).expect("id"));
            seen.extend(page.into_iter().map(|d| d.id));
        }
        let expected: Vec<_> = (0..25).map(|i| format!("doc{i:02}")).collect();
        assert_eq!(seen, expected);
    })
    .await;
}

#[tokio::test]
async fn refused_writes_store_nothing() {
    let mut config = memory_config();
    let mut policy = config.namespaces.defaults.clone();
    policy.schema = Some(json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}));
    policy.max_doc_bytes = 64;
    config.namespaces.declared.insert("strict_ns".to_string(), policy);
    let node = Node::open(&config).expect("node");
    let k = key("strict_ns", "x");
    assert!(matches!(
        node.put(&k, &json!({"id": 5}), &Precondition::None).await,
        Err(NodeError::SchemaViolation { .. })
    ));
    let big = json!({"id": "x".repeat(100)});
    assert!(matches!(node.put(&k, &big, &Precondition::None).await, Err(NodeError::DocumentTooLarge { .. })));
    assert!(matches!(node.put(&k, &json!([1]), &Precondition::None).await, Err(NodeError::Document(_))));
    node.put(&k, &json!({"id": "ok"}), &Precondition::None).await.expect("valid put");
    assert!(matches!(
        node.patch(&k, &json!({"id": null}), &Precondition::None).await,
        Err(NodeError::SchemaViolation { .. })
    ));
    assert_eq!(node.get(&k).await.expect("get").json, json!({"id": "ok"}));
    assert_eq!(node.version_vector().get(node.node_id()), 1, "only the valid write was logged");
}

#[tokio::test]
async fn strict_mode_refuses_undeclared_namespaces() {
    let mut config = memory_config();
    config.namespaces.strict = true;
    config.namespaces.declared.insert("known".to_string(), config.namespaces.defaults.clone());
    let node = Node::open(&config).expect("node");
    node.put(&key("known", "a"), &json!({}), &Precondition::None).await.expect("declared namespace");
    assert!(matches!(
        node.put(&key("unknown", "a"), &json!({}), &Precondition::None).await,
        Err(NodeError::UnknownNamespace(_))
    ));
    assert!(matches!(node.get(&key("unknown", "a")).await, Err(NodeError::UnknownNamespace(_))));
}

#[tokio::test]
async fn a_restart_keeps_documents_history_log_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = rocks_config(dir.path());
    let (node_id, version) = {
        let node = Node::open(&config).expect("open");
        let k = key("ns", "doc");
        // Enough writes to cross a compaction of the stored document.
        for i in 0..300 {
            node.patch(&k, &json!({"i": i, "pad": "x".repeat(64)}), &Precondition::None).await.expect("patch");
        }
        node.put(&key("ns", "other"), &json!({"a": 1}), &Precondition::None).await.expect("put");
        let version = node.get(&k).await.expect("get").version;
        let id = node.node_id().clone();
        node.shutdown().await.expect("shutdown");
        (id, version)
    };
    let node = Node::open(&config).expect("reopen");
    assert_eq!(node.node_id(), &node_id, "identity persists");
    let doc = node.get(&key("ns", "doc")).await.expect("get");
    assert_eq!(doc.version, version);
    assert_eq!(doc.json["i"], json!(299));
    assert_eq!(node.version_vector().get(&node_id), 301);
    assert_eq!(node.status().documents, 2);
    let next = node.put(&key("ns", "third"), &json!({}), &Precondition::None).await.expect("put");
    assert_eq!(next.change.expect("logged").seq, 302, "seqs continue after a restart");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_fsyncs_and_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::open(&rocks_config(dir.path())).expect("open");
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let node = node.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    node.put(&key("load", &format!("w{w}")), &json!({"i": i}), &Precondition::None).await.expect("put");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    assert_eq!(node.version_vector().get(node.node_id()), 64 * 20);
    let fsyncs = node.metrics().fsyncs.get();
    assert!(fsyncs < 64 * 20, "group commit shares fsyncs: {fsyncs} fsyncs for {} writes", 64 * 20);
    for w in 0..64 {
        assert_eq!(node.get(&key("load", &format!("w{w}"))).await.expect("get").json, json!({"i": 19}));
    }
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn evicted_documents_reload_with_every_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = rocks_config(dir.path());
    config.storage.cache_docs = 16;
    let node = Node::open(&config).expect("open");
    for round in 0..3 {
        for i in 0..100 {
            node.patch(&key("ns", &format!("d{i}")), &json!({ format!("r{round}"): i }), &Precondition::None)
                .await
                .expect("patch");
        }
    }
    assert!(node.inner.cache.len() <= 40, "cache stays bounded: {}", node.inner.cache.len());
    for i in 0..100 {
        let doc = node.get(&key("ns", &format!("d{i}"))).await.expect("get");
        assert_eq!(doc.json, json!({"r0": i, "r1": i, "r2": i}));
    }
    node.shutdown().await.expect("shutdown");
}

/// Storage that fails every write, to show a storage error stops the node cleanly.
struct FailingStorage(MemoryStorage);

impl Storage for FailingStorage {
    fn write(&self, _: crate::storage::WriteBatch) -> Result<(), StorageError> {
        Err(StorageError::Io("disk on fire".to_string()))
    }
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.get(family, key)
    }
    fn scan(
        &self,
        family: Family,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<crate::storage::Entry>, StorageError> {
        self.0.scan(family, prefix, start, limit)
    }
    fn visit_consistent(
        &self,
        families: &[Family],
        visit: &mut dyn FnMut(Family, &[u8], &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.0.visit_consistent(families, visit)
    }
    fn size_bytes(&self) -> u64 {
        0
    }
    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "failing"
    }
}

#[tokio::test]
async fn a_storage_failure_is_never_acknowledged_and_stops_the_node() {
    let config = memory_config();
    let namespaces = Namespaces::compile(&config.namespaces).expect("namespaces");
    let node = Node::start(&config, Arc::new(FailingStorage(MemoryStorage::new())), Identity::ephemeral(), namespaces)
        .expect("start");
    let k = key("ns", "a");
    assert!(matches!(node.put(&k, &json!({"a": 1}), &Precondition::None).await, Err(NodeError::Storage(_))));
    assert!(!node.is_ready());
    assert!(matches!(node.put(&k, &json!({"a": 2}), &Precondition::None).await, Err(NodeError::Storage(_))));
    assert!(node.shutdown().await.is_err(), "shutdown reports the storage failure");
}

#[tokio::test]
async fn raw_automerge_changes_round_trip() {
    with_each_backend(async |node| {
        let mut foreign = automerge::AutoCommit::new();
        automerge::transaction::Transactable::put(&mut foreign, automerge::ROOT, "k", "v").expect("put");
        let k = key("raw", "doc");
        let written = node.apply_automerge(&k, &foreign.save(), &Precondition::None).await.expect("apply");
        assert!(written.created);
        assert_eq!(node.get(&k).await.expect("get").json, json!({"k": "v"}));
        let (changes, version) = node.changes_since(&k, None).await.expect("changes");
        assert_eq!(version, written.version);
        let mut copy = automerge::AutoCommit::new();
        copy.load_incremental(&changes.concat()).expect("load");
        assert_eq!(copy.get_heads(), foreign.get_heads());
        let (none_after, _) = node.changes_since(&k, Some(&version)).await.expect("changes");
        assert!(none_after.is_empty());
        assert!(matches!(node.apply_automerge(&k, b"junk", &Precondition::None).await, Err(NodeError::Document(_))));
    })
    .await;
}

#[tokio::test]
async fn retention_prunes_the_feed_and_the_log_but_never_documents() {
    let mut config = memory_config();
    config.history.max_size = 10;
    let node = Node::open(&config).expect("node");
    for i in 0..30 {
        node.patch(&key("ns", "doc"), &json!({"i": i}), &Precondition::None).await.expect("patch");
    }
    // Pruning runs in the committer at most once a second, also when idle.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while node.feed_oldest() < 21 {
        assert!(std::time::Instant::now() < deadline, "feed never pruned: oldest {}", node.feed_oldest());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let origin = node.node_id().clone();
    while node.inner.storage.get(Family::ChangeLog, &log_key(&origin, 20)).expect("get").is_some() {
        assert!(std::time::Instant::now() < deadline, "log never pruned");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(node.inner.storage.get(Family::ChangeLog, &log_key(&origin, 21)).expect("get").is_some());
    assert!(matches!(node.feed_after(5, &FeedFilter::default(), 100), Err(FeedError::Expired { oldest: 21, .. })));
    let page = node.feed_after(20, &FeedFilter::default(), 100).expect("resumable from the floor");
    assert_eq!(page.events.iter().map(|e| e.pos).collect::<Vec<_>>(), (21..=30).collect::<Vec<_>>());
    // The document keeps its whole history.
    let history = node.history(&key("ns", "doc"), None, 100).await.expect("history");
    assert_eq!(history.total, 30);
}
