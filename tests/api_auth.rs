//! Who may use the API, and how it holds up on an open network: bearer tokens and roles, the
//! refusal to serve an unprotected API, TLS, CORS, and the connection limits.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{cli, memory_config, InProcessNode, NodeProcess};
use serde_json::json;
use statemesh::api::{generate_token, ServeOptions};
use statemesh::client::{Client, ClientError, ClientOptions, Condition};
use statemesh::config::{ApiRole, ApiTls, ApiToken, Config};
use statemesh::node::Node;

/// Three tokens, one per role, and the configuration entries that admit them.
struct Tokens {
    read: String,
    write: String,
    admin: String,
    entries: Vec<ApiToken>,
}

fn tokens() -> Tokens {
    let mut entries = Vec::new();
    let mut make = |name: &str, role: ApiRole| {
        let (token, sha256) = generate_token();
        entries.push(ApiToken { name: name.to_string(), role, sha256 });
        token
    };
    let read = make("dashboard", ApiRole::Read);
    let write = make("service", ApiRole::Write);
    let admin = make("operator", ApiRole::Admin);
    Tokens { read, write, admin, entries }
}

fn client(url: &str, token: Option<&str>) -> Client {
    let options = ClientOptions { token: token.map(str::to_string), ..ClientOptions::default() };
    Client::with_options(url, &options).expect("client")
}

fn status_of<T: std::fmt::Debug>(result: &Result<T, ClientError>) -> Option<u16> {
    result.as_ref().err().and_then(ClientError::status)
}

/// A node whose API is served by `serve_with` under `options` (TLS, limits), on loopback.
async fn serve_with(config: Config, options: ServeOptions, scheme: &str) -> (Node, String) {
    let node = Node::open(&config).expect("node opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
    let router = statemesh::api::router(node.clone(), &config);
    tokio::spawn(async move {
        let _ = statemesh::api::serve_with(listener, router, options, std::future::pending()).await;
    });
    (node, url)
}

#[tokio::test]
async fn each_role_can_do_what_it_covers_and_nothing_more() {
    let data = tempfile::tempdir().expect("tempdir");
    let t = tokens();
    let mut config = memory_config();
    config.node.data_dir = data.path().to_path_buf();
    config.api.tokens = t.entries.clone();
    let node = InProcessNode::start(config).await;
    let (anonymous, reader, writer, admin) = (
        client(&node.url, None),
        client(&node.url, Some(&t.read)),
        client(&node.url, Some(&t.write)),
        client(&node.url, Some(&t.admin)),
    );

    // Without a token nothing but the probes answers; a made-up token is no better.
    let refused = anonymous.get("users", "ada").await;
    assert_eq!(status_of(&refused), Some(401), "{refused:?}");
    assert_eq!(refused.as_ref().err().and_then(ClientError::code), Some("unauthorized"));
    let forged = client(&node.url, Some("smt_0000")).get("users", "ada").await;
    assert_eq!(status_of(&forged), Some(401), "{forged:?}");
    assert!(anonymous.ready().await, "/readyz stays open for probes");
    let raw = reqwest::get(format!("{}/v1/status", node.url)).await.expect("request");
    assert_eq!(raw.status().as_u16(), 401);
    let challenge = raw.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "401 carries the Bearer challenge, got `{challenge}`");
    let body: serde_json::Value = raw.json().await.expect("json error body");
    assert_eq!(body["error"]["code"], "unauthorized");
    let metrics = reqwest::get(format!("{}/metrics", node.url)).await.expect("request");
    assert_eq!(metrics.status().as_u16(), 401, "metrics need at least a read token");

    // A read token reads, and cannot write.
    let put = reader.put("users", "ada", &json!({"name": "Ada"}), &Condition::None).await;
    assert_eq!(status_of(&put), Some(403), "{put:?}");
    assert_eq!(put.as_ref().err().and_then(ClientError::code), Some("forbidden"));
    reader.status().await.expect("a read token reads status");

    // A write token writes, and cannot roll back, snapshot or change membership.
    let written = writer.put("users", "ada", &json!({"name": "Ada"}), &Condition::None).await.expect("write");
    writer.patch("users", "ada", &json!({"born": 1815}), &Condition::None).await.expect("patch");
    assert_eq!(reader.get("users", "ada").await.expect("read").document, json!({"name": "Ada", "born": 1815}));
    let rollback = writer.rollback("users", "ada", Some(&written.version), None, &Condition::None).await;
    assert_eq!(status_of(&rollback), Some(403), "{rollback:?}");
    assert_eq!(status_of(&writer.create_snapshot().await), Some(403));
    assert_eq!(status_of(&writer.restore_snapshot("00000000").await), Some(403));
    assert_eq!(status_of(&writer.cluster_init(&[]).await), Some(403));

    // The admin token does all of it (cluster init then fails for its own reason: this node
    // has no strong path, which is past the door).
    admin.rollback("users", "ada", Some(&written.version), None, &Condition::None).await.expect("admin rolls back");
    assert_eq!(reader.get("users", "ada").await.expect("read").document, json!({"name": "Ada"}));
    let snapshot = admin.create_snapshot().await.expect("admin snapshots");
    admin.restore_snapshot(&snapshot.info.id).await.expect("admin restores");
    let init = admin.cluster_init(&[]).await;
    assert!(!matches!(status_of(&init), Some(401 | 403)), "admin passes the door: {init:?}");
    let metrics =
        reqwest::Client::new().get(format!("{}/metrics", node.url)).bearer_auth(&t.read).send().await.expect("request");
    assert_eq!(metrics.status().as_u16(), 200, "a read token reads metrics");
}

