//! Encoding of the node's own records in storage: a format byte, then bincode.
//!
//! The leading byte lets a later version change a record's layout and still read what older
//! versions wrote; a record with an unknown format is reported as corruption, never guessed at.
//!
//! [`decode`] trusts its input: it serves records this node wrote itself. Records in the same
//! format that can carry a peer's bytes (Raft commands a leader built from forwarded requests,
//! snapshots a leader sent, forwarded requests) go through [`decode_bounded`], whose claimed
//! lengths are held to the input's size (see `statemesh_protocol::bounded`).

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StorageError;

const FORMAT: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT];
    // Encoding plain data into a Vec cannot fail.
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard()).expect("record encodes");
    out
}

/// Decodes a record written by [`encode`]; `what` names it in errors.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StorageError> {
    match bytes.split_first() {
        Some((&FORMAT, body)) => bincode::serde::decode_from_slice(body, bincode::config::standard())
            .map(|(value, _)| value)
            .map_err(|e| StorageError::Corrupt(format!("{what}: {e}"))),
        _ => Err(StorageError::Corrupt(format!("{what} has an unknown format"))),
    }
}

/// Decodes a record written by [`encode`] that may hold a peer's bytes: at most `ceiling`
/// bytes, and no length inside it may claim more than the input's size allows.
pub fn decode_bounded<T: DeserializeOwned>(bytes: &[u8], what: &str, ceiling: usize) -> Result<T, StorageError> {
    match bytes.split_first() {
        Some((&FORMAT, body)) => statemesh_protocol::bounded::decode(body, ceiling)
            .map_err(|e| StorageError::Corrupt(format!("{what}: {e}"))),
        _ => Err(StorageError::Corrupt(format!("{what} has an unknown format"))),
    }
}
