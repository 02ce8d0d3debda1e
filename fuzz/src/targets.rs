//! One target per decoder of outside bytes, each with its input limit and real seed encodings.
//!
//! A target calls the same public function the node calls on bytes from a peer, a client or
//! a file. Its `alloc_limit` is the input limit that decoder works under in a default
//! configuration: no single allocation may exceed it, whatever the input claims.

use std::path::PathBuf;

use automerge::ActorId;
use serde_json::json;
use statemesh::config::{Compression, Config, SerializationFormat};
use statemesh::snapshot::format::{Header, HEADER_LEN};
use statemesh::snapshot::{codec, SnapshotBody, SnapshotDoc};
use statemesh::strong::wire::{
    WireAnswer, WireDone, WireFailure, WireOp, WirePrecondition, WireRequest, WireWrite, WireWritten,
};
use statemesh::strong::{ClusterSeed, DocRead, DocWrite, StrongCommand};
use statemesh_protocol::wire::{self, DocState, Gossip, Message, StateResponse, SyncRequest, WireLimits};
use statemesh_protocol::{ChangeId, ChangeKind, ChangeRecord, DocId, DocKey, Document, Namespace, NodeId, Version};

const MIB: usize = 1024 * 1024;
/// The default `p2p.max_message_bytes`, which also bounds Raft RPCs and forwarded requests.
const MESSAGE_LIMIT: usize = 4 * MIB;
/// The default `api.max_body_bytes`: the largest raw Automerge body a client may send.
const HTTP_BODY_LIMIT: usize = 4 * MIB;
/// The snapshot target decodes files whose header promises at most this body; the node
/// allows up to 16 GiB, which a legitimate file may hold, so the interesting property here
/// is that nothing allocates beyond what the header promised (plus the decoder's 2x bound).
const SNAPSHOT_BODY_FUZZ_MAX: u64 = MIB as u64;

pub struct Target {
    pub name: &'static str,
    /// No single allocation may exceed this.
    pub alloc_limit: usize,
    /// Decodes `bytes` as the node would; true if they were accepted.
    pub run: fn(&[u8]) -> bool,
    pub seeds: fn() -> Vec<Vec<u8>>,
}

pub fn all() -> Vec<Target> {
    vec![
        Target { name: "wire-message", alloc_limit: MESSAGE_LIMIT, run: wire_message, seeds: wire_seeds },
        Target {
            name: "raft-rpc",
            alloc_limit: MESSAGE_LIMIT,
            run: raft_rpc,
            seeds: statemesh::raft::sample_encodings,
        },
        Target { name: "strong-forward", alloc_limit: MESSAGE_LIMIT, run: strong_forward, seeds: forward_seeds },
        Target { name: "strong-command", alloc_limit: MESSAGE_LIMIT, run: strong_command, seeds: command_seeds },
        Target {
            name: "strong-snapshot",
            alloc_limit: MESSAGE_LIMIT,
            run: strong_snapshot,
            seeds: strong_snapshot_seeds,
        },
        Target { name: "change-record", alloc_limit: MESSAGE_LIMIT, run: change_record, seeds: record_seeds },
        Target { name: "snapshot-file", alloc_limit: 4 * MIB, run: snapshot_file, seeds: snapshot_file_seeds },
        Target { name: "automerge-body", alloc_limit: HTTP_BODY_LIMIT, run: automerge_body, seeds: automerge_seeds },
        Target { name: "config-yaml", alloc_limit: MIB, run: config_yaml, seeds: config_seeds },
    ]
}

// ---- decoders ----

fn wire_message(bytes: &[u8]) -> bool {
    wire::decode(bytes, &WireLimits { message_bytes_max: MESSAGE_LIMIT }).is_ok()
}

fn raft_rpc(bytes: &[u8]) -> bool {
    let request = statemesh::raft::decode_request(bytes, MESSAGE_LIMIT).is_ok();
    let reply = statemesh::raft::decode_reply(bytes, MESSAGE_LIMIT).is_ok();
    request || reply
}

