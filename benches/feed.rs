//! Change feed benchmark: events per second delivered to 1 and 100 SSE subscribers while 64
//! writers write at full speed, and how much the subscribers slow the writers down.
//!
//! Run: `cargo bench --bench feed` (settings: `BENCH_SECONDS` per row, default 5;
//! `BENCH_DOCS` documents written to, default 5000; `BENCH_WRITERS`, default 64; any
//! `STATEMESH_*` configuration override).
//!
//! One in-process RocksDB node serves the API on loopback; writers drive `Node::patch` (every
//! write fsynced before it is acknowledged); subscribers hold `GET /v1/changes` event streams
//! from the head and count the change events they receive, splitting lines without decoding
//! the JSON so the load generator's own work stays small. "delivered/s" is the total across
//! subscribers of events received while the writers ran; "behind at end" is how far the
//! slowest subscriber trailed the head when they stopped; "slowdown" compares the writers'
//! rate with the row without subscribers just before.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use statemesh::config::Config;
use statemesh::node::{Node, Precondition};
use statemesh::protocol::{DocId, DocKey, Namespace};

/// The same allocator as the `statemesh` binary, so figures match what a node does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn doc_key(i: u64) -> DocKey {
    DocKey::new(Namespace::new("bench").expect("ns"), DocId::new(format!("doc-{i:07}")).expect("id"))
}

/// What one subscriber has seen so far.
#[derive(Default)]
struct Seen {
    changes: AtomicU64,
    missed: AtomicU64,
    last_cursor: AtomicU64,
}

/// Counts change events on one SSE stream, line by line, until the task is aborted.
async fn subscribe(url: String, delivery: &'static str, seen: Arc<Seen>, ready: tokio::sync::mpsc::Sender<()>) {
    let response = reqwest::Client::new()
        .get(format!("{url}/v1/changes?delivery={delivery}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("subscribe");
    assert!(response.status().is_success(), "subscription refused: {}", response.status());
    let _ = ready.send(()).await;
    let mut body = response.bytes_stream();
    let mut partial: Vec<u8> = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        partial.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = partial[start..].iter().position(|&b| b == b'\n') {
            let line = &partial[start..start + end];
            if line == b"event: change" {
                seen.changes.fetch_add(1, Ordering::Relaxed);
            } else if let Some(id) = line.strip_prefix(b"id: ") {
                let cursor = std::str::from_utf8(id).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
                seen.last_cursor.store(cursor, Ordering::Relaxed);
            } else if let Some(data) = line.strip_prefix(b"data: {\"missed\":") {
                let digits: String = data.iter().take_while(|b| b.is_ascii_digit()).map(|&b| b as char).collect();
                seen.missed.fetch_add(digits.parse().unwrap_or(0), Ordering::Relaxed);
            }
            start += end + 1;
        }
        partial.drain(..start);
    }
}

struct Row {
    subscribers: usize,
    delivery: &'static str,
    writes: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    delivered: u64,
    behind: u64,
    missed: u64,
}

impl Row {
    fn writes_per_s(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }

    fn line(mut self, baseline: Option<f64>) -> String {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().saturating_sub(1));
            self.latencies.get(i).copied().unwrap_or_default().as_secs_f64() * 1e3
        };
        let slowdown = baseline
            .map_or_else(|| "—".to_string(), |base| format!("{:+.1}%", (base - self.writes_per_s()) / base * 100.0));
        let delivery = if self.subscribers == 0 { "—" } else { self.delivery };
        format!(
            "| {:>11} | {:<13} | {:>8.0} | {:>18.0} | {:>8.2} | {:>8.2} | {:>8} | {:>13} | {:>8} |",
            self.subscribers,
            delivery,
            self.writes_per_s(),
            self.delivered as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            slowdown,
            self.behind,
            self.missed,
        )
    }
}

async fn run_row(
    node: &Node,
    url: &str,
    subscribers: usize,
    delivery: &'static str,
    writers: u64,
    docs: u64,
    seconds: u64,
) -> Row {
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel(subscribers.max(1));
    let seen: Vec<Arc<Seen>> = (0..subscribers).map(|_| Arc::new(Seen::default())).collect();
    let tasks: Vec<_> = seen
        .iter()
        .map(|seen| tokio::spawn(subscribe(url.to_string(), delivery, seen.clone(), ready_tx.clone())))
        .collect();
    for _ in 0..subscribers {
        ready.recv().await.expect("subscriber connected");
    }

    let start_head = node.feed_head();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let writer_tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let node = node.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let doc = (writer + n * writers * 7919) % docs;
                    let t = Instant::now();
                    node.patch(&doc_key(doc), &json!({"counter": n}), &Precondition::None).await.expect("patch");
                    latencies.push(t.elapsed());
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in writer_tasks {
        latencies.extend(task.await.expect("writer"));
    }
    let elapsed = started.elapsed();
    let delivered: u64 = seen.iter().map(|s| s.changes.load(Ordering::Relaxed)).sum();
    let missed: u64 = seen.iter().map(|s| s.missed.load(Ordering::Relaxed)).sum();
    let head = node.feed_head();
    let behind = seen.iter().map(|s| head - s.last_cursor.load(Ordering::Relaxed).max(start_head)).max().unwrap_or(0);
    for task in tasks {
        task.abort();
    }
    Row { subscribers, delivery, writes: latencies.len(), elapsed, latencies, delivered, behind, missed }
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5);
    let docs = env_or("BENCH_DOCS", 5_000);
    let writers = env_or("BENCH_WRITERS", 64);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::load(None, std::env::vars()).expect("configuration");
        config.node.data_dir = dir.path().to_path_buf();
        // Keep the whole run's feed, so a subscriber that trails is measured, not expired.
        config.history.max_size = 100_000_000;
        let node = Node::open(&config).expect("node");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = statemesh::api::router(node.clone(), &config);
        tokio::spawn(async move {
            let _ = statemesh::api::serve(listener, router, std::future::pending()).await;
        });

        println!(
            "change feed: {writers} library writers patching {docs} documents at full speed, {seconds} s per row, \
             storage {:?}, notifications.buffer_size {}; SSE subscribers over loopback HTTP",
            config.storage.kind, config.notifications.buffer_size
        );
        println!(
            "| subscribers | delivery      | writes/s | events delivered/s | p50 (ms) | p99 (ms) | slowdown | behind at end | \
             missed |"
        );
        println!(
            "|-------------|---------------|----------|--------------------|----------|----------|----------|---------------|\
             --------|"
        );
        // Each configuration runs right after a row without subscribers, and its slowdown is
        // measured against that row: the store grows during the run and its speed drifts
        // with it (memtable flushes, compactions), which would otherwise pass for slowdown.
        for (subscribers, delivery) in [(1, "at_least_once"), (100, "at_least_once"), (100, "at_most_once")] {
            let baseline = run_row(&node, &url, 0, delivery, writers, docs, seconds).await;
            let rate = baseline.writes_per_s();
            println!("{}", baseline.line(None));
            let row = run_row(&node, &url, subscribers, delivery, writers, docs, seconds).await;
            println!("{}", row.line(Some(rate)));
            // Let the subscribers' connections close before the next row.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        node.shutdown().await.expect("shutdown");
    });
}
