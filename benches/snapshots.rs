//! Snapshot benchmark: create and restore time and file size for many small documents, in
//! every serialization format × compression.
//!
//! Run: `cargo bench --bench snapshots` (settings: `BENCH_SNAPSHOT_DOCS`, default 100000;
//! `BENCH_SNAPSHOT_RESTORE=0` skips the restore into a fresh node; any `STATEMESH_*`
//! configuration override applies to the source node).
//!
//! Per row: *create* is what `POST /v1/snapshots` does (consistent export from RocksDB,
//! encode, compress, write, fsync); *verify+decode* reads the file back, checks its
//! checksum, decompresses and decodes it; *restore* is a complete restore of the decoded
//! snapshot into a fresh, empty RocksDB node (every document checked, then written through
//! the ordinary durable write path).

use std::time::Instant;

use serde_json::json;
use statemesh::config::{Config, StorageType};
use statemesh::node::{Node, Precondition};
use statemesh::protocol::{DocId, DocKey, Namespace};
use statemesh::snapshot::codec::{COMPRESSIONS, FORMATS};
use statemesh::snapshot::format::{compression_name, format_name};
use statemesh::snapshot::{read_file, write_file};

/// The same allocator as the `statemesh` binary, so figures match what a node does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bench_config(dir: &std::path::Path) -> Config {
    let mut config = Config::load(None, std::env::vars()).expect("configuration");
    config.node.data_dir = dir.to_path_buf();
    config
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let docs = env_or("BENCH_SNAPSHOT_DOCS", 100_000);
    let restore = env_or("BENCH_SNAPSHOT_RESTORE", 1) != 0;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = bench_config(&dir.path().join("source"));
        let node = Node::open(&config).expect("node");
        let started = Instant::now();
        let writers: Vec<_> = (0..64u64)
            .map(|w| {
                let node = node.clone();
                tokio::spawn(async move {
                    let mut i = w;
                    while i < docs {
                        let key = DocKey::new(
                            Namespace::new("bench").expect("ns"),
                            DocId::new(format!("doc-{i:07}")).expect("id"),
                        );
                        let body = json!({"id": i, "name": format!("user {i}"), "active": true});
                        node.put(&key, &body, &Precondition::None).await.expect("put");
                        i += 64;
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        println!(
            "snapshots of {docs} small documents (written in {:.1} s), source storage {:?}; restore into a fresh \
             RocksDB node: {}",
            started.elapsed().as_secs_f64(),
            config.storage.kind,
            if restore { "yes" } else { "skipped" }
        );
        println!(
            "| format  | compression | create (ms) | file (bytes) | file (MiB) | verify+decode (ms) | restore (ms) |"
        );
        println!(
            "|---------|-------------|-------------|--------------|------------|--------------------|--------------|"
        );
        for format in FORMATS {
            for compression in COMPRESSIONS {
                let path = dir.path().join(format!("{}-{}.snap", format_name(format), compression_name(compression)));
                let started = Instant::now();
                let exporter = node.clone();
                let (body, written) = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || {
                        let body = exporter.export_snapshot("bench".to_string(), &mut |_| {}).expect("export");
                        let written = write_file(&path, &body, format, compression).expect("write");
                        (body, written)
                    }
                })
                .await
                .expect("create task");
                let create_ms = ms(started);
                assert_eq!(body.documents.len() as u64, docs);
                drop(body);

                let started = Instant::now();
                let (_, body) = read_file(&path, &mut |_| {}).expect("read");
                let read_ms = ms(started);

                let restore_ms = if restore {
                    let target_dir =
                        dir.path().join(format!("target-{}-{}", format_name(format), compression_name(compression)));
                    let mut target_config = bench_config(&target_dir);
                    target_config.storage.kind = StorageType::Persistent;
                    let target = Node::open(&target_config).expect("target node");
                    let started = Instant::now();
                    let report = target.restore_snapshot(&body, &mut |_| {}).await.expect("restore");
                    let elapsed = ms(started);
                    assert_eq!((report.restored, report.failed), (docs, 0), "{report:?}");
                    target.shutdown().await.expect("shutdown");
                    drop(target);
                    let _ = std::fs::remove_dir_all(&target_dir);
                    format!("{elapsed:>12.0}")
                } else {
                    format!("{:>12}", "-")
                };
                println!(
                    "| {:<7} | {:<11} | {create_ms:>11.0} | {:>12} | {:>10.1} | {read_ms:>18.0} | {restore_ms} |",
                    format_name(format),
                    compression_name(compression),
                    written.bytes,
                    written.bytes as f64 / (1024.0 * 1024.0),
                );
                let _ = std::fs::remove_file(&path);
            }
        }
        node.shutdown().await.expect("shutdown");
    });
}
