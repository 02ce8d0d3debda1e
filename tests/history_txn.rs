//! History, rollback and transactions through the HTTP API.

mod common;

use common::{memory_config, InProcessNode};
use serde_json::{json, Value};
use statemesh::client::{ClientError, Condition};
use statemesh::config::ConcurrencyModel;

fn code(error: &ClientError) -> &str {
    error.code().unwrap_or("<no code>")
}

#[tokio::test]
async fn rollback_writes_a_new_change_and_both_versions_stay_readable() {
    let node = InProcessNode::memory().await;
    let c = &node.client;
    let v1 = c.put("ns", "doc", &json!({"title": "first"}), &Condition::None).await.expect("v1").version;
    let v2 = c.put("ns", "doc", &json!({"title": "second", "extra": 1}), &Condition::None).await.expect("v2").version;

    let rolled = c.rollback("ns", "doc", Some(&v1), None, &Condition::None).await.expect("rollback");
    assert_ne!(rolled.version, v1, "a rollback is a new change, not a rewind");
    assert_eq!(c.get("ns", "doc").await.expect("get").document, json!({"title": "first"}));
    assert_eq!(c.get_at("ns", "doc", &v1).await.expect("at v1").document, json!({"title": "first"}));
    assert_eq!(c.get_at("ns", "doc", &v2).await.expect("at v2").document, json!({"title": "second", "extra": 1}));

    // History lists every change newest first, the rollback on top, joined with change ids.
    let history = c.history("ns", "doc", None, None).await.expect("history");
    let entries = history["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["kind"], json!("rollback"));
    assert_eq!(entries[0]["author"], json!("anonymous"), "an open loopback API writes as anonymous");
    assert!(entries[0]["message"].as_str().is_some_and(|m| m.starts_with("statemesh:rollback")));
    assert_eq!(entries[2]["version"], json!(v1));
    let node_id = node.node.node_id().to_string();
    assert_eq!(entries[0]["origin"], json!(node_id));
    assert_eq!(entries[0]["seq"], json!(3));

    // Steps: undo the rollback itself.
    c.rollback("ns", "doc", None, Some(1), &Condition::None).await.expect("steps");
    assert_eq!(c.get("ns", "doc").await.expect("get").document, json!({"title": "second", "extra": 1}));

    // Pagination walks the whole history exactly once.
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = c.history("ns", "doc", Some(1), before.as_deref()).await.expect("page");
        seen.extend(page["entries"].as_array().expect("entries").iter().map(|e| e["hash"].clone()));
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
}

#[tokio::test]
async fn bad_history_and_rollback_requests_change_nothing() {
    let node = InProcessNode::memory().await;
    let c = &node.client;
    let v = c.put("ns", "doc", &json!({"a": 1}), &Condition::None).await.expect("put").version;
    let never = "ab".repeat(32);
    let e = c.rollback("ns", "doc", Some(&never), None, &Condition::None).await.expect_err("unknown version");
    assert_eq!((e.status(), code(&e)), (Some(404), "unknown_version"));
    let e = c.rollback("ns", "doc", None, Some(5), &Condition::None).await.expect_err("too far");
    assert_eq!(code(&e), "rollback_too_far");
    let e = c.rollback("ns", "doc", None, None, &Condition::None).await.expect_err("no target");
    assert_eq!(code(&e), "bad_body");
    let e = c.rollback("ns", "missing", None, Some(1), &Condition::None).await.expect_err("no document");
    assert_eq!(e.status(), Some(404));
    let e = c.history("ns", "doc", None, Some("zz")).await.expect_err("bad cursor");
    assert_eq!(code(&e), "bad_version");
    let e = c.history("ns", "doc", Some(0), None).await.expect_err("bad limit");
    assert_eq!(code(&e), "bad_parameter");
    let doc = c.get("ns", "doc").await.expect("get");
    assert_eq!((doc.document, doc.version), (json!({"a": 1}), v));
}

#[tokio::test]
async fn one_shot_transactions_apply_the_branch_the_compares_choose() {
    let node = InProcessNode::memory().await;
    let c = &node.client;
    let v = c.put("acct", "a", &json!({"balance": 100}), &Condition::None).await.expect("a").version;
    c.put("acct", "b", &json!({"balance": 5}), &Condition::None).await.expect("b");

    let transfer = json!({
        "compare": [
            {"ns": "acct", "id": "a", "target": "version", "value": v},
            {"ns": "acct", "id": "a", "target": "value", "path": "/balance", "op": ">=", "value": 30}
        ],
        "success": [
            {"op": "patch", "ns": "acct", "id": "a", "value": {"balance": 70}},
            {"op": "patch", "ns": "acct", "id": "b", "value": {"balance": 35}},
            {"op": "get", "ns": "acct", "id": "b"}
        ],
        "failure": [{"op": "get", "ns": "acct", "id": "a"}]
    });
    let outcome = c.txn(&transfer).await.expect("txn");
    assert_eq!(outcome["succeeded"], json!(true));
    assert_eq!(outcome["results"][2]["document"], json!({"balance": 35}), "a get sees the branch's earlier writes");
    assert_eq!(outcome["changed"].as_array().map(Vec::len), Some(2));

    // The same request again: the version compare now fails, so only the failure branch runs.
    let again = c.txn(&transfer).await.expect("txn");
    assert_eq!(again["succeeded"], json!(false));
    assert_eq!(again["results"][0]["document"], json!({"balance": 70}));
    assert_eq!(c.get("acct", "b").await.expect("b").document, json!({"balance": 35}));

    // A branch that fails half-way (schema-free, but a delete of a missing document) applies nothing.
    let half = json!({"success": [
        {"op": "put", "ns": "acct", "id": "c", "value": {"balance": 1}},
        {"op": "delete", "ns": "acct", "id": "nope"}
    ]});
    let e = c.txn(&half).await.expect_err("fails");
    assert_eq!(e.status(), Some(404));
    assert_eq!(c.get("acct", "c").await.expect_err("not created").status(), Some(404));
}

#[tokio::test]
async fn malformed_compare_clauses_are_refused() {
    let node = InProcessNode::memory().await;
    let c = &node.client;
    for (name, body) in [
        ("unknown target", json!({"compare": [{"ns": "a", "id": "b", "target": "size", "value": 1}]})),
        ("ordered version", json!({"compare": [{"ns": "a", "id": "b", "target": "version", "op": "<", "value": "0"}]})),
        ("bad version", json!({"compare": [{"ns": "a", "id": "b", "target": "version", "value": "xyz"}]})),
        ("exists not bool", json!({"compare": [{"ns": "a", "id": "b", "target": "exists", "value": "yes"}]})),
        ("bad pointer", json!({"compare": [{"ns": "a", "id": "b", "target": "value", "path": "x", "value": 1}]})),
        ("unknown op", json!({"compare": [{"ns": "a", "id": "b", "target": "value", "op": "~", "value": 1}]})),
        ("unknown step", json!({"success": [{"op": "increment", "ns": "a", "id": "b"}]})),
        ("unknown field", json!({"compare": [], "succes": []})),
        ("bad namespace", json!({"success": [{"op": "get", "ns": "a/b", "id": "b"}]})),
    ] {
        let e = c.txn(&body).await.expect_err(name);
        assert_eq!(e.status(), Some(400), "{name}: {e}");
    }
    assert_eq!(node.node.version_vector().total(), 0, "nothing was written");
}

async fn begin(node: &InProcessNode) -> String {
    node.client.txn_begin().await.expect("begin")["id"].as_str().expect("id").to_string()
}

async fn concurrent_transactions_on_one_document_commit_exactly_once(model: ConcurrencyModel) {
    let mut config = memory_config();
    config.concurrency.model = model;
    config.concurrency.lock_timeout = std::time::Duration::from_millis(200);
    let node = InProcessNode::start(config).await;
    let c = &node.client;
    c.put("ns", "counter", &json!({"n": 0}), &Condition::None).await.expect("seed");

    let t1 = begin(&node).await;
    let t2 = begin(&node).await;
    let r1 = c.txn_get(&t1, "ns", "counter").await.expect("t1 reads");
    assert_eq!(r1["document"], json!({"n": 0}));
    let r2 = c.txn_get(&t2, "ns", "counter").await;
    if model == ConcurrencyModel::Pessimistic {
        // The second reader queues behind t1's lock and gives up after lock_timeout.
        assert_eq!(r2.as_ref().err().map(code), Some("lock_timeout"), "{r2:?}");
    } else {
        assert_eq!(r2.expect("t2 reads")["document"], json!({"n": 0}));
    }
    c.txn_put(&t1, "ns", "counter", &json!({"n": 1})).await.expect("t1 buffers");
    let t2_write = c.txn_put(&t2, "ns", "counter", &json!({"n": 2})).await;
    let first = c.txn_commit(&t1).await;
    let second = match t2_write {
        Ok(_) => c.txn_commit(&t2).await,
        Err(e) => Err(e),
    };
    assert!(first.is_ok(), "{model:?}: the first committer wins: {first:?}");
    let second = second.expect_err("the second must not commit");
    assert!(matches!(code(&second), "conflict" | "lock_timeout" | "transaction_not_found"), "{model:?}: {second}");
    assert_eq!(c.get("ns", "counter").await.expect("get").document, json!({"n": 1}));
}

#[tokio::test]
async fn mvcc_first_committer_wins() {
    concurrent_transactions_on_one_document_commit_exactly_once(ConcurrencyModel::Mvcc).await;
}

#[tokio::test]
async fn optimistic_first_committer_wins() {
    concurrent_transactions_on_one_document_commit_exactly_once(ConcurrencyModel::Optimistic).await;
}

#[tokio::test]
async fn pessimistic_second_transaction_waits_then_gives_up() {
    concurrent_transactions_on_one_document_commit_exactly_once(ConcurrencyModel::Pessimistic).await;
}

#[tokio::test]
async fn mvcc_reads_see_the_snapshot_and_own_writes() {
    let node = InProcessNode::memory().await;
    let c = &node.client;
    c.put("ns", "a", &json!({"v": 1}), &Condition::None).await.expect("seed");
    let t = begin(&node).await;
    // A write after the snapshot is invisible to the transaction.
    c.put("ns", "a", &json!({"v": 2}), &Condition::None).await.expect("outside");
    assert_eq!(c.txn_get(&t, "ns", "a").await.expect("read")["document"], json!({"v": 1}));
    c.txn_patch(&t, "ns", "a", &json!({"w": true})).await.expect("buffer");
    assert_eq!(c.txn_get(&t, "ns", "a").await.expect("read")["document"], json!({"v": 1, "w": true}));
    // And it makes the commit conflict: nothing of the transaction is applied.
    assert_eq!(code(&c.txn_commit(&t).await.expect_err("conflict")), "conflict");
    assert_eq!(c.get("ns", "a").await.expect("get").document, json!({"v": 2}));
}

#[tokio::test]
async fn a_multi_document_commit_is_all_or_nothing() {
    let mut config = memory_config();
    let mut strict = config.namespaces.defaults.clone();
    strict.schema = Some(json!({"type": "object", "required": ["ok"]}));
    config.namespaces.declared.insert("checked".to_string(), strict);
    let node = InProcessNode::start(config).await;
    let c = &node.client;
    let t = begin(&node).await;
    c.txn_put(&t, "plain", "x", &json!({"a": 1})).await.expect("buffer");
    c.txn_put(&t, "checked", "y", &json!({"missing": "ok field"})).await.expect("buffer");
    let e = c.txn_commit(&t).await.expect_err("schema refuses y");
    assert_eq!(code(&e), "schema_violation");
    assert_eq!(c.get("plain", "x").await.expect_err("x not written").status(), Some(404));

    let t = begin(&node).await;
    c.txn_put(&t, "plain", "x", &json!({"a": 1})).await.expect("buffer");
    c.txn_put(&t, "checked", "y", &json!({"ok": true})).await.expect("buffer");
    c.txn_delete(&t, "plain", "x").await.expect("buffer");
    let done = c.txn_commit(&t).await.expect("commit");
    assert_eq!(done["changed"].as_array().map(Vec::len), Some(2));
    assert_eq!(c.get("checked", "y").await.expect("y").document, json!({"ok": true}));
    assert_eq!(c.get("plain", "x").await.expect_err("created then deleted").status(), Some(404));
}

#[tokio::test]
async fn transaction_limits_timeouts_and_unknown_ids_are_clear_errors() {
    let mut config = memory_config();
    config.concurrency.max_transactions = 2;
    config.concurrency.transaction_timeout = std::time::Duration::from_millis(300);
    let node = InProcessNode::start(config).await;
    let c = &node.client;
    let t1 = begin(&node).await;
    let _t2 = begin(&node).await;
    let e = c.txn_begin().await.expect_err("limit");
    assert_eq!((e.status(), code(&e)), (Some(429), "too_many_transactions"));
    c.txn_abort(&t1).await.expect("abort frees a slot");
    let t3 = begin(&node).await;

    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let e = c.txn_put(&t3, "ns", "a", &json!({})).await.expect_err("expired");
    assert_eq!((e.status(), code(&e)), (Some(410), "transaction_expired"));
    let e = c.txn_commit(&t3).await.expect_err("gone after expiry");
    assert_eq!(e.status(), Some(404));
    let e = c.txn_commit("not-a-transaction").await.expect_err("unknown");
    assert_eq!((e.status(), code(&e)), (Some(404), "transaction_not_found"));
    let e = c.txn_get(&uuid_like(), "ns", "a").await.expect_err("unknown");
    assert_eq!(code(&e), "transaction_not_found");
    assert_eq!(node.node.version_vector().total(), 0);
    // Expired transactions no longer count against the limit.
    begin(&node).await;
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".to_string()
}

#[tokio::test]
async fn a_transaction_reads_missing_documents_as_404_and_can_create_them() {
    let node = InProcessNode::memory().await;
    let c = &node.client;
    let t = begin(&node).await;
    assert_eq!(c.txn_get(&t, "ns", "new").await.expect_err("missing").status(), Some(404));
    c.txn_put(&t, "ns", "new", &json!({"x": 1})).await.expect("buffer");
    let read: Value = c.txn_get(&t, "ns", "new").await.expect("own write");
    assert_eq!(read["document"], json!({"x": 1}));
    c.txn_commit(&t).await.expect("commit");
    assert_eq!(c.get("ns", "new").await.expect("get").document, json!({"x": 1}));
}
