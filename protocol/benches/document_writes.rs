//! CPU cost of one document write in the sans-IO core, apart from storage and networking.
//!
//! Each row starts from small documents (three fields) that already hold `history` updates
//! and times the steps a node takes for one write: `Document::merge_patch` setting one field
//! (what the single-node benchmark's updates do: the Automerge transaction, its commit and
//! the encoded change), on one document (whose history grows by the iterations as the column
//! runs: the cost does not grow with it) and spread over 5,000 (as the single-node benchmark
//! spreads its writes, so the documents no longer sit in the CPU caches); hashing the change
//! again from its bytes (what the change index does for received changes); and saving the
//! whole document (done once its appended tail outgrows the last save).
//!
//! Run: `cargo bench -p statemesh-protocol --bench document_writes` (`BENCH_ITERATIONS`,
//! default 20000). It uses the system allocator; the node uses mimalloc.

use automerge::ActorId;
use serde_json::json;
use statemesh_protocol::Document;

mod common;
use common::micros_per;

/// Documents the spread-out column writes to, as the single-node benchmark does.
const SPREAD_DOCS: usize = 5_000;

fn iterations() -> u32 {
    std::env::var("BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

/// A small document with `history` earlier updates of its counter.
fn document_with_history(history: u32) -> Document {
    let mut doc = Document::new(ActorId::from(b"bench-actor".as_slice()));
    doc.put(&json!({"name": "user", "active": true, "counter": 0}), 1).expect("put");
    for i in 0..history {
        doc.merge_patch(&json!({"counter": i}), 2 + i64::from(i)).expect("patch");
    }
    doc
}

fn main() {
    let n = iterations();
    println!("document writes: µs per operation, {n} iterations per column");
    println!("| history | merge_patch, 1 doc | merge_patch, {SPREAD_DOCS} docs | change hash | save |");
    println!("|---------|--------------------|------------------------|-------------|------|");
    for history in [1, 50, 500] {
        let mut one = document_with_history(history);
        let mut last = Vec::new();
        let one_us = micros_per(n, |i| {
            last = one.merge_patch(&json!({"counter": i}), 1_000_000).expect("patch").changes;
        });
        let template = document_with_history(history);
        let mut spread: Vec<Document> = (0..SPREAD_DOCS).map(|_| template.clone()).collect();
        let spread_us = micros_per(n, |i| {
            let doc = &mut spread[i as usize % SPREAD_DOCS];
            std::hint::black_box(doc.merge_patch(&json!({"counter": i}), 1_000_000).expect("patch"));
        });
        let hash_us = micros_per(n, |_| {
            let change = automerge::Change::from_bytes(last[0].clone()).expect("change");
            std::hint::black_box(change.hash());
        });
        let save_us = micros_per(n.min(2_000), |_| {
            std::hint::black_box(template.save());
        });
        println!("| {history:>7} | {one_us:>18.2} | {spread_us:>23.2} | {hash_us:>11.2} | {save_us:>4.1} |");
    }
}
