//! Per-document metadata kept beside the Automerge bytes.
//!
//! Listing a namespace, counting documents and answering "what version is it at" must not
//! decode every document, so each write also stores this small record.

use serde::{Deserialize, Serialize};
use statemesh_protocol::Version;

use crate::storage::{codec, StorageError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocMeta {
    pub exists: bool,
    /// Heads of the stored version.
    pub heads: Vec<[u8; 32]>,
    /// Time of the last write at this node, ms since the epoch.
    pub updated_ms: i64,
    /// Changes in the document's history.
    pub changes: u64,
}

impl DocMeta {
    pub fn new(exists: bool, version: &Version, updated_ms: i64, changes: u64) -> Self {
        Self { exists, heads: version.heads().iter().map(|h| h.0).collect(), updated_ms, changes }
    }

    pub fn version(&self) -> Version {
        Version::new(self.heads.iter().map(|h| automerge::ChangeHash(*h)).collect())
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        codec::decode(bytes, "document metadata")
    }
}
