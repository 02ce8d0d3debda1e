//! Serving the change log to peers: the records a peer's version vector says it lacks.
//!
//! Any node serves any origin's records (epidemic relay), up to what it holds contiguously.
//! A page is bounded by record count and by bytes, so one response never exceeds the wire
//! limit. Where the log has been pruned past what the peer holds, the page names the oldest
//! seq still kept (a floor) so the peer knows to fetch whole documents instead.

use statemesh_protocol::change_log::{log_key, log_prefix, parse_log_key, Seq};
use statemesh_protocol::{ChangeRecord, NodeId, VersionVector};

use super::{Node, NodeError};
use crate::storage::{key_after, Family, StorageError};

const SCAN_PAGE: usize = 256;

/// One page of records for a peer, in (origin, seq) order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub records: Vec<ChangeRecord>,
    /// More records remain beyond this page.
    pub more: bool,
    /// Origins whose log no longer reaches back to what the peer holds: the oldest seq kept.
    pub floors: Vec<(NodeId, Seq)>,
}

impl Node {
    /// The records `have` lacks, at most `max_records` of them and about `max_bytes` (a page
    /// always carries at least one record if any is due).
    pub async fn read_log(
        &self,
        have: VersionVector,
        max_records: u32,
        max_bytes: usize,
    ) -> Result<LogPage, NodeError> {
        let node = self.clone();
        tokio::task::spawn_blocking(move || node.read_log_blocking(&have, max_records as usize, max_bytes))
            .await
            .map_err(|_| NodeError::ShuttingDown)?
            .map_err(NodeError::from)
    }

    fn read_log_blocking(
        &self,
        have: &VersionVector,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<LogPage, StorageError> {
        let ours = self.version_vector();
        let mut page = LogPage::default();
        let mut bytes = 0;
        for (origin, held) in ours.iter() {
            let from = have.get(origin) + 1;
            if held < from {
                continue;
            }
            if page.records.len() >= max_records.max(1) || (bytes >= max_bytes && !page.records.is_empty()) {
                page.more = true;
                break;
            }
            let prefix = log_prefix(origin);
            let mut start = log_key(origin, from);
            let mut first = true;
            'scan: loop {
                let entries = self.inner.storage.scan(Family::ChangeLog, &prefix, &start, SCAN_PAGE)?;
                if first {
                    first = false;
                    let oldest = match entries.first() {
                        Some((key, _)) => seq_of(key)?,
                        None => held + 1,
                    };
                    if oldest > from {
                        page.floors.push((origin.clone(), oldest));
                    }
                }
                for (key, value) in &entries {
                    if seq_of(key)? > held {
                        break 'scan;
                    }
                    let full = page.records.len() >= max_records.max(1)
                        || (!page.records.is_empty() && bytes + value.len() > max_bytes);
                    if full {
                        page.more = true;
                        break 'scan;
                    }
                    page.records.push(ChangeRecord::decode(value).map_err(|e| StorageError::Corrupt(e.to_string()))?);
                    bytes += value.len();
                }
                match entries.last() {
                    Some((last, _)) if entries.len() == SCAN_PAGE => start = key_after(last),
                    _ => break,
                }
            }
            if page.more {
                break;
            }
        }
        Ok(page)
    }
}

fn seq_of(key: &[u8]) -> Result<Seq, StorageError> {
    parse_log_key(key).map(|(_, seq)| seq).ok_or_else(|| StorageError::Corrupt("change log key".to_string()))
}
