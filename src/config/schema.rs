//! The configuration schema: one struct per YAML section, with the built-in defaults.
//!
//! Every struct is `deny_unknown_fields` so a typo is an error rather than a silently
//! ignored setting, and `default` so a partial file fills the rest from these values.
//! `default.yaml` documents the same values; a test keeps the two identical.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) const KIB: u64 = 1024;
pub(crate) const MIB: u64 = 1024 * KIB;
pub(crate) const GIB: u64 = 1024 * MIB;

/// The whole node configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub api: ApiConfig,
    pub p2p: P2pConfig,
    pub storage: StorageConfig,
    pub concurrency: ConcurrencyConfig,
    pub history: HistoryConfig,
    pub snapshots: SnapshotsConfig,
    pub distributed: DistributedConfig,
    pub notifications: NotificationsConfig,
    pub namespaces: NamespacesConfig,
    pub security: SecurityConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub name: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self { data_dir: PathBuf::from("./statemesh-data"), name: None }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: String,
    pub max_body_bytes: u64,
    #[serde(with = "super::duration")]
    pub request_timeout: Duration,
    pub list_limit_max: u32,
    /// Bearer tokens, by the SHA-256 of the token: the tokens themselves are never stored.
    pub tokens: Vec<ApiToken>,
    /// A YAML file holding more entries of the same shape as `tokens`.
    pub tokens_file: Option<PathBuf>,
    /// Serve a non-loopback `listen` without tokens (everyone may do everything).
    pub insecure: bool,
    pub tls: Option<ApiTls>,
    /// Origins a browser may call the API from; empty answers no CORS request.
    pub cors_origins: Vec<String>,
    #[serde(with = "super::duration")]
    pub header_read_timeout: Duration,
    #[serde(with = "super::duration")]
    pub tls_handshake_timeout: Duration,
    pub max_connections: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7700".to_owned(),
            max_body_bytes: 4 * MIB,
            request_timeout: Duration::from_secs(30),
            list_limit_max: 1000,
            tokens: Vec::new(),
            tokens_file: None,
            insecure: false,
            tls: None,
            cors_origins: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// One API client's credential: who it is, what it may do, and the token's SHA-256 (hex).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub name: String,
    pub role: ApiRole,
    pub sha256: String,
}

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ApiRole {
    /// Reads, the change feed, status, peers, cluster status, metrics.
    Read,
    /// Document writes, raw changes, transactions.
    Write,
    /// Snapshots, rollback, cluster membership.
    Admin,
}

/// PEM files for serving the API over TLS.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    pub listen: Vec<String>,
    pub bootstrap: Vec<String>,
    pub mdns: bool,
    pub max_message_bytes: u64,
    pub max_connections: u32,
    #[serde(with = "super::duration")]
    pub idle_timeout: Duration,
    #[serde(with = "super::duration")]
    pub anti_entropy_interval: Duration,
    #[serde(with = "super::duration")]
    pub gossip_batch_window: Duration,
    #[serde(with = "super::duration")]
    pub reconnect_backoff_max: Duration,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/7701".to_owned()],
            bootstrap: Vec::new(),
            mdns: true,
            max_message_bytes: 4 * MIB,
            max_connections: 64,
            idle_timeout: Duration::from_secs(60),
            anti_entropy_interval: Duration::from_secs(5),
            gossip_batch_window: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_secs(30),
        }
    }
}

/// Where documents live. `distributed` is persistent storage whose writes are also
/// replicated through the `distributed` section's consensus.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StorageType {
    Memory,
    #[default]
    Persistent,
    Distributed,
}

