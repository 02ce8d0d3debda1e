//! The HTTP API through real loopback sockets: the contract, and how bad input is treated.

mod common;

use common::{memory_config, InProcessNode};
use serde_json::{json, Value};
use statemesh::client::{ClientError, Condition};

async fn raw(method: reqwest::Method, url: String, content_type: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test]
async fn documents_are_written_read_and_versioned_through_http() {
    let node = InProcessNode::memory().await;
    let c = &node.client;
    let created = c.put("users", "ada", &json!({"name": "Ada"}), &Condition::None).await.expect("put");
    assert!(created.created);
    let doc = c.get("users", "ada").await.expect("get");
    assert_eq!(doc.document, json!({"name": "Ada"}));
    assert_eq!(doc.version, created.version, "ETag carries the version written");

    let patched = c.patch("users", "ada", &json!({"born": 1815}), &Condition::None).await.expect("patch");
    assert_eq!(c.get("users", "ada").await.expect("get").document, json!({"name": "Ada", "born": 1815}));

    // Compare-and-swap on one node: a stale version is refused with 412.
    let stale = c.put("users", "ada", &json!({"x": 1}), &Condition::IfMatch(created.version.clone())).await;
    assert!(matches!(stale, Err(ClientError::Api { status: 412, .. })), "{stale:?}");
    c.put("users", "ada", &json!({"x": 1}), &Condition::IfMatch(patched.version.clone())).await.expect("cas");
    let absent = c.put("users", "ada", &json!({}), &Condition::IfAbsent).await;
    assert!(matches!(absent, Err(ClientError::Api { status: 412, .. })));

    c.delete("users", "ada", &Condition::None).await.expect("delete");
    let gone = c.get("users", "ada").await;
    assert!(matches!(gone, Err(ClientError::Api { status: 404, .. })));
}