#[tokio::test]
async fn tokens_are_read_from_the_tokens_file_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, sha256) = generate_token();
    let file = dir.path().join("tokens.yaml");
    std::fs::write(&file, format!("- {{name: deploy-bot, role: write, sha256: {sha256}}}\n")).expect("write file");
    let mut config = memory_config();
    config.api.tokens_file = Some(file);
    let node = InProcessNode::start(config).await;

    client(&node.url, Some(&token))
        .put("jobs", "1", &json!({"state": "queued"}), &Condition::None)
        .await
        .expect("write");
    let anonymous = client(&node.url, None).get("jobs", "1").await;
    assert_eq!(status_of(&anonymous), Some(401), "a tokens file closes the API like api.tokens");
}

#[test]
fn a_node_refuses_to_serve_an_open_api_beyond_loopback() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = common::free_port().to_string();
    let addr = format!("0.0.0.0:{port}");
    let data_dir = data.path().to_string_lossy().into_owned();
    let args = [
        "start",
        "--memory",
        "--data-dir",
        &data_dir,
        "--api-addr",
        &addr,
        "--no-mdns",
        "--p2p-addr",
        "/ip4/127.0.0.1/tcp/0",
    ];
    let (code, _, stderr) = cli(&args, &[("RUST_LOG", "warn")]);
    assert_ne!(code, 0, "an open API on 0.0.0.0 must not start");
    assert!(stderr.contains("refusing to serve the API") && stderr.contains("api.insecure"), "{stderr}");
}