fn strong_forward(bytes: &[u8]) -> bool {
    let request = statemesh::strong::wire::decode::<WireRequest>(bytes, "forwarded request").is_ok();
    let answer = statemesh::strong::wire::decode::<WireAnswer>(bytes, "forwarded answer").is_ok();
    request || answer
}

fn strong_command(bytes: &[u8]) -> bool {
    StrongCommand::decode(bytes).is_ok()
}

fn strong_snapshot(bytes: &[u8]) -> bool {
    statemesh::strong::decode_snapshot(bytes).is_ok()
}

fn change_record(bytes: &[u8]) -> bool {
    ChangeRecord::decode(bytes).is_ok()
}

/// What `snapshot::read_file` does after reading the file, minus the checksum: a checksum is
/// no defence against a crafted file (anyone can compute one), so the fuzzer skips it.
fn snapshot_file(bytes: &[u8]) -> bool {
    let Some((head, payload)) = bytes.split_at_checked(HEADER_LEN) else {
        return false;
    };
    let Ok(header) = Header::decode(head) else {
        return false;
    };
    if header.body_len > SNAPSHOT_BODY_FUZZ_MAX {
        return false;
    }
    let Ok(plain) = codec::decompress(payload, header.compression, header.body_len) else {
        return false;
    };
    codec::decode(&plain, header.format).is_ok()
}

fn automerge_body(bytes: &[u8]) -> bool {
    let mut doc = Document::new(ActorId::from([7u8; 16]));
    doc.apply_raw::<statemesh_protocol::DocError>(bytes, |_| Ok(())).is_ok()
}

fn config_yaml(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(text) => Config::from_yaml_str(text, "fuzz").is_ok(),
        Err(_) => false,
    }
}

// ---- seeds: real encodings ----

fn node(name: &str) -> NodeId {
    NodeId::new(name).expect("seed node id")
}

fn key(namespace: &str, id: &str) -> DocKey {
    DocKey::new(Namespace::new(namespace).expect("seed namespace"), DocId::new(id).expect("seed doc id"))
}

/// A document with a little history, and its raw changes.
fn sample_doc() -> (Document, Vec<Vec<u8>>) {
    let mut doc = Document::new(ActorId::from([1u8; 16]));
    doc.put(&json!({"name": "ada", "tags": ["a", "b"], "n": 1}), 1_764_000_000_000).expect("seed put");
    doc.put(&json!({"name": "ada lovelace", "n": 2.5, "nested": {"x": null}}), 1_764_000_000_001).expect("seed put");
    let changes = doc.changes_since(&Version::new(Vec::new())).expect("seed changes");
    (doc, changes)
}

fn sample_record(seq: u64) -> ChangeRecord {
    let signer = statemesh_protocol::seal::key_from_seed([7; 32]);
    let mut record = ChangeRecord {
        id: ChangeId { origin: statemesh_protocol::seal::node_id_of(&signer.public()), seq },
        doc: key("users", "ada"),
        kind: ChangeKind::Patch,
        time_ms: 1_764_000_000_000,
        changes: sample_doc().1,
        prev: statemesh_protocol::seal::NO_PREV,
        seal: None,
    };
    // Sealed, so the seeds cover both a seal and a link.
    statemesh_protocol::seal::SealChain::new(Some([1; 32])).add(&mut record, true, &signer);
    record
}

/// The golden vectors checked in under `protocol/tests/golden/`, plus messages built here
/// (a large one, so the zstd path is seeded too).
fn wire_seeds() -> Vec<Vec<u8>> {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../protocol/tests/golden");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&golden)
        .map(|dir| {
            dir.filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
                .filter_map(|text| hex::decode(text.trim()).ok())
                .collect()
        })
        .unwrap_or_default();
    let (doc, _) = sample_doc();
    let have = [(node("nodeA"), 3), (node("nodeB"), 7)].into_iter().collect();
    seeds.push(wire::encode(&Message::SyncRequest(SyncRequest { have, max_records: 500 })));
    seeds.push(wire::encode(&Message::Gossip(Gossip { records: (1..=12).map(sample_record).collect() })));
    seeds.push(wire::encode(&Message::StateResponse(StateResponse {
        docs: vec![DocState { doc: key("users", "ada"), automerge: doc.save() }],
        next: Some(key("users", "bob")),
        vv: [(node("nodeA"), 9)].into_iter().collect(),
        tips: statemesh_protocol::seal::SealedTip::of(&sample_record(9)).into_iter().collect(),
        proofs: vec![statemesh_protocol::attestation::RecordHeader::of(&sample_record(9))],
    })));
    seeds
}

