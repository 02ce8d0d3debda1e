//! What a snapshot holds, and the one serde shape every format encodes it with.
//!
//! [`SnapshotBody`] is the validated, owned form the node exports and restores. On disk it
//! goes through a borrowed *wire* form: decoding borrows strings and Automerge bytes from the
//! decompressed buffer where the format allows, so a length field inside a hostile payload
//! can never make the decoder allocate more than the buffer it already holds (bincode, for
//! instance, would otherwise pre-allocate whatever length a `String` claims). Identifiers are
//! re-validated on the way in, so a decoded body only ever names legal namespaces and ids.
//!
//! Automerge bytes are raw bytes in the binary formats and lower-case hex in JSON, so a JSON
//! snapshot stays a plain JSON document that `jq` can read after decompression.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use statemesh_protocol::{DocId, DocKey, Namespace, NodeId, VersionVector};

/// A whole snapshot: every document of every namespace at one point in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotBody {
    pub id: String,
    pub created_ms: i64,
    /// The node that took the snapshot.
    pub node_id: String,
    /// What the node held when the snapshot was taken.
    pub version_vector: VersionVector,
    /// In ascending storage-key order (namespace, then id); each key at most once.
    pub documents: Vec<SnapshotDoc>,
}

/// One document as stored: its Automerge bytes (a saved document, possibly followed by change
/// chunks) and whether it existed (deleted documents keep their history and are restored as
/// deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDoc {
    pub key: DocKey,
    pub exists: bool,
    pub automerge: Vec<u8>,
}

impl SnapshotBody {
    /// Live documents (those that existed at the snapshot).
    pub fn live_documents(&self) -> usize {
        self.documents.iter().filter(|d| d.exists).count()
    }

    pub(crate) fn to_wire(&self) -> WireBody<'_> {
        WireBody {
            id: Cow::Borrowed(&self.id),
            created_ms: self.created_ms,
            node_id: Cow::Borrowed(&self.node_id),
            version_vector: self
                .version_vector
                .iter()
                .map(|(origin, seq)| WireOrigin { origin: Cow::Borrowed(origin.as_str()), seq })
                .collect(),
            documents: self
                .documents
                .iter()
                .map(|doc| WireDoc {
                    namespace: Cow::Borrowed(doc.key.namespace.as_str()),
                    id: Cow::Borrowed(doc.key.doc_id.as_str()),
                    exists: doc.exists,
                    automerge: Bytes(Cow::Borrowed(&doc.automerge)),
                })
                .collect(),
        }
    }
}

/// The encoded shape. Field order is part of the binary formats: append only, and bump the
/// header version for anything else.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireBody<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    created_ms: i64,
    #[serde(borrow)]
    node_id: Cow<'a, str>,
    #[serde(borrow)]
    version_vector: Vec<WireOrigin<'a>>,
    #[serde(borrow)]
    documents: Vec<WireDoc<'a>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireOrigin<'a> {
    #[serde(borrow)]
    origin: Cow<'a, str>,
    seq: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireDoc<'a> {
    #[serde(borrow)]
    namespace: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    exists: bool,
    #[serde(borrow)]
    automerge: Bytes<'a>,
}

impl WireBody<'_> {
    /// The owned body, with every identifier validated and the key order checked.
    pub(crate) fn into_body(self) -> Result<SnapshotBody, String> {
        let mut version_vector = VersionVector::new();
        for entry in self.version_vector {
            let origin = NodeId::new(entry.origin.into_owned()).map_err(|e| format!("version vector: {e}"))?;
            version_vector.advance(&origin, entry.seq);
        }
        let mut documents = Vec::with_capacity(self.documents.len());
        let mut previous: Option<Vec<u8>> = None;
        for doc in self.documents {
            let namespace = Namespace::new(doc.namespace.into_owned()).map_err(|e| format!("document: {e}"))?;
            let doc_id = DocId::new(doc.id.into_owned()).map_err(|e| format!("document: {e}"))?;
            let key = DocKey::new(namespace, doc_id);
            let storage_key = key.to_storage_key();
            if previous.as_ref().is_some_and(|p| *p >= storage_key) {
                return Err(format!("document {key} is out of order or listed twice"));
            }
            previous = Some(storage_key);
            documents.push(SnapshotDoc { key, exists: doc.exists, automerge: doc.automerge.0.into_owned() });
        }
        Ok(SnapshotBody {
            id: self.id.into_owned(),
            created_ms: self.created_ms,
            node_id: self.node_id.into_owned(),
            version_vector,
            documents,
        })
    }
}

/// Automerge bytes: `bytes` in binary formats, hex text in human-readable ones (JSON).
#[derive(Debug)]
struct Bytes<'a>(Cow<'a, [u8]>);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(BytesVisitor)
        } else {
            deserializer.deserialize_bytes(BytesVisitor)
        }
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Automerge bytes (raw, or as hex text)")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        Ok(Bytes(Cow::Borrowed(v)))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(Bytes(Cow::Owned(v.to_vec())))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        Ok(Bytes(Cow::Owned(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        hex::decode(v).map(|b| Bytes(Cow::Owned(b))).map_err(|e| E::custom(format!("automerge hex: {e}")))
    }

    /// A sequence of byte values (formats that do not distinguish bytes). The capacity hint
    /// is capped, so a claimed length never allocates ahead of the data.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
        while let Some(byte) = seq.next_element::<u8>()? {
            out.push(byte);
        }
        Ok(Bytes(Cow::Owned(out)))
    }
}
