//! The strong path's settings: what the node's configuration says, plus the Raft timings it
//! does not expose, validated together and turned into an `openraft::Config`.
//!
//! The timings follow the usual Raft rule of thumb: heartbeats several times per election
//! timeout, and an election timeout well above a round trip, so a healthy leader is never
//! voted out. A request timeout shorter than one election would fail every write that meets
//! a leader change, so that is refused too.

use std::time::Duration;

use crate::config::{Consensus, DistributedConfig};

/// Settings of one strong-path node. Build with [`RaftSettings::from_config`] or start from
/// [`RaftSettings::default`] and adjust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftSettings {
    /// Separates clusters that might otherwise share a transport; only reported in logs.
    pub cluster_name: String,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// How long a proposal, read or membership change may take before it fails.
    pub request_timeout: Duration,
    /// A leader that has not heard from a quorum for longer than this refuses new proposals
    /// (they could not commit anyway) instead of queueing them until the request times out.
    pub quorum_ack_max: Duration,
    /// A snapshot is built once this many entries were applied since the last one.
    pub snapshot_logs_since_last: u64,
    /// Entries kept in the log behind a snapshot, so briefly lagging followers catch up from
    /// the log instead of a whole snapshot.
    pub logs_kept_after_snapshot: u64,
    /// Entries per append-entries message.
    pub max_payload_entries: u64,
    /// Largest encoded RPC this node sends or accepts; snapshot chunks are sized below it.
    pub max_rpc_bytes: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        Self {
            cluster_name: "statemesh".to_owned(),
            heartbeat_interval: Duration::from_millis(75),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
            request_timeout: Duration::from_secs(5),
            quorum_ack_max: Duration::from_millis(600),
            snapshot_logs_since_last: 5000,
            logs_kept_after_snapshot: 1000,
            max_payload_entries: 256,
            max_rpc_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A setting combination the strong path refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftConfigError {
    #[error("distributed.consensus is {0:?}; the strong path runs only with `raft`")]
    NotRaft(Consensus),
    #[error("{0}")]
    Invalid(String),
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RaftSettings {
    /// The settings for a node whose configuration has this `distributed` section and whose
    /// transport carries messages of at most `max_message_bytes`.
    pub fn from_config(distributed: &DistributedConfig, max_message_bytes: u64) -> Result<Self, RaftConfigError> {
        if distributed.consensus != Consensus::Raft {
            return Err(RaftConfigError::NotRaft(distributed.consensus));
        }
        let settings =
            Self { request_timeout: distributed.request_timeout, max_rpc_bytes: max_message_bytes, ..Self::default() };
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), RaftConfigError> {
        let invalid = |message: String| Err(RaftConfigError::Invalid(message));
        if self.heartbeat_interval.is_zero() {
            return invalid("the Raft heartbeat interval must be positive".to_owned());
        }
        if self.election_timeout_min < self.heartbeat_interval * 3 {
            return invalid(format!(
                "the election timeout ({:?}) must be at least three heartbeats ({:?})",
                self.election_timeout_min, self.heartbeat_interval
            ));
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return invalid("the election timeout range is empty".to_owned());
        }
        if self.request_timeout <= self.election_timeout_max {
            return invalid(format!(
                "distributed.request_timeout ({:?}) must exceed one election ({:?})",
                self.request_timeout, self.election_timeout_max
            ));
        }
        if self.quorum_ack_max < self.heartbeat_interval * 2 {
            return invalid("the quorum acknowledgement bound must cover at least two heartbeats".to_owned());
        }
        if self.snapshot_logs_since_last == 0 || self.max_payload_entries == 0 {
            return invalid("snapshot and payload entry counts must be positive".to_owned());
        }
        if self.max_rpc_bytes < 64 * 1024 {
            return invalid(format!("the largest Raft message ({} bytes) must be at least 64 KiB", self.max_rpc_bytes));
        }
        Ok(())
    }

    /// Snapshot chunks leave room for the request around them.
    pub(crate) fn snapshot_chunk_bytes(&self) -> u64 {
        self.max_rpc_bytes / 2
    }

    pub(crate) fn to_openraft(&self) -> Result<openraft::Config, RaftConfigError> {
        self.validate()?;
        let config = openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            install_snapshot_timeout: millis(self.request_timeout),
            max_payload_entries: self.max_payload_entries,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            snapshot_max_chunk_size: self.snapshot_chunk_bytes(),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            ..openraft::Config::default()
        };
        config.validate().map_err(|e| RaftConfigError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_default_distributed_section_are_valid() {
        RaftSettings::default().validate().expect("defaults");
        let settings = RaftSettings::from_config(&DistributedConfig::default(), 4 * 1024 * 1024).expect("mapped");
        assert_eq!(settings.request_timeout, DistributedConfig::default().request_timeout);
        let config = settings.to_openraft().expect("openraft config");
        assert_eq!(config.heartbeat_interval, 75);
        assert_eq!(config.snapshot_max_chunk_size, 2 * 1024 * 1024);
    }

    #[test]
    fn refuses_settings_that_would_fail_every_leader_change() {
        let distributed = DistributedConfig { request_timeout: Duration::from_millis(200), ..Default::default() };
        assert!(matches!(RaftSettings::from_config(&distributed, 1 << 20), Err(RaftConfigError::Invalid(_))));
        let distributed = DistributedConfig { consensus: Consensus::Crdt, ..Default::default() };
        assert!(matches!(RaftSettings::from_config(&distributed, 1 << 20), Err(RaftConfigError::NotRaft(_))));
        let settings = RaftSettings { election_timeout_min: Duration::from_millis(100), ..Default::default() };
        assert!(settings.validate().is_err());
    }
}
