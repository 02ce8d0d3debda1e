//! Origin authentication: every change record is bound to its origin's ed25519 key.
//!
//! A node id is the base58 form of a libp2p PeerId, and an ed25519 PeerId carries its public
//! key inline, so the origin named in a record is also the key that must vouch for it: no
//! directory of keys is needed, and any node can check any origin's records, whoever relays
//! them.
//!
//! Signing every record would cost the write path more than the rest of a write's storage
//! work, so records are chained instead: each record names the hash of its origin's previous
//! record (`prev`), and the origin signs (seals) only some records, at least the last one of
//! every group commit and one in every [`SEAL_SPAN_RECORDS`] records or [`SEAL_SPAN_BYTES`].
//! A run of consecutive records is authentic when its last record carries a valid seal and
//! every earlier one is either named by its successor's `prev` or sealed itself. So a
//! receiver checks one signature per origin per message, and a relay needs nothing but the
//! records it stores: the seals and links travel inside them.
//!
//! A seal signs the record's origin, seq and hash, so it can also be checked on its own (a
//! [`SealedTip`]) as proof that an origin has written up to a seq.
//!
//! The hash covers a record's changes by their Automerge change hashes rather than their
//! bytes, so the record's [`RecordHeader`] (the record with those hashes in place of the
//! changes) has the same hash and is checked the same way: that is what proves documents
//! handed over whole ([`crate::attestation`]). A change hash is read from the chunk's header
//! and body without parsing it, which costs what hashing the bytes did.
//!
//! Whatever a sender forges, alters, reorders or replays under another origin fails here:
//! a changed byte changes the hash, so the successor's link or the seal no longer matches;
//! a record carries its seq inside what is hashed, so it cannot be replayed under another
//! seq; and a new seq cannot be made without the origin's key.

use std::collections::BTreeMap;
use std::str::FromStr;

use libp2p_identity::{ed25519, PeerId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::attestation::RecordHeader;
use crate::change_log::{ChangeId, ChangeKind, ChangeRecord, Seq};
use crate::document::plain_change_hash;
use crate::ids::{DocKey, NodeId};

/// The key an origin seals its records with: its ed25519 identity.
pub type SigningKey = ed25519::Keypair;

/// SHA-256 of a record's content (everything but its seal).
pub type RecordHash = [u8; 32];

/// The `prev` of an origin's first record, or of one whose predecessor's hash was not at
/// hand when it was written (see [`SealChain::new`]).
pub const NO_PREV: RecordHash = [0; 32];

/// A record is sealed at the latest once this many records of its origin follow the last seal.
pub const SEAL_SPAN_RECORDS: usize = 256;
/// ... or once the records since the last seal hold this many bytes of Automerge changes.
pub const SEAL_SPAN_BYTES: usize = 256 * 1024;

/// Most origins whose keys are kept parsed.
const KEY_CACHE_MAX: usize = 4096;

const RECORD_DOMAIN: &[u8] = b"statemesh/record/2\0";
const NOT_A_CHANGE_DOMAIN: &[u8] = b"statemesh/not-a-change/1\0";
const SEAL_DOMAIN: &[u8] = b"statemesh/seal/1\0";

/// An ed25519 signature by a record's origin over its id and hash.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    r: [u8; 32],
    s: [u8; 32],
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seal({}…)", hex::encode(&self.r[..4]))
    }
}

impl Seal {
    fn from_signature(signature: &[u8]) -> Self {
        let mut r = [0; 32];
        let mut s = [0; 32];
        r.copy_from_slice(&signature[..32]);
        s.copy_from_slice(&signature[32..64]);
        Self { r, s }
    }

    fn to_bytes(self) -> [u8; 64] {
        let mut out = [0; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }
}

/// The Automerge hash of one change, as a record's hash covers it.
pub type ChangeDigest = [u8; 32];

/// The record content a hash covers: the record without its seal, its changes by their
/// Automerge hashes (so a [`RecordHeader`] that keeps only those hashes has the same hash).
#[derive(Serialize)]
struct Hashed<'a> {
    id: &'a ChangeId,
    doc: &'a DocKey,
    kind: ChangeKind,
    time_ms: i64,
    prev: &'a RecordHash,
    changes: &'a [ChangeDigest],
}

/// The digest standing for one change chunk in its record's hash: its Automerge change hash.
/// A chunk that is not one plain change (no honest writer makes one, and the verifier refuses
/// records holding one) gets a digest that no Automerge change has.
pub fn change_digest(chunk: &[u8]) -> ChangeDigest {
    match plain_change_hash(chunk) {
        Some(hash) => hash.0,
        None => {
            let mut hasher = Sha256::new();
            hasher.update(NOT_A_CHANGE_DOMAIN);
            hasher.update(chunk);
            hasher.finalize().into()
        }
    }
}

/// The hash of `record`'s content (its seal excluded).
pub fn record_hash(record: &ChangeRecord) -> RecordHash {
    let digests: Vec<ChangeDigest> = record.changes.iter().map(|chunk| change_digest(chunk)).collect();
    content_hash(&record.id, &record.doc, record.kind, record.time_ms, &record.prev, &digests)
}

