//! The API description (`GET /v1/openapi.json`) held against the API itself: the router and the
//! document name the same routes, every documented operation is routed and no other method is,
//! the documented security is what `auth` enforces, and real answers match the schemas and
//! headers the document gives them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{memory_config, InProcessNode};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use statemesh::api::generate_token;
use statemesh::config::{ApiRole, ApiToken};

/// The methods an OpenAPI path item can hold (lower case, as the document keys them).
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

/// A node in memory whose snapshots go to a directory of its own.
async fn node() -> (InProcessNode, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = memory_config();
    config.node.data_dir = data.path().to_path_buf();
    (InProcessNode::start(config).await, data)
}

async fn description(node: &InProcessNode) -> Value {
    let response = reqwest::get(format!("{}/v1/openapi.json", node.url)).await.expect("request");
    assert_eq!(response.status(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(content_type.starts_with("application/json"), "content type {content_type}");
    response.json().await.expect("a JSON document")
}

/// Every (method, path) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_string(), path.clone()));
            }
        }
    }
    operations
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not documented");
    operation
}

// ---- the document itself ----

#[tokio::test]
async fn the_description_is_openapi_3_1_and_every_operation_is_complete() {
    let (node, _data) = node().await;
    let doc = description(&node).await;
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1"), "openapi {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut ids = BTreeSet::new();
    for (method, path) in documented(&doc) {
        let operation = operation(&doc, &method, &path);
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{method} {path} documents no response");
    }

    // Every reference resolves inside the document.
    let schemas = doc["components"]["schemas"].as_object().expect("component schemas");
    let mut references = Vec::new();
    collect_refs(&doc, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let name = reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("reference {reference}"));
        assert!(schemas.contains_key(name), "{reference} is not in components.schemas");
    }
    // So does every security requirement.
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    for (method, path) in documented(&doc) {
        let requirements = operation(&doc, &method, &path)["security"].as_array().or(doc["security"].as_array());
        for requirement in requirements.expect("security").iter().flat_map(|r| r.as_object().expect("object").keys()) {
            assert!(schemes.contains_key(requirement), "{method} {path}: unknown scheme {requirement}");
        }
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => out.push(reference.clone()),
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, out)),
        _ => {}
    }
}

// ---- router ⇄ document ----

