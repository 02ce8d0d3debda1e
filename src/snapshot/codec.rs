//! Serialization format × compression: turning a [`SnapshotBody`] into payload bytes and back.
//!
//! Encoding streams: the body is serialized straight into the compressor, which writes
//! straight into the file, so no encoded copy of the body is ever held in memory. Decoding
//! works on a payload whose checksum has already been verified, and is bounded twice over:
//! decompression stops one byte past the length the header promised (and the header's
//! length is capped by [`super::MAX_BODY_BYTES`]), and decoding borrows from that buffer
//! instead of trusting lengths inside it (see `body.rs`). Decoders are also run under
//! `catch_unwind`, so even a bug in a third-party decoder surfaces as an error, not a crash.

use std::borrow::Cow;
use std::io::{self, Read, Write};

use super::body::{SnapshotBody, WireBody};
use crate::config::{Compression, SerializationFormat};

/// zstd level: the library's default, a good size/speed balance for snapshot files.
const ZSTD_LEVEL: i32 = 3;
/// Decompressed bytes pre-allocated up front at most; more is grown as data really arrives.
const PREALLOCATE_MAX: u64 = 64 << 20;
/// ... and at most this many times the compressed payload (typical JSON compresses 5-10x).
const PREALLOCATE_RATIO: u64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode the snapshot: {0}")]
    Encode(String),
    #[error("cannot decompress the payload: {0}")]
    Decompress(String),
    #[error("the payload decompresses to {found} bytes, but the header says {expected}")]
    Length { expected: u64, found: u64 },
    #[error("cannot decode the snapshot: {0}")]
    Decode(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Serializes `body` in `format` into `writer`.
pub fn encode_into<W: Write>(
    body: &SnapshotBody,
    format: SerializationFormat,
    mut writer: W,
) -> Result<(), CodecError> {
    let wire = body.to_wire();
    match format {
        SerializationFormat::Json => {
            serde_json::to_writer(&mut writer, &wire).map_err(|e| CodecError::Encode(e.to_string()))
        }
        SerializationFormat::Bincode => {
            bincode::serde::encode_into_std_write(&wire, &mut writer, bincode::config::standard())
                .map(|_| ())
                .map_err(|e| CodecError::Encode(e.to_string()))
        }
        SerializationFormat::Msgpack => {
            rmp_serde::encode::write(&mut writer, &wire).map_err(|e| CodecError::Encode(e.to_string()))
        }
    }
}

/// Decodes a body from `bytes` (all of them) in `format`.
pub fn decode(bytes: &[u8], format: SerializationFormat) -> Result<SnapshotBody, CodecError> {
    let decoded = std::panic::catch_unwind(|| -> Result<SnapshotBody, String> {
        let wire: WireBody<'_> = match format {
            SerializationFormat::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
            // Borrowing, and under the shared bound: a length no field borrows (a sequence's
            // element count, say) is still held to the input's size.
            SerializationFormat::Bincode => {
                statemesh_protocol::bounded::decode(bytes, usize::MAX).map_err(|e| e.to_string())?
            }
            // Borrowing from the slice: a claimed string or byte length beyond it is an error,
            // never an allocation. (Trailing bytes cannot be seen through this API; the
            // checksum and exact length checks before decoding already exclude them.)
            SerializationFormat::Msgpack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?,
        };
        wire.into_body()
    });
    match decoded {
        Ok(result) => result.map_err(CodecError::Decode),
        Err(_) => Err(CodecError::Decode("the decoder failed on this input".to_string())),
    }
}

/// A compressing writer for one of the configured codecs; `finish` flushes the codec's
/// trailer and hands back the inner writer.
pub enum Compressor<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Lz4(lz4_flex::frame::FrameEncoder<W>),
}

impl<W: Write> Compressor<W> {
    pub fn new(compression: Compression, writer: W) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Compressor::None(writer),
            Compression::Gzip => {
                Compressor::Gzip(flate2::write::GzEncoder::new(writer, flate2::Compression::default()))
            }
            Compression::Zstd => Compressor::Zstd(zstd::stream::write::Encoder::new(writer, ZSTD_LEVEL)?),
            Compression::Lz4 => Compressor::Lz4(lz4_flex::frame::FrameEncoder::new(writer)),
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(writer) => Ok(writer),
            Compressor::Gzip(encoder) => encoder.finish(),
            Compressor::Zstd(encoder) => encoder.finish(),
            Compressor::Lz4(encoder) => encoder.finish().map_err(io::Error::other),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
            Compressor::Lz4(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
            Compressor::Lz4(w) => w.flush(),
        }
    }
}

/// Decompresses a verified payload to exactly `expected` bytes; more or fewer is an error.
/// Decompression stops one byte past `expected`, so output is bounded whatever the payload.
pub fn decompress(payload: &[u8], compression: Compression, expected: u64) -> Result<Cow<'_, [u8]>, CodecError> {
    let reader: Box<dyn Read + '_> = match compression {
        Compression::None => {
            return if payload.len() as u64 == expected {
                Ok(Cow::Borrowed(payload))
            } else {
                Err(CodecError::Length { expected, found: payload.len() as u64 })
            };
        }
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(payload)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(payload).map_err(|e| CodecError::Decompress(e.to_string()))?,
        ),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(payload)),
    };
    // The header's length is only a claim: a small payload claiming 16 GiB must not reserve
    // 64 MiB up front, so the reservation also follows the compressed size.
    let reserve = expected.min(PREALLOCATE_MAX).min((payload.len() as u64).saturating_mul(PREALLOCATE_RATIO));
    let mut out = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader.take(expected.saturating_add(1)).read_to_end(&mut out)
    }));
    match read {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(CodecError::Decompress(e.to_string())),
        Err(_) => return Err(CodecError::Decompress("the decompressor failed on this input".to_string())),
    }
    if out.len() as u64 != expected {
        return Err(CodecError::Length { expected, found: out.len() as u64 });
    }
    Ok(Cow::Owned(out))
}

