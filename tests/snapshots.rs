//! Snapshots end to end: create, list, restore and delete through the HTTP API on memory and
//! RocksDB nodes; damaged files refused with nothing changed; pruning and the schedule; the
//! offline export and import of the binary.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{cli, memory_config, InProcessNode, NodeProcess};
use serde_json::{json, Value};
use statemesh::client::{Client, ClientError, Condition};
use statemesh::config::{Compression, Config, SerializationFormat, StorageType};
use statemesh::snapshot::codec::{COMPRESSIONS, FORMATS};
use statemesh::snapshot::{Scheduler, SnapshotSettings};

fn config_for(dir: &Path, storage: StorageType, format: SerializationFormat, compression: Compression) -> Config {
    let mut config = memory_config();
    config.storage.kind = storage;
    config.node.data_dir = dir.to_path_buf();
    config.storage.format = format;
    config.snapshots.compression = compression;
    config
}

async fn put(c: &Client, ns: &str, id: &str, body: Value) {
    c.put(ns, id, &body, &Condition::None).await.expect("put");
}

async fn json_of(c: &Client, ns: &str, id: &str) -> Option<Value> {
    match c.get(ns, id).await {
        Ok(doc) => Some(doc.document),
        Err(ClientError::Api { status: 404, .. }) => None,
        Err(other) => panic!("get {ns}/{id}: {other}"),
    }
}

async fn changes_of(c: &Client, ns: &str, id: &str) -> usize {
    c.changes(ns, id, None).await.expect("changes").count
}

/// Every document's JSON (live ones) plus the version vector: what "unchanged" means.
async fn state(c: &Client) -> (Vec<(String, String, Value)>, Value) {
    let mut docs = Vec::new();
    for ns in ["users", "orders", "extra"] {
        for summary in c.list(ns, Some(1000), None).await.expect("list").documents {
            let doc = c.get(ns, &summary.id).await.expect("get").document;
            docs.push((ns.to_string(), summary.id, doc));
        }
    }
    let status = c.status().await.expect("status");
    (docs, status["version_vector"].clone())
}

/// Writes, snapshots, changes everything, restores, and checks the snapshot state came back
/// as new changes.
async fn round_trip(storage: StorageType, format: SerializationFormat, compression: Compression) {
    let label = format!("{storage:?} {format:?} × {compression:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let node = InProcessNode::start(config_for(dir.path(), storage, format, compression)).await;
    let c = &node.client;
    put(c, "users", "ada", json!({"name": "Ada", "langs": ["en", "fr"], "born": 1815})).await;
    put(c, "users", "bob", json!({"name": "Bob"})).await;
    c.delete("users", "bob", &Condition::None).await.expect("delete");
    put(c, "orders", "o-1", json!({"total": 12.5, "lines": [{"sku": "x", "qty": 2}], "paid": false})).await;

    let created = c.create_snapshot().await.expect("create snapshot");
    assert_eq!(created.info.documents, 3, "{label}: deleted documents are part of the snapshot");
    assert_eq!((created.info.format.as_str(), created.info.compression.as_str()), (name(format), cname(compression)));
    let listed = c.list_snapshots().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.info.id);
    assert_eq!(listed[0].bytes, created.info.bytes);

    let ada = json_of(c, "users", "ada").await;
    let order = json_of(c, "orders", "o-1").await;
    // Everything moves on after the snapshot: edits, a delete, a re-creation, a new document.
    c.patch("users", "ada", &json!({"born": null, "title": "Countess"}), &Condition::None).await.expect("patch");
    c.delete("orders", "o-1", &Condition::None).await.expect("delete");
    put(c, "users", "bob", json!({"name": "Bob, again"})).await;
    put(c, "extra", "new", json!({"added": "after the snapshot"})).await;
    let ada_changes_before = changes_of(c, "users", "ada").await;

    let report = c.restore_snapshot(&created.info.id).await.expect("restore");
    assert_eq!(report.documents, 3, "{label}");
    assert_eq!((report.restored, report.failed), (3, 0), "{label}: {report:?}");
    assert_eq!(report.deleted, 1, "{label}: the document created after the snapshot is deleted");

    assert_eq!(json_of(c, "users", "ada").await, ada, "{label}");
    assert_eq!(json_of(c, "orders", "o-1").await, order, "{label}: a deleted document comes back");
    assert_eq!(json_of(c, "users", "bob").await, None, "{label}: deleted in the snapshot, deleted again");
    assert_eq!(json_of(c, "extra", "new").await, None, "{label}");
    assert!(
        changes_of(c, "users", "ada").await > ada_changes_before,
        "{label}: a restore adds changes; history is kept, not rewritten"
    );
    // Restoring the same snapshot again changes nothing.
    let again = c.restore_snapshot(&created.info.id).await.expect("restore again");
    assert_eq!((again.restored, again.unchanged, again.deleted), (0, 3, 0), "{label}: {again:?}");
}

