//! Golden vectors: the exact bytes of fixed messages, checked in under `tests/golden/`.
//!
//! A change that alters any of these bytes changes the wire format: it needs a new protocol
//! version (see PROTOCOL.md), not an updated vector. To write the files for a deliberate new
//! version, run with `STATEMESH_UPDATE_GOLDEN=1`.

use std::path::PathBuf;

use statemesh_protocol::wire::{
    self, DocState, Gossip, Message, StateRequest, StateResponse, SyncRequest, SyncResponse, WireError, WireLimits,
};
use statemesh_protocol::{ChangeId, ChangeKind, ChangeRecord, DocId, DocKey, Namespace, NodeId, VersionVector};

fn node(name: &str) -> NodeId {
    NodeId::new(name).expect("node id")
}

fn doc(id: &str) -> DocKey {
    DocKey::new(Namespace::new("users").expect("ns"), DocId::new(id).expect("id"))
}

/// A sealed record of an origin whose key comes from a fixed seed (ed25519 signatures are
/// deterministic, so the vector is stable).
fn record(seq: u64, payload: Vec<u8>) -> ChangeRecord {
    let key = statemesh_protocol::seal::key_from_seed([0xa1; 32]);
    let mut record = ChangeRecord {
        id: ChangeId { origin: statemesh_protocol::seal::node_id_of(&key.public()), seq },
        doc: DocKey::new(Namespace::new("users").expect("ns"), DocId::new("ada").expect("id")),
        kind: ChangeKind::Patch,
        time_ms: 1_764_000_000_000,
        changes: vec![payload],
        prev: statemesh_protocol::seal::NO_PREV,
        seal: None,
    };
    statemesh_protocol::seal::SealChain::new(Some([0xb2; 32])).add(&mut record, true, &key);
    record
}

fn vectors() -> Vec<(&'static str, Message)> {
    let have: VersionVector = [(node("nodeA"), 3), (node("nodeB"), 7)].into_iter().collect();
    vec![
        ("sync_request", Message::SyncRequest(SyncRequest { have, max_records: 500 })),
        (
            "gossip_one_record",
            Message::Gossip(Gossip { records: vec![record(4, vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3])] }),
        ),
        (
            "sync_response_with_floor",
            Message::SyncResponse(SyncResponse {
                records: vec![record(4, vec![9; 8]), record(5, vec![7; 4])],
                more: true,
                floors: vec![(node("nodeC"), 12)],
            }),
        ),
        ("state_request", Message::StateRequest(StateRequest { after: Some(doc("d1")), max_docs: 256 })),
        (
            "state_response_last_page",
            Message::StateResponse(StateResponse {
                docs: vec![DocState { doc: doc("d2"), automerge: vec![0x85, 0x6f, 0x4a, 0x83, 0, 1] }],
                next: None,
                vv: [(record(9, vec![1]).id.origin, 9)].into_iter().collect(),
                tips: statemesh_protocol::seal::SealedTip::of(&record(9, vec![1])).into_iter().collect(),
                proofs: vec![statemesh_protocol::attestation::RecordHeader::of(&record(9, vec![1]))],
            }),
        ),
    ]
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.hex"))
}

#[test]
fn encoded_messages_match_the_golden_bytes() {
    let update = std::env::var_os("STATEMESH_UPDATE_GOLDEN").is_some();
    for (name, message) in vectors() {
        let bytes = wire::encode(&message);
        if update {
            std::fs::write(path(name), hex::encode(&bytes) + "\n").expect("write golden");
        }
        let golden = std::fs::read_to_string(path(name)).expect("golden file present");
        assert_eq!(hex::encode(&bytes), golden.trim(), "{name}: the wire bytes changed");
        assert_eq!(wire::decode(&bytes, &WireLimits::default()).expect("decodes"), message, "{name}");
    }
}

/// Earlier versions are kept under `golden/v<N>/`: version 1 (records without origin seals)
/// and version 2 (record hashes over change bytes, no proof for transferred documents). A
/// node refuses them by their version byte, with a reason, rather than misreading them.
#[test]
fn earlier_versions_are_refused_by_their_version_byte() {
    for version in [1u8, 2] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/v{version}"));
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("golden/v<N>") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
            let bytes = hex::decode(text.trim()).expect("hex");
            assert_eq!(wire::decode(&bytes, &WireLimits::default()), Err(WireError::UnsupportedVersion(version)));
            seen += 1;
        }
        assert_eq!(seen, 5, "version {version}");
    }
}

#[test]
fn large_payloads_are_compressed_and_round_trip() {
    let message = Message::Gossip(Gossip { records: (1..50).map(|seq| record(seq, vec![42; 200])).collect() });
    let bytes = wire::encode(&message);
    assert_eq!(bytes[3] & 1, 1, "the zstd flag is set");
    // The 49 × 200 payload bytes shrink to almost nothing; each record's hash link and seal
    // (96 bytes) do not compress.
    assert!(bytes.len() < 49 * 200 / 2, "compressed to {} bytes", bytes.len());
    assert_eq!(wire::decode(&bytes, &WireLimits::default()).expect("decodes"), message);
}

#[test]
fn malformed_envelopes_are_refused_with_a_reason() {
    let limits = WireLimits::default();
    let good = wire::encode(&vectors()[0].1);
    assert_eq!(wire::decode(&good[..5], &limits), Err(WireError::Truncated(5)));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(wire::decode(&bad, &limits), Err(WireError::BadMagic));
    let mut bad = good.clone();
    bad[2] = 4;
    assert_eq!(wire::decode(&bad, &limits), Err(WireError::UnsupportedVersion(4)));
    let mut bad = good.clone();
    bad[3] = 0x80;
    assert_eq!(wire::decode(&bad, &limits), Err(WireError::UnknownFlags(0x80)));
    let mut bad = good.clone();
    bad.push(0);
    assert!(matches!(wire::decode(&bad, &limits), Err(WireError::LengthMismatch { .. })));
    let tiny = WireLimits { message_bytes_max: 10 };
    assert!(matches!(wire::decode(&good, &tiny), Err(WireError::TooLarge(..))));
    // A compression bomb: a small frame that inflates past the limit.
    let bomb_payload = zstd::bulk::compress(&vec![0u8; 1 << 20], 19).expect("compress");
    let mut bomb = vec![b'S', b'M', wire::VERSION, 1];
    bomb.extend_from_slice(&(bomb_payload.len() as u32).to_le_bytes());
    bomb.extend_from_slice(&bomb_payload);
    let limits = WireLimits { message_bytes_max: 64 * 1024 };
    assert!(matches!(wire::decode(&bomb, &limits), Err(WireError::TooLarge(..))));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let limits = WireLimits::default();
    let good = wire::encode(&vectors()[2].1);
    // Every single-byte corruption and every truncation decodes to a message or an error.
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bytes = good.clone();
            bytes[i] ^= flip;
            let _ = wire::decode(&bytes, &limits);
        }
        let _ = wire::decode(&good[..i], &limits);
    }
}
