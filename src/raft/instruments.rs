//! What the strong path exposes to the node's Prometheus metrics.
//!
//! The instruments are created by the node (`crate::metrics`), registered in its registry and
//! handed to [`StrongPath::start`](super::StrongPath::start); the strong path updates them
//! where things happen: the proposer counts proposals and batch sizes, the log flusher times
//! syncs, and the task that logs transitions (`events.rs`) sets the gauges from openraft's
//! own metrics on every change. A path started without a registry (tests, the simulator)
//! gets unregistered instruments that nobody reads.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::StrongError;

/// How a proposal ended: `committed`, or the kind of [`StrongError`] it failed with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// The strong path's metrics. Cheap to clone; clones share the same series.
#[derive(Clone, Debug)]
pub struct RaftInstruments {
    pub has_leader: Gauge,
    pub is_leader: Gauge,
    pub term: Gauge,
    pub last_log_index: Gauge,
    pub applied_index: Gauge,
    pub leader_changes: Counter,
    pub proposals: Family<OutcomeLabels, Counter>,
    pub batch_commands: Histogram,
    pub log_sync: Histogram,
}

impl Default for RaftInstruments {
    fn default() -> Self {
        Self {
            has_leader: Gauge::default(),
            is_leader: Gauge::default(),
            term: Gauge::default(),
            last_log_index: Gauge::default(),
            applied_index: Gauge::default(),
            leader_changes: Counter::default(),
            proposals: Family::default(),
            // 1 .. 1,024 commands, doubling (the proposer's cap).
            batch_commands: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            // 50 µs .. ~3.3 s, doubling.
            log_sync: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
        }
    }
}

impl RaftInstruments {
    /// Registers every series in `registry` (whose prefix names the node).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "raft_has_leader",
            "1 while this node knows a Raft leader (itself included)",
            self.has_leader.clone(),
        );
        registry.register("raft_is_leader", "1 while this node is the Raft leader", self.is_leader.clone());
        registry.register("raft_term", "This node's current Raft term", self.term.clone());
        registry.register(
            "raft_last_log_index",
            "Index of the last entry in this node's Raft log",
            self.last_log_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Index of the last Raft entry applied on this node",
            self.applied_index.clone(),
        );
        registry.register(
            "raft_leader_changes",
            "Times this node saw the Raft leader change (an election, or losing the leader)",
            self.leader_changes.clone(),
        );
        registry.register(
            "raft_proposals",
            "Commands proposed on this node, by outcome (committed, not_leader, unavailable, \
             indeterminate, invalid, membership, stopped, storage)",
            self.proposals.clone(),
        );
        registry.register(
            "raft_proposal_batch_commands",
            "Commands carried by one Raft log entry the leader proposed (proposal batching)",
            self.batch_commands.clone(),
        );
        registry.register(
            "raft_log_sync_duration_seconds",
            "Time one sync of the Raft log took (each covers every append waiting for it)",
            self.log_sync.clone(),
        );
    }

    /// Counts one proposal's outcome.
    pub(crate) fn record_proposal<T>(&self, answer: &Result<T, StrongError>) {
        let outcome = match answer {
            Ok(_) => "committed",
            Err(StrongError::NotLeader { .. }) => "not_leader",
            Err(StrongError::Unavailable { .. }) => "unavailable",
            Err(StrongError::Indeterminate { .. }) => "indeterminate",
            Err(StrongError::Invalid(_)) => "invalid",
            Err(StrongError::Membership(_)) => "membership",
            Err(StrongError::Stopped(_)) => "stopped",
            Err(StrongError::Storage(_)) => "storage",
        };
        self.proposals.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}
