//! One snapshot file: written atomically, read back only after it has been verified.
//!
//! Writing streams the body through the codec into a temporary file beside the target,
//! hashing and counting as it goes; the header (which needs the final lengths and checksum)
//! is written last, then the file is synced and renamed into place, so a crash leaves either
//! the old state or a complete file, never a torn one.
//!
//! Reading checks, in order: the header (magic, version), the file length against the
//! header's payload length (truncation, trailing bytes), the checksum over the whole payload
//! and header, and only then decompresses and decodes. Nothing is decompressed or decoded
//! from a file that failed an earlier check.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::codec::{self, CodecError, Compressor};
use super::format::{Header, HeaderError, HEADER_LEN};
use super::progress::{Phase, Progress};
use super::{SnapshotBody, SnapshotError, MAX_BODY_BYTES};
use crate::config::{Compression, SerializationFormat};

/// Bytes hashed between two progress reports while verifying.
const VERIFY_CHUNK: usize = 4 << 20;

/// A file just written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub path: PathBuf,
    /// Size of the whole file.
    pub bytes: u64,
    pub header: Header,
}

/// Counts and hashes what passes through to the file.
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hash.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts what the encoder produces (the body length, before compression).
struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Io { path: path.display().to_string(), message: error.to_string() }
}

