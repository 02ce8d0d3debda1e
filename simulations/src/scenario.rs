//! Scenario files: what a run simulates, read from TOML and checked before anything runs.
//!
//! Ranges are `[lo, hi]` pairs; the seed picks the actual value inside each range, so one
//! scenario covers a family of settings and one seed names exactly one of them. Every key is
//! explained in `simulations/README.md`. Unknown keys are refused, so a typo cannot silently
//! fall back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::faults::{PartitionMode, PlantedBug};

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("scenario {path} is not valid: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("scenario {path}: key `{key}` {reason}")]
    Invalid { path: PathBuf, key: String, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub nodes: usize,
    pub seeds: Seeds,
    /// Writes and faults happen in `[0, duration_ms)`.
    pub duration_ms: i64,
    /// After the last write and fault, the cluster must converge within this much time.
    pub liveness_budget_ms: i64,
    #[serde(default)]
    pub planted_bug: Option<PlantedBug>,
    pub network: Network,
    pub storage: Storage,
    pub replica: ReplicaTunables,
    pub workload: Workload,
    pub bounds: Bounds,
    #[serde(default)]
    pub partitions: Vec<ScheduledPartition>,
    #[serde(default)]
    pub crashes: Vec<ScheduledCrash>,
    #[serde(default)]
    pub random_faults: RandomFaults,
    #[serde(default)]
    pub faults: Faults,
    /// Where the scenario was read from (for reproduce commands).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seeds {
    pub start: u64,
    pub count: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Base one-way latency of each directed link, drawn once per link.
    pub latency_ms: [i64; 2],
    /// Extra per-message delay, drawn per message.
    pub jitter_ms: [i64; 2],
    pub loss_percent: [i64; 2],
    pub duplicate_percent: [i64; 2],
    /// Chance that a message is held back by up to `reorder_delay_ms` more.
    pub reorder_percent: [i64; 2],
    pub reorder_delay_ms: [i64; 2],
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Time from `Effect::Apply` to the records being durable.
    pub persist_ms: [i64; 2],
    /// Chance that one apply hits slow storage instead.
    pub slow_percent: [i64; 2],
    pub slow_persist_ms: [i64; 2],
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaTunables {
    pub anti_entropy_interval_ms: i64,
    pub sync_timeout_ms: i64,
    pub page_records: u32,
    pub held_records_max: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Local writes across the cluster, at uniformly random times and nodes.
    pub writes: u64,
    /// Documents written (all in one namespace).
    pub docs: u64,
    /// Share of writes that are whole-document puts and deletes; the rest are merge patches.
    pub put_percent: u64,
    pub delete_percent: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Most records a replica may hold out of order plus have in flight to storage.
    pub replica_queue_max: usize,
    /// Most messages in flight in the whole network.
    pub network_queue_max: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledPartition {
    pub mode: PartitionMode,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The node that `isolate_one` cuts off or `one_way` silences; random when absent.
    #[serde(default)]
    pub node: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledCrash {
    /// Random when absent.
    #[serde(default)]
    pub node: Option<usize>,
    pub at_ms: i64,
    pub down_ms: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    #[serde(default)]
    pub partitions: u64,
    #[serde(default)]
    pub crashes: u64,
    /// Length of each random partition or downtime.
    #[serde(default = "default_fault_ms")]
    pub length_ms: [i64; 2],
    /// Modes random partitions choose from; all four when empty.
    #[serde(default)]
    pub modes: Vec<PartitionMode>,
}

/// Faults of the nodes themselves, drawn per seed and node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Each node's clock is ahead of virtual time by up to this much.
    #[serde(default)]
    pub clock_skew_ms: i64,
    /// Each node's clock runs fast or slow by up to this many parts per million.
    #[serde(default)]
    pub clock_drift_ppm: i64,
}

fn default_fault_ms() -> [i64; 2] {
    [1_000, 10_000]
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.into(), source })?;
        let mut scenario: Scenario =
            toml::from_str(&text).map_err(|source| ScenarioError::Parse { path: path.into(), source })?;
        scenario.path = path.to_path_buf();
        scenario.validate()?;
        Ok(scenario)
    }

    /// The seeds listed by the scenario.
    pub fn seed_list(&self) -> impl Iterator<Item = u64> {
        self.seeds.start..self.seeds.start.saturating_add(self.seeds.count)
    }

    fn invalid(&self, key: &str, reason: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid { path: self.path.clone(), key: key.into(), reason: reason.into() }
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        if !(2..=1_000).contains(&self.nodes) {
            return Err(self.invalid("nodes", "must be between 2 and 1000"));
        }
        if self.duration_ms <= 0 {
            return Err(self.invalid("duration_ms", "must be positive"));
        }
        if self.liveness_budget_ms <= 0 {
            return Err(self.invalid("liveness_budget_ms", "must be positive"));
        }
        let ranges = [
            ("network.latency_ms", self.network.latency_ms, 0, i64::MAX),
            ("network.jitter_ms", self.network.jitter_ms, 0, i64::MAX),
            ("network.loss_percent", self.network.loss_percent, 0, 99),
            ("network.duplicate_percent", self.network.duplicate_percent, 0, 100),
            ("network.reorder_percent", self.network.reorder_percent, 0, 100),
            ("network.reorder_delay_ms", self.network.reorder_delay_ms, 0, i64::MAX),
            ("storage.persist_ms", self.storage.persist_ms, 0, i64::MAX),
            ("storage.slow_percent", self.storage.slow_percent, 0, 100),
            ("storage.slow_persist_ms", self.storage.slow_persist_ms, 0, i64::MAX),
            ("random_faults.length_ms", self.random_faults.length_ms, 1, i64::MAX),
        ];
        for (key, [lo, hi], min, max) in ranges {
            if lo > hi || lo < min || hi > max {
                return Err(self.invalid(key, format!("must be [lo, hi] with {min} <= lo <= hi <= {max}")));
            }
        }
        if !(0..=86_400_000).contains(&self.faults.clock_skew_ms) {
            return Err(self.invalid("faults.clock_skew_ms", "must be between 0 and 86400000"));
        }
        if !(0..=100_000).contains(&self.faults.clock_drift_ppm) {
            return Err(self.invalid("faults.clock_drift_ppm", "must be between 0 and 100000"));
        }
        let r = &self.replica;
        if r.anti_entropy_interval_ms <= 0 || r.sync_timeout_ms <= 0 {
            return Err(self.invalid("replica", "intervals must be positive"));
        }
        if r.page_records == 0 || r.held_records_max == 0 {
            return Err(self.invalid("replica", "page_records and held_records_max must be positive"));
        }
        if self.workload.docs == 0 {
            return Err(self.invalid("workload.docs", "must be positive"));
        }
        if self.workload.put_percent + self.workload.delete_percent > 100 {
            return Err(self.invalid("workload.put_percent", "put_percent + delete_percent must be at most 100"));
        }
        for (i, p) in self.partitions.iter().enumerate() {
            if p.start_ms < 0 || p.end_ms <= p.start_ms {
                return Err(self.invalid(&format!("partitions[{i}]"), "needs 0 <= start_ms < end_ms"));
            }
            if p.node.is_some_and(|n| n >= self.nodes) {
                return Err(self.invalid(&format!("partitions[{i}].node"), "is not a node index"));
            }
        }
        for (i, c) in self.crashes.iter().enumerate() {
            if c.at_ms < 0 || c.down_ms <= 0 {
                return Err(self.invalid(&format!("crashes[{i}]"), "needs at_ms >= 0 and down_ms > 0"));
            }
            if c.node.is_some_and(|n| n >= self.nodes) {
                return Err(self.invalid(&format!("crashes[{i}].node"), "is not a node index"));
            }
        }
        Ok(())
    }
}
