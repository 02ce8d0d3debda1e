//! The node: documents in a namespace, written durably, read consistently.
//!
//! [`Node`] is the library API that the HTTP layer, the CLI's embedded mode, benchmarks and
//! tests all drive. A write runs in three steps: the document's own lock is taken and the
//! change applied in memory (validated first, all-or-nothing); the change is numbered
//! `(this node, seq)` and queued with its storage mutations (document bytes, metadata, change
//! log record) for the group committer; the caller waits until that batch is durable. Reads
//! wait for the durability of whatever they observed, so a response never shows a change that
//! a crash could still take back.

mod change_index;
mod committer;
mod doc_cache;
mod doc_meta;
mod doc_proofs;
mod error;
mod feed;
mod feed_event;
mod history;
mod log_serve;
mod mesh;
mod namespaces;
mod remote_apply;
mod replication_view;
mod retention;
mod snapshot_ops;
mod state_transfer;
mod strong_apply;
mod txn;
mod vv_store;
mod write_path;

use std::sync::Arc;
use std::thread::JoinHandle;

use automerge::ActorId;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use statemesh_protocol::seal::SealChain;
use statemesh_protocol::{ChangeId, ChangeKind, DocId, DocKey, Document, Namespace, NodeId, Version, VersionVector};
use tokio::sync::Semaphore;

use crate::clock::now_ms;
use crate::config::{Compression, Config, StorageType};
use crate::identity::{Identity, IdentityError};
use crate::metrics::Metrics;
use crate::storage::{
    key_after, BlockCompression, Family, MemoryStorage, RocksOptions, RocksStorage, Storage, StorageError,
};
pub use committer::WriteTicket;
use committer::{CommitterParts, Sequencer, DOC_COUNT_KEY, FEED_POS_KEY};
use doc_cache::{DocCache, DocEntry};
pub use doc_meta::DocMeta;
pub use error::NodeError;
pub use feed::{FeedError, FeedFilter, FeedPage};
pub use feed_event::{FeedEvent, FeedPos};
pub use history::{HistoryEntry, HistoryPage, RollbackTarget};
pub use log_serve::LogPage;
pub use mesh::{MeshPeer, MeshRole, NodeSummary, RaftFacts, RaftFactsSource, RaftMemberFacts, StorageState};
pub use namespaces::{NamespaceRules, Namespaces};
pub use remote_apply::RemoteApply;
pub use replication_view::PeerInfo;
use retention::{log_floor_key, Retention, FEED_FLOOR_KEY};
pub use state_transfer::DocsPage;
pub use strong_apply::CommittedDoc;
pub use txn::{
    changed_entry, run_once, txn_keys, AtomicView, CommitSet, Compare, CompareOp, CompareTarget, OnceOutcome,
    PlannedDoc, PlannedSection, StepResult, TxnInfo, TxnOp, TxnRead, TxnStep,
};
use vv_store::{last_record_hash, load_version_vector, vv_key};

/// A whole saved document replaces the appended tail once the tail outgrows this or the save.
const COMPACT_TAIL_BYTES_MIN: usize = 8 * 1024;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("{0}")]
    Namespaces(String),
    #[error("cannot start the commit thread: {0}")]
    Thread(std::io::Error),
}

/// A condition a write must meet (HTTP `If-Match` / `If-None-Match`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    #[default]
    None,
    /// The document exists at exactly this version.
    IfMatch(Version),
    /// The document exists (`If-Match: *`).
    Exists,
    /// The document does not exist (`If-None-Match: *`).
    Absent,
}

impl Precondition {
    /// Whether `doc` meets the precondition.
    pub fn check(&self, doc: &Document) -> Result<(), NodeError> {
        match self {
            Precondition::None => Ok(()),
            Precondition::Exists | Precondition::IfMatch(_) if !doc.exists() => {
                Err(NodeError::Precondition("the document does not exist"))
            }
            Precondition::IfMatch(expected) => {
                let current = doc.version();
                if &current == expected {
                    Ok(())
                } else {
                    Err(NodeError::VersionMismatch { expected: expected.to_string(), current: current.to_string() })
                }
            }
            Precondition::Exists => Ok(()),
            Precondition::Absent if doc.exists() => Err(NodeError::Precondition("the document already exists")),
            Precondition::Absent => Ok(()),
        }
    }
}

