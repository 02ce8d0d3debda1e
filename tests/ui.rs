//! The status page in a real browser: three voters on loopback with API tokens, `/ui` opened
//! in headless Chromium (driven over the DevTools protocol), and the rendered DOM checked as
//! the cluster changes: every node listed as a voter, the leader marked, a write appearing in
//! the recent changes, a node cut off (stopped with SIGSTOP, so its connections go silent)
//! shown unreachable and then reachable again once it resumes. Screenshots are saved under
//! the test's target directory (`ui/status-page*.png`).
//!
//! Needs Debian's `chromium` (installed by `scripts/setup-debian`); `STATEMESH_CHROMIUM`
//! names another binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{free_port, NodeProcess};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use statemesh::api::generate_token;
use statemesh::client::{Client, ClientOptions, Condition};
use tokio_tungstenite::tungstenite::Message;

const NS: &str = "notes";

fn write_config(dir: &Path, name: &str, p2p_ports: &[u16], read_hash: &str, write_hash: &str) -> String {
    let voters: Vec<String> = p2p_ports.iter().map(|p| format!("\"/ip4/127.0.0.1/tcp/{p}\"")).collect();
    let yaml = format!(
        "node:\n  name: {name}\n\
         distributed:\n  enabled: true\n  voters: [{}]\n\
         api:\n  tokens:\n    - {{name: dashboard, role: read, sha256: \"{read_hash}\"}}\n    \
         - {{name: writer, role: write, sha256: \"{write_hash}\"}}\n",
        voters.join(", ")
    );
    let path = dir.join("statemesh.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path.to_string_lossy().into_owned()
}

fn start(dir: &Path, config: &str, p2p_port: u16, peers: &[u16]) -> NodeProcess {
    let mut args = vec![
        "--config".to_owned(),
        config.to_owned(),
        "--p2p-addr".to_owned(),
        format!("/ip4/127.0.0.1/tcp/{p2p_port}"),
    ];
    for peer in peers.iter().filter(|p| **p != p2p_port) {
        args.push("--bootstrap".to_owned());
        args.push(format!("/ip4/127.0.0.1/tcp/{peer}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    NodeProcess::start(dir, &args)
}

/// Headless Chromium with its DevTools endpoint on a loopback port; killed on drop.
struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Self {
        let binary = std::env::var("STATEMESH_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        let child = Command::new(&binary)
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
            .args(["--window-size=1280,860", "--disable-dev-shm-usage"])
            .arg(format!("--remote-debugging-port={port}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{binary}` ({e}): install Chromium with scripts/setup-debian"));
        Self { child, port, _profile: profile }
    }

    /// The DevTools WebSocket of the browser's first page.
    async fn page_socket(&self) -> String {
        let list = format!("http://127.0.0.1:{}/json/list", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = reqwest::get(&list).await {
                if let Ok(targets) = response.json::<Vec<Value>>().await {
                    let page = targets.iter().find(|t| t["type"] == "page");
                    if let Some(url) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
                        return url.to_owned();
                    }
                }
            }
            assert!(Instant::now() < deadline, "Chromium's DevTools endpoint did not come up within 30 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page, driven over the DevTools protocol: commands are answered by id; events between
/// the answers are not needed here and are skipped.
struct Page {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
}

impl Page {
    async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("DevTools WebSocket");
        Self { socket, next_id: 0 }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params});
        self.socket.send(Message::Text(command.to_string().into())).await.expect("send to DevTools");
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let message = self.socket.next().await.expect("DevTools closed").expect("DevTools read");
                let Message::Text(text) = message else { continue };
                let value: Value = serde_json::from_str(&text).expect("DevTools JSON");
                if value["id"] == id {
                    return value;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("DevTools did not answer {method} within 30 s"));
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    /// Evaluates `expression` in the page; its value must be JSON-serialisable.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true})).await;
        assert!(result.get("exceptionDetails").is_none(), "the page threw: {result}");
        result["result"]["value"].clone()
    }

    async fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("screenshot dir");
        std::fs::write(path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }
}

/// The node rows as the page rendered them.
const ROWS: &str = r#"JSON.stringify([...document.querySelectorAll('#nodes tr[data-node-id]')].map(r => ({
    id: r.dataset.nodeId, role: r.dataset.role, reachable: r.dataset.reachable,
    leader: r.dataset.leader, self: r.dataset.self, text: r.textContent})))"#;
/// The recent changes as the page rendered them.
const CHANGES: &str =
    r#"JSON.stringify([...document.querySelectorAll('#changes [data-change-id]')].map(li => li.textContent))"#;

async fn rows(page: &mut Page) -> Vec<Value> {
    let text = page.eval(ROWS).await;
    serde_json::from_str(text.as_str().unwrap_or("[]")).unwrap_or_default()
}

/// Polls the page until `check` holds for its rows, or fails with `what` and the last rows.
async fn wait_rows(page: &mut Page, within: Duration, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let rows = rows(page).await;
        if check(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}; the page shows {rows:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn row<'a>(rows: &'a [Value], id: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["id"] == id)
}