fn name(format: SerializationFormat) -> &'static str {
    statemesh::snapshot::format::format_name(format)
}

fn cname(compression: Compression) -> &'static str {
    statemesh::snapshot::format::compression_name(compression)
}

#[tokio::test]
async fn snapshots_round_trip_in_every_format_and_compression_on_memory_nodes() {
    for format in FORMATS {
        for compression in COMPRESSIONS {
            round_trip(StorageType::Memory, format, compression).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_round_trip_in_every_format_and_compression_on_rocksdb_nodes() {
    for format in FORMATS {
        for compression in COMPRESSIONS {
            round_trip(StorageType::Persistent, format, compression).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restores_into_a_different_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(dir.path(), StorageType::Persistent, SerializationFormat::Msgpack, Compression::Zstd);
    let source = InProcessNode::start(config.clone()).await;
    for i in 0..50 {
        put(&source.client, "users", &format!("u{i:03}"), json!({"n": i, "tags": ["a", "b"]})).await;
    }
    let created = source.client.create_snapshot().await.expect("create");

    // Another node (fresh identity, in memory) reading the same snapshot directory.
    let mut other = config_for(dir.path(), StorageType::Memory, SerializationFormat::Json, Compression::None);
    other.snapshots.path = Some(config.snapshot_dir());
    let target = InProcessNode::start(other).await;
    put(&target.client, "users", "stranger", json!({})).await;
    let report = target.client.restore_snapshot(&created.info.id).await.expect("restore");
    assert_eq!((report.restored, report.deleted, report.failed), (50, 1, 0), "{report:?}");
    assert_eq!(state(&target.client).await.0, state(&source.client).await.0);
}

/// Restores `file` (already damaged) as snapshot `id` and checks the refusal and that the
/// node's documents and version vector did not move.
async fn refused(c: &Client, id: &str, expected_code: &str, before: &(Vec<(String, String, Value)>, Value)) {
    match c.restore_snapshot(id).await {
        Err(ClientError::Api { status, code, message }) => {
            assert_eq!((status, code.as_str()), (422, expected_code), "{message}");
        }
        other => panic!("a damaged snapshot was not refused: {other:?}"),
    }
    assert_eq!(&state(c).await, before, "the node changed after a refused restore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_truncated_or_foreign_snapshot_is_refused_and_the_node_is_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(dir.path(), StorageType::Persistent, SerializationFormat::Bincode, Compression::Gzip);
    let node = InProcessNode::start(config.clone()).await;
    let c = &node.client;
    for i in 0..20 {
        put(c, "users", &format!("u{i}"), json!({"i": i})).await;
    }
    let created = c.create_snapshot().await.expect("create");
    // Move on, so a restore that slipped through would be visible.
    for i in 0..20 {
        c.patch("users", &format!("u{i}"), &json!({"moved": true}), &Condition::None).await.expect("patch");
    }
    put(c, "extra", "later", json!({})).await;
    let before = state(c).await;
    let file = Path::new(&created.info.file);
    let good = std::fs::read(file).expect("read snapshot");
    let id = created.info.id.as_str();

    for at in [good.len() / 2, good.len() - 1, 90] {
        let mut bytes = good.clone();
        bytes[at] ^= 0x01;
        std::fs::write(file, &bytes).expect("write");
        refused(c, id, "snapshot_corrupt", &before).await;
    }
    // Header bytes: the compression code, created_ms, the payload length, the checksum.
    for at in [17, 20, 45, 60] {
        let mut bytes = good.clone();
        bytes[at] ^= 0x01;
        std::fs::write(file, &bytes).expect("write");
        refused(c, id, "snapshot_corrupt", &before).await;
    }
    std::fs::write(file, &good[..good.len() - 10]).expect("write");
    refused(c, id, "snapshot_corrupt", &before).await;
    std::fs::write(file, &good[..40]).expect("write");
    refused(c, id, "snapshot_corrupt", &before).await;
    std::fs::write(file, b"{\"this is\": \"not a snapshot\"}").expect("write");
    refused(c, id, "snapshot_foreign", &before).await;
    let mut newer = good.clone();
    newer[15] = 99;
    std::fs::write(file, &newer).expect("write");
    refused(c, id, "snapshot_unsupported", &before).await;

    // The intact file still restores.
    std::fs::write(file, &good).expect("write");
    let report = c.restore_snapshot(id).await.expect("restore");
    assert_eq!((report.restored, report.deleted), (20, 1));
}

#[tokio::test]
async fn unknown_and_malformed_snapshot_ids_get_json_errors_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node =
        InProcessNode::start(config_for(dir.path(), StorageType::Memory, Default::default(), Default::default())).await;
    put(&node.client, "users", "ada", json!({"name": "Ada"})).await;
    let before = state(&node.client).await;

    let missing = "2020-01-01T00-00-00-000Z-000000";
    for result in [node.client.restore_snapshot(missing).await.map(|_| ()), node.client.delete_snapshot(missing).await]
    {
        match result {
            Err(ClientError::Api { status: 404, code, .. }) => assert_eq!(code, "snapshot_not_found"),
            other => panic!("{other:?}"),
        }
    }
    let http = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::POST, "/v1/snapshots/..%2F..%2Fetc%2Fpasswd/restore"),
        (reqwest::Method::POST, "/v1/snapshots/a.snap/restore"),
        (reqwest::Method::DELETE, "/v1/snapshots/..%2Fdb"),
    ] {
        let response = http.request(method, format!("{}{path}", node.url)).send().await.expect("request");
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let body: Value = response.json().await.expect("json error");
        assert_eq!(body["error"]["code"], "invalid_snapshot_id", "{path}");
    }
    let response = http.put(format!("{}/v1/snapshots", node.url)).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 405);
    let body: Value = response.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    assert_eq!(state(&node.client).await, before);
}

#[tokio::test]
async fn creating_snapshots_keeps_only_the_newest_max_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config_for(dir.path(), StorageType::Memory, SerializationFormat::Bincode, Compression::Lz4);
    config.snapshots.max_snapshots = 3;
    let node = InProcessNode::start(config).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        put(&node.client, "users", &format!("u{i}"), json!({})).await;
        ids.push(node.client.create_snapshot().await.expect("create").info.id);
        // Ids carry millisecond time; keep creations in distinct milliseconds.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let listed: Vec<String> = node.client.list_snapshots().await.expect("list").into_iter().map(|s| s.id).collect();
    ids.reverse();
    assert_eq!(listed, ids[..3], "newest first, the two oldest pruned");
    node.client.delete_snapshot(&listed[0]).await.expect("delete");
    assert_eq!(node.client.list_snapshots().await.expect("list").len(), 2);
}

#[tokio::test]
async fn the_scheduler_takes_periodic_snapshots_and_prunes_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node =
        InProcessNode::start(config_for(dir.path(), StorageType::Memory, Default::default(), Default::default())).await;
    put(&node.client, "users", "ada", json!({})).await;
    let settings = SnapshotSettings {
        dir: dir.path().join("periodic"),
        format: SerializationFormat::Json,
        compression: Compression::Zstd,
        max_snapshots: 2,
        enabled: true,
        interval: Duration::from_millis(50),
    };
    let store = settings.store();
    let scheduler = Scheduler::spawn(node.node.clone(), settings).expect("enabled");
    // Wait (bounded) for more snapshots than are kept, so pruning has had to act.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 4 {
        assert!(Instant::now() < deadline, "the scheduler took only {} snapshots", seen.len());
        seen.extend(store.list().expect("list").into_iter().map(|s| s.id));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    scheduler.stop().await;
    assert_eq!(store.list().expect("list").len(), 2, "pruned to max_snapshots");
    let disabled = SnapshotSettings { enabled: false, ..SnapshotSettings::from_config(&Config::default()) };
    assert!(Scheduler::spawn(node.node.clone(), disabled).is_none());
}