pub(crate) fn content_hash(
    id: &ChangeId,
    doc: &DocKey,
    kind: ChangeKind,
    time_ms: i64,
    prev: &RecordHash,
    changes: &[ChangeDigest],
) -> RecordHash {
    let hashed = Hashed { id, doc, kind, time_ms, prev, changes };
    let mut hasher = Sha256::new();
    hasher.update(RECORD_DOMAIN);
    // Writing into a hasher cannot fail.
    bincode::serde::encode_into_std_write(&hashed, &mut hasher, bincode::config::standard())
        .expect("records encode into a hasher");
    hasher.finalize().into()
}

/// What the verifier needs of a record or of a [`RecordHeader`].
pub trait Sealed {
    fn id(&self) -> &ChangeId;
    /// The content hash, or why the content cannot be vouched for at all.
    fn checked_hash(&self) -> Result<RecordHash, SealError>;
    fn prev(&self) -> &RecordHash;
    fn seal(&self) -> Option<&Seal>;
}

impl Sealed for ChangeRecord {
    fn id(&self) -> &ChangeId {
        &self.id
    }

    fn checked_hash(&self) -> Result<RecordHash, SealError> {
        let digests = self
            .changes
            .iter()
            .map(|chunk| plain_change_hash(chunk).map(|hash| hash.0))
            .collect::<Option<Vec<ChangeDigest>>>()
            .ok_or_else(|| SealError::NotAChange(self.id.clone()))?;
        Ok(content_hash(&self.id, &self.doc, self.kind, self.time_ms, &self.prev, &digests))
    }

    fn prev(&self) -> &RecordHash {
        &self.prev
    }

    fn seal(&self) -> Option<&Seal> {
        self.seal.as_ref()
    }
}

impl Sealed for RecordHeader {
    fn id(&self) -> &ChangeId {
        &self.id
    }

    fn checked_hash(&self) -> Result<RecordHash, SealError> {
        Ok(self.hash())
    }

    fn prev(&self) -> &RecordHash {
        &self.prev
    }

    fn seal(&self) -> Option<&Seal> {
        self.seal.as_ref()
    }
}

fn seal_message(origin: &NodeId, seq: Seq, hash: &RecordHash) -> Vec<u8> {
    let origin = origin.as_str().as_bytes();
    let mut message = Vec::with_capacity(SEAL_DOMAIN.len() + 8 + 32 + 1 + origin.len());
    message.extend_from_slice(SEAL_DOMAIN);
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(hash);
    message.push(origin.len() as u8);
    message.extend_from_slice(origin);
    message
}

/// Seals `record` with its origin's key; `hash` is [`record_hash`] of it.
pub fn seal(record: &mut ChangeRecord, hash: &RecordHash, key: &ed25519::Keypair) {
    let signature = key.sign(&seal_message(&record.id.origin, record.id.seq, hash));
    record.seal = Some(Seal::from_signature(&signature));
}

/// The node id an ed25519 key signs as.
pub fn node_id_of(key: &ed25519::PublicKey) -> NodeId {
    let peer_id = PeerId::from_public_key(&libp2p_identity::PublicKey::from(key.clone()));
    NodeId::new(peer_id.to_base58()).expect("a PeerId's base58 form is a valid node id")
}

/// The writer's side: links an origin's records in seq order and seals where needed.
#[derive(Debug, Clone)]
pub struct SealChain {
    prev: RecordHash,
    records: usize,
    bytes: usize,
}

impl SealChain {
    /// A chain continuing after the record with hash `prev` (`None` when the origin's last
    /// record is not at hand: that one was sealed, as every batch's last is, so no link is
    /// lost).
    pub fn new(prev: Option<RecordHash>) -> Self {
        Self { prev: prev.unwrap_or(NO_PREV), records: 0, bytes: 0 }
    }

    /// Links `record` to its predecessor and seals it if it closes a group commit
    /// (`last_of_batch`) or a full span.
    pub fn add(&mut self, record: &mut ChangeRecord, last_of_batch: bool, key: &ed25519::Keypair) {
        record.prev = self.prev;
        record.seal = None;
        self.records += 1;
        self.bytes += record.payload_bytes();
        let hash = record_hash(record);
        if last_of_batch || self.records >= SEAL_SPAN_RECORDS || self.bytes >= SEAL_SPAN_BYTES {
            seal(record, &hash, key);
            self.records = 0;
            self.bytes = 0;
        }
        self.prev = hash;
    }
}

/// An ed25519 key from 32 secret bytes (the simulator's and tests' deterministic nodes).
pub fn key_from_seed(seed: [u8; 32]) -> ed25519::Keypair {
    let secret = ed25519::SecretKey::try_from_bytes(seed).expect("any 32 bytes are an ed25519 secret key");
    ed25519::Keypair::from(secret)
}

/// Proof that `origin` has written up to `seq`: the hash of that record and its seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedTip {
    pub id: ChangeId,
    pub hash: RecordHash,
    pub seal: Seal,
}