#[tokio::test]
async fn listing_paginates_with_limit_and_after() {
    let node = InProcessNode::memory().await;
    for i in 0..7 {
        node.client.put("ns", &format!("d{i}"), &json!({}), &Condition::None).await.expect("put");
    }
    let first = node.client.list("ns", Some(3), None).await.expect("list");
    assert_eq!(first.documents.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d0", "d1", "d2"]);
    assert_eq!(first.next.as_deref(), Some("d2"));
    let rest = node.client.list("ns", Some(10), first.next.as_deref()).await.expect("list");
    assert_eq!(rest.documents.len(), 4);
    assert_eq!(rest.next, None);
}

#[tokio::test]
async fn an_automerge_document_from_another_program_round_trips() {
    use automerge::transaction::Transactable;
    let node = InProcessNode::memory().await;
    let mut foreign = automerge::AutoCommit::new();
    let list = foreign.put_object(automerge::ROOT, "items", automerge::ObjType::List).expect("list");
    foreign.insert(&list, 0, "first").expect("insert");
    foreign.commit();
    foreign.put(automerge::ROOT, "done", false).expect("put");
    foreign.commit();

    let reply = node.client.post_changes("am", "doc", foreign.save()).await.expect("post");
    assert!(reply.created);
    assert_eq!(node.client.get("am", "doc").await.expect("get").document, json!({"items": ["first"], "done": false}));

    // Changes after the foreign document's first head come back as exactly the second change.
    let all = node.client.changes("am", "doc", None).await.expect("changes");
    assert_eq!(all.count, 2);
    let mut copy = automerge::AutoCommit::new();
    copy.load_incremental(&all.bytes).expect("load");
    assert_eq!(copy.get_heads(), foreign.get_heads());

    // A JSON edit on the node flows back into the foreign document.
    node.client.patch("am", "doc", &json!({"done": true}), &Condition::None).await.expect("patch");
    let since = node.client.changes("am", "doc", Some(&all.version)).await.expect("changes since");
    assert_eq!(since.count, 1);
    foreign.load_incremental(&since.bytes).expect("apply");
    assert_eq!(
        automerge::ReadDoc::get(&foreign, automerge::ROOT, "done").expect("get").map(|(v, _)| v.as_bool()),
        Some(Some(true))
    );
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx_and_changes_nothing() {
    let mut config = memory_config();
    config.api.max_body_bytes = 2048;
    config.namespaces.strict = true;
    let mut orders = config.namespaces.defaults.clone();
    orders.schema = Some(json!({"type": "object", "required": ["sku"]}));
    orders.max_doc_bytes = 256;
    config.namespaces.declared.insert("orders".to_string(), orders);
    let node = InProcessNode::start(config).await;
    let base = &node.url;
    let doc = format!("{base}/v1/docs/orders/o1");
    use reqwest::Method;

    // (name, method, url, content type, body, expected status, expected code)
    type Case<'a> = (&'a str, Method, String, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            Method::PUT,
            doc.clone(),
            Some("application/json"),
            b"{\"sku\": ".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "invalid UTF-8",
            Method::PUT,
            doc.clone(),
            Some("application/json"),
            vec![b'{', 0xff, 0xfe, b'}'],
            400,
            "invalid_utf8",
        ),
        (
            "oversized body",
            Method::PUT,
            doc.clone(),
            Some("application/json"),
            format!("{{\"sku\":\"{}\"}}", "x".repeat(4096)).into_bytes(),
            413,
            "payload_too_large",
        ),
        (
            "non-JSON content type",
            Method::PUT,
            doc.clone(),
            Some("text/plain"),
            b"{\"sku\":\"a\"}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "missing content type",
            Method::PUT,
            doc.clone(),
            None,
            b"{\"sku\":\"a\"}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown namespace (strict)",
            Method::PUT,
            format!("{base}/v1/docs/nope/x"),
            Some("application/json"),
            b"{}".to_vec(),
            404,
            "unknown_namespace",
        ),
        (
            "schema violation",
            Method::PUT,
            doc.clone(),
            Some("application/json"),
            b"{\"qty\": 1}".to_vec(),
            422,
            "schema_violation",
        ),
        (
            "namespace size limit",
            Method::PUT,
            doc.clone(),
            Some("application/json"),
            format!("{{\"sku\":\"{}\"}}", "x".repeat(400)).into_bytes(),
            422,
            "document_too_large",
        ),
        (
            "root not an object",
            Method::PUT,
            doc.clone(),
            Some("application/json"),
            b"[1,2]".to_vec(),
            422,
            "root_not_object",
        ),
        (
            "patch with wrong type",
            Method::PATCH,
            doc.clone(),
            Some("application/xml"),
            b"<a/>".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "invalid Automerge bytes",
            Method::POST,
            format!("{doc}/changes"),
            Some("application/octet-stream"),
            b"definitely not automerge".to_vec(),
            400,
            "invalid_automerge",
        ),
        (
            "bad limit parameter",
            Method::GET,
            format!("{base}/v1/docs/orders?limit=abc"),
            None,
            vec![],
            400,
            "bad_parameter",
        ),
        (
            "limit out of range",
            Method::GET,
            format!("{base}/v1/docs/orders?limit=0"),
            None,
            vec![],
            400,
            "bad_parameter",
        ),
        ("unknown query parameter", Method::GET, format!("{doc}?bogus=1"), None, vec![], 400, "bad_parameter"),
        (
            "unknown consistency on a transaction that names no document",
            Method::POST,
            format!("{base}/v1/txn?consistency=sometimes"),
            Some("application/json"),
            br#"{"compare": [], "success": [], "failure": []}"#.to_vec(),
            400,
            "bad_parameter",
        ),
        ("malformed version", Method::GET, format!("{doc}/changes?since=zzz"), None, vec![], 400, "bad_version"),
        ("bad namespace name", Method::GET, format!("{base}/v1/docs/bad%20ns/x"), None, vec![], 400, "invalid_id"),
        ("unknown route", Method::GET, format!("{base}/v2/nothing"), None, vec![], 404, "no_route"),
        (
            "wrong method",
            Method::POST,
            doc.clone(),
            Some("application/json"),
            b"{}".to_vec(),
            405,
            "method_not_allowed",
        ),
    ];
    for (name, method, url, content_type, body, status, expected_code) in cases {
        let (got_status, got_body) = raw(method, url, content_type, body).await;
        assert_eq!((got_status, code(&got_body)), (status, expected_code), "case `{name}`: {got_body}");
        assert!(got_body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "case `{name}` explains itself");
    }
    let list = node.client.list("orders", None, None).await.expect("list");
    assert!(list.documents.is_empty(), "no bad request stored anything");
    assert_eq!(node.node.version_vector().total(), 0, "nothing was logged");

    // Bad preconditions: a malformed If-Match is a 400, a stale one a 412.
    node.client.put("orders", "o1", &json!({"sku": "a"}), &Condition::None).await.expect("valid put");
    let bad = node.client.put("orders", "o1", &json!({"sku": "b"}), &Condition::IfMatch("nonsense".into())).await;
    assert_eq!(bad.as_ref().err().and_then(ClientError::code), Some("bad_version"));
    let unknown_at = node.client.get_at("orders", "o1", &"ab".repeat(32)).await;
    assert_eq!(unknown_at.err().and_then(|e| e.status()), Some(404));
    assert_eq!(node.client.get("orders", "o1").await.expect("get").document, json!({"sku": "a"}));
}

