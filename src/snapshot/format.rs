//! The snapshot file header: a fixed 82-byte prefix that identifies, describes and protects
//! the payload behind it.
//!
//! ```text
//! offset size
//!      0   15  magic  "STATEMESH-SNAP\0"
//!     15    1  header version (1)
//!     16    1  serialization format (1 json, 2 bincode, 3 msgpack)
//!     17    1  compression (0 none, 1 gzip, 2 zstd, 3 lz4)
//!     18    8  created_ms    (i64 LE)
//!     26    8  documents     (u64 LE)
//!     34    8  body length   (u64 LE, bytes after decompression)
//!     42    8  payload length (u64 LE, bytes after this header)
//!     50   32  SHA-256 of (payload ++ header bytes 0..50)
//!     82       payload = compress(encode(body))
//! ```
//!
//! Format and compression travel in the file, so a node reads any snapshot whatever its own
//! configuration. The checksum covers the header fields as well as the payload, so a flipped
//! bit anywhere (a compression code, a length) is caught as corruption rather than surfacing
//! later as a confusing decode error. The payload is hashed first because the lengths are
//! only known once it has been streamed out. Everything here is pure: no I/O.

use sha2::{Digest, Sha256};

use crate::config::{Compression, SerializationFormat};

/// Identifies a statemesh snapshot file.
pub const MAGIC: &[u8; 15] = b"STATEMESH-SNAP\0";
/// The header layout this node writes and reads; bump on any incompatible change.
pub const HEADER_VERSION: u8 = 1;
/// Total header size.
pub const HEADER_LEN: usize = 82;
/// Header bytes covered by the checksum (everything before it).
const CHECKED_LEN: usize = 50;

/// What the header says about the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format: SerializationFormat,
    pub compression: Compression,
    pub created_ms: i64,
    pub documents: u64,
    pub body_len: u64,
    pub payload_len: u64,
    pub checksum: [u8; 32],
}

/// Why header bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the file is shorter than a snapshot header ({0} bytes)")]
    Short(usize),
    #[error("the file does not start with the statemesh snapshot magic bytes")]
    Foreign,
    #[error("header version {0} is not supported (this node reads version {HEADER_VERSION})")]
    Version(u8),
    #[error("unknown serialization format code {0}")]
    Format(u8),
    #[error("unknown compression code {0}")]
    Compression(u8),
}

pub fn format_code(format: SerializationFormat) -> u8 {
    match format {
        SerializationFormat::Json => 1,
        SerializationFormat::Bincode => 2,
        SerializationFormat::Msgpack => 3,
    }
}

fn format_from_code(code: u8) -> Result<SerializationFormat, HeaderError> {
    match code {
        1 => Ok(SerializationFormat::Json),
        2 => Ok(SerializationFormat::Bincode),
        3 => Ok(SerializationFormat::Msgpack),
        other => Err(HeaderError::Format(other)),
    }
}

pub fn compression_code(compression: Compression) -> u8 {
    match compression {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Zstd => 2,
        Compression::Lz4 => 3,
    }
}

fn compression_from_code(code: u8) -> Result<Compression, HeaderError> {
    match code {
        0 => Ok(Compression::None),
        1 => Ok(Compression::Gzip),
        2 => Ok(Compression::Zstd),
        3 => Ok(Compression::Lz4),
        other => Err(HeaderError::Compression(other)),
    }
}

/// Lower-case names as in the configuration (`json`, `zstd`, …), for listings and messages.
pub fn format_name(format: SerializationFormat) -> &'static str {
    match format {
        SerializationFormat::Json => "json",
        SerializationFormat::Bincode => "bincode",
        SerializationFormat::Msgpack => "msgpack",
    }
}

pub fn compression_name(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::Lz4 => "lz4",
    }
}

