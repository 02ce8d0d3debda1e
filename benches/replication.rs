//! Replication benchmark: in-process nodes with RocksDB storage, replicating over libp2p on
//! loopback (TCP, noise, yamux; gossip plus anti-entropy), exactly as `statemesh start` runs.
//!
//! Run: `cargo bench --bench replication` (all scenarios) or pick some with
//! `BENCH_SCENARIOS=latency,heal,idle,catchup,long_history,transfer`. Sizes follow the figures the
//! project tracks and can be scaled down with the variables named below.
//!
//! - latency: 5 nodes; node 0 writes at `BENCH_RATE` (default 1,000) writes/s for
//!   `BENCH_SECONDS` (default 10) over 1,000 documents; for each write, the time from the
//!   call to the change being durable on the last of the other 4 nodes (their live feeds),
//!   and from the call to its acknowledgement on node 0 (durable there), which the first
//!   includes. `BENCH_GOSSIP_WINDOW_MS` overrides `p2p.gossip_batch_window` (default 10 ms).
//! - heal: 4 nodes split 2 | 2; each half makes `BENCH_HEAL_CHANGES` (default 10,000)
//!   changes to 1,000 shared documents; then the halves reconnect. Time until all version
//!   vectors agree, and bytes sent during the heal against the zstd-compressed size of what
//!   each node lacked (one frame per side, or pages of `BENCH_BASELINE_PAGE` records).
//! - idle: 5 nodes converged on `BENCH_IDLE_DOCS` (default 100,000) documents; bytes per
//!   second each node sends over 10 idle seconds.
//! - catchup: a node offline while `BENCH_CATCHUP_CHANGES` (default 100,000) changes are
//!   made over 10,000 documents; time from its return to holding all of them.
//! - long_history: one document with `BENCH_LONG_CHANGES` (default 20,000) changes made on
//!   one node while another is online; the receiver's apply rate.
//! - transfer: node 0 keeps only its newest 1,000 log records and makes
//!   `BENCH_TRANSFER_CHANGES` (default 50,000) changes over 10,000 documents; a node that
//!   never met it then joins and receives whole documents. Time and CPU until it holds them,
//!   and the size of what node 0 serves: the documents and the proof of their heads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use statemesh::metrics::WireLabels;
use statemesh::node::{Node, Precondition};
use statemesh::protocol::wire::{self, Gossip, Message};
use statemesh::protocol::{DocKey, VersionVector};
use statemesh::testkit::{key, member_config, Member};

mod common;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONVERGE_TIMEOUT: Duration = Duration::from_secs(600);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn doc(i: u64) -> DocKey {
    key("bench", &format!("doc-{i:06}"))
}

/// `count` RocksDB members in temporary directories (not yet connected).
fn open_members(count: usize) -> (Vec<Member>, Vec<tempfile::TempDir>) {
    open_members_with(count, |_, _| {})
}

/// `tweak(i, config)` adjusts member `i`'s configuration before it opens.
fn open_members_with(
    count: usize,
    tweak: impl Fn(usize, &mut statemesh::config::Config),
) -> (Vec<Member>, Vec<tempfile::TempDir>) {
    let dirs: Vec<tempfile::TempDir> = (0..count).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let mut members = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut config = member_config(Some(dir.path()));
        config.p2p.anti_entropy_interval = Duration::from_secs(1);
        config.log.level = "warn".to_string();
        if let Ok(ms) = std::env::var("BENCH_GOSSIP_WINDOW_MS") {
            config.p2p.gossip_batch_window =
                Duration::from_millis(ms.parse().expect("BENCH_GOSSIP_WINDOW_MS: milliseconds"));
        }
        tweak(i, &mut config);
        members.push(Member::open(config));
    }
    (members, dirs)
}

/// Connects every member to the first.
async fn connect_star(members: &mut [Member]) {
    members[0].connect(&[]).await;
    let seed = members[0].addrs();
    for member in members.iter_mut().skip(1) {
        member.connect(&seed).await;
    }
    wait_for(Duration::from_secs(30), || members[0].node.peers().len() == members.len() - 1).await;
}

async fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "condition not reached within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

fn converged(nodes: &[&Node]) -> bool {
    let first = nodes[0].version_vector();
    nodes.iter().all(|n| n.version_vector() == first)
}