/// The metric names the README lists between its `metrics:begin` and `metrics:end` marks.
fn readme_metrics() -> std::collections::BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let start = readme.find("<!-- metrics:begin -->").expect("README has the metrics:begin mark");
    let end = readme.find("<!-- metrics:end -->").expect("README has the metrics:end mark");
    readme[start..end]
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_readme_lists_every_metric_a_node_exposes_and_no_other() {
    let node = InProcessNode::memory().await;
    let metrics = node.client.metrics().await.expect("metrics");
    // `# TYPE name kind`: a counter's samples carry `_total` after its name.
    let exposed: std::collections::BTreeSet<String> = metrics
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split(' ');
            let (name, kind) = (words.next()?, words.next()?);
            Some(if kind == "counter" { format!("{name}_total") } else { name.to_owned() })
        })
        .collect();
    assert!(exposed.len() > 20, "too few metric families parsed:\n{metrics}");
    let listed = readme_metrics();
    let unlisted: Vec<_> = exposed.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&exposed).collect();
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "README's metric table is out of date: exposed but not listed {unlisted:?}; listed but not exposed {stale:?}"
    );
}

#[tokio::test]
async fn status_health_readiness_and_metrics_answer() {
    let node = InProcessNode::memory().await;
    node.client.put("ns", "a", &json!({"k": 1}), &Condition::None).await.expect("put");
    let status = node.client.status().await.expect("status");
    assert_eq!(status["node_id"], json!(node.node.node_id().to_string()));
    assert_eq!(status["storage"], json!("memory"));
    assert_eq!(status["documents"], json!(1));
    assert_eq!(status["version_vector"][node.node.node_id().to_string()], json!(1));
    assert!(node.client.ready().await);
    let (health, _) = raw(reqwest::Method::GET, format!("{}/healthz", node.url), None, vec![]).await;
    assert_eq!(health, 200);
    let metrics = node.client.metrics().await.expect("metrics");
    for family in [
        "statemesh_http_requests_total",
        "statemesh_http_request_duration_seconds_bucket",
        "statemesh_commit_batch_writes_bucket",
        "statemesh_storage_fsyncs_total",
        "statemesh_storage_size_bytes",
        "statemesh_documents 1",
    ] {
        assert!(metrics.contains(family), "metrics lack {family}:\n{metrics}");
    }
    assert!(metrics.contains("route=\"/v1/docs/{ns}/{id}\""), "requests are labelled by route");
}