fn signal(process: &NodeProcess, signal: &str) {
    let status = Command::new("kill").args([signal, &process.child.id().to_string()]).status().expect("kill");
    assert!(status.success(), "kill {signal} failed");
}

fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui").join(name)
}

#[test]
fn the_status_page_shows_the_cluster_live_in_a_real_browser() {
    let (read_token, read_hash) = generate_token();
    let (write_token, write_hash) = generate_token();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nodes: Vec<NodeProcess> = (0..3)
        .map(|i| {
            let name = format!("node-{}", i + 1);
            let config = write_config(dirs[i].path(), &name, &ports, &read_hash, &write_hash);
            start(dirs[i].path(), &config, ports[i], &ports)
        })
        .collect();
    let client = |i: usize, token: &str| {
        let options = ClientOptions { token: Some(token.to_owned()), ..ClientOptions::default() };
        Client::with_options(&nodes[i].url, &options).expect("client")
    };
    let readers: Vec<Client> = (0..3).map(|i| client(i, &read_token)).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        // The cluster forms: every node knows the same leader.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (leader_raft_id, ids) = loop {
            let mut leaders = Vec::new();
            let mut ids = Vec::new();
            for reader in &readers {
                leaders.push(reader.cluster_status().await.ok().and_then(|v| v["leader"].as_u64()));
                ids.push(reader.status().await.expect("status")["node_id"].as_str().expect("id").to_owned());
            }
            if leaders[0].is_some() && leaders.windows(2).all(|w| w[0] == w[1]) {
                break (leaders[0].expect("leader"), ids);
            }
            assert!(Instant::now() < deadline, "no common leader within 60 s: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let view = readers[0].cluster_status().await.expect("cluster status");
        let members = view["members"].as_array().cloned().unwrap_or_default();
        let leader = members.iter().find(|m| m["id"].as_u64() == Some(leader_raft_id)).expect("leader listed")["info"]
            ["peer_id"]
            .as_str()
            .expect("peer id")
            .to_owned();

        // Without a token the page's data routes refuse; the page asks for one.
        let browser = Browser::launch();
        let mut page = Page::connect(&browser.page_socket().await).await;
        page.call("Page.enable", json!({})).await;
        page.call("Page.navigate", json!({"url": format!("{}/ui", nodes[0].url)})).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while page.eval("!!document.querySelector('#token-form') && getComputedStyle(document.querySelector('#token-form')).display !== 'none'").await != true {
            assert!(Instant::now() < deadline, "the page did not ask for a token when the node refused it");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        // With the read token (in the fragment, as a link would carry it) the mesh shows.
        page.call("Page.navigate", json!({"url": "about:blank"})).await;
        page.call("Page.navigate", json!({"url": format!("{}/ui#token={read_token}", nodes[0].url)})).await;
        let named = |r: &Value, i: usize| r["text"].as_str().is_some_and(|t| t.contains(&format!("node-{}", i + 1)));
        let shown = wait_rows(&mut page, Duration::from_secs(30), "three named, reachable voters, one leader", |rows| {
            rows.len() == 3
                && ids.iter().enumerate().all(|(i, id)| {
                    row(rows, id).is_some_and(|r| r["role"] == "voter" && r["reachable"] == "true" && named(r, i))
                })
                && rows.iter().filter(|r| r["leader"] == "true").count() == 1
        })
        .await;
        assert_eq!(row(&shown, &leader).expect("leader row")["leader"], "true", "the Raft leader is marked");
        assert_eq!(row(&shown, &ids[0]).expect("own row")["self"], "true", "the page's node is marked as itself");

        // A write on another node appears in the recent changes.
        let writer = client(1, &write_token);
        writer.put(NS, "hello", &json!({"text": "from node 2"}), &Condition::None).await.expect("write");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let changes = page.eval(CHANGES).await;
            let changes: Vec<String> = serde_json::from_str(changes.as_str().unwrap_or("[]")).unwrap_or_default();
            if changes.iter().any(|c| c.contains("notes/hello")) {
                break;
            }
            assert!(Instant::now() < deadline, "the write did not appear in the recent changes: {changes:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        page.screenshot(&artifact("status-page.png")).await;

        // A follower goes silent (its process stopped): the page marks it unreachable.
        let cut = (1..3).find(|i| ids[*i] != leader).expect("a follower besides node 1");
        signal(&nodes[cut], "-STOP");
        let cut_id = ids[cut].clone();
        wait_rows(&mut page, Duration::from_secs(20), "the stopped node shown unreachable", |rows| {
            row(rows, &cut_id).is_some_and(|r| r["reachable"] == "false")
        })
        .await;
        page.screenshot(&artifact("status-page-partitioned.png")).await;

        // It resumes: reachable again, without reloading the page.
        signal(&nodes[cut], "-CONT");
        wait_rows(&mut page, Duration::from_secs(30), "the resumed node shown reachable again", |rows| {
            row(rows, &cut_id).is_some_and(|r| r["reachable"] == "true")
        })
        .await;
    });
}