/// Writes `body` to `path` in `format` with `compression`, replacing any file there.
pub fn write_file(
    path: &Path,
    body: &SnapshotBody,
    format: SerializationFormat,
    compression: Compression,
) -> Result<WrittenFile, SnapshotError> {
    let file_name = path.file_name().ok_or_else(|| io_error(path, "not a file path"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let result = write_temp(&temp, body, format, compression).and_then(|header| {
        std::fs::rename(&temp, path).map_err(|e| io_error(path, e))?;
        sync_parent(path);
        Ok(WrittenFile { path: path.to_path_buf(), bytes: HEADER_LEN as u64 + header.payload_len, header })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn write_temp(
    temp: &Path,
    body: &SnapshotBody,
    format: SerializationFormat,
    compression: Compression,
) -> Result<Header, SnapshotError> {
    let fail = |e: io::Error| io_error(temp, e);
    let mut file = File::options().write(true).create_new(true).open(temp).map_err(fail)?;
    // Room for the header, written once the payload's lengths and checksum are known.
    file.write_all(&[0u8; HEADER_LEN]).map_err(fail)?;
    let hashing = HashingWriter { inner: BufWriter::with_capacity(1 << 20, file), hash: Sha256::new(), bytes: 0 };
    let mut counting = CountingWriter { inner: Compressor::new(compression, hashing).map_err(fail)?, bytes: 0 };
    codec::encode_into(body, format, &mut counting).map_err(|e| match e {
        CodecError::Io(e) => fail(e),
        other => SnapshotError::Encode(other.to_string()),
    })?;
    let CountingWriter { inner: compressor, bytes: body_len } = counting;
    let HashingWriter { inner, hash, bytes: payload_len } = compressor.finish().map_err(fail)?;
    let mut file = inner.into_inner().map_err(|e| fail(e.into_error()))?;
    let mut header = Header {
        format,
        compression,
        created_ms: body.created_ms,
        documents: body.documents.len() as u64,
        body_len,
        payload_len,
        checksum: [0; 32],
    };
    header.checksum = header.finish_checksum(hash);
    file.seek(SeekFrom::Start(0)).map_err(fail)?;
    file.write_all(&header.encode()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    Ok(header)
}

/// Makes a rename durable (best effort: not every platform can sync a directory).
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
}

/// Reads the header of the file at `path` without verifying the payload (for listings).
pub fn read_header(path: &Path) -> Result<(Header, u64), SnapshotError> {
    let mut file = File::open(path).map_err(|e| open_error(path, e))?;
    let size = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    (&mut file).take(HEADER_LEN as u64).read_to_end(&mut bytes).map_err(|e| io_error(path, e))?;
    Ok((parse_header(path, &bytes, size)?, size))
}

fn open_error(path: &Path, error: io::Error) -> SnapshotError {
    if error.kind() == io::ErrorKind::NotFound {
        SnapshotError::FileNotFound(path.display().to_string())
    } else {
        io_error(path, error)
    }
}

fn parse_header(path: &Path, bytes: &[u8], size: u64) -> Result<Header, SnapshotError> {
    let shown = || path.display().to_string();
    let header = Header::decode(bytes).map_err(|e| match e {
        HeaderError::Foreign => SnapshotError::Foreign(shown()),
        HeaderError::Short(found) => {
            SnapshotError::Truncated { path: shown(), expected: HEADER_LEN as u64, found: found as u64 }
        }
        HeaderError::Version(found) => SnapshotError::UnsupportedVersion { path: shown(), found },
        other => SnapshotError::Corrupt { path: shown(), reason: other.to_string() },
    })?;
    let expected = (HEADER_LEN as u64).saturating_add(header.payload_len);
    if size < expected {
        return Err(SnapshotError::Truncated { path: shown(), expected, found: size });
    }
    if size > expected {
        let reason = format!("{} unexpected bytes after the payload", size - expected);
        return Err(SnapshotError::Corrupt { path: shown(), reason });
    }
    if header.body_len > MAX_BODY_BYTES {
        return Err(SnapshotError::TooLarge { path: shown(), bytes: header.body_len, max: MAX_BODY_BYTES });
    }
    Ok(header)
}

/// Reads, verifies and decodes the snapshot at `path`. Reports `Verifying` (bytes) and then
/// `Decoding`. Any failure leaves nothing behind: the caller has not touched the node yet.
pub fn read_file(path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<(Header, SnapshotBody), SnapshotError> {
    let shown = || path.display().to_string();
    let mut file = File::open(path).map_err(|e| open_error(path, e))?;
    let size = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut head = Vec::with_capacity(HEADER_LEN);
    (&mut file).take(HEADER_LEN as u64).read_to_end(&mut head).map_err(|e| io_error(path, e))?;
    let header = parse_header(path, &head, size)?;

    // The whole payload is read and hashed before any of it is interpreted. Its length was
    // checked against the file's size above, so this allocation is what the disk holds.
    let total = header.payload_len;
    let mut payload = Vec::with_capacity(usize::try_from(total).map_err(|e| io_error(path, e))?);
    let mut hash = Sha256::new();
    let mut chunk = vec![0u8; VERIFY_CHUNK];
    progress(Progress::new(Phase::Verifying, 0, total));
    while (payload.len() as u64) < total {
        let want = usize::try_from(total - payload.len() as u64).unwrap_or(usize::MAX).min(VERIFY_CHUNK);
        let read = file.read(&mut chunk[..want]).map_err(|e| io_error(path, e))?;
        if read == 0 {
            // The file shrank while being read.
            return Err(SnapshotError::Truncated { path: shown(), expected: total, found: payload.len() as u64 });
        }
        hash.update(&chunk[..read]);
        payload.extend_from_slice(&chunk[..read]);
        progress(Progress::new(Phase::Verifying, payload.len() as u64, total));
    }
    drop(chunk);
    if header.finish_checksum(hash) != header.checksum {
        return Err(SnapshotError::Corrupt { path: shown(), reason: "the checksum does not match".to_string() });
    }

    progress(Progress::new(Phase::Decoding, 0, header.documents));
    let corrupt = |e: CodecError| SnapshotError::Corrupt { path: shown(), reason: e.to_string() };
    let plain = codec::decompress(&payload, header.compression, header.body_len).map_err(corrupt)?;
    let body = codec::decode(&plain, header.format).map_err(corrupt)?;
    if body.documents.len() as u64 != header.documents {
        let reason =
            format!("the header counts {} documents but the body holds {}", header.documents, body.documents.len());
        return Err(SnapshotError::Corrupt { path: shown(), reason });
    }
    progress(Progress::new(Phase::Decoding, header.documents, header.documents));
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use statemesh_protocol::{DocId, DocKey, Namespace, VersionVector};

    use super::*;
    use crate::snapshot::codec::{COMPRESSIONS, FORMATS};
    use crate::snapshot::format::MAGIC;
    use crate::snapshot::SnapshotDoc;

    fn body() -> SnapshotBody {
        SnapshotBody {
            id: "s1".to_string(),
            created_ms: 5,
            node_id: "n".to_string(),
            version_vector: VersionVector::new(),
            documents: (0..20)
                .map(|i| SnapshotDoc {
                    key: DocKey::new(Namespace::new("ns").expect("ns"), DocId::new(format!("d{i:02}")).expect("id")),
                    exists: i % 3 != 0,
                    automerge: vec![i as u8; 40],
                })
                .collect(),
        }
    }

    fn read(path: &Path) -> Result<SnapshotBody, SnapshotError> {
        read_file(path, &mut |_| {}).map(|(_, body)| body)
    }

    #[test]
    fn files_round_trip_in_every_format_and_compression() {
        let dir = tempfile::tempdir().expect("tempdir");
        for format in FORMATS {
            for compression in COMPRESSIONS {
                let path = dir.path().join(format!("{format:?}-{compression:?}.snap"));
                let written = write_file(&path, &body(), format, compression).expect("write");
                assert_eq!(written.bytes, std::fs::metadata(&path).expect("metadata").len());
                assert_eq!(read(&path).expect("read"), body(), "{format:?} × {compression:?}");
                let (header, _) = read_header(&path).expect("header");
                assert_eq!((header.format, header.compression, header.documents), (format, compression, 20));
            }
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn every_flipped_byte_truncation_or_foreign_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.snap");
        write_file(&path, &body(), SerializationFormat::Msgpack, Compression::Zstd).expect("write");
        let good = std::fs::read(&path).expect("read");
        let damaged = dir.path().join("damaged.snap");
        for at in 0..good.len() {
            let mut bytes = good.clone();
            bytes[at] ^= 0x20;
            std::fs::write(&damaged, &bytes).expect("write");
            let error = read(&damaged).expect_err("a flipped byte is refused");
            if at >= MAGIC.len() {
                assert!(
                    matches!(
                        error,
                        SnapshotError::Corrupt { .. }
                            | SnapshotError::Truncated { .. }
                            | SnapshotError::UnsupportedVersion { .. }
                            | SnapshotError::TooLarge { .. }
                    ),
                    "byte {at}: {error}"
                );
            } else {
                assert!(matches!(error, SnapshotError::Foreign(_)), "byte {at}: {error}");
            }
        }
        for cut in [0, 10, HEADER_LEN - 1, HEADER_LEN, good.len() - 1] {
            std::fs::write(&damaged, &good[..cut]).expect("write");
            let error = read(&damaged).expect_err("truncated");
            assert!(matches!(error, SnapshotError::Truncated { .. }), "cut at {cut}: {error}");
        }
        std::fs::write(&damaged, b"{\"not\": \"a snapshot\"}").expect("write");
        assert!(matches!(read(&damaged), Err(SnapshotError::Foreign(_))));
        assert!(matches!(read(&dir.path().join("missing.snap")), Err(SnapshotError::FileNotFound(_))));
    }
}