/// The outcome of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    pub version: Version,
    /// The logged change, or `None` when the write changed nothing.
    pub change: Option<ChangeId>,
    /// Whether the write brought the document into existence.
    pub created: bool,
}

/// A document as read.
#[derive(Debug, Clone, PartialEq)]
pub struct DocView {
    pub json: Value,
    pub version: Version,
}

/// One entry of a namespace listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DocSummary {
    pub id: String,
    pub version: String,
    pub updated_ms: i64,
    pub changes: u64,
}

/// What `GET /v1/status` reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeStatus {
    pub node_id: String,
    pub name: Option<String>,
    /// `memory` or `rocksdb`.
    #[schema(value_type = String)]
    pub storage: &'static str,
    pub documents: i64,
    /// For each origin node id, the highest change seq held from it contiguously.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub version_vector: VersionVector,
    pub started_ms: i64,
    pub uptime_ms: i64,
    pub namespaces: Vec<String>,
    /// Interactive transactions currently open.
    pub open_transactions: usize,
    /// Connected replication peers.
    pub peers: Vec<PeerInfo>,
}

struct Inner {
    identity: Identity,
    actor: ActorId,
    storage: Arc<dyn Storage>,
    cache: DocCache,
    sequencer: Arc<Sequencer>,
    committer: Mutex<Option<JoinHandle<()>>>,
    namespaces: Namespaces,
    metrics: Arc<Metrics>,
    inflight: Semaphore,
    /// Version-vector entries of other origins (grown by replication).
    remote_vv: Mutex<VersionVector>,
    name: Option<String>,
    started_ms: i64,
    /// `history.enabled`: whether feed events are kept durably for replay.
    history_enabled: bool,
    /// The oldest feed position still stored (raised by retention).
    feed_floor: Arc<std::sync::atomic::AtomicU64>,
    transactions: txn::Transactions,
    /// The origin the strong path's cluster logs its changes under, once this node (a member
    /// of the Raft cluster) knows it: the only origin that may write a strong namespace.
    strong_origin: Mutex<Option<NodeId>>,
    /// What the summary reports beyond the node's own state (see `mesh`).
    mesh: Mutex<mesh::MeshState>,
}

/// A running node. Cheap to clone; all clones share the node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("node_id", self.node_id()).finish()
    }
}

impl Node {
    /// Opens storage and identity as `config` says and starts the committer.
    pub fn open(config: &Config) -> Result<Self, OpenError> {
        let (storage, identity): (Arc<dyn Storage>, Identity) = match config.storage.kind {
            StorageType::Memory => (Arc::new(MemoryStorage::new()), Identity::ephemeral()),
            StorageType::Persistent | StorageType::Distributed => {
                let storage = RocksStorage::open(&RocksOptions {
                    path: config.db_path(),
                    compression: match config.storage.compression {
                        Compression::None => BlockCompression::None,
                        Compression::Gzip => BlockCompression::Zlib,
                        Compression::Zstd => BlockCompression::Zstd,
                        Compression::Lz4 => BlockCompression::Lz4,
                    },
                    write_buffer_bytes: usize::try_from(config.storage.write_buffer_bytes).unwrap_or(usize::MAX),
                })?;
                (Arc::new(storage), Identity::load_or_create(&config.node.data_dir)?)
            }
        };
        Self::open_on(config, storage, identity)
    }

    /// Opens a node over storage and an identity the caller already holds: a restart that
    /// keeps only what `storage` made durable (the simulator restarts in-memory voters so).
    pub fn open_on(config: &Config, storage: Arc<dyn Storage>, identity: Identity) -> Result<Self, OpenError> {
        let namespaces = Namespaces::compile(&config.namespaces).map_err(OpenError::Namespaces)?;
        Self::start(config, storage, identity, namespaces)
    }