fn forward_seeds() -> Vec<Vec<u8>> {
    use statemesh::strong::wire::encode;
    let write = WireWrite {
        doc: key("orders", "o1"),
        op: WireOp::Patch(r#"{"status":"paid"}"#.to_owned()),
        pre: WirePrecondition::IfMatch("3a4b".to_owned()),
    };
    let written = WireWritten { version: "3a4b".to_owned(), change: None, created: true, index: Some(9) };
    let answers: [WireAnswer; 3] = [
        Ok(WireDone::Written(written)),
        Ok(WireDone::Txn { body: "{}".to_owned(), index: None }),
        Err(WireFailure { status: 412, code: "precondition_failed".to_owned(), message: "moved on".to_owned() }),
    ];
    let mut seeds = vec![encode(&WireRequest::Write(write)), encode(&WireRequest::Promote(3))];
    seeds.extend(answers.iter().map(encode));
    seeds
}

fn command_seeds() -> Vec<Vec<u8>> {
    let write = StrongCommand::Write {
        time_ms: 1_764_000_000_000,
        writes: vec![DocWrite { doc: key("orders", "o1"), kind: ChangeKind::Put, changes: sample_doc().1 }],
        reads: vec![DocRead { doc: key("orders", "o2"), seq: 4 }],
    };
    vec![write.to_command().payload, StrongCommand::SetCluster(ClusterSeed([3; 32]).into()).to_command().payload]
}

fn strong_snapshot_seeds() -> Vec<Vec<u8>> {
    let entries: Vec<(Vec<u8>, Vec<u8>)> =
        vec![(b"sd/cluster".to_vec(), vec![1; 17]), (b"sd/doc/orders/o1".to_vec(), sample_doc().0.save())];
    vec![statemesh::storage::codec::encode(&entries)]
}

fn record_seeds() -> Vec<Vec<u8>> {
    vec![sample_record(1).encode(), sample_record(2).encode()]
}

/// Every format and compression, written by the node's own `write_file`.
fn snapshot_file_seeds() -> Vec<Vec<u8>> {
    let (doc, _) = sample_doc();
    let body = SnapshotBody {
        id: "snap-1".to_owned(),
        created_ms: 1_764_000_000_000,
        node_id: "nodeA".to_owned(),
        version_vector: [(node("nodeA"), 2)].into_iter().collect(),
        documents: vec![
            SnapshotDoc { key: key("users", "ada"), exists: true, automerge: doc.save() },
            SnapshotDoc { key: key("users", "bob"), exists: false, automerge: doc.save() },
        ],
    };
    let Ok(dir) = tempfile::tempdir() else {
        return Vec::new();
    };
    let mut seeds = Vec::new();
    for format in [SerializationFormat::Json, SerializationFormat::Bincode, SerializationFormat::Msgpack] {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd, Compression::Lz4] {
            let path = dir.path().join("seed.snap");
            if statemesh::snapshot::write_file(&path, &body, format, compression).is_ok() {
                seeds.extend(std::fs::read(&path).ok());
            }
        }
    }
    seeds
}

fn automerge_seeds() -> Vec<Vec<u8>> {
    let (doc, changes) = sample_doc();
    let mut seeds = vec![doc.save(), changes.concat()];
    seeds.extend(changes);
    seeds
}

fn config_seeds() -> Vec<Vec<u8>> {
    let anchors = "node: &n\n  id: a\nstorage:\n  <<: *n\n";
    vec![
        Config::default_yaml().as_bytes().to_vec(),
        Config::default().to_yaml().into_bytes(),
        b"state_management:\n  p2p:\n    max_message_bytes: 1048576\n".to_vec(),
        anchors.as_bytes().to_vec(),
    ]
}
