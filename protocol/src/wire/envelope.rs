//! The envelope: framing, versioning, compression and limits.

use std::io::Read;

use super::message::Message;

/// `S` `M`: every statemesh wire message starts with these bytes.
pub const MAGIC: [u8; 2] = *b"SM";
/// The wire protocol version this node speaks.
pub const VERSION: u8 = 3;
/// Payloads larger than this are zstd-compressed.
pub const COMPRESS_ABOVE_BYTES: usize = 1024;
const FLAG_ZSTD: u8 = 0b0000_0001;
const KNOWN_FLAGS: u8 = FLAG_ZSTD;
const HEADER_BYTES: usize = 8;
const ZSTD_LEVEL: i32 = 3;

/// Bounds applied when decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLimits {
    /// Largest message, as sent and after decompression.
    pub message_bytes_max: usize,
}

impl Default for WireLimits {
    fn default() -> Self {
        Self { message_bytes_max: 4 * 1024 * 1024 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message is {0} bytes, shorter than the {HEADER_BYTES}-byte header")]
    Truncated(usize),
    #[error("not a statemesh message (bad magic)")]
    BadMagic,
    #[error("wire version {0} is not supported (this node speaks version {VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown flags {0:#04x}")]
    UnknownFlags(u8),
    #[error("payload length {declared} does not match the {actual} bytes received")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("message of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
    #[error("compressed payload is invalid: {0}")]
    BadCompression(String),
    #[error("payload does not decode: {0}")]
    BadPayload(String),
}

/// Standard bincode. Decoding goes through [`crate::bounded`], whose limit follows the
/// payload's size (itself at most `message_bytes_max`), so a forged length cannot trigger an
/// allocation beyond the message limit.
fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes `message`, compressing large payloads.
pub fn encode(message: &Message) -> Vec<u8> {
    // Encoding plain data into a Vec cannot fail.
    let payload = bincode::serde::encode_to_vec(message, bincode_config()).expect("message encodes");
    let (flags, payload) = if payload.len() > COMPRESS_ABOVE_BYTES {
        match zstd::bulk::compress(&payload, ZSTD_LEVEL) {
            Ok(compressed) if compressed.len() < payload.len() => (FLAG_ZSTD, compressed),
            _ => (0, payload),
        }
    } else {
        (0, payload)
    };
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes one message, enforcing `limits`.
pub fn decode(bytes: &[u8], limits: &WireLimits) -> Result<Message, WireError> {
    let max = limits.message_bytes_max;
    if bytes.len() > max {
        return Err(WireError::TooLarge(bytes.len(), max));
    }
    if bytes.len() < HEADER_BYTES {
        return Err(WireError::Truncated(bytes.len()));
    }
    if bytes[..2] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if bytes[2] != VERSION {
        return Err(WireError::UnsupportedVersion(bytes[2]));
    }
    let flags = bytes[3];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(WireError::UnknownFlags(flags));
    }
    let declared = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let payload = &bytes[HEADER_BYTES..];
    if declared != payload.len() {
        return Err(WireError::LengthMismatch { declared, actual: payload.len() });
    }
    let decompressed;
    let payload = if flags & FLAG_ZSTD != 0 {
        decompressed = bounded_decompress(payload, max)?;
        &decompressed[..]
    } else {
        payload
    };
    crate::bounded::decode(payload, max).map_err(|e| WireError::BadPayload(e.to_string()))
}

/// Decompresses at most `max` bytes; more is an error, not an allocation.
fn bounded_decompress(compressed: &[u8], max: usize) -> Result<Vec<u8>, WireError> {
    let decoder = zstd::stream::read::Decoder::new(compressed).map_err(|e| WireError::BadCompression(e.to_string()))?;
    let mut out = Vec::new();
    decoder.take(max as u64 + 1).read_to_end(&mut out).map_err(|e| WireError::BadCompression(e.to_string()))?;
    if out.len() > max {
        return Err(WireError::TooLarge(out.len(), max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An uncompressed envelope around `payload`.
    fn envelope(payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[VERSION, 0]);
        out.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_state_response_claiming_a_terabyte_namespace_is_refused_without_allocating_it() {
        // StateResponse (variant 4), one document, whose namespace string claims 2^40 bytes:
        // 20 bytes on the wire. Before the limit followed the payload, bincode's 64 MiB limit
        // let such a claim through up to 64 MiB, sixteen times the message limit.
        let mut payload = vec![4, 1, 0xfd];
        payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let refused = decode(&envelope(&payload), &WireLimits::default());
        assert!(matches!(refused, Err(WireError::BadPayload(_))), "{refused:?}");

        // 1 GiB, and 32 MiB (which the old fixed limit allowed): both refused.
        for claimed in [1u64 << 30, 32 << 20] {
            let mut payload = vec![4, 1, 0xfd];
            payload.extend_from_slice(&claimed.to_le_bytes());
            assert!(matches!(decode(&envelope(&payload), &WireLimits::default()), Err(WireError::BadPayload(_))));
        }
    }

    #[test]
    fn a_gossip_claiming_a_billion_records_is_refused() {
        let mut payload = vec![0, 0xfd];
        payload.extend_from_slice(&(1u64 << 30).to_le_bytes());
        assert!(matches!(decode(&envelope(&payload), &WireLimits::default()), Err(WireError::BadPayload(_))));
    }
}
