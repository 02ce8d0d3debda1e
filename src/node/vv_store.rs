//! The node's version vector on disk.
//!
//! Each origin's entry lives in the meta family as `vv/<origin>` → seq (u64 BE). This node's
//! own entry is written by the committer with every batch of local changes. Other origins'
//! entries ride along with received records, but they may lag: records are stored as they
//! arrive, out of order, and the contiguous run they complete is only known afterwards. So at
//! startup each origin's entry is extended over the contiguous records the change log holds
//! beyond it, and an origin's log with no entry at all counts from seq 1. A restarted node
//! therefore resumes from what it stored, without fetching it again.

use statemesh_protocol::change_log::{log_key, parse_log_key, Seq};
use statemesh_protocol::seal::{record_hash, RecordHash};
use statemesh_protocol::{ChangeRecord, NodeId, VersionVector};

use crate::storage::{key_after, Family, Storage, StorageError};

/// Prefix of the version-vector entries in the meta family.
pub const VV_PREFIX: &[u8] = b"vv/";
const SCAN_PAGE: usize = 1024;

pub fn vv_key(origin: &NodeId) -> Vec<u8> {
    let mut key = VV_PREFIX.to_vec();
    key.extend_from_slice(origin.as_str().as_bytes());
    key
}

/// Decodes one `vv/<origin>` → seq entry of the meta family.
pub fn parse_vv_entry(key: &[u8], value: &[u8]) -> Result<(NodeId, Seq), StorageError> {
    let origin = key
        .strip_prefix(VV_PREFIX)
        .and_then(|rest| std::str::from_utf8(rest).ok())
        .and_then(|s| NodeId::new(s).ok())
        .ok_or_else(|| StorageError::Corrupt("version vector origin".to_string()))?;
    let seq =
        u64::from_be_bytes(value.try_into().map_err(|_| StorageError::Corrupt("version vector seq".to_string()))?);
    Ok((origin, seq))
}

/// Reads the persisted version vector, extended over the change log: this node's own seq
/// and every other origin's.
pub fn load_version_vector(storage: &dyn Storage, local: &NodeId) -> Result<(Seq, VersionVector), StorageError> {
    let mut remote = VersionVector::new();
    let mut local_seq = 0;
    let mut start = VV_PREFIX.to_vec();
    loop {
        let entries = storage.scan(Family::Meta, VV_PREFIX, &start, SCAN_PAGE)?;
        for (key, value) in &entries {
            let (origin, seq) = parse_vv_entry(key, value)?;
            if &origin == local {
                local_seq = seq;
            } else {
                remote.advance(&origin, seq);
            }
        }
        match entries.last() {
            Some((last, _)) if entries.len() == SCAN_PAGE => start = key_after(last),
            _ => break,
        }
    }
    extend_over_log(storage, local, &mut remote)?;
    Ok((local_seq, remote))
}

/// Advances each remote origin over the contiguous records stored beyond its entry. Visits
/// each origin's key range once (a skip scan), so the cost is O(origins + records beyond).
fn extend_over_log(storage: &dyn Storage, local: &NodeId, vv: &mut VersionVector) -> Result<(), StorageError> {
    let mut cursor = Vec::new();
    while let Some((key, _)) = storage.scan(Family::ChangeLog, &[], &cursor, 1)?.pop() {
        let (origin, _) = parse_log_key(&key).ok_or_else(|| StorageError::Corrupt("change log key".to_string()))?;
        if &origin != local {
            let mut next = vv.get(&origin) + 1;
            let prefix = statemesh_protocol::change_log::log_prefix(&origin);
            'origin: loop {
                let entries = storage.scan(Family::ChangeLog, &prefix, &log_key(&origin, next), SCAN_PAGE)?;
                for (key, _) in &entries {
                    match parse_log_key(key) {
                        Some((_, seq)) if seq == next => next += 1,
                        _ => break 'origin,
                    }
                }
                if entries.len() < SCAN_PAGE {
                    break;
                }
            }
            vv.advance(&origin, next - 1);
        }
        // Past every key of this origin: its prefix ends with NUL, so bump that byte.
        cursor = statemesh_protocol::change_log::log_prefix(&origin);
        if let Some(last) = cursor.last_mut() {
            *last = 1;
        }
    }
    Ok(())
}

/// The hash of this node's newest record, which the next one links to (`None` when retention
/// pruned it or the node has written nothing: the next record then starts a new link, which
/// loses nothing, since every batch's last record is sealed).
pub(super) fn last_record_hash(
    storage: &dyn Storage,
    me: &NodeId,
    seq: Seq,
) -> Result<Option<RecordHash>, StorageError> {
    if seq == 0 {
        return Ok(None);
    }
    let Some(bytes) = storage.get(Family::ChangeLog, &log_key(me, seq))? else { return Ok(None) };
    let record = ChangeRecord::decode(&bytes).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    Ok(Some(record_hash(&record)))
}
