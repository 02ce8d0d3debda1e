//! Fault plans: named partition modes, crashes, and the bugs a test may plant on purpose.
//!
//! A plan is derived once per seed, before the run starts, from the scenario's scheduled
//! faults plus its random ones, so the whole fault schedule is a pure function of the seed.

use serde::Deserialize;

use crate::rng::SimRng;
use crate::scenario::Scenario;

/// How a partition splits the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionMode {
    /// One node loses every link, both ways (an offline edge node).
    IsolateOne,
    /// A random half of the nodes cannot talk to the other half.
    Halves,
    /// Nodes fall into 2 or 3 random groups that cannot talk across.
    RandomSubsets,
    /// One node's messages are lost, but it still hears everyone (asymmetric).
    OneWay,
}

impl PartitionMode {
    pub const ALL: [PartitionMode; 4] =
        [PartitionMode::IsolateOne, PartitionMode::Halves, PartitionMode::RandomSubsets, PartitionMode::OneWay];
}

/// Harness-side bugs that prove the checkers bite. The protocol crate is never touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PlantedBug {
    /// Storage acknowledges a local write before its record is stored; a crash in between
    /// loses it. The durability checker must report it.
    AckBeforeStore,
    /// The network drops every `SyncRequest`, leaving only lossy gossip. The convergence
    /// checker must report it.
    DropSyncRequests,
    /// Anti-entropy serves its pages without the records whose seq falls in a fixed range
    /// (the 3rd and 4th of every ten of each origin), as if an off-by-one skipped them. Only
    /// gossip can still deliver those; the convergence checker must report the rest.
    SkipSeqRange,
    /// Strong reads skip the read index and answer from the local replica, however stale
    /// (`strong` runs only). The linearizability checker must report it.
    StaleStrongReads,
    /// Bounded reads are served at once, without checking the node's measured staleness
    /// (`strong` runs only). The bounded-reads checker must report it.
    UncheckedBoundedReads,
}

/// One partition with its directed cut links resolved.
#[derive(Debug, Clone)]
pub struct Partition {
    pub mode: PartitionMode,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Directed links `(from, to)` that lose every message while the partition lasts.
    pub cut: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
pub struct Crash {
    pub node: usize,
    pub at_ms: i64,
    pub down_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    pub partitions: Vec<Partition>,
    pub crashes: Vec<Crash>,
}

impl FaultPlan {
    pub fn derive(scenario: &Scenario, rng: &mut SimRng) -> Self {
        let n = scenario.nodes;
        let mut plan = FaultPlan::default();
        for p in &scenario.partitions {
            plan.partitions.push(Partition {
                mode: p.mode,
                start_ms: p.start_ms,
                end_ms: p.end_ms,
                cut: cut_links(p.mode, p.node, n, rng),
            });
        }
        let random = &scenario.random_faults;
        let modes = if random.modes.is_empty() { PartitionMode::ALL.to_vec() } else { random.modes.clone() };
        for _ in 0..random.partitions {
            let mode = modes[rng.below(modes.len() as u64) as usize];
            let start_ms = rng.range([0, scenario.duration_ms - 1]);
            let end_ms = start_ms + rng.range(random.length_ms);
            plan.partitions.push(Partition { mode, start_ms, end_ms, cut: cut_links(mode, None, n, rng) });
        }
        for c in &scenario.crashes {
            let node = c.node.unwrap_or_else(|| rng.below(n as u64) as usize);
            plan.crashes.push(Crash { node, at_ms: c.at_ms, down_ms: c.down_ms });
        }
        for _ in 0..random.crashes {
            let node = rng.below(n as u64) as usize;
            let at_ms = rng.range([0, scenario.duration_ms - 1]);
            plan.crashes.push(Crash { node, at_ms, down_ms: rng.range(random.length_ms) });
        }
        plan
    }

    /// When the last fault ends: from then on the cluster owes convergence.
    pub fn last_heal_ms(&self) -> i64 {
        let partitions = self.partitions.iter().map(|p| p.end_ms);
        let crashes = self.crashes.iter().map(|c| c.at_ms + c.down_ms);
        partitions.chain(crashes).max().unwrap_or(0)
    }
}

/// The directed links a partition of `mode` cuts among `n` nodes.
fn cut_links(mode: PartitionMode, node: Option<usize>, n: usize, rng: &mut SimRng) -> Vec<(usize, usize)> {
    let mut group = vec![0usize; n];
    match mode {
        PartitionMode::IsolateOne => {
            let lone = node.unwrap_or_else(|| rng.below(n as u64) as usize);
            group[lone] = 1;
        }
        PartitionMode::Halves => {
            let mut order: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut order);
            for &i in &order[..n / 2] {
                group[i] = 1;
            }
        }
        PartitionMode::RandomSubsets => {
            let groups = 2 + rng.below(2) as usize;
            for g in group.iter_mut() {
                *g = rng.below(groups as u64) as usize;
            }
        }
        PartitionMode::OneWay => {
            let silenced = node.unwrap_or_else(|| rng.below(n as u64) as usize);
            return (0..n).filter(|&to| to != silenced).map(|to| (silenced, to)).collect();
        }
    }
    let mut cut = Vec::new();
    for from in 0..n {
        for to in 0..n {
            if group[from] != group[to] {
                cut.push((from, to));
            }
        }
    }
    cut
}