    fn start(
        config: &Config,
        storage: Arc<dyn Storage>,
        identity: Identity,
        namespaces: Namespaces,
    ) -> Result<Self, OpenError> {
        let metrics = Arc::new(Metrics::new());
        let (local_seq, remote_vv) = load_version_vector(storage.as_ref(), identity.node_id())?;
        let doc_count = match storage.get(Family::Meta, DOC_COUNT_KEY)? {
            Some(bytes) => {
                i64::from_be_bytes(bytes.try_into().map_err(|_| StorageError::Corrupt("document count".to_string()))?)
            }
            None => 0,
        };
        metrics.documents.set(doc_count);
        let feed_pos = read_u64(storage.as_ref(), FEED_POS_KEY)?;
        let sequencer = Sequencer::new(local_seq, feed_pos, config.notifications.buffer_size);
        let feed_floor = Arc::new(std::sync::atomic::AtomicU64::new(read_u64(storage.as_ref(), FEED_FLOOR_KEY)?));
        let retention = Retention::new(
            config.history.max_size,
            config.history.retention,
            feed_floor.clone(),
            read_u64(storage.as_ref(), &log_floor_key(identity.node_id()))?,
            identity.node_id().clone(),
        );
        let parts = CommitterParts {
            storage: storage.clone(),
            metrics: metrics.clone(),
            local_vv_key: vv_key(identity.node_id()),
            doc_count,
            max_batch: config.storage.group_commit_max_batch,
            retention,
            chain: SealChain::new(last_record_hash(storage.as_ref(), identity.node_id(), local_seq)?),
            signing_key: identity.signing_key(),
        };
        let committer = committer::spawn(sequencer.clone(), parts).map_err(OpenError::Thread)?;
        tracing::info!(node_id = %identity.node_id(), storage = storage.kind(), local_seq, doc_count, "node opened");
        Ok(Self {
            inner: Arc::new(Inner {
                actor: identity.actor_id(),
                identity,
                storage,
                cache: DocCache::new(config.storage.cache_docs),
                sequencer,
                committer: Mutex::new(Some(committer)),
                namespaces,
                metrics,
                inflight: Semaphore::new(config.storage.max_inflight_writes),
                remote_vv: Mutex::new(remote_vv),
                name: config.node.name.clone(),
                started_ms: now_ms(),
                history_enabled: config.history.enabled,
                feed_floor,
                transactions: txn::Transactions::new(&config.concurrency),
                strong_origin: Mutex::new(None),
                mesh: Mutex::new(mesh::MeshState::new(&config.security)),
            }),
        })
    }

    pub fn node_id(&self) -> &NodeId {
        self.inner.identity.node_id()
    }

    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The node's storage (the strong path keeps its families there too).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Whether the node accepts work (not stopping, storage healthy).
    pub fn is_ready(&self) -> bool {
        self.inner.sequencer.durable().failed.is_none() && self.inner.committer.lock().is_some()
    }

    /// Whether `namespace` is strong (writes only through Raft).
    pub fn is_strong_namespace(&self, namespace: &Namespace) -> Result<bool, NodeError> {
        self.inner.namespaces.is_strong(namespace)
    }

    /// Names the origin of the strong path's cluster (set by the strong path once it knows
    /// the cluster): received records under any other origin are then not applied to this
    /// node's strong namespaces (see `remote_apply`).
    pub(crate) fn set_strong_origin(&self, origin: NodeId) {
        *self.inner.strong_origin.lock() = Some(origin);
    }

    // ---- writes ----

    /// Replaces the document's JSON content (creating it if needed).
    pub async fn put(&self, key: &DocKey, body: &Value, pre: &Precondition) -> Result<WriteResult, NodeError> {
        self.put_by(key, body, pre, None).await
    }