#[test]
fn the_cli_generates_a_token_and_sends_it() {
    // Generate a token; its entry goes into the node's configuration file.
    let (code, stdout, stderr) = cli(&["token", "generate", "--name", "ci", "--role", "write"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let mut lines = stdout.lines();
    let token = lines.next().expect("the token first").to_string();
    let entry = lines.next().expect("then the entry");
    assert!(token.starts_with("smt_") && entry.contains("role: write"), "{stdout}");
    assert!(!entry.contains(&token), "the entry holds the hash, never the token");

    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("node.yaml");
    std::fs::write(&config, format!("api:\n  tokens:\n  {entry}\n")).expect("config");
    let node = NodeProcess::start(data.path(), &["--memory", "--config", &config.to_string_lossy()]);

    // The token by flag writes; by STATEMESH_TOKEN it reads; without it, 401.
    let (code, _, stderr) = cli(&["--node", &node.url, "--token", &token, "put", "users", "ada", r#"{"a":1}"#], &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = cli(&["--node", &node.url, "get", "users", "ada"], &[("STATEMESH_TOKEN", &token)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"a\""), "{stdout}");
    let (code, _, stderr) = cli(&["--node", &node.url, "get", "users", "ada"], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("unauthorized"), "{stderr}");
}

#[tokio::test]
async fn https_works_end_to_end_with_a_trusted_ca() {
    // A throwaway CA signs a certificate for 127.0.0.1.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "statemesh test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
    let (ca_file, cert_file, key_file) =
        (dir.path().join("ca.pem"), dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&ca_file, ca.pem()).expect("write");
    std::fs::write(&cert_file, cert.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");

    let t = tokens();
    let mut config = memory_config();
    config.api.tokens = t.entries;
    config.api.tls = Some(ApiTls { cert_file, key_file });
    let options = ServeOptions::from_config(&config.api).expect("TLS files load");
    let (_node, url) = serve_with(config, options, "https").await;

    // Trusting the CA, the typed client writes and reads over https.
    let trusted = ClientOptions { token: Some(t.write.clone()), ca_cert: Some(ca_file), ..ClientOptions::default() };
    let c = Client::with_options(&url, &trusted).expect("client");
    c.put("users", "ada", &json!({"name": "Ada"}), &Condition::None).await.expect("put over TLS");
    assert_eq!(c.get("users", "ada").await.expect("get").document, json!({"name": "Ada"}));

    // Without the CA the certificate is not trusted; plain HTTP to the TLS port gets nothing.
    let untrusted = client(&url, Some(&t.write)).get("users", "ada").await;
    assert!(matches!(untrusted, Err(ClientError::Unreachable { .. })), "{untrusted:?}");
    let plain = client(&url.replace("https://", "http://"), Some(&t.write)).get("users", "ada").await;
    assert!(plain.is_err(), "{plain:?}");
}

#[tokio::test]
async fn cors_answers_listed_origins_only() {
    let mut config = memory_config();
    config.api.cors_origins = vec!["https://app.example".to_string()];
    config.api.tokens = tokens().entries;
    let node = InProcessNode::start(config).await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{}/v1/docs/users/ada", node.url))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };

    // A listed origin may send the bearer token with a PUT, before any token is shown.
    let listed = preflight("https://app.example").await.expect("preflight");
    assert!(listed.status().is_success(), "{}", listed.status());
    let header = |name: &str| listed.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert_eq!(header("access-control-allow-origin"), "https://app.example");
    assert_eq!(header("access-control-allow-credentials"), "true");
    assert!(
        header("access-control-allow-headers").contains("authorization"),
        "{}",
        header("access-control-allow-headers")
    );

    // Any other origin gets no permission.
    let unlisted = preflight("https://evil.example").await.expect("preflight");
    assert!(unlisted.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_request_head_is_closed() {
    let options = ServeOptions { header_read_timeout: Duration::from_millis(300), ..ServeOptions::default() };
    let (_node, url) = serve_with(memory_config(), options, "http").await;
    let addr = url.trim_start_matches("http://").to_string();

    // Slowloris: start a request head and never end it.
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").expect("partial head");
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        // The server closes (maybe after a 408): read until end of stream.
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => continue,
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return Some(started.elapsed()),
                Err(_) => return None,
            }
        }
    })
    .await
    .expect("join");
    let elapsed = closed.expect("the server closed the connection within 5 s");
    assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
}

#[tokio::test]
async fn beyond_max_connections_new_connections_wait_their_turn() {
    let options =
        ServeOptions { max_connections: 1, header_read_timeout: Duration::from_millis(500), ..ServeOptions::default() };
    let (_node, url) = serve_with(memory_config(), options, "http").await;
    let addr = url.trim_start_matches("http://").to_string();

    // One idle connection holds the only slot until the header timeout closes it; a request
    // on a second connection is served only then, not refused.
    let idle = TcpStream::connect(&addr).expect("first connection");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let served = client(&url, None).ready().await;
    let waited = started.elapsed();
    assert!(served, "the waiting connection is served once a slot frees");
    assert!(waited >= Duration::from_millis(300), "served after {waited:?}, while the slot was taken");
    drop(idle);
}

#[tokio::test]
async fn every_change_names_its_author_in_history_and_in_the_feed() {
    let t = tokens();
    let mut config = memory_config();
    config.api.tokens = t.entries;
    let node = InProcessNode::start(config).await;
    let (writer, admin) = (client(&node.url, Some(&t.write)), client(&node.url, Some(&t.admin)));

    // The service writes twice, one of them in a transaction; the operator rolls back.
    let first = writer.put("users", "ada", &json!({"name": "Ada"}), &Condition::None).await.expect("put");
    let txn = json!({"compare": [], "success": [{"op": "patch", "ns": "users", "id": "ada", "value": {"born": 1815}}]});
    writer.txn(&txn).await.expect("txn");
    admin.rollback("users", "ada", Some(&first.version), None, &Condition::None).await.expect("rollback");

    // History, newest first, says who did what.
    let history = writer.history("users", "ada", None, None).await.expect("history");
    let entries = history["entries"].as_array().expect("entries");
    let by: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["kind"].as_str().unwrap_or("?"), e["author"].as_str().unwrap_or("?"))).collect();
    assert_eq!(by, [("rollback", "operator"), ("patch", "service"), ("put", "service")]);

    // The feed carries the same authors.
    let filter = statemesh::client::feed::ChangesFilter { namespace: Some("users".into()), doc: None };
    let page = writer.changes_page(Some(0), &filter, None, None).await.expect("feed page");
    let authors: Vec<Option<&str>> = page.events.iter().map(|e| e.author.as_deref()).collect();
    assert_eq!(authors, [Some("service"), Some("service"), Some("operator")]);
}

#[tokio::test]
async fn an_open_loopback_api_records_anonymous() {
    let node = InProcessNode::memory().await;
    node.client.put("notes", "n1", &json!({"text": "hi"}), &Condition::None).await.expect("put");
    let history = node.client.history("notes", "n1", None, None).await.expect("history");
    assert_eq!(history["entries"][0]["author"], "anonymous");
    let filter = statemesh::client::feed::ChangesFilter::default();
    let page = node.client.changes_page(Some(0), &filter, None, None).await.expect("feed");
    assert_eq!(page.events[0].author.as_deref(), Some("anonymous"));
}
