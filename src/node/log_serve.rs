//! Serving the change log to peers: the records a peer's version vector says it lacks.
//!
//! Any node serves any origin's records (epidemic relay), up to what it holds contiguously.
//! A page is bounded by record count and by bytes, so one response never exceeds the wire
//! limit. Where the log has been pruned past what the peer holds, the page names the oldest
//! seq still kept (a floor) so the peer knows to fetch whole documents instead.
//!
//! A page ends every origin's run at a sealed record, so the receiver can check the run
//! against the origin's key (`statemesh_protocol::seal`): where the bounds cut a run after
//! an unsealed record, the run is cut back to its last seal, or, if it has none in the page
//! and nothing else is in it, carried on to its next seal (at most one seal span further).

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
            // Records of this origin in the page, and whether the page is full but carried on
            // to reach a seal.
            let (mut run_len, mut extending) = (0, false);
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
                    if full && !extending {
                        page.more = true;
                        if page.records.last().is_some_and(|r| r.seal.is_some()) {
                            break 'scan;
                        }
                        let run_start = page.records.len() - run_len;
                        match page.records[run_start..].iter().rposition(|r| r.seal.is_some()) {
                            Some(last_seal) => {
                                page.records.truncate(run_start + last_seal + 1);
                                break 'scan;
                            }
                            None if run_start > 0 => {
                                page.records.truncate(run_start);
                                break 'scan;
                            }
                            // Only this run, and no seal in it yet: carry on to the next one.
                            None => extending = true,
                        }
                    }
                    let record = ChangeRecord::decode(value).map_err(|e| StorageError::Corrupt(e.to_string()))?;
                    let sealed = record.seal.is_some();
                    page.records.push(record);
                    bytes += value.len();
                    run_len += 1;
                    if extending && sealed {
                        break 'scan;
                    }
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
