//! Validated identifiers: which node, which namespace, which document.
//!
//! Names arrive from URLs, config files and the network, so each type checks its input once at
//! construction and is trusted afterwards. Storage keys join namespace and id with a NUL byte,
//! which is why neither may contain one.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::{DOC_ID_BYTES_MAX, NAMESPACE_BYTES_MAX, NODE_ID_BYTES_MAX};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} bytes long; the limit is {max}")]
    TooLong { kind: &'static str, len: usize, max: usize },
    #[error("{kind} contains the character {ch:?}, which is not allowed{hint}")]
    BadChar { kind: &'static str, ch: char, hint: &'static str },
}

/// A node's identity as text: the base58 form of its libp2p PeerId.
///
/// Ordered so that version vectors iterate deterministically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    pub fn new(text: impl Into<String>) -> Result<Self, IdError> {
        let text = text.into();
        check_len("node id", &text, NODE_ID_BYTES_MAX)?;
        if let Some(ch) = text.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(IdError::BadChar { kind: "node id", ch, hint: " (expected base58)" });
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A namespace name: `[A-Za-z0-9_.-]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Namespace(String);

impl Namespace {
    pub fn new(text: impl Into<String>) -> Result<Self, IdError> {
        let text = text.into();
        check_len("namespace", &text, NAMESPACE_BYTES_MAX)?;
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if let Some(ch) = text.chars().find(|c| !allowed(*c)) {
            return Err(IdError::BadChar { kind: "namespace", ch, hint: " (use letters, digits, '_', '.', '-')" });
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A document id: 1 to 512 bytes of UTF-8 without control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocId(String);

impl DocId {
    pub fn new(text: impl Into<String>) -> Result<Self, IdError> {
        let text = text.into();
        check_len("document id", &text, DOC_ID_BYTES_MAX)?;
        if let Some(ch) = text.chars().find(|c| c.is_control()) {
            return Err(IdError::BadChar { kind: "document id", ch, hint: "" });
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The address of one document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DocKey {
    pub namespace: Namespace,
    pub doc_id: DocId,
}

impl DocKey {
    pub fn new(namespace: Namespace, doc_id: DocId) -> Self {
        Self { namespace, doc_id }
    }

    /// `namespace NUL doc_id`: sorts by namespace, then id, so a namespace is one key range.
    pub fn to_storage_key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.namespace.0.len() + 1 + self.doc_id.0.len());
        key.extend_from_slice(self.namespace.0.as_bytes());
        key.push(0);
        key.extend_from_slice(self.doc_id.0.as_bytes());
        key
    }

    /// The key prefix shared by every document of `namespace`.
    pub fn namespace_prefix(namespace: &Namespace) -> Vec<u8> {
        let mut key = namespace.0.as_bytes().to_vec();
        key.push(0);
        key
    }

    /// Inverse of [`DocKey::to_storage_key`]; `None` for bytes no valid key produces.
    pub fn from_storage_key(bytes: &[u8]) -> Option<Self> {
        let nul = bytes.iter().position(|b| *b == 0)?;
        let namespace = std::str::from_utf8(&bytes[..nul]).ok()?;
        let doc_id = std::str::from_utf8(&bytes[nul + 1..]).ok()?;
        Some(Self::new(Namespace::new(namespace).ok()?, DocId::new(doc_id).ok()?))
    }
}

impl fmt::Display for DocKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.doc_id)
    }
}

fn check_len(kind: &'static str, text: &str, max: usize) -> Result<(), IdError> {
    if text.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if text.len() > max {
        return Err(IdError::TooLong { kind, len: text.len(), max });
    }
    Ok(())
}

macro_rules! string_newtype_impls {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = IdError;
            fn try_from(text: String) -> Result<Self, IdError> {
                Self::new(text)
            }
        }
        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.0
            }
        }
        impl std::str::FromStr for $ty {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::new(text)
            }
        }
    )*};
}
string_newtype_impls!(NodeId, Namespace, DocId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_key_round_trips_and_groups_by_namespace() {
        let key = DocKey::new(Namespace::new("users").unwrap(), DocId::new("a/b c").unwrap());
        let bytes = key.to_storage_key();
        assert!(bytes.starts_with(&DocKey::namespace_prefix(&key.namespace)));
        assert_eq!(DocKey::from_storage_key(&bytes), Some(key));
    }

    #[test]
    fn names_with_forbidden_characters_are_refused() {
        assert!(matches!(Namespace::new("a/b"), Err(IdError::BadChar { ch: '/', .. })));
        assert!(matches!(DocId::new("a\0b"), Err(IdError::BadChar { .. })));
        assert!(matches!(DocId::new(""), Err(IdError::Empty { .. })));
        assert!(matches!(Namespace::new("x".repeat(129)), Err(IdError::TooLong { .. })));
        assert!(NodeId::new("12D3KooWabc").is_ok());
        assert!(NodeId::new("not base58!").is_err());
    }
}
