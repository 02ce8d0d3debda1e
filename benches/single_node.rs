//! Single-node write benchmark: durable updates per second and latency percentiles, through
//! the library API and through the HTTP API, at 1, 16 and 64 concurrent clients; and resident
//! memory per 100k small documents.
//!
//! Run: `cargo bench --bench single_node` (settings: `BENCH_SECONDS` per phase, default 5;
//! `BENCH_DOCS` documents written to, default 5000; `BENCH_RSS_DOCS`, default 100000 (0 skips
//! the memory row); `BENCH_CLIENTS`, default `1,16,64`; `BENCH_SURFACES`, default
//! `library,http`; any `STATEMESH_*` configuration override).
//! Every write is acknowledged only after its batch is fsynced (RocksDB WAL, sync = true).
//! `CPU µs/update` is the whole process's CPU time (all threads; for `http`, the in-process
//! client's too) divided by the updates: on 2 cores, 1,000,000 / (CPU µs/update / 2) is the
//! rate the machine could reach if nothing ever waited.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use statemesh::client::{Client, Condition};
use statemesh::config::Config;
use statemesh::node::{Node, Precondition};
use statemesh::protocol::{DocId, DocKey, Namespace};

mod common;

/// The same allocator as the `statemesh` binary, so figures match what a node does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The client counts to run for `surface`: all of them when `BENCH_SURFACES` names it, none
/// otherwise.
fn rows<'a>(clients: &'a [usize], surfaces: &[String], surface: &str) -> &'a [usize] {
    if surfaces.iter().any(|s| s == surface) {
        clients
    } else {
        &[]
    }
}

/// A comma-separated list from the environment, or `default`.
fn env_list(name: &str, default: &str) -> Vec<String> {
    let value = std::env::var(name).unwrap_or_else(|_| default.to_string());
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

struct Run {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU time the whole process spent (every thread, user and system) during the run.
    cpu: Duration,
}

impl Run {
    fn line(mut self, surface: &str, clients: usize) -> String {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().saturating_sub(1));
            self.latencies.get(i).copied().unwrap_or_default()
        };
        format!(
            "| {surface:<7} | {clients:>7} | {:>10.0} | {:>8.2} | {:>8.2} | {:>13.1} | {:>8} |",
            self.ops as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            self.cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64,
            self.ops
        )
    }
}

fn doc_key(i: u64) -> DocKey {
    DocKey::new(Namespace::new("bench").expect("ns"), DocId::new(format!("doc-{i:07}")).expect("id"))
}

/// Drives `clients` concurrent loops of `op` for `seconds`; each loop picks documents from its
/// own stride so clients rarely contend on one document.
async fn drive<F, Fut>(clients: usize, seconds: u64, docs: u64, op: F) -> Run
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let cpu_before = common::cpu_time(None);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients as u64)
        .map(|client| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let doc = (client + n * clients as u64 * 7919) % docs;
                    let t = Instant::now();
                    op(doc, n).await;
                    latencies.push(t.elapsed());
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    Run { ops: latencies.len(), elapsed, latencies, cpu: common::cpu_time(None).saturating_sub(cpu_before) }
}

/// The default configuration with any `STATEMESH_*` overrides from the environment, so a
/// run can compare settings (e.g. `STATEMESH_STORAGE__TYPE=memory` for the no-disk ceiling).
fn bench_config() -> Config {
    Config::load(None, std::env::vars()).expect("configuration")
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5);
    let docs = env_or("BENCH_DOCS", 5_000);
    let rss_docs = env_or("BENCH_RSS_DOCS", 100_000);
    let clients: Vec<usize> =
        env_list("BENCH_CLIENTS", "1,16,64").iter().map(|c| c.parse().expect("BENCH_CLIENTS: numbers")).collect();
    let surfaces = env_list("BENCH_SURFACES", "library,http");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = bench_config();
        config.node.data_dir = dir.path().to_path_buf();
        let node = Node::open(&config).expect("node");

        println!(
            "single-node writes: each a merge patch setting one field; {seconds} s per row, {docs} documents, \
             storage {:?} (RocksDB: WAL fsynced before each acknowledgement)",
            config.storage.kind
        );
        println!("| surface | clients |  updates/s | p50 (ms) | p99 (ms) | CPU µs/update |      ops |");
        println!("|---------|---------|------------|----------|----------|---------------|----------|");
        for &clients in rows(&clients, &surfaces, "library") {
            let n = node.clone();
            let run = drive(clients, seconds, docs, move |doc, i| {
                let node = n.clone();
                async move {
                    let patch = json!({"counter": i});
                    node.patch(&doc_key(doc), &patch, &Precondition::None).await.expect("patch");
                }
            })
            .await;
            println!("{}", run.line("library", clients));
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = statemesh::api::router(node.clone(), &config);
        tokio::spawn(async move {
            let _ = statemesh::api::serve(listener, router, std::future::pending()).await;
        });
        for &clients in rows(&clients, &surfaces, "http") {
            let client = Client::new(&url).expect("client");
            let run = drive(clients, seconds, docs, move |doc, i| {
                let client = client.clone();
                async move {
                    let patch = json!({"counter": i});
                    client.patch("bench", &format!("doc-{doc:07}"), &patch, &Condition::None).await.expect("patch");
                }
            })
            .await;
            println!("{}", run.line("http", clients));
        }
        node.shutdown().await.expect("shutdown");
        drop(node);
        if rss_docs == 0 {
            return;
        }

        // Memory: a fresh node, `rss_docs` small documents written through the library.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = bench_config();
        config.node.data_dir = dir.path().to_path_buf();
        let node = Node::open(&config).expect("node");
        let before = rss_bytes();
        let started = Instant::now();
        let writers: Vec<_> = (0..64u64)
            .map(|w| {
                let node = node.clone();
                tokio::spawn(async move {
                    let mut i = w;
                    while i < rss_docs {
                        let body = json!({"id": i, "name": format!("user {i}"), "active": true});
                        node.put(&doc_key(i), &body, &Precondition::None).await.expect("put");
                        i += 64;
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        let after = rss_bytes();
        println!();
        println!(
            "memory: {rss_docs} small documents written in {:.1} s; RSS grew {:.1} MiB ({:.0} bytes/document; \
             {} documents stay decoded in the cache)",
            started.elapsed().as_secs_f64(),
            (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0),
            after.saturating_sub(before) as f64 / rss_docs as f64,
            config.storage.cache_docs,
        );
        node.shutdown().await.expect("shutdown");
    });
}