/// Encoding of snapshot files and offline exports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SerializationFormat {
    Json,
    #[default]
    Bincode,
    Msgpack,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    #[default]
    Zstd,
    Lz4,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    #[serde(rename = "type")]
    pub kind: StorageType,
    pub path: Option<PathBuf>,
    pub format: SerializationFormat,
    pub compression: Compression,
    pub cache_docs: usize,
    pub group_commit_max_batch: usize,
    pub max_inflight_writes: usize,
    pub write_buffer_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageType::default(),
            path: None,
            format: SerializationFormat::default(),
            compression: Compression::default(),
            cache_docs: 10_000,
            group_commit_max_batch: 1024,
            max_inflight_writes: 4096,
            write_buffer_bytes: 64 * MIB,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyModel {
    Pessimistic,
    Optimistic,
    #[default]
    Mvcc,
    LockFree,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConcurrencyConfig {
    pub model: ConcurrencyModel,
    pub max_transactions: usize,
    #[serde(with = "super::duration")]
    pub transaction_timeout: Duration,
    #[serde(with = "super::duration")]
    pub lock_timeout: Duration,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        Self {
            model: ConcurrencyModel::default(),
            max_transactions: 1000,
            transaction_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    pub enabled: bool,
    pub max_size: usize,
    #[serde(with = "super::duration")]
    pub retention: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { enabled: true, max_size: 100_000, retention: Duration::from_secs(24 * 3600) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotsConfig {
    pub enabled: bool,
    #[serde(with = "super::duration")]
    pub interval: Duration,
    pub max_snapshots: usize,
    pub compression: Compression,
    pub path: Option<PathBuf>,
}

impl Default for SnapshotsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(3600),
            max_snapshots: 10,
            compression: Compression::default(),
            path: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Consensus {
    #[default]
    Raft,
    /// Accepted by the parser so the seed design's files load, then refused by
    /// `Config::validate` with a pointer to the supported choices.
    Paxos,
    Crdt,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyLevel {
    #[default]
    Strong,
    Bounded,
    Eventual,
}

/// What a bounded read does when the local replica is staler than its bound.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BoundedFallback {
    #[default]
    Strong,
    Refuse,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DistributedConfig {
    pub enabled: bool,
    pub consensus: Consensus,
    pub replication_factor: u32,
    pub consistency_level: ConsistencyLevel,
    pub voters: Vec<String>,
    pub max_staleness_ms: u64,
    pub max_lag: Option<u64>,
    pub bounded_fallback: BoundedFallback,
    #[serde(with = "super::duration")]
    pub request_timeout: Duration,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            consensus: Consensus::default(),
            replication_factor: 3,
            consistency_level: ConsistencyLevel::default(),
            voters: Vec::new(),
            max_staleness_ms: 1000,
            max_lag: None,
            bounded_fallback: BoundedFallback::default(),
            request_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    AtMostOnce,
    #[default]
    AtLeastOnce,
    ExactlyOnce,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    pub buffer_size: usize,
    pub delivery: Delivery,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self { buffer_size: 1000, delivery: Delivery::default() }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum NamespaceConsistency {
    #[default]
    Eventual,
    Strong,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NamespacePolicy {
    pub consistency: NamespaceConsistency,
    pub max_doc_bytes: u64,
    /// An inline JSON Schema; only its outer shape (object or bool) is checked here.
    pub schema: Option<serde_json::Value>,
}

impl Default for NamespacePolicy {
    fn default() -> Self {
        Self { consistency: NamespaceConsistency::default(), max_doc_bytes: MIB, schema: None }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NamespacesConfig {
    pub strict: bool,
    pub defaults: NamespacePolicy,
    pub declared: BTreeMap<String, NamespacePolicy>,
}

impl NamespacesConfig {
    /// The policy governing `ns`: its declared entry, else the defaults, or `None`
    /// when the namespace is undeclared and `strict` refuses undeclared namespaces.
    pub fn policy(&self, ns: &str) -> Option<&NamespacePolicy> {
        match self.declared.get(ns) {
            Some(policy) => Some(policy),
            None if self.strict => None,
            None => Some(&self.defaults),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    pub psk: Option<String>,
    pub psk_file: Option<PathBuf>,
    pub allowed_peers: Vec<String>,
    /// Replicate with any peer that connects, without a cluster key (a lab setting). Without
    /// it, a node given no key creates one in its data directory.
    pub insecure: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The log filter when neither `log.level` nor `RUST_LOG` says otherwise. openraft's own
/// logs repeat on every heartbeat while a member is unreachable, so they are off; the
/// strong path logs its transitions itself (`raft/events.rs`).
pub const DEFAULT_LOG_LEVEL: &str = "info,openraft=off,libp2p_gossipsub=error";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::default(), level: DEFAULT_LOG_LEVEL.to_owned() }
    }
}
