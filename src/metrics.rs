//! Prometheus metrics: one registry per node, rendered at `GET /metrics`.
//!
//! Families are created up front with explicit buckets so the exposition is stable from the
//! first scrape; gauges that are cheap to read at scrape time (storage size, cache size) are
//! refreshed by the handler rather than on every write.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::raft::RaftInstruments;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// A transaction's or snapshot operation's outcome or kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// A snapshot operation: `create` or `restore`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SnapshotLabels {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// A peer's state: `connected`, `unreachable` (met recently, connection lost) or `banned`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerStateLabels {
    pub state: &'static str,
}

/// A replication message's direction (`in`, `out`) and kind (`gossip`, `sync_request`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WireLabels {
    pub direction: &'static str,
    pub kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_latency: Family<RouteLabels, Histogram>,
    pub commit_batch_writes: Histogram,
    pub commit_batch_bytes: Histogram,
    pub fsyncs: Counter,
    pub commit_duration: Histogram,
    pub changes_committed: Counter,
    pub storage_errors: Counter,
    pub storage_size_bytes: Gauge,
    pub documents: Gauge,
    pub doc_cache_entries: Gauge,
    pub p2p_bytes: Family<WireLabels, Counter>,
    pub p2p_messages: Family<WireLabels, Counter>,
    pub p2p_rejected: Counter,
    pub peers_connected: Gauge,
    pub peers: Family<PeerStateLabels, Gauge>,
    pub anti_entropy_rounds: Counter,
    pub gossip_lagged: Counter,
    pub remote_changes_applied: Counter,
    pub remote_records_quarantined: Counter,
    pub replication_lag_changes: Gauge,
    pub replication_delay: Histogram,
    pub feed_subscribers: Gauge,
    pub feed_lag_events: Gauge,
    pub transactions: Family<OutcomeLabels, Counter>,
    pub snapshot_duration: Family<SnapshotLabels, Histogram>,
    pub snapshot_bytes: Family<SnapshotLabels, Histogram>,
    pub raft: RaftInstruments,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~6.5 s, doubling.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 18))
}

fn snapshot_histogram() -> Histogram {
    // 10 ms .. ~22 min, doubling.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.01, 2.0, 18))
}

