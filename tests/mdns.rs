//! mDNS discovery (`p2p.mdns`, on by default): nodes given no bootstrap address find each
//! other on the local network, connect and replicate; a node on the same network with another
//! cluster key is found by nobody and finds nobody.
//!
//! mDNS multicasts on every interface but loopback, so the nodes must not run in the
//! machine's own network namespace: they would announce themselves on its real LAN. The test
//! re-executes itself under `unshare --net`, in a fresh namespace that holds only a loopback
//! and a veth pair it creates (libp2p-mdns ignores loopback interfaces, so the pair is the
//! "LAN"), and runs three nodes there. The child checks that it really is in another
//! namespace before any node starts.
//!
//! Creating a namespace needs root. Not root: the test prints `skip:` with the reason and
//! passes. Root: anything that prevents the namespace or its interfaces from being set up
//! fails the test with the reason.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use statemesh::node::Node;
use statemesh::testkit::{assert_identical, eventually, key, member_config, patch, same_version_vectors, Member};

const TEST_NAME: &str = "nodes_without_bootstrap_find_each_other_by_mdns_and_replicate";
/// Set for the re-executed child: the network namespace of the parent, which the child must
/// not be in.
const PARENT_NETNS: &str = "STATEMESH_TEST_MDNS_PARENT_NETNS";
/// The whole child run, namespace setup included, is killed after this.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// Discovery, connection and replication, once the nodes run.
const DISCOVER: Duration = Duration::from_secs(30);
const NODES: usize = 3;

#[test]
fn nodes_without_bootstrap_find_each_other_by_mdns_and_replicate() {
    match std::env::var(PARENT_NETNS) {
        Ok(parent) => in_namespace(&parent),
        Err(_) => run_in_new_namespace(),
    }
}

fn run_in_new_namespace() {
    if !is_root() {
        println!("skip: {TEST_NAME} needs root to create a network namespace (unshare --net)");
        return;
    }
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out_path = out_dir.path().join("child.log");
    let out = File::create(&out_path).expect("child log");
    let exe = std::env::current_exe().expect("test executable");
    let mut child = Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(PARENT_NETNS, netns_of_this_process())
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("child log"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `unshare --net` (util-linux): {e}"));
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => println!("{log}"),
        Some(status) => panic!("the run in a private network namespace failed ({status}):\n{log}"),
        None => panic!("the run in a private network namespace took over {CHILD_TIMEOUT:?}; killed:\n{log}"),
    }
}

/// Whether this process runs as root (uid 0), from `/proc/self/status`.
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().next()) == Some("0")
}

fn netns_of_this_process() -> String {
    let link = std::fs::read_link("/proc/self/ns/net").expect("/proc/self/ns/net");
    link.to_string_lossy().into_owned()
}

fn in_namespace(parent: &str) {
    let mine = netns_of_this_process();
    assert_ne!(mine, parent, "not in a separate network namespace: refusing to multicast on the machine's network");
    set_up_link();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("tokio runtime");
    runtime.block_on(discover_and_replicate());
}

/// Loopback up, and a veth pair with an address on each end: an isolated two-port "LAN".
fn set_up_link() {
    for args in [
        "link set lo up",
        "link add smmdns0 type veth peer name smmdns1",
        "addr add 10.203.0.1/24 dev smmdns0",
        "addr add 10.203.0.2/24 dev smmdns1",
        "link set smmdns0 up",
        "link set smmdns1 up",
    ] {
        let output = Command::new("ip")
            .args(args.split(' '))
            .output()
            .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2) to set up the namespace: {e}"));
        assert!(output.status.success(), "`ip {args}` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
}

async fn discover_and_replicate() {
    let mut members: Vec<Member> = (0..NODES)
        .map(|_| {
            let mut config = member_config(None);
            config.p2p.mdns = true;
            config.p2p.listen = vec!["/ip4/0.0.0.0/tcp/0".to_string()];
            Member::open(config)
        })
        .collect();
    // A stranger on the same network: it announces itself and hears the others, but holds
    // another cluster key.
    let mut stranger = {
        let mut config = member_config(None);
        config.p2p.mdns = true;
        config.p2p.listen = vec!["/ip4/0.0.0.0/tcp/0".to_string()];
        config.security.psk = Some("5a".repeat(32));
        Member::open(config)
    };
    stranger.connect(&[]).await;
    for member in &mut members {
        member.connect(&[]).await;
        assert!(member.config.p2p.bootstrap.is_empty());
    }
    let nodes: Vec<&Node> = members.iter().map(|m| &m.node).collect();
    eventually(DISCOVER, "every node connected to the others, found by mDNS alone", || async {
        nodes.iter().all(|n| n.peers().len() == NODES - 1)
    })
    .await;
    assert!(stranger.node.peers().is_empty(), "the node with another key connected: {:?}", stranger.node.peers());

    let doc = key("lan", "found");
    patch(nodes[0], &doc, json!({ "written on": "node 0" })).await;
    patch(nodes[NODES - 1], &doc, json!({ "and on": "the last node" })).await;
    eventually(DISCOVER, "both writes replicated to every node", || async { same_version_vectors(&nodes) }).await;
    assert_eq!(nodes[1].version_vector().len(), 2, "node 1 holds the writes of both origins");
    assert_identical(&nodes, std::slice::from_ref(&doc)).await;
    let merged = nodes[1].get(&doc).await.expect("replicated document");
    assert_eq!(merged.json, json!({ "written on": "node 0", "and on": "the last node" }));
    assert!(stranger.node.get(&doc).await.is_err(), "the node with another key read the document");
    stranger.stop().await;
    for member in members {
        member.stop().await;
    }
}