impl Header {
    /// The header bytes the checksum covers (everything but the checksum itself).
    fn checked_bytes(&self) -> [u8; CHECKED_LEN] {
        let mut out = [0u8; CHECKED_LEN];
        out[..15].copy_from_slice(MAGIC);
        out[15] = HEADER_VERSION;
        out[16] = format_code(self.format);
        out[17] = compression_code(self.compression);
        out[18..26].copy_from_slice(&self.created_ms.to_le_bytes());
        out[26..34].copy_from_slice(&self.documents.to_le_bytes());
        out[34..42].copy_from_slice(&self.body_len.to_le_bytes());
        out[42..50].copy_from_slice(&self.payload_len.to_le_bytes());
        out
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..CHECKED_LEN].copy_from_slice(&self.checked_bytes());
        out[CHECKED_LEN..].copy_from_slice(&self.checksum);
        out
    }

    /// Parses the fixed header. The checksum is *not* verified here (that needs the
    /// payload); the magic and version are checked first so a foreign file is named as such.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let magic_seen = bytes.len().min(MAGIC.len());
        if bytes[..magic_seen] != MAGIC[..magic_seen] {
            return Err(HeaderError::Foreign);
        }
        let Some(bytes) = bytes.get(..HEADER_LEN) else {
            return Err(HeaderError::Short(bytes.len()));
        };
        if bytes[15] != HEADER_VERSION {
            return Err(HeaderError::Version(bytes[15]));
        }
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let mut checksum = [0u8; 32];
        checksum.copy_from_slice(&bytes[CHECKED_LEN..HEADER_LEN]);
        Ok(Self {
            format: format_from_code(bytes[16])?,
            compression: compression_from_code(bytes[17])?,
            created_ms: u64_at(18) as i64,
            documents: u64_at(26),
            body_len: u64_at(34),
            payload_len: u64_at(42),
            checksum,
        })
    }

    /// Finishes a checksum over the payload (already fed to `payload_hash`) and this header.
    pub fn finish_checksum(&self, mut payload_hash: Sha256) -> [u8; 32] {
        payload_hash.update(self.checked_bytes());
        payload_hash.finalize().into()
    }

    /// Whether `payload` (all of it) matches the stored checksum.
    pub fn verify(&self, payload: &[u8]) -> bool {
        let mut hash = Sha256::new();
        hash.update(payload);
        self.finish_checksum(hash) == self.checksum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(payload: &[u8]) -> Header {
        let mut header = Header {
            format: SerializationFormat::Msgpack,
            compression: Compression::Lz4,
            created_ms: 1_700_000_000_123,
            documents: 7,
            body_len: 1234,
            payload_len: payload.len() as u64,
            checksum: [0; 32],
        };
        let mut hash = Sha256::new();
        hash.update(payload);
        header.checksum = header.finish_checksum(hash);
        header
    }

    #[test]
    fn a_header_round_trips_and_verifies_its_payload() {
        let payload = b"payload bytes";
        let header = header(payload);
        let decoded = Header::decode(&header.encode()).expect("decodes");
        assert_eq!(decoded, header);
        assert!(decoded.verify(payload));
        assert!(!decoded.verify(b"payload bytez"));
    }

    #[test]
    fn every_checked_header_byte_is_covered_by_the_checksum() {
        let payload = b"abc";
        let encoded = header(payload).encode();
        for at in 16..CHECKED_LEN {
            let mut flipped = encoded;
            flipped[at] ^= 0x01;
            // A flipped code may make the header undecodable; if it decodes, the checksum fails.
            if let Ok(decoded) = Header::decode(&flipped) {
                assert!(!decoded.verify(payload), "byte {at} is not covered");
            }
        }
    }

    #[test]
    fn foreign_short_and_newer_files_are_named_as_such() {
        assert_eq!(Header::decode(b"PK\x03\x04 a zip file"), Err(HeaderError::Foreign));
        assert_eq!(Header::decode(b""), Err(HeaderError::Short(0)));
        assert_eq!(Header::decode(&MAGIC[..10]), Err(HeaderError::Short(10)));
        let mut newer = header(b"").encode();
        newer[15] = 9;
        assert_eq!(Header::decode(&newer), Err(HeaderError::Version(9)));
        let mut unknown = header(b"").encode();
        unknown[17] = 200;
        assert_eq!(Header::decode(&unknown), Err(HeaderError::Compression(200)));
    }
}