fn snapshot_size_histogram() -> Histogram {
    // 1 KiB .. 1 TiB, ×4.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(1024.0, 4.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("statemesh");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route, method and status", http_requests.clone());
        let http_latency =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("http_request_duration_seconds", "HTTP request latency by route", http_latency.clone());
        let commit_batch_writes =
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "commit_batch_writes",
            "Writes sharing one durable batch (group commit)",
            commit_batch_writes.clone(),
        );
        let commit_batch_bytes =
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(64.0, 4.0, 12));
        registry.register("commit_batch_bytes", "Bytes per durable batch", commit_batch_bytes.clone());
        let fsyncs = Counter::default();
        registry.register("storage_fsyncs", "Synced storage batches (WAL fsyncs)", fsyncs.clone());
        let commit_duration = latency_histogram();
        registry.register(
            "storage_commit_duration_seconds",
            "Time one durable batch took to write and sync (group commit)",
            commit_duration.clone(),
        );
        let changes_committed = Counter::default();
        registry.register("changes_committed", "Changes made durable by this node", changes_committed.clone());
        let storage_errors = Counter::default();
        registry.register("storage_errors", "Storage write failures (each stops the node)", storage_errors.clone());
        let storage_size_bytes = Gauge::default();
        registry.register("storage_size_bytes", "Approximate storage size", storage_size_bytes.clone());
        let documents = Gauge::default();
        registry.register("documents", "Live documents on this node", documents.clone());
        let doc_cache_entries = Gauge::default();
        registry.register("doc_cache_entries", "Documents held decoded in memory", doc_cache_entries.clone());
        let p2p_bytes = Family::<WireLabels, Counter>::default();
        registry.register("p2p_bytes", "Replication bytes by direction and message kind", p2p_bytes.clone());
        let p2p_messages = Family::<WireLabels, Counter>::default();
        registry.register("p2p_messages", "Replication messages by direction and kind", p2p_messages.clone());
        let p2p_rejected = Counter::default();
        registry.register("p2p_rejected", "Invalid replication messages or records refused", p2p_rejected.clone());
        let peers_connected = Gauge::default();
        registry.register("peers_connected", "Connected replication peers", peers_connected.clone());
        let peers = Family::<PeerStateLabels, Gauge>::default();
        registry.register(
            "peers",
            "Peers this node has met, by state: connected, unreachable (met recently, connection lost), banned",
            peers.clone(),
        );
        let anti_entropy_rounds = Counter::default();
        registry.register("anti_entropy_requests", "Anti-entropy requests sent", anti_entropy_rounds.clone());
        let gossip_lagged = Counter::default();
        registry.register(
            "gossip_skipped_changes",
            "Local changes not gossiped because replication fell behind (anti-entropy delivers them)",
            gossip_lagged.clone(),
        );
        let remote_changes_applied = Counter::default();
        registry.register(
            "remote_changes_applied",
            "Changes received from peers and stored",
            remote_changes_applied.clone(),
        );
        let remote_records_quarantined = Counter::default();
        registry.register(
            "remote_records_quarantined",
            "Records received under a node's origin for a namespace this node runs through Raft: logged and \
             relayed, not applied",
            remote_records_quarantined.clone(),
        );
        let replication_lag_changes = Gauge::default();
        registry.register(
            "replication_lag_changes",
            "Changes connected peers are known to hold that this node lacks",
            replication_lag_changes.clone(),
        );
        let replication_delay = latency_histogram();
        registry.register(
            "replication_delay_seconds",
            "Time from a change's commit at its origin to its storage here (origin clock)",
            replication_delay.clone(),
        );
        let feed_subscribers = Gauge::default();
        registry.register(
            "feed_subscribers",
            "Open change-feed subscriptions (event streams and waiting long polls)",
            feed_subscribers.clone(),
        );
        let feed_lag_events = Gauge::default();
        registry.register(
            "feed_lag_events",
            "Events the slowest open at-least-once feed stream has yet to send",
            feed_lag_events.clone(),
        );
        let transactions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "transactions",
            "Transactions by outcome: committed, conflict (a read or compare no longer held), failed",
            transactions.clone(),
        );
        let snapshot_duration =
            Family::<SnapshotLabels, Histogram>::new_with_constructor(snapshot_histogram as fn() -> Histogram);
        registry.register(
            "snapshot_duration_seconds",
            "Time a snapshot creation or restore took",
            snapshot_duration.clone(),
        );
        let snapshot_bytes =
            Family::<SnapshotLabels, Histogram>::new_with_constructor(snapshot_size_histogram as fn() -> Histogram);
        registry.register("snapshot_bytes", "Size of a created or restored snapshot file", snapshot_bytes.clone());
        let raft = RaftInstruments::default();
        raft.register(&mut registry);
        Self {
            registry,
            http_requests,
            http_latency,
            commit_batch_writes,
            commit_batch_bytes,
            fsyncs,
            commit_duration,
            changes_committed,
            storage_errors,
            storage_size_bytes,
            documents,
            doc_cache_entries,
            p2p_bytes,
            p2p_messages,
            p2p_rejected,
            peers_connected,
            peers,
            anti_entropy_rounds,
            gossip_lagged,
            remote_changes_applied,
            remote_records_quarantined,
            replication_lag_changes,
            replication_delay,
            feed_subscribers,
            feed_lag_events,
            transactions,
            snapshot_duration,
            snapshot_bytes,
            raft,
        }
    }

    /// Counts one replication message of `bytes` on the wire.
    pub fn record_wire(&self, direction: &'static str, kind: &'static str, bytes: usize) {
        let labels = WireLabels { direction, kind };
        self.p2p_bytes.get_or_create(&labels).inc_by(bytes as u64);
        self.p2p_messages.get_or_create(&labels).inc();
    }

    /// Called by the committer after each durable batch, which took `seconds`.
    pub fn record_commit(&self, writes: usize, bytes: usize, documents: i64, seconds: f64) {
        self.commit_duration.observe(seconds);
        self.commit_batch_writes.observe(writes as f64);
        self.commit_batch_bytes.observe(bytes as f64);
        self.fsyncs.inc();
        self.changes_committed.inc_by(writes as u64);
        self.documents.set(documents);
    }

    /// Counts one transaction's outcome.
    pub fn record_transaction(&self, outcome: &'static str) {
        self.transactions.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Records one snapshot creation or restore of `bytes` that took `seconds`.
    pub fn record_snapshot(&self, operation: &'static str, bytes: u64, seconds: f64) {
        let labels = SnapshotLabels { operation };
        self.snapshot_duration.get_or_create(&labels).observe(seconds);
        self.snapshot_bytes.get_or_create(&labels).observe(bytes as f64);
    }

    pub fn record_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&RequestLabels { route: route.to_string(), method: method.to_string(), status })
            .inc();
        self.http_latency.get_or_create(&RouteLabels { route: route.to_string() }).observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