impl SealedTip {
    /// The tip of a sealed record (`None` for an unsealed one).
    pub fn of(record: &ChangeRecord) -> Option<Self> {
        Some(Self { id: record.id.clone(), hash: record_hash(record), seal: record.seal? })
    }
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("origin {0} is not an ed25519 node id, so nothing it signs can be checked")]
    UnknownKey(NodeId),
    #[error("record {0} carries a seal its origin did not make")]
    BadSeal(ChangeId),
    #[error("record {0} is neither sealed by its origin nor chained to a sealed record")]
    Unbound(ChangeId),
    #[error("record {0} carries something other than plain Automerge change chunks")]
    NotAChange(ChangeId),
}

/// Checks records against their origins' keys, keeping parsed keys for the origins it meets.
#[derive(Default)]
pub struct SealVerifier {
    keys: BTreeMap<NodeId, Option<ed25519::PublicKey>>,
}

impl SealVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, origin: &NodeId) -> Option<&ed25519::PublicKey> {
        if !self.keys.contains_key(origin) {
            if self.keys.len() >= KEY_CACHE_MAX {
                self.keys.clear();
            }
            self.keys.insert(origin.clone(), public_key_of(origin));
        }
        self.keys.get(origin).and_then(Option::as_ref)
    }

    /// Whether `seal` is `origin`'s signature over `seq` and `hash`.
    pub fn check_seal(&mut self, origin: &NodeId, seq: Seq, hash: &RecordHash, seal: &Seal) -> Result<(), SealError> {
        let key = self.key(origin).ok_or_else(|| SealError::UnknownKey(origin.clone()))?;
        if key.verify(&seal_message(origin, seq, hash), &seal.to_bytes()) {
            Ok(())
        } else {
            Err(SealError::BadSeal(ChangeId { origin: origin.clone(), seq }))
        }
    }

    /// Checks a tip on its own.
    pub fn check_tip(&mut self, tip: &SealedTip) -> Result<(), SealError> {
        self.check_seal(&tip.id.origin, tip.id.seq, &tip.hash, &tip.seal)
    }

    /// Splits `records` (any order, any origins; whole records or their headers) into the
    /// authentic ones, in (origin, seq) order, and the reasons the others were refused. Of
    /// several records with one id, the first is kept.
    pub fn verify<T: Sealed>(&mut self, records: Vec<T>) -> (Vec<T>, Vec<SealError>) {
        let mut sorted: BTreeMap<ChangeId, T> = BTreeMap::new();
        for record in records {
            sorted.entry(record.id().clone()).or_insert(record);
        }
        let mut accepted = Vec::with_capacity(sorted.len());
        let mut refused = Vec::new();
        let mut run: Vec<T> = Vec::new();
        for record in sorted.into_values() {
            let continues = run.last().is_some_and(|last: &T| {
                last.id().origin == record.id().origin && last.id().seq.checked_add(1) == Some(record.id().seq)
            });
            if !continues {
                self.verify_run(std::mem::take(&mut run), &mut accepted, &mut refused);
            }
            run.push(record);
        }
        self.verify_run(run, &mut accepted, &mut refused);
        (accepted, refused)
    }

    /// One origin's consecutive records, checked from the last backwards.
    fn verify_run<T: Sealed>(&mut self, run: Vec<T>, accepted: &mut Vec<T>, refused: &mut Vec<SealError>) {
        let Some(first) = run.first() else { return };
        if self.key(&first.id().origin).is_none() {
            refused.push(SealError::UnknownKey(first.id().origin.clone()));
            return;
        }
        let mut verdicts = vec![false; run.len()];
        let mut run_refused = Vec::new();
        // The hash the record after this one vouches for, once that record is authentic.
        let mut vouched: Option<RecordHash> = None;
        for (i, record) in run.iter().enumerate().rev() {
            let verdict = record.checked_hash().and_then(|hash| {
                if vouched == Some(hash) {
                    Ok(())
                } else if let Some(seal) = record.seal() {
                    self.check_seal(&record.id().origin, record.id().seq, &hash, seal)
                } else {
                    Err(SealError::Unbound(record.id().clone()))
                }
            });
            let ok = match verdict {
                Ok(()) => true,
                Err(error) => {
                    run_refused.push(error);
                    false
                }
            };
            verdicts[i] = ok;
            vouched = ok.then_some(*record.prev());
        }
        // Found from the last record back; reported in seq order.
        refused.extend(run_refused.into_iter().rev());
        accepted.extend(run.into_iter().zip(verdicts).filter_map(|(record, ok)| ok.then_some(record)));
    }
}

/// The ed25519 key inside an ed25519 PeerId, if `origin` is one.
fn public_key_of(origin: &NodeId) -> Option<ed25519::PublicKey> {
    let peer_id = PeerId::from_str(origin.as_str()).ok()?;
    let multihash = peer_id.as_ref();
    // Code 0 is the identity multihash: the digest is the protobuf-encoded key itself.
    if multihash.code() != 0 {
        return None;
    }
    libp2p_identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?.try_into_ed25519().ok()
}