/// Every format, for tests, benchmarks and documentation.
pub const FORMATS: [SerializationFormat; 3] =
    [SerializationFormat::Json, SerializationFormat::Bincode, SerializationFormat::Msgpack];
/// Every compression.
pub const COMPRESSIONS: [Compression; 4] = [Compression::None, Compression::Gzip, Compression::Zstd, Compression::Lz4];

#[cfg(test)]
mod tests {
    use statemesh_protocol::{DocId, DocKey, Namespace, NodeId, VersionVector};

    use super::*;
    use crate::snapshot::body::SnapshotDoc;

    fn sample() -> SnapshotBody {
        let mut vv = VersionVector::new();
        vv.advance(&NodeId::new("12D3KooWnode").expect("node id"), 42);
        let doc = |ns: &str, id: &str, exists: bool, bytes: &[u8]| SnapshotDoc {
            key: DocKey::new(Namespace::new(ns).expect("ns"), DocId::new(id).expect("id")),
            exists,
            automerge: bytes.to_vec(),
        };
        SnapshotBody {
            id: "2026-01-02T03-04-05-678Z-abcdef".to_string(),
            created_ms: 1_767_322_445_678,
            node_id: "12D3KooWnode".to_string(),
            version_vector: vv,
            documents: vec![
                doc("orders", "a", true, &[0x85, 0x6f, 0x4a, 0x83, 0, 1, 2, 255]),
                doc("orders", "b \"quoted\" é", false, &[]),
                doc("users", "ada", true, &(0..=255).collect::<Vec<u8>>()),
            ],
        }
    }

    fn payload(body: &SnapshotBody, format: SerializationFormat, compression: Compression) -> (Vec<u8>, u64) {
        let mut encoded = Vec::new();
        encode_into(body, format, &mut encoded).expect("encode");
        let mut compressor = Compressor::new(compression, Vec::new()).expect("compressor");
        compressor.write_all(&encoded).expect("compress");
        (compressor.finish().expect("finish"), encoded.len() as u64)
    }

    #[test]
    fn every_format_and_compression_round_trips_a_body() {
        let body = sample();
        for format in FORMATS {
            for compression in COMPRESSIONS {
                let (payload, body_len) = payload(&body, format, compression);
                let plain = decompress(&payload, compression, body_len).expect("decompress");
                assert_eq!(decode(&plain, format).expect("decode"), body, "{format:?} × {compression:?}");
            }
        }
    }

    #[test]
    fn json_snapshots_stay_readable_json_with_hex_automerge_bytes() {
        let mut encoded = Vec::new();
        encode_into(&sample(), SerializationFormat::Json, &mut encoded).expect("encode");
        let value: serde_json::Value = serde_json::from_slice(&encoded).expect("plain JSON");
        assert_eq!(value["documents"][0]["automerge"], "856f4a83000102ff");
        assert_eq!(value["version_vector"][0]["seq"], 42);
    }

    #[test]
    fn decompression_refuses_output_beyond_the_promised_length() {
        for compression in [Compression::Gzip, Compression::Zstd, Compression::Lz4] {
            let (payload, body_len) = payload(&sample(), SerializationFormat::Json, compression);
            match decompress(&payload, compression, body_len - 1) {
                Err(CodecError::Length { expected, found }) => {
                    assert_eq!((expected, found), (body_len - 1, body_len), "{compression:?}")
                }
                other => panic!("{compression:?}: {other:?}"),
            }
            assert!(matches!(decompress(&payload, compression, body_len + 1), Err(CodecError::Length { .. })));
        }
        // A bomb: a tiny zstd payload that would expand to 64 MiB stops at the promised 1 KiB.
        let bomb = zstd::encode_all(&vec![0u8; 64 << 20][..], 19).expect("bomb");
        assert!(matches!(decompress(&bomb, Compression::Zstd, 1024), Err(CodecError::Length { found: 1025, .. })));
    }

    #[test]
    fn decoding_never_panics_on_damaged_or_hostile_bytes() {
        let body = sample();
        for format in FORMATS {
            let mut encoded = Vec::new();
            encode_into(&body, format, &mut encoded).expect("encode");
            // Every single-byte corruption and every truncation: errors are fine, panics are not.
            for at in 0..encoded.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut damaged = encoded.clone();
                    damaged[at] ^= flip;
                    let _ = decode(&damaged, format);
                }
                assert!(decode(&encoded[..at], format).is_err(), "{format:?} truncated at {at} decoded");
            }
        }
        // Length fields claiming far more than the input holds must not allocate it.
        let mut hostile = vec![0u8; 4];
        hostile.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(decode(&hostile, SerializationFormat::Bincode).is_err());
        assert!(decode(&[0xdb, 0xff, 0xff, 0xff, 0xf0], SerializationFormat::Msgpack).is_err());
    }

    #[test]
    fn a_body_with_an_illegal_id_or_duplicate_document_is_refused() {
        let mut body = sample();
        body.documents.push(body.documents[0].clone());
        let mut encoded = Vec::new();
        encode_into(&body, SerializationFormat::Json, &mut encoded).expect("encode");
        let error = decode(&encoded, SerializationFormat::Json).expect_err("duplicate refused");
        assert!(error.to_string().contains("out of order or listed twice"), "{error}");

        let text = String::from_utf8(encoded).expect("utf8").replace("\"users\"", "\"bad/ns\"");
        assert!(decode(text.as_bytes(), SerializationFormat::Json).is_err());
    }
}
