//! The snapshot directory: one `<id>.snap` file per snapshot, named by time so names sort
//! in creation order.
//!
//! Ids are the only thing a client sends that becomes a path, so they are checked against a
//! strict alphabet (no dots, no separators) before any path is built: `..` or `a/b` can never
//! reach the filesystem. Listing reads only each file's fixed header, never its payload.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::file::{self, WrittenFile};
use super::format::{compression_name, format_name};
use super::progress::Progress;
use super::{SnapshotBody, SnapshotError};
use crate::config::{Compression, SerializationFormat};

/// Extension of snapshot files in the directory.
pub const EXTENSION: &str = "snap";
/// Longest accepted id.
const ID_MAX: usize = 100;

/// A snapshot file as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotInfo {
    pub id: String,
    pub created_ms: i64,
    /// Documents in the snapshot, deleted ones included.
    pub documents: u64,
    /// Size of the file.
    pub bytes: u64,
    pub format: String,
    pub compression: String,
    pub file: String,
}

impl SnapshotInfo {
    fn from_header(id: String, header: &super::format::Header, bytes: u64, path: &Path) -> Self {
        Self {
            id,
            created_ms: header.created_ms,
            documents: header.documents,
            bytes,
            format: format_name(header.format).to_string(),
            compression: compression_name(header.compression).to_string(),
            file: path.display().to_string(),
        }
    }
}

/// The snapshot directory of a node.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

/// Whether `id` is safe to use as a file name: 1..=100 of `A-Z a-z 0-9 _ -`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= ID_MAX && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A new id: the UTC creation time to the millisecond plus a random suffix, e.g.
/// `2026-11-25T21-41-00-123Z-3fa9c2`. Fixed width, so ids sort by creation time.
pub fn new_id(created_ms: i64) -> String {
    let (date, seconds_of_day) = (created_ms.div_euclid(86_400_000), created_ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(date);
    let (hour, minute) = (seconds_of_day / 3_600_000, seconds_of_day / 60_000 % 60);
    let (second, milli) = (seconds_of_day / 1000 % 60, seconds_of_day % 1000);
    let suffix = rand::random::<u32>() & 0x00ff_ffff;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}-{minute:02}-{second:02}-{milli:03}Z-{suffix:06x}")
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl SnapshotStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of snapshot `id`; refuses ids that are not plain names.
    pub fn path_of(&self, id: &str) -> Result<PathBuf, SnapshotError> {
        if !valid_id(id) {
            return Err(SnapshotError::InvalidId(id.chars().take(ID_MAX + 20).collect()));
        }
        Ok(self.dir.join(format!("{id}.{EXTENSION}")))
    }

    /// Writes `body` as snapshot `body.id` (which must be a valid id).
    pub fn write(
        &self,
        body: &SnapshotBody,
        format: SerializationFormat,
        compression: Compression,
    ) -> Result<SnapshotInfo, SnapshotError> {
        let path = self.path_of(&body.id)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| SnapshotError::Io {
            path: self.dir.display().to_string(),
            message: format!("cannot create the snapshot directory: {e}"),
        })?;
        let WrittenFile { path, bytes, header } = file::write_file(&path, body, format, compression)?;
        Ok(SnapshotInfo::from_header(body.id.clone(), &header, bytes, &path))
    }

    /// Reads, verifies and decodes snapshot `id`.
    pub fn read(&self, id: &str, progress: &mut dyn FnMut(Progress)) -> Result<SnapshotBody, SnapshotError> {
        let path = self.path_of(id)?;
        match file::read_file(&path, progress) {
            Ok((_, body)) => Ok(body),
            Err(SnapshotError::FileNotFound(_)) => Err(SnapshotError::NotFound(id.to_string())),
            Err(other) => Err(other),
        }
    }

    /// Every snapshot in the directory with a readable header, newest first. Files whose
    /// header cannot be read are skipped (and logged): a listing is not a verification.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SnapshotError::Io { path: self.dir.display().to_string(), message: e.to_string() }),
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Some(id) = snapshot_id_of(&path) else { continue };
            match file::read_header(&path) {
                Ok((header, bytes)) => out.push(SnapshotInfo::from_header(id, &header, bytes, &path)),
                Err(error) => tracing::warn!(file = %path.display(), %error, "skipping an unreadable snapshot file"),
            }
        }
        out.sort_by(|a, b| (b.created_ms, &b.id).cmp(&(a.created_ms, &a.id)));
        Ok(out)
    }

    /// Deletes snapshot `id`.
    pub fn delete(&self, id: &str) -> Result<(), SnapshotError> {
        let path = self.path_of(id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SnapshotError::NotFound(id.to_string())),
            Err(e) => Err(SnapshotError::Io { path: path.display().to_string(), message: e.to_string() }),
        }
    }

    /// Keeps the newest `keep` snapshots and deletes the rest; returns the ids deleted.
    pub fn prune(&self, keep: usize) -> Result<Vec<String>, SnapshotError> {
        let mut removed = Vec::new();
        for info in self.list()?.into_iter().skip(keep) {
            match self.delete(&info.id) {
                Ok(()) | Err(SnapshotError::NotFound(_)) => removed.push(info.id),
                Err(error) => return Err(error),
            }
        }
        Ok(removed)
    }
}

/// The id of a snapshot file in the directory (`<valid id>.snap`), or `None` for other files.
fn snapshot_id_of(path: &Path) -> Option<String> {
    if path.extension()? != EXTENSION {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    valid_id(stem).then(|| stem.to_string())
}

#[cfg(test)]
mod tests {
    use statemesh_protocol::VersionVector;

    use super::*;

    #[test]
    fn ids_are_dated_fixed_width_and_path_safe() {
        // 2026-11-25 21:41:00.123 UTC
        let id = new_id(1_795_642_860_123);
        assert!(id.starts_with("2026-11-25T21-41-00-123Z-"), "{id}");
        assert!(valid_id(&id));
        assert_eq!(new_id(0).len(), id.len());
        assert!(new_id(0).starts_with("1970-01-01T00-00-00-000Z-"));
        assert!(new_id(951_782_400_000).starts_with("2000-02-29T"), "leap day");
        for bad in ["", "..", "../etc", "a/b", "a\\b", "a.snap", "ü", &"x".repeat(101)] {
            assert!(!valid_id(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn prune_keeps_the_newest_and_leaves_other_files_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::new(dir.path().to_path_buf());
        for ms in [3_000i64, 1_000, 4_000, 2_000] {
            let body = SnapshotBody {
                id: new_id(ms),
                created_ms: ms,
                node_id: "n".to_string(),
                version_vector: VersionVector::new(),
                documents: Vec::new(),
            };
            store.write(&body, SerializationFormat::Bincode, Compression::Lz4).expect("write");
        }
        std::fs::write(dir.path().join("notes.txt"), "keep me").expect("write");
        let removed = store.prune(2).expect("prune");
        assert_eq!(removed.len(), 2);
        let kept: Vec<i64> = store.list().expect("list").iter().map(|i| i.created_ms).collect();
        assert_eq!(kept, [4_000, 3_000]);
        assert!(dir.path().join("notes.txt").exists());
        assert!(matches!(store.delete("nope"), Err(SnapshotError::NotFound(_))));
        assert!(matches!(store.path_of("../x"), Err(SnapshotError::InvalidId(_))));
    }
}