#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let (node, _data) = node().await;
    let doc = description(&node).await;
    let routed = routed();
    let documented = documented(&doc);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routes without an annotation: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_every_other_method_refused() {
    let (node, _data) = node().await;
    let doc = description(&node).await;
    let http = reqwest::Client::new();
    let txn = begin(&http, &node).await;

    let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (method, path) in documented(&doc) {
        by_path.entry(path).or_default().insert(method);
    }
    for (path, methods) in &by_path {
        let url = format!("{}{}", node.url, concrete(path, &txn));
        for method in METHODS {
            // `get` routes also answer HEAD, with the body left off.
            if method == "head" && methods.contains("get") {
                continue;
            }
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = http.request(verb, &url).send().await.expect("request");
            let status = response.status().as_u16();
            let body = if matches!(status, 404 | 405) && method != "head" {
                response.json::<Value>().await.unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            if methods.contains(method) {
                assert_ne!(status, 405, "{method} {path}: documented, but refused as {body}");
                assert!(
                    status != 404 || body["error"]["code"] != "no_route",
                    "{method} {path}: documented, not routed"
                );
            } else {
                assert_eq!(status, 405, "{method} {path}: not documented, yet answered");
                if method != "head" {
                    assert_eq!(body["error"]["code"], "method_not_allowed", "{method} {path}");
                }
            }
        }
    }
}

#[tokio::test]
async fn the_documented_security_is_what_auth_enforces() {
    let data = tempfile::tempdir().expect("tempdir");
    let (_token, sha256) = generate_token();
    let mut config = memory_config();
    config.node.data_dir = data.path().to_path_buf();
    config.api.tokens = vec![ApiToken { name: "ci".into(), role: ApiRole::Admin, sha256 }];
    let node = InProcessNode::start(config).await;
    let doc = description(&node).await;
    let http = reqwest::Client::new();
    // Without a token a request needing one stops at `auth`, before any handler runs.
    for (method, path) in documented(&doc) {
        let open = operation(&doc, &method, &path)["security"]
            .as_array()
            .is_some_and(|requirements| requirements.iter().any(|r| r.as_object().is_some_and(|r| r.is_empty())));
        let url = format!("{}{}", node.url, concrete(&path, "00000000-0000-0000-0000-000000000000"));
        let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = http.request(verb, &url).send().await.expect("request");
        let status = response.status().as_u16();
        if open {
            assert_ne!(status, 401, "{method} {path} is documented as open");
        } else {
            assert_eq!(status, 401, "{method} {path} is documented as needing a token");
            assert!(response.headers().contains_key("www-authenticate"));
            let challenge = &operation(&doc, &method, &path)["responses"]["401"]["headers"]["WWW-Authenticate"];
            assert!(challenge.is_object(), "{method} {path}: 401 without its challenge");
        }
    }
}

async fn begin(http: &reqwest::Client, node: &InProcessNode) -> String {
    let response = http.post(format!("{}/v1/txn/begin", node.url)).send().await.expect("begin");
    assert_eq!(response.status(), 201);
    let info: Value = response.json().await.expect("JSON");
    info["id"].as_str().expect("id").to_string()
}

/// `path` with its parameters filled in: namespace `notes`, document `a`, transaction `txn`,
/// a snapshot id no snapshot has, a status-page file that exists.
fn concrete(path: &str, txn: &str) -> String {
    let snapshot = path.starts_with("/v1/snapshots/");
    path.split('/')
        .map(|segment| match segment {
            "{ns}" => "notes",
            "{id}" if snapshot => "missing",
            "{id}" => "a",
            "{txn}" => txn,
            "{asset}" => "app.js",
            other if other.starts_with('{') => panic!("no sample value for {other} in {path}"),
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every (method, path) the router serves, read from the route definitions under `src/api`:
/// each `.route("<path>", <method router>)` call, whose method router is a chain such as
/// `get(a).put(b)` (a `.fallback(...)` in it is no method). Items under `#[cfg(test)]` are left
/// out: they build routers of their own for unit tests.
fn routed() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api"), &mut files);
    let mut routes = BTreeSet::new();
    for file in files {
        let source: Vec<char> = std::fs::read_to_string(&file).expect("source").chars().collect();
        let mut code = code_mask(&source);
        drop_test_items(&source, &mut code);
        for (path, methods) in route_calls(&source, &code) {
            for method in methods {
                routes.insert((method, path.clone()));
            }
        }
    }
    assert!(!routes.is_empty(), "no routes found under src/api");
    routes
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// For each character of `source`, whether it is code: not in a comment, a string or a
/// character literal. A small scanner, enough for this crate's sources.
fn code_mask(source: &[char]) -> Vec<bool> {
    let mut code = vec![true; source.len()];
    let at = |i: usize| source.get(i).copied().unwrap_or('\0');
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < source.len() {
        let start = i;
        match (at(i), at(i + 1)) {
            ('/', '/') => {
                while i < source.len() && at(i) != '\n' {
                    i += 1;
                }
            }
            ('/', '*') => {
                let mut depth = 0;
                loop {
                    match (at(i), at(i + 1)) {
                        ('/', '*') => (depth, i) = (depth + 1, i + 2),
                        ('*', '/') => (depth, i) = (depth - 1, i + 2),
                        ('\0', _) => break,
                        _ => i += 1,
                    }
                    if depth == 0 {
                        break;
                    }
                }
            }
            ('r', '"' | '#') if i == 0 || !ident(at(i - 1)) => {
                let hashes = (i + 1..).take_while(|&j| at(j) == '#').count();
                if at(i + 1 + hashes) != '"' {
                    i += 1;
                    continue;
                }
                i += hashes + 2;
                while i < source.len() && !(at(i) == '"' && (1..=hashes).all(|k| at(i + k) == '#')) {
                    i += 1;
                }
                i += hashes + 1;
            }
            ('"', _) => {
                i += 1;
                while i < source.len() && at(i) != '"' {
                    i += if at(i) == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            ('\'', '\\') => {
                i += 3; // the quote, the backslash and the escaped character
                while i < source.len() && at(i) != '\'' {
                    i += 1;
                }
                i += 1;
            }
            ('\'', _) if at(i + 2) == '\'' => i += 3,
            _ => {
                i += 1;
                continue;
            }
        }
        let end = i.min(source.len());
        code[start..end].fill(false);
    }
    code
}

/// Marks every item that follows a `#[cfg(test)]` as not code, up to its `;` or the brace
/// that closes its body.
fn drop_test_items(source: &[char], code: &mut [bool]) {
    let attribute: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + attribute.len() <= source.len() {
        if !code[i] || source[i..i + attribute.len()] != attribute[..] {
            i += 1;
            continue;
        }
        let start = i;
        i += attribute.len();
        while i < source.len() && !(code[i] && matches!(source[i], ';' | '{')) {
            i += 1;
        }
        if i < source.len() && source[i] == '{' {
            let mut depth = 0;
            while i < source.len() {
                if code[i] {
                    match source[i] {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                i += 1;
                if depth == 0 {
                    break;
                }
            }
        }
        let end = i.min(source.len());
        code[start..end].fill(false);
    }
}

/// `(path, methods)` of every `.route("<path>", ...)` call in the code.
fn route_calls(source: &[char], code: &[bool]) -> Vec<(String, Vec<String>)> {
    let call: Vec<char> = ".route(".chars().collect();
    let mut calls = Vec::new();
    let mut i = 0;
    while i + call.len() <= source.len() {
        if !code[i] || source[i..i + call.len()] != call[..] {
            i += 1;
            continue;
        }
        i += call.len();
        while source[i].is_whitespace() {
            i += 1;
        }
        if source[i] != '"' {
            continue; // a path that is not a literal: none in this crate
        }
        let path: String = source[i + 1..].iter().take_while(|&&c| c != '"').collect();
        i += path.chars().count() + 2;
        // The method router: everything up to the `)` that closes `.route(`.
        let mut depth = 0;
        let mut methods = Vec::new();
        while i < source.len() {
            if code[i] {
                match source[i] {
                    '(' if depth == 0 => {
                        let name: String = source[..i]
                            .iter()
                            .rev()
                            .skip_while(|c| c.is_whitespace())
                            .take_while(|c| c.is_alphanumeric() || **c == '_')
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        if METHODS.contains(&name.as_str()) {
                            methods.push(name);
                        }
                        depth += 1;
                    }
                    '(' => depth += 1,
                    ')' if depth == 0 => break,
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            i += 1;
        }
        assert!(!methods.is_empty(), "route {path}: no method found in its method router");
        calls.push((path, methods));
    }
    calls
}

// ---- answers ⇄ schemas ----

/// One exchange: the status, the headers and the JSON body (null when there is none).
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn exchange(node: &InProcessNode, method: Method, url_path: &str, body: Option<(&str, Value)>) -> Answer {
    let mut request = reqwest::Client::new().request(method, format!("{}{url_path}", node.url));
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer { status, headers, body }
}

/// Checks `answer` against what the document says `method path` answers with its status: the
/// JSON body against that response's `application/json` schema, and `headers` present both in
/// the document and in the answer.
///
/// OpenAPI 3.1 schemas are JSON Schema 2020-12, but their references point into the whole
/// document (`#/components/schemas/X`). jsonschema 0.61 builds a validator from one root
/// schema and resolves `#...` references inside that root, so the response schema is made
/// the root of a schema resource that carries the document's component schemas as `$defs`,
/// every reference rewritten to `#/$defs/X`: self-contained, no retriever needed.
fn conforms(doc: &Value, method: &str, path: &str, answer: &Answer, headers: &[&str]) {
    let status = answer.status.to_string();
    let response = &operation(doc, method, path)["responses"][&status];
    assert!(response.is_object(), "{method} {path}: status {status} is not documented; body {}", answer.body);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status}: no JSON schema documented");
    let mut root = local_refs(schema.clone());
    let object = root.as_object_mut().expect("a schema object");
    object.insert("$defs".into(), local_refs(doc["components"]["schemas"].clone()));
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|error| panic!("{method} {path} {status}: the documented schema does not compile: {error}"));
    let errors: Vec<String> =
        validator.iter_errors(&answer.body).map(|error| format!("{error} (at {})", error.instance_path())).collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: the answer does not match the document:\n{}\n{:#}",
        errors.join("\n"),
        answer.body
    );
    for name in headers {
        let listed = response["headers"].as_object().is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(name)));
        assert!(listed, "{method} {path} {status}: header {name} is not documented");
        assert!(answer.headers.contains_key(*name), "{method} {path} {status}: header {name} is missing");
    }
}

/// `value` with every `#/components/schemas/X` reference turned into `#/$defs/X`.
fn local_refs(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => {
                        (key, Value::String(reference.replacen("#/components/schemas/", "#/$defs/", 1)))
                    }
                    (_, value) => (key, local_refs(value)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(local_refs).collect()),
        other => other,
    }
}

#[tokio::test]
async fn real_answers_match_the_documented_schemas_and_headers() {
    let (node, _data) = node().await;
    let doc = description(&node).await;
    let n = &node;
    let json_body = |value: Value| Some(("application/json", value));

    // Documents.
    let created = exchange(n, Method::PUT, "/v1/docs/notes/a", json_body(json!({"title": "first"}))).await;
    assert_eq!(created.status, 201);
    conforms(&doc, "put", "/v1/docs/{ns}/{id}", &created, &["ETag"]);
    let read = exchange(n, Method::GET, "/v1/docs/notes/a", None).await;
    assert_eq!(read.status, 200);
    conforms(&doc, "get", "/v1/docs/{ns}/{id}", &read, &["ETag"]);
    let patch = Some(("application/merge-patch+json", json!({"done": true})));
    let patched = exchange(n, Method::PATCH, "/v1/docs/notes/a", patch).await;
    assert_eq!(patched.status, 200);
    conforms(&doc, "patch", "/v1/docs/{ns}/{id}", &patched, &["ETag"]);
    let listed = exchange(n, Method::GET, "/v1/docs/notes?limit=10", None).await;
    assert_eq!(listed.status, 200);
    conforms(&doc, "get", "/v1/docs/{ns}", &listed, &[]);
    let history = exchange(n, Method::GET, "/v1/docs/notes/a/history", None).await;
    assert_eq!(history.status, 200);
    conforms(&doc, "get", "/v1/docs/{ns}/{id}/history", &history, &[]);
    let rolled_back = exchange(n, Method::POST, "/v1/docs/notes/a/rollback", json_body(json!({"steps": 1}))).await;
    assert_eq!(rolled_back.status, 200);
    conforms(&doc, "post", "/v1/docs/{ns}/{id}/rollback", &rolled_back, &["ETag"]);

    // Raw changes are bytes: only their headers are JSON-free facts to check.
    let changes = reqwest::get(format!("{}/v1/docs/notes/a/changes", n.url)).await.expect("changes");
    assert_eq!(changes.status(), 200);
    let bytes = &operation(&doc, "get", "/v1/docs/{ns}/{id}/changes")["responses"]["200"];
    assert!(bytes["content"].get("application/octet-stream").is_some());
    for name in ["ETag", "X-Statemesh-Change-Count"] {
        assert!(bytes["headers"].get(name).is_some(), "{name} is not documented");
        assert!(changes.headers().contains_key(name), "{name} is missing");
    }

    // The feed, as a JSON page.
    let feed = exchange(n, Method::GET, "/v1/changes?since=0&limit=50", None).await;
    assert_eq!(feed.status, 200);
    assert!(!feed.body["events"].as_array().expect("events").is_empty());
    conforms(&doc, "get", "/v1/changes", &feed, &["X-Statemesh-Delivery"]);

    // Transactions: interactive, then one-shot.
    let begun = exchange(n, Method::POST, "/v1/txn/begin", None).await;
    assert_eq!(begun.status, 201);
    conforms(&doc, "post", "/v1/txn/begin", &begun, &[]);
    let txn = begun.body["id"].as_str().expect("id").to_string();
    let in_txn = format!("/v1/txn/{txn}/docs/notes/b");
    let buffered = exchange(n, Method::PUT, &in_txn, json_body(json!({"n": 1}))).await;
    assert_eq!(buffered.status, 202);
    conforms(&doc, "put", "/v1/txn/{txn}/docs/{ns}/{id}", &buffered, &[]);
    let seen = exchange(n, Method::GET, &in_txn, None).await;
    assert_eq!(seen.status, 200);
    conforms(&doc, "get", "/v1/txn/{txn}/docs/{ns}/{id}", &seen, &[]);
    let committed = exchange(n, Method::POST, &format!("/v1/txn/{txn}/commit"), None).await;
    assert_eq!(committed.status, 200);
    conforms(&doc, "post", "/v1/txn/{txn}/commit", &committed, &[]);
    let once = json!({
        "compare": [{"ns": "notes", "id": "a", "target": "exists", "value": true}],
        "success": [
            {"op": "get", "ns": "notes", "id": "a"},
            {"op": "put", "ns": "notes", "id": "c", "value": {"x": 1}},
        ],
        "failure": [],
    });
    let outcome = exchange(n, Method::POST, "/v1/txn", json_body(once)).await;
    assert_eq!(outcome.status, 200);
    assert_eq!(outcome.body["succeeded"], true);
    conforms(&doc, "post", "/v1/txn", &outcome, &[]);
    let aborted_txn = exchange(n, Method::POST, "/v1/txn/begin", None).await.body["id"].clone();
    let aborted =
        exchange(n, Method::POST, &format!("/v1/txn/{}/abort", aborted_txn.as_str().expect("id")), None).await;
    assert_eq!(aborted.status, 200);
    conforms(&doc, "post", "/v1/txn/{txn}/abort", &aborted, &[]);

    // The node and its mesh.
    for (path, url_path) in [
        ("/v1/status", "/v1/status"),
        ("/v1/peers", "/v1/peers"),
        ("/v1/mesh", "/v1/mesh"),
        ("/healthz", "/healthz"),
        ("/readyz", "/readyz"),
        ("/v1/openapi.json", "/v1/openapi.json"),
    ] {
        let answer = exchange(n, Method::GET, url_path, None).await;
        assert_eq!(answer.status, 200, "{path}");
        conforms(&doc, "get", path, &answer, &[]);
    }

    // Snapshots: take one, list it, delete it.
    let taken = exchange(n, Method::POST, "/v1/snapshots", None).await;
    assert_eq!(taken.status, 201);
    conforms(&doc, "post", "/v1/snapshots", &taken, &[]);
    let snapshots = exchange(n, Method::GET, "/v1/snapshots", None).await;
    assert_eq!(snapshots.status, 200);
    assert_eq!(snapshots.body["snapshots"].as_array().map(Vec::len), Some(1));
    conforms(&doc, "get", "/v1/snapshots", &snapshots, &[]);
    let id = taken.body["id"].as_str().expect("snapshot id");
    let deleted = exchange(n, Method::DELETE, &format!("/v1/snapshots/{id}"), None).await;
    assert_eq!(deleted.status, 200);
    conforms(&doc, "delete", "/v1/snapshots/{id}", &deleted, &[]);

    // Errors, in the shape every error has.
    let missing = exchange(n, Method::GET, "/v1/docs/notes/missing", None).await;
    assert_eq!((missing.status, missing.body["error"]["code"].as_str()), (404, Some("not_found")));
    conforms(&doc, "get", "/v1/docs/{ns}/{id}", &missing, &[]);
    let bad_limit = exchange(n, Method::GET, "/v1/docs/notes?limit=0", None).await;
    assert_eq!((bad_limit.status, bad_limit.body["error"]["code"].as_str()), (400, Some("bad_parameter")));
    conforms(&doc, "get", "/v1/docs/{ns}", &bad_limit, &[]);
    let no_snapshot = exchange(n, Method::POST, "/v1/snapshots/missing/restore", None).await;
    assert_eq!(no_snapshot.status, 404);
    conforms(&doc, "post", "/v1/snapshots/{id}/restore", &no_snapshot, &[]);
    let no_cluster = exchange(n, Method::GET, "/v1/cluster", None).await;
    assert_eq!((no_cluster.status, no_cluster.body["error"]["code"].as_str()), (503, Some("strong_path_disabled")));
    conforms(&doc, "get", "/v1/cluster", &no_cluster, &[]);
    let not_json = exchange(n, Method::PUT, "/v1/docs/notes/a", Some(("text/plain", json!("x")))).await;
    assert_eq!(not_json.status, 415);
    conforms(&doc, "put", "/v1/docs/{ns}/{id}", &not_json, &[]);
}