fn bytes_out(node: &Node) -> u64 {
    ["gossip", "sync_request", "sync_response"]
        .iter()
        .map(|kind| node.metrics().p2p_bytes.get_or_create(&WireLabels { direction: "out", kind }).get())
        .sum()
}

/// Writes `total` patches as fast as the node takes them, from 64 concurrent writers.
async fn write_fast(node: &Node, total: u64, docs: u64, tag: &str) {
    let writers = 64;
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let node = node.clone();
            let tag = tag.to_string();
            tokio::spawn(async move {
                let mut i = w;
                while i < total {
                    let body = json!({ "by": tag, "n": i });
                    node.patch(&doc(i % docs), &body, &Precondition::None).await.expect("patch");
                    i += writers;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("writer");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn latency() {
    let rate = env_or("BENCH_RATE", 1000);
    let seconds = env_or("BENCH_SECONDS", 10);
    let (mut members, _dirs) = open_members(5);
    connect_star(&mut members).await;
    let origin = members[0].node.node_id().clone();
    // seq -> (how many of the other nodes have it, when the last of them got it)
    let arrivals: Arc<Mutex<HashMap<u64, (usize, Instant)>>> = Arc::default();
    let mut watchers = Vec::new();
    for member in members.iter().skip(1) {
        let mut live = member.node.feed_live();
        let arrivals = arrivals.clone();
        let origin = origin.clone();
        watchers.push(tokio::spawn(async move {
            while let Ok(event) = live.recv().await {
                if event.change.origin == origin {
                    let mut arrivals = arrivals.lock();
                    let entry = arrivals.entry(event.change.seq).or_insert((0, Instant::now()));
                    entry.0 += 1;
                    entry.1 = Instant::now();
                }
            }
        }));
    }
    // seq -> when its write was called
    let starts: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    // how long each write took to be acknowledged on node 0 (durable there)
    let acks: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut writes = Vec::new();
    for i in 0..total {
        let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        let node = members[0].node.clone();
        let (starts, acks) = (starts.clone(), acks.clone());
        writes.push(tokio::spawn(async move {
            let began = Instant::now();
            let result = node.patch(&doc(i % 1000), &json!({ "n": i }), &Precondition::None).await.expect("patch");
            acks.lock().push(began.elapsed());
            starts.lock().insert(result.change.expect("a change").seq, began);
        }));
    }
    for write in writes {
        write.await.expect("write");
    }
    let offered = start.elapsed();
    wait_for(CONVERGE_TIMEOUT, || converged(&members.iter().map(|m| &m.node).collect::<Vec<_>>())).await;
    let mut latencies: Vec<Duration> = {
        let arrivals = arrivals.lock();
        starts
            .lock()
            .iter()
            .filter_map(|(seq, began)| {
                arrivals.get(seq).filter(|(n, _)| *n == 4).map(|(_, at)| at.saturating_duration_since(*began))
            })
            .collect()
    };
    latencies.sort();
    let mut acks = std::mem::take(&mut *acks.lock());
    acks.sort();
    println!(
        "latency      5 nodes, {total} writes at {:.0}/s offered: visible on all | p50 {:.1} ms | p99 {:.1} ms | \
         max {:.1} ms | measured {} | acknowledged on node 0: p50 {:.1} ms, p99 {:.1} ms",
        total as f64 / offered.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        latencies.len(),
        percentile(&acks, 0.5).as_secs_f64() * 1000.0,
        percentile(&acks, 0.99).as_secs_f64() * 1000.0,
    );
    for watcher in watchers {
        watcher.abort();
    }
    shutdown(members).await;
}

/// The zstd-compressed wire size of every record `node` holds that `have` lacks.
async fn compressed_missing(node: &Node, have: &VersionVector) -> usize {
    let mut have = have.clone();
    let mut total = 0;
    let page_records = env_or("BENCH_BASELINE_PAGE", 100_000) as u32;
    loop {
        let page = node.read_log(have.clone(), page_records, usize::MAX).await.expect("read log");
        if page.records.is_empty() {
            return total;
        }
        for record in &page.records {
            have.advance(&record.id.origin, record.id.seq);
        }
        total += wire::encode(&Message::Gossip(Gossip { records: page.records })).len();
        if !page.more {
            return total;
        }
    }
}

async fn heal() {
    let changes = env_or("BENCH_HEAL_CHANGES", 10_000);
    let (mut members, _dirs) = open_members(4);
    members[0].connect(&[]).await;
    let a_seed = members[0].addrs();
    members[1].connect(&a_seed).await;
    members[2].connect(&[]).await;
    let b_seed = members[2].addrs();
    members[3].connect(&b_seed).await;
    let (a, b) = members.split_at(2);
    tokio::join!(
        async {
            tokio::join!(
                write_fast(&a[0].node, changes / 2, 1000, "a0"),
                write_fast(&a[1].node, changes / 2, 1000, "a1")
            )
        },
        async {
            tokio::join!(
                write_fast(&b[0].node, changes / 2, 1000, "b0"),
                write_fast(&b[1].node, changes / 2, 1000, "b1")
            )
        },
    );
    wait_for(CONVERGE_TIMEOUT, || converged(&[&a[0].node, &a[1].node]) && converged(&[&b[0].node, &b[1].node])).await;
    let mut floor_bytes = 0;
    for (side, other) in [(a, b), (b, a)] {
        let missing = compressed_missing(&side[0].node, &other[0].node.version_vector()).await;
        // Both nodes of the other side lack it.
        floor_bytes += 2 * missing;
    }
    let before: u64 = members.iter().map(|m| bytes_out(&m.node)).sum();
    let start = Instant::now();
    members[2].disconnect().await;
    members[2].connect(&a_seed).await;
    wait_for(CONVERGE_TIMEOUT, || converged(&members.iter().map(|m| &m.node).collect::<Vec<_>>())).await;
    let took = start.elapsed();
    let sent = members.iter().map(|m| bytes_out(&m.node)).sum::<u64>() - before;
    println!(
        "heal         2|2 nodes, {changes} changes per side on 1000 docs: converged in {:.2} s | sent {:.2} MB | \
         compressed missing changes {:.2} MB | ratio {:.2}",
        took.as_secs_f64(),
        sent as f64 / 1e6,
        floor_bytes as f64 / 1e6,
        sent as f64 / floor_bytes.max(1) as f64
    );
    shutdown(members).await;
}

async fn idle() {
    let docs = env_or("BENCH_IDLE_DOCS", 100_000);
    let (mut members, _dirs) = open_members(5);
    connect_star(&mut members).await;
    write_fast(&members[0].node, docs, docs, "idle").await;
    wait_for(CONVERGE_TIMEOUT, || converged(&members.iter().map(|m| &m.node).collect::<Vec<_>>())).await;
    // Let in-flight pages finish before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before: Vec<u64> = members.iter().map(|m| bytes_out(&m.node)).collect();
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let rates: Vec<f64> = members
        .iter()
        .zip(before)
        .map(|(m, before)| (bytes_out(&m.node) - before) as f64 / window.as_secs_f64())
        .collect();
    let max = rates.iter().copied().fold(0.0, f64::max);
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    println!(
        "idle         5 nodes, {docs} documents converged: bytes/s sent per node | mean {mean:.0} | max {max:.0} \
         (anti-entropy every {:?})",
        members[0].config.p2p.anti_entropy_interval
    );
    shutdown(members).await;
}

async fn catchup() {
    let changes = env_or("BENCH_CATCHUP_CHANGES", 100_000);
    let (mut members, _dirs) = open_members(3);
    connect_star(&mut members).await;
    let absent = members.pop().expect("member");
    let config = absent.stop().await;
    write_fast(&members[0].node, changes, 10_000, "c").await;
    wait_for(CONVERGE_TIMEOUT, || converged(&[&members[0].node, &members[1].node])).await;
    let back = Member::open(config);
    members.push(back);
    let seed = members[0].addrs();
    let (start, cpu_before) = (Instant::now(), common::cpu_time(None));
    members[2].connect(&seed).await;
    let took = wait_for(CONVERGE_TIMEOUT, || converged(&members.iter().map(|m| &m.node).collect::<Vec<_>>())).await;
    let total = start.elapsed().max(took);
    // All three nodes' work (serving, sending, checking, storing): they share this process.
    let cpu = common::cpu_time(None).saturating_sub(cpu_before);
    println!(
        "catchup      {changes} changes over 10000 docs to a returning node: {:.2} s | {:.0} changes/s | \
         CPU {:.2} s, {:.1} µs/change",
        total.as_secs_f64(),
        changes as f64 / total.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / changes as f64
    );
    shutdown(members).await;
}

async fn long_history() {
    let changes = env_or("BENCH_LONG_CHANGES", 20_000);
    let (mut members, _dirs) = open_members(2);
    connect_star(&mut members).await;
    let start = Instant::now();
    let node = members[0].node.clone();
    let writer = tokio::spawn(async move { write_fast(&node, changes, 1, "long").await });
    writer.await.expect("writer");
    let wrote = start.elapsed();
    wait_for(CONVERGE_TIMEOUT, || converged(&[&members[0].node, &members[1].node])).await;
    let took = start.elapsed();
    println!(
        "long_history one document, {changes} changes: written in {:.2} s ({:.0}/s) | replicated in {:.2} s \
         ({:.0}/s applied on the receiver)",
        wrote.as_secs_f64(),
        changes as f64 / wrote.as_secs_f64(),
        took.as_secs_f64(),
        changes as f64 / took.as_secs_f64()
    );
    shutdown(members).await;
}

async fn transfer() {
    let changes = env_or("BENCH_TRANSFER_CHANGES", 50_000);
    let docs = 10_000;
    let (mut members, _dirs) = open_members_with(2, |i, config| {
        if i == 0 {
            config.history.max_size = 1_000;
        }
    });
    let late_config = members.pop().expect("member").stop().await;
    members[0].connect(&[]).await;
    write_fast(&members[0].node, changes, docs, "t").await;
    let origin = members[0].node.clone();
    let pruned = || {
        let origin = origin.clone();
        async move { !origin.read_log(VersionVector::new(), 10, 1 << 20).await.expect("read log").floors.is_empty() }
    };
    let start = Instant::now();
    while !pruned().await {
        assert!(start.elapsed() < CONVERGE_TIMEOUT, "node 0's log is never pruned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What node 0 serves, page by page, as a transfer reads it.
    let (mut doc_bytes, mut proof_bytes, mut proofs, mut after) = (0usize, 0usize, 0usize, None);
    loop {
        let page = origin.read_docs(after, 1_000, 4 << 20).await.expect("read docs");
        doc_bytes += page.docs.iter().map(|d| d.automerge.len()).sum::<usize>();
        proof_bytes += page.proofs.iter().map(|h| h.encode().len()).sum::<usize>();
        proofs += page.proofs.len();
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    let late = Member::open(late_config);
    members.push(late);
    let seed = members[0].addrs();
    let (start, cpu_before) = (Instant::now(), common::cpu_time(None));
    members[1].connect(&seed).await;
    let took = wait_for(CONVERGE_TIMEOUT, || converged(&[&members[0].node, &members[1].node])).await;
    let total = start.elapsed().max(took);
    let cpu = common::cpu_time(None).saturating_sub(cpu_before);
    println!(
        "transfer     {docs} docs ({changes} changes) to a node that never met their origin: {:.2} s | {:.0} docs/s | \
         CPU {:.2} s, {:.1} µs/doc | served {:.1} MB of documents and {proofs} headers, {:.1} MB ({:.1} %) of proof",
        total.as_secs_f64(),
        docs as f64 / total.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / docs as f64,
        doc_bytes as f64 / 1e6,
        proof_bytes as f64 / 1e6,
        100.0 * proof_bytes as f64 / doc_bytes.max(1) as f64,
    );
    shutdown(members).await;
}

async fn shutdown(members: Vec<Member>) {
    for member in members {
        member.stop().await;
    }
}

fn main() {
    let scenarios =
        std::env::var("BENCH_SCENARIOS").unwrap_or_else(|_| "latency,heal,idle,catchup,long_history,transfer".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("statemesh replication benchmark (in-process nodes, RocksDB, libp2p on loopback)");
    for scenario in scenarios.split(',').map(str::trim) {
        runtime.block_on(async {
            match scenario {
                "latency" => latency().await,
                "heal" => heal().await,
                "idle" => idle().await,
                "catchup" => catchup().await,
                "long_history" => long_history().await,
                "transfer" => transfer().await,
                other => eprintln!("unknown scenario `{other}`"),
            }
        });
    }
}