    /// [`Node::put`] recording `author` (the API caller) in the change.
    pub async fn put_by(
        &self,
        key: &DocKey,
        body: &Value,
        pre: &Precondition,
        author: Option<Arc<str>>,
    ) -> Result<WriteResult, NodeError> {
        let written_by = author.clone();
        self.write(key, pre, ChangeKind::Put, author, |doc, rules, now, bound| {
            if !body.is_object() {
                return Err(statemesh_protocol::DocError::RootNotObject.into());
            }
            let size = rules.check(&key.namespace, body)?;
            let outcome = cpu_work(size >= CPU_HEAVY_BYTES, || doc.put_by(body, now, written_by.as_deref()))?;
            *bound = Some(size);
            Ok(outcome)
        })
        .await
    }

    /// Applies an RFC 7386 merge patch (creating the document if needed).
    pub async fn patch(&self, key: &DocKey, patch: &Value, pre: &Precondition) -> Result<WriteResult, NodeError> {
        self.patch_by(key, patch, pre, None).await
    }

    /// [`Node::patch`] recording `author` in the change.
    pub async fn patch_by(
        &self,
        key: &DocKey,
        patch: &Value,
        pre: &Precondition,
        author: Option<Arc<str>>,
    ) -> Result<WriteResult, NodeError> {
        let written_by = author.clone();
        self.write(key, pre, ChangeKind::Patch, author, |doc, rules, now, bound| {
            if !patch.is_object() {
                return Err(statemesh_protocol::DocError::RootNotObject.into());
            }
            let mut new_bound = *bound;
            rules.check_patch(&key.namespace, doc, patch, &mut new_bound)?;
            let heavy = new_bound.is_some_and(|bytes| bytes >= CPU_HEAVY_BYTES);
            let outcome = cpu_work(heavy, || doc.merge_patch_by(patch, now, written_by.as_deref()))?;
            *bound = new_bound;
            Ok(outcome)
        })
        .await
    }

    /// Deletes the document (a tombstone change; history is kept).
    pub async fn delete(&self, key: &DocKey, pre: &Precondition) -> Result<WriteResult, NodeError> {
        self.delete_by(key, pre, None).await
    }

    /// [`Node::delete`] recording `author` in the change.
    pub async fn delete_by(
        &self,
        key: &DocKey,
        pre: &Precondition,
        author: Option<Arc<str>>,
    ) -> Result<WriteResult, NodeError> {
        let written_by = author.clone();
        self.write(key, pre, ChangeKind::Delete, author, |doc, _, now, bound| {
            if !doc.exists() {
                return Err(NodeError::NotFound(key.to_string()));
            }
            let outcome = doc.delete_by(now, written_by.as_deref())?;
            *bound = Some(2);
            Ok(outcome)
        })
        .await
    }

    /// Applies raw Automerge bytes as they are.
    pub async fn apply_automerge(
        &self,
        key: &DocKey,
        bytes: &[u8],
        pre: &Precondition,
    ) -> Result<WriteResult, NodeError> {
        // The changes are the client's own, messages included: the node records no author.
        self.write(key, pre, ChangeKind::Automerge, None, |doc, rules, _, bound| {
            let mut size = *bound;
            let outcome = cpu_work(bytes.len() >= CPU_HEAVY_BYTES / 4, || {
                doc.apply_raw(bytes, |candidate| {
                    size = Some(rules.check(&key.namespace, &candidate.to_json())?);
                    Ok::<(), NodeError>(())
                })
            })?;
            *bound = size;
            Ok(outcome)
        })
        .await
    }

    fn ensure_loaded(&self, key: &DocKey, entry: &mut DocEntry) -> Result<(), NodeError> {
        if entry.doc.is_none() {
            let bytes = self.inner.storage.get(Family::Docs, &key.to_storage_key())?;
            let doc = match &bytes {
                Some(bytes) => Document::load(bytes, self.inner.actor.clone())
                    .map_err(|e| StorageError::Corrupt(format!("document {key}: {e}")))?,
                None => Document::new(self.inner.actor.clone()),
            };
            entry.saved_bytes = bytes.as_ref().map_or(0, Vec::len);
            entry.appended_bytes = 0;
            entry.json_bytes_bound = None;
            entry.versions.clear();
            entry.remember_version(self.last_change_pos(key, &doc)?, doc.version());
            entry.doc = Some(doc);
        }
        Ok(())
    }