#[test]
fn offline_export_and_import_work_on_a_stopped_node_and_refuse_a_running_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source");
    let file = dir.path().join("export.snap");
    let file_arg = file.to_str().expect("utf8");
    let source_arg = source.to_str().expect("utf8");

    let node = NodeProcess::start(&source, &[]);
    let run = |args: &[&str]| {
        let mut full = vec!["--node", node.url.as_str()];
        full.extend_from_slice(args);
        cli(&full, &[])
    };
    for (id, body) in [("ada", r#"{"name":"Ada"}"#), ("bob", r#"{"name":"Bob"}"#)] {
        let (code, _, err) = run(&["put", "users", id, body]);
        assert_eq!(code, 0, "{err}");
    }
    // Through the running node's API.
    let (code, out, err) = run(&["--json", "snapshot", "create"]);
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    let (code, out, _) = run(&["snapshot", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains(&id), "{out}");
    run(&["put", "users", "carol", "{}"]);
    let (code, out, err) = run(&["snapshot", "restore", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restored snapshot") && out.contains("1 documents absent from the snapshot deleted"), "{out}");
    let (code, _, err) = run(&["snapshot", "restore", "2020-01-01T00-00-00-000Z-000000"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist") && err.contains("snapshot_not_found"), "{err}");

    // Offline on a running node's directory: refused, clearly.
    let (code, _, err) = cli(&["snapshot", "export", "--data-dir", source_arg, file_arg], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("in use by a running node"), "{err}");
    assert!(!file.exists());
    assert_eq!(node.terminate(), 0);

    let (code, out, err) = cli(&["snapshot", "export", "--data-dir", source_arg, "--format", "json", file_arg], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("exported 3 documents (2 live)"), "{out}");
    assert!(err.contains("reading documents"), "progress on stderr: {err}");

    // A damaged file is refused before the target is even opened.
    let target = dir.path().join("target");
    let target_arg = target.to_str().expect("utf8");
    let damaged = dir.path().join("damaged.snap");
    let mut bytes = std::fs::read(&file).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&damaged, &bytes).expect("write");
    let (code, _, err) = cli(&["snapshot", "import", "--data-dir", target_arg, damaged.to_str().expect("utf8")], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("corrupt") && err.contains("nothing changed"), "{err}");
    assert!(!target.exists(), "a refused import must not create the node");

    let (code, out, err) = cli(&["snapshot", "import", "--data-dir", target_arg, file_arg], &[]);
    assert_eq!(code, 0, "{err}");
    // The deleted document's history comes along too, so all three take changes.
    assert!(out.contains("3 documents (3 restored"), "{out}");
    assert!(err.contains("restoring documents"), "progress on stderr: {err}");

    let node = NodeProcess::start(&target, &[]);
    let (code, out, _) = cli(&["--node", &node.url, "get", "users", "ada"], &[]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), json!({"name": "Ada"}));
    let (_, out, _) = cli(&["--node", &node.url, "ls", "users"], &[]);
    assert!(out.contains("bob") && !out.contains("carol"), "{out}");
    assert_eq!(node.terminate(), 0);
}
