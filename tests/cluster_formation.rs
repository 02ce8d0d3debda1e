//! `statemesh start` with `distributed.voters`: three processes form their cluster without a
//! manual step, serve strong writes through any member, survive the leader being killed, and
//! the killed voter rejoins and catches up when it restarts.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{cli, free_port, NodeProcess};
use serde_json::{json, Value};
use statemesh::client::{Client, Condition, ReadOptions};

const NS: &str = "ledger";

fn write_config(dir: &Path, p2p_ports: &[u16]) -> String {
    let voters: Vec<String> = p2p_ports.iter().map(|p| format!("\"/ip4/127.0.0.1/tcp/{p}\"")).collect();
    let yaml = format!(
        "distributed:\n  enabled: true\n  request_timeout: 3s\n  voters: [{}]\n\
         namespaces:\n  declared:\n    {NS}:\n      consistency: strong\n",
        voters.join(", ")
    );
    let path = dir.join("statemesh.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path.to_string_lossy().into_owned()
}

fn start(dir: &Path, config: &str, p2p_port: u16, peers: &[u16]) -> NodeProcess {
    let listen = format!("/ip4/127.0.0.1/tcp/{p2p_port}");
    let mut args = vec!["--config".to_owned(), config.to_owned(), "--p2p-addr".to_owned(), listen];
    for peer in peers.iter().filter(|p| **p != p2p_port) {
        args.push("--bootstrap".to_owned());
        args.push(format!("/ip4/127.0.0.1/tcp/{peer}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    NodeProcess::start(dir, &args)
}

/// Polls `check` every 100 ms until it holds or `within` passes.
async fn wait_for<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn leader_of(client: &Client) -> Option<u64> {
    client.cluster_status().await.ok().and_then(|view| view["leader"].as_u64())
}

async fn value(client: &Client, id: &str) -> Option<Value> {
    client.get_with(NS, id, &ReadOptions::level("strong")).await.ok().map(|(doc, _)| doc.document["v"].clone())
}

#[test]
fn voters_form_a_cluster_on_their_own_and_survive_losing_the_leader() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let configs: Vec<String> = dirs.iter().map(|d| write_config(d.path(), &ports)).collect();
    let mut nodes: Vec<Option<NodeProcess>> =
        (0..3).map(|i| Some(start(dirs[i].path(), &configs[i], ports[i], &ports))).collect();
    let urls: Vec<String> = nodes.iter().map(|n| n.as_ref().expect("running").url.clone()).collect();
    let clients: Vec<Client> =
        urls.iter().map(|u| Client::with_timeout(u, Duration::from_secs(10)).expect("client")).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        wait_for(Duration::from_secs(60), "every voter knows the same leader", || async {
            let mut leaders = Vec::new();
            for client in &clients {
                leaders.push(leader_of(client).await);
            }
            leaders[0].is_some() && leaders.windows(2).all(|w| w[0] == w[1])
        })
        .await;
    });

    let (code, stdout, stderr) = cli(&["cluster", "status", "--node", &urls[0]], &[]);
    assert_eq!(code, 0, "cluster status failed: {stderr}");
    assert_eq!(stdout.matches("voter").count(), 3, "three voters listed:\n{stdout}");

    runtime.block_on(async {
        // A strong write through each member (followers forward to the leader).
        for (i, client) in clients.iter().enumerate() {
            client.put_strong(NS, "acct", &json!({"v": i}), &Condition::None).await.expect("strong write");
        }
        // Kill the leader without warning; the other two elect a new one and go on.
        let view = clients[0].cluster_status().await.expect("status");
        let leader_id = view["leader"].as_u64().expect("a leader");
        let members = view["members"].as_array().cloned().unwrap_or_default();
        let leader_peer = members.iter().find(|m| m["id"].as_u64() == Some(leader_id)).expect("leader listed")["info"]
            ["peer_id"]
            .as_str()
            .expect("peer id")
            .to_owned();
        let mut killed = None;
        for (i, client) in clients.iter().enumerate() {
            let status = client.status().await.expect("status");
            if status["node_id"].as_str() == Some(leader_peer.as_str()) {
                killed = Some(i);
            }
        }
        let killed = killed.expect("the leader is one of ours");
        drop(nodes[killed].take());
        let survivor = &clients[(killed + 1) % 3];
        wait_for(Duration::from_secs(30), "a write commits without the old leader", || async {
            survivor.put_strong(NS, "acct", &json!({"v": "after"}), &Condition::None).await.is_ok()
        })
        .await;
    });

    // The killed voter restarts on its data and ports, rejoins and catches up.
    let killed = nodes.iter().position(Option::is_none).expect("one was killed");
    nodes[killed] = Some(start(dirs[killed].path(), &configs[killed], ports[killed], &ports));
    let rejoined =
        Client::with_timeout(&nodes[killed].as_ref().expect("restarted").url, Duration::from_secs(10)).expect("client");
    runtime.block_on(async {
        wait_for(Duration::from_secs(60), "the restarted voter reads the latest write", || async {
            value(&rejoined, "acct").await == Some(json!("after"))
        })
        .await;
    });

    // The CLI writes through Raft and reads at a level, and prints what the answer reflects.
    let (code, stdout, stderr) =
        cli(&["put", NS, "cli", r#"{"v": "via cli"}"#, "--consistency", "strong", "--json", "--node", &urls[0]], &[]);
    assert_eq!(code, 0, "strong put failed: {stderr}");
    let written: Value = serde_json::from_str(&stdout).expect("put --json prints JSON");
    let index = written["stamp"]["raft_index"].as_u64().expect("the write's raft index");
    let index = index.to_string();
    let other = &nodes[(killed + 1) % 3].as_ref().expect("running").url;
    let read = ["get", NS, "cli", "--consistency", "bounded", "--max-staleness-ms", "5000", "--min-version", &index];
    let (code, stdout, stderr) = cli(&[&read[..], &["--json", "--node", other]].concat(), &[]);
    assert_eq!(code, 0, "bounded read failed: {stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("get --json prints JSON");
    assert_eq!(doc["document"]["v"], json!("via cli"), "read-your-writes through min_version: {doc}");
    assert!(doc["stamp"]["raft_index"].as_u64() >= index.parse().ok(), "{doc}");
    let (code, _, stderr) = cli(&["get", NS, "cli", "--consistency", "strong", "--node", other], &[]);
    assert_eq!(code, 0, "strong read failed: {stderr}");
    assert!(stderr.contains("served as strong"), "the readable output says what the read reflects: {stderr}");
    for node in nodes.into_iter().flatten() {
        assert_eq!(node.terminate(), 0, "clean shutdown");
    }
}