    /// The feed position of the newest change among the document's heads: from then on the
    /// document has had its current version. Falls back to the durable head when the index
    /// does not know a head (data from before the index existed).
    fn last_change_pos(&self, key: &DocKey, doc: &Document) -> Result<FeedPos, NodeError> {
        let mut newest = 0;
        for head in doc.version().heads() {
            match self.inner.storage.get(Family::DocChanges, &change_index::key(key, head))? {
                Some(bytes) => newest = newest.max(change_index::ChangeRef::decode(&bytes)?.pos),
                None => return Ok(self.inner.sequencer.durable().pos),
            }
        }
        Ok(newest)
    }

    // ---- reads ----

    /// Runs `read` on the document, then waits until what it saw is durable.
    async fn read<T>(
        &self,
        key: &DocKey,
        read: impl FnOnce(&Document) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        self.read_entry(key, |entry| match &entry.doc {
            Some(doc) => read(doc),
            None => Err(NodeError::NotFound(key.to_string())),
        })
        .await
    }

    /// Runs `read` on the loaded cache entry (document and its recent versions), then waits
    /// until what it saw is durable.
    async fn read_entry<T>(
        &self,
        key: &DocKey,
        read: impl FnOnce(&DocEntry) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        self.inner.namespaces.rules(&key.namespace)?;
        let entry = self.inner.cache.entry(key, self.inner.sequencer.durable().pos);
        let (result, seen) = {
            let mut guard = entry.lock();
            self.ensure_loaded(key, &mut guard)?;
            (cpu_work(guard.is_large(), || read(&guard)), guard.last_pos)
        };
        self.inner.sequencer.wait_durable(seen).await?;
        result
    }

    /// The document's current JSON and version; `NotFound` if it does not exist.
    pub async fn get(&self, key: &DocKey) -> Result<DocView, NodeError> {
        self.read(key, |doc| {
            if !doc.exists() {
                return Err(NodeError::NotFound(key.to_string()));
            }
            Ok(DocView { json: doc.to_json(), version: doc.version() })
        })
        .await
    }

    /// The document as it was at `version`.
    pub async fn get_at(&self, key: &DocKey, version: &Version) -> Result<DocView, NodeError> {
        self.read(key, |doc| Ok(DocView { json: doc.to_json_at(version)?, version: version.clone() })).await
    }

    /// Raw changes after `since` (all when `None`) and the current version.
    pub async fn changes_since(
        &self,
        key: &DocKey,
        since: Option<&Version>,
    ) -> Result<(Vec<Vec<u8>>, Version), NodeError> {
        self.read(key, |doc| {
            if doc.change_count() == 0 {
                return Err(NodeError::NotFound(key.to_string()));
            }
            let changes = doc.changes_since(since.unwrap_or(&Version::default()))?;
            Ok((changes, doc.version()))
        })
        .await
    }

