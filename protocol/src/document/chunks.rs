//! Strict parsing of raw Automerge bytes into changes.
//!
//! Automerge's incremental loader skips whatever it cannot parse and keeps the rest, which is
//! right for recovering a damaged file but wrong for input from a client: a request must be
//! applied whole or refused. So the byte stream is split into its chunks here (each chunk:
//! magic, checksum, type, LEB128 length, body) and every chunk must parse completely.

use automerge::{Automerge, Change, ChangeHash, LoadOptions, OnPartialLoad};
use sha2::{Digest, Sha256};

use super::DocError;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED_CHANGE: u8 = 2;
const CHUNK_BUNDLE: u8 = 3;

/// Every change in `bytes`, a concatenation of document, change and bundle chunks.
pub fn parse_changes(bytes: &[u8]) -> Result<Vec<Change>, DocError> {
    let mut changes = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (chunk_type, chunk_len) = header(rest)?;
        let (chunk, tail) = rest.split_at(chunk_len);
        rest = tail;
        match chunk_type {
            CHUNK_CHANGE | CHUNK_COMPRESSED_CHANGE => {
                changes.push(Change::from_bytes(chunk.to_vec()).map_err(|e| invalid(format!("bad change chunk: {e}")))?)
            }
            CHUNK_DOCUMENT | CHUNK_BUNDLE => {
                let options = LoadOptions::new().on_partial_load(OnPartialLoad::Error);
                let doc = Automerge::load_with_options(chunk, options)
                    .map_err(|e| invalid(format!("bad document chunk: {e}")))?;
                changes.extend(doc.get_changes(&[]));
            }
            other => return Err(invalid(format!("unknown chunk type {other}"))),
        }
    }
    if changes.is_empty() {
        return Err(invalid("no changes in the body".to_string()));
    }
    Ok(changes)
}

/// The Automerge hash of `chunk` when it is exactly one well-formed uncompressed change chunk
/// (the form Automerge itself hands out as a change's raw bytes), from its header alone.
///
/// Automerge hashes a chunk's type, length and body (everything after the magic bytes and the
/// checksum) and keeps the hash's first four bytes as the checksum, so the hash of a change
/// can be had without parsing its operations. Anything else (a compressed change, a document,
/// trailing bytes, a wrong checksum) is `None`.
pub fn plain_change_hash(chunk: &[u8]) -> Option<ChangeHash> {
    let (chunk_type, total) = header(chunk).ok()?;
    if chunk_type != CHUNK_CHANGE || total != chunk.len() {
        return None;
    }
    let hash: [u8; 32] = Sha256::digest(&chunk[8..]).into();
    (hash[..4] == chunk[4..8]).then_some(ChangeHash(hash))
}

/// The type and total length (header included) of the chunk at the start of `bytes`.
fn header(bytes: &[u8]) -> Result<(u8, usize), DocError> {
    if bytes.len() < 10 || bytes[..4] != MAGIC {
        return Err(invalid("missing Automerge magic bytes".to_string()));
    }
    let chunk_type = bytes[8];
    let mut body_len: u64 = 0;
    let mut shift = 0;
    let mut pos = 9;
    loop {
        let byte = *bytes.get(pos).ok_or_else(|| invalid("truncated chunk header".to_string()))?;
        if shift > 56 {
            return Err(invalid("chunk length overflows".to_string()));
        }
        body_len |= u64::from(byte & 0x7f) << shift;
        pos += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let total = usize::try_from(body_len)
        .ok()
        .and_then(|len| len.checked_add(pos))
        .filter(|total| *total <= bytes.len())
        .ok_or_else(|| invalid(format!("chunk claims {body_len} bytes but only {} remain", bytes.len() - pos)))?;
    Ok((chunk_type, total))
}

fn invalid(message: String) -> DocError {
    DocError::InvalidAutomerge(message)
}
