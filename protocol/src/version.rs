//! A document version: the set of Automerge heads, and its stable text form.
//!
//! The text form is what HTTP carries in `ETag` / `If-Match` and what `?since=` / `?at=` take
//! back, so it must be canonical (sorted heads, lower-case hex) and parse strictly: two nodes
//! holding the same changes print the same version.

use std::fmt;
use std::str::FromStr;

use automerge::ChangeHash;

use crate::limits::VERSION_HEADS_MAX;

/// Sorted, de-duplicated Automerge heads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Version(Vec<ChangeHash>);

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionParseError {
    #[error("version is empty")]
    Empty,
    #[error("version names {0} heads; at most {VERSION_HEADS_MAX} are allowed")]
    TooManyHeads(usize),
    #[error("`{0}` is not a change hash (expected 64 hex digits)")]
    BadHash(String),
}

/// The text form of the version of a document with no changes.
const EMPTY_TEXT: &str = "0";

impl Version {
    pub fn new(mut heads: Vec<ChangeHash>) -> Self {
        heads.sort_unstable();
        heads.dedup();
        Self(heads)
    }

    pub fn heads(&self) -> &[ChangeHash] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The HTTP entity-tag form: the text form in double quotes.
    pub fn to_etag(&self) -> String {
        format!("\"{self}\"")
    }

    /// Parses an `ETag`/`If-Match` value, with or without quotes or a weak `W/` prefix.
    pub fn from_etag(text: &str) -> Result<Self, VersionParseError> {
        let text = text.trim();
        let text = text.strip_prefix("W/").unwrap_or(text);
        let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
        text.parse()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(EMPTY_TEXT);
        }
        for (i, head) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{}", hex::encode(head.0))?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = VersionParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(VersionParseError::Empty);
        }
        if text == EMPTY_TEXT {
            return Ok(Self::default());
        }
        let count = text.split('.').count();
        if count > VERSION_HEADS_MAX {
            return Err(VersionParseError::TooManyHeads(count));
        }
        let heads = text
            .split('.')
            .map(|part| {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(part, &mut bytes).map_err(|_| VersionParseError::BadHash(truncate(part)))?;
                Ok(ChangeHash(bytes))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(heads))
    }
}

/// Error messages quote the offending input, but never an unbounded amount of it.
fn truncate(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> ChangeHash {
        ChangeHash([byte; 32])
    }

    #[test]
    fn text_form_is_canonical_whatever_the_head_order() {
        let a = Version::new(vec![hash(2), hash(1)]);
        let b = Version::new(vec![hash(1), hash(2), hash(1)]);
        assert_eq!(a.to_string(), b.to_string());
        assert_eq!(a.to_string().parse::<Version>().unwrap(), a);
    }

    #[test]
    fn etag_parsing_accepts_quotes_and_weak_prefix() {
        let v = Version::new(vec![hash(7)]);
        assert_eq!(Version::from_etag(&v.to_etag()).unwrap(), v);
        assert_eq!(Version::from_etag(&format!("W/{}", v.to_etag())).unwrap(), v);
        assert_eq!(Version::from_etag("\"0\"").unwrap(), Version::default());
    }

    #[test]
    fn malformed_versions_are_refused() {
        assert_eq!("".parse::<Version>(), Err(VersionParseError::Empty));
        assert!(matches!("abc".parse::<Version>(), Err(VersionParseError::BadHash(_))));
        let many = vec!["00".repeat(32); VERSION_HEADS_MAX + 1].join(".");
        assert!(matches!(many.parse::<Version>(), Err(VersionParseError::TooManyHeads(_))));
    }
}