    /// Live documents of `namespace` in id order, starting after `after`.
    pub fn list(
        &self,
        namespace: &Namespace,
        after: Option<&DocId>,
        limit: usize,
    ) -> Result<Vec<DocSummary>, NodeError> {
        self.inner.namespaces.rules(namespace)?;
        let prefix = DocKey::namespace_prefix(namespace);
        let mut start = match after {
            Some(after) => key_after(&DocKey::new(namespace.clone(), after.clone()).to_storage_key()),
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        let page = limit.clamp(1, 1000);
        while out.len() < limit {
            let entries = self.inner.storage.scan(Family::DocMeta, &prefix, &start, page)?;
            let exhausted = entries.len() < page;
            for (key, value) in &entries {
                let meta = DocMeta::decode(value)?;
                let Some(doc_key) = DocKey::from_storage_key(key) else {
                    return Err(StorageError::Corrupt("document key".to_string()).into());
                };
                if meta.exists && out.len() < limit {
                    out.push(DocSummary {
                        id: doc_key.doc_id.to_string(),
                        version: meta.version().to_string(),
                        updated_ms: meta.updated_ms,
                        changes: meta.changes,
                    });
                }
            }
            match entries.last() {
                Some((last, _)) if !exhausted => start = key_after(last),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The highest seq of this node's own log that is durable.
    pub fn durable_local_seq(&self) -> statemesh_protocol::change_log::Seq {
        self.inner.sequencer.durable().seq
    }

    /// The node's version vector: durable local seq plus what it holds from other origins.
    pub fn version_vector(&self) -> VersionVector {
        let mut vv = self.inner.remote_vv.lock().clone();
        let local = self.durable_local_seq();
        if local > 0 {
            vv.advance(self.node_id(), local);
        }
        vv
    }

    pub fn status(&self) -> NodeStatus {
        let now = now_ms();
        NodeStatus {
            node_id: self.node_id().to_string(),
            name: self.inner.name.clone(),
            storage: self.inner.storage.kind(),
            documents: self.inner.metrics.documents.get(),
            version_vector: self.version_vector(),
            started_ms: self.inner.started_ms,
            uptime_ms: now - self.inner.started_ms,
            namespaces: self.inner.namespaces.declared().map(str::to_string).collect(),
            open_transactions: self.inner.transactions.open_count(),
            peers: self.peers(),
        }
    }

    /// Refreshes the gauges that are read at scrape time and renders the metrics.
    pub fn render_metrics(&self) -> String {
        let metrics = &self.inner.metrics;
        metrics.storage_size_bytes.set(i64::try_from(self.inner.storage.size_bytes()).unwrap_or(i64::MAX));
        metrics.doc_cache_entries.set(self.inner.cache.len() as i64);
        metrics.render()
    }

    /// Waits for queued writes to become durable, stops the committer and flushes storage.
    /// Returns the storage error that stopped the node, if one did.
    pub async fn shutdown(&self) -> Result<(), StorageError> {
        self.inner.sequencer.stop();
        let handle = self.inner.committer.lock().take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        if let Some(error) = self.inner.sequencer.durable().failed {
            return Err(error);
        }
        let storage = self.inner.storage.clone();
        tokio::task::spawn_blocking(move || storage.flush())
            .await
            .map_err(|e| StorageError::Io(format!("flush task failed: {e}")))??;
        tracing::info!("node stopped cleanly");
        Ok(())
    }

    /// A receiver that fires whenever the durable watermark moves or storage fails.
    pub fn watch_durable(&self) -> tokio::sync::watch::Receiver<committer::Durable> {
        self.inner.sequencer.subscribe()
    }
}

/// A big-endian u64 from the meta family (0 when absent).
fn read_u64(storage: &dyn Storage, key: &[u8]) -> Result<u64, StorageError> {
    match storage.get(Family::Meta, key)? {
        Some(bytes) => Ok(u64::from_be_bytes(
            bytes.try_into().map_err(|_| StorageError::Corrupt(format!("meta {}", String::from_utf8_lossy(key))))?,
        )),
        None => Ok(0),
    }
}

#[cfg(test)]
mod remote_tests;
#[cfg(test)]
mod tests;

/// JSON or stored document bytes from which Automerge work counts as heavy (see
/// [`cpu_work`]).
pub(crate) const CPU_HEAVY_BYTES: usize = 64 * 1024;

/// Runs document work without stalling the async workers that serve every other request,
/// when it is `heavy` (Automerge on a large document or a large input: reconciling a put,
/// applying a patch or raw changes, rendering JSON or history). On a multi-threaded runtime
/// the worker then hands its queued tasks to another thread for the duration
/// (`block_in_place`), which keeps the borrowed state and locks and copies nothing. Light
/// work, most writes and reads, runs inline: the hand-over costs more than it saves there.
/// A current-thread runtime (tests, the simulator) has no other worker to protect.
pub(crate) fn cpu_work<T>(heavy: bool, work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if heavy && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
