//! CPU cost of origin authentication (`seal.rs`): what a writer pays per record and per
//! sealed batch, and what a receiver pays per record and per message.
//!
//! Rows: hashing one record (the writer links every record, the receiver rehashes every
//! record it is sent); sealing one (ed25519 signature, once per group commit); checking one
//! seal; and verifying a whole anti-entropy page of chained records from one origin (one
//! seal, one hash per record), per record. Each record carries one real Automerge change
//! setting a string of `BENCH_CHANGE_BYTES` (default 200) bytes, about what one small merge
//! patch makes (a record's hash covers its changes' Automerge hashes, so they must be real).
//!
//! Run: `cargo bench -p statemesh-protocol --bench seals` (`BENCH_ITERATIONS`, default 20000).

use statemesh_protocol::seal::{key_from_seed, node_id_of, record_hash, seal, SealChain, SealVerifier, NO_PREV};
use statemesh_protocol::{ChangeId, ChangeKind, ChangeRecord, DocId, DocKey, Namespace};

mod common;
use common::micros_per;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One Automerge change of a little more than `bytes` bytes.
fn change_chunk(bytes: usize) -> Vec<u8> {
    use automerge::transaction::Transactable;
    let mut doc = automerge::AutoCommit::new();
    doc.put(automerge::ROOT, "v", "x".repeat(bytes)).expect("put");
    doc.commit();
    doc.get_changes(&[]).last().expect("a change").raw_bytes().to_vec()
}

fn main() {
    let n = env_or("BENCH_ITERATIONS", 20_000);
    let change_bytes = env_or("BENCH_CHANGE_BYTES", 200) as usize;
    let key = key_from_seed([9; 32]);
    let origin = node_id_of(&key.public());
    let chunk = change_chunk(change_bytes);
    let record = |seq: u64| ChangeRecord {
        id: ChangeId { origin: origin.clone(), seq },
        doc: DocKey::new(Namespace::new("bench").expect("ns"), DocId::new(format!("doc{}", seq % 5000)).expect("id")),
        kind: ChangeKind::Patch,
        time_ms: 1_764_000_000_000,
        changes: vec![chunk.clone()],
        prev: NO_PREV,
        seal: None,
    };
    let one = record(1);
    let hash_us = micros_per(n, |i| {
        let mut r = one.clone();
        r.id.seq = u64::from(i) + 1;
        std::hint::black_box(record_hash(&r));
    });
    let clone_us = micros_per(n, |i| {
        let mut r = one.clone();
        r.id.seq = u64::from(i) + 1;
        std::hint::black_box(r);
    });
    let hash = record_hash(&one);
    let seal_us = micros_per(n / 10, |_| {
        let mut r = one.clone();
        seal(&mut r, &hash, &key);
        std::hint::black_box(r);
    });
    let mut sealed = one.clone();
    seal(&mut sealed, &hash, &key);
    let tip = statemesh_protocol::seal::SealedTip::of(&sealed).expect("sealed");
    let mut verifier = SealVerifier::new();
    let check_us = micros_per(n / 10, |_| {
        verifier.check_tip(&tip).expect("valid");
    });
    // A page: 512 chained records of one origin, the last one sealed.
    let mut chain = SealChain::new(None);
    let page: Vec<ChangeRecord> = (1..=512)
        .map(|seq| {
            let mut r = record(seq);
            chain.add(&mut r, seq == 512, &key);
            r
        })
        .collect();
    let pages = (n / 512).max(4);
    let page_us = micros_per(pages, |_| {
        let (accepted, _) = verifier.verify(page.clone());
        assert_eq!(accepted.len(), 512);
    }) / 512.0;
    println!("origin seals: µs per operation, {n} iterations, records of {change_bytes} change bytes");
    println!("| hash one record | seal (sign) | check one seal | verify a 512-record page, per record |");
    println!("|-----------------|-------------|----------------|--------------------------------------|");
    println!("| {:15.2} | {seal_us:11.2} | {check_us:14.2} | {page_us:36.2} |", hash_us - clone_us);
}
