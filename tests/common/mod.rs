//! Shared test harness: nodes served on real loopback sockets, in-process or as processes.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use statemesh::client::Client;
use statemesh::config::{Config, StorageType};
use statemesh::node::Node;

/// A node running inside the test process, its API on an ephemeral loopback port.
pub struct InProcessNode {
    pub node: Node,
    pub url: String,
    pub client: Client,
    server: tokio::task::JoinHandle<()>,
}

impl InProcessNode {
    pub async fn start(config: Config) -> Self {
        let node = Node::open(&config).expect("node opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = statemesh::api::router(node.clone(), &config);
        let server = tokio::spawn(async move {
            let _ = statemesh::api::serve(listener, router, std::future::pending()).await;
        });
        let client = Client::new(&url).expect("client");
        Self { node, url, client, server }
    }

    pub async fn memory() -> Self {
        Self::start(memory_config()).await
    }
}

impl Drop for InProcessNode {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn memory_config() -> Config {
    let mut config = Config::default();
    config.storage.kind = StorageType::Memory;
    config
}

/// A free loopback port for a node started as a child process.
///
/// It is taken from below the kernel's ephemeral range: a port the kernel handed out for
/// `:0` and that was released again is soon handed out again, to the next `:0` listener
/// (another test's node's replication listener, say), which would then answer in this node's
/// place. Ports below the range are only ever chosen here, at random, and checked free.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let ephemeral_low: u16 = range.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    let random = RandomState::new();
    for attempt in 0u64..1000 {
        let offset = random.hash_one(attempt) % u64::from(high - low);
        let port = low + u16::try_from(offset).expect("below the range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {high}");
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_statemesh")
}

/// `statemesh start` as a child process.
pub struct NodeProcess {
    pub child: Child,
    pub url: String,
    /// The last lines the node logged (its stderr is drained by a thread, so a node that
    /// logs a lot never blocks on a full pipe).
    pub log_tail: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

/// Lines of a child node's log kept for failure messages.
const LOG_TAIL_LINES: usize = 200;

/// Reads `stderr` to its end on a thread, keeping the last [`LOG_TAIL_LINES`] lines.
fn drain(stderr: std::process::ChildStderr) -> std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>> {
    use std::io::BufRead;
    let tail = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let kept = tail.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut kept = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if kept.len() == LOG_TAIL_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    });
    tail
}

impl NodeProcess {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(binary())
            .args(["start", "--data-dir"])
            .arg(data_dir)
            .args(["--api-addr", &format!("127.0.0.1:{port}")])
            // Replication on an ephemeral loopback port, no LAN discovery: tests never meet
            // each other's nodes.
            .args(["--p2p-addr", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
            .args(extra)
            // Nodes started here form one cluster with the in-process test nodes.
            .env("STATEMESH_CLUSTER_KEY", statemesh::testkit::TEST_CLUSTER_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn statemesh");
        let url = format!("http://127.0.0.1:{port}");
        let mut child = child;
        let log_tail = drain(child.stderr.take().expect("piped stderr"));
        let mut process = Self { child, url, log_tail };
        process.wait_ready();
        process
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                std::thread::sleep(Duration::from_millis(100));
                panic!("node exited early with {status}; its log ends:\n{}", self.log());
            }
            if std::net::TcpStream::connect(self.url.trim_start_matches("http://")).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node did not start listening within 30 s");
    }

    /// The last lines the node logged.
    pub fn log(&self) -> String {
        let tail = self.log_tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn terminate(mut self) -> i32 {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "node did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI with `args`; returns (exit code, stdout, stderr).
pub fn cli(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(binary())
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run statemesh");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
