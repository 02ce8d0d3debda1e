//! The voters of a strong-document run: real `Node`s over memory storage, each running
//! `StrongDocs` (openraft with the document state machine) over one in-process loopback
//! network. A voter can be isolated and rejoined, or crashed and restarted: a restart opens
//! a new `Node` and `StrongDocs` over the same storage and identity, so it keeps exactly
//! what its storage holds (Raft vote, log, applied state and documents) and nothing in
//! memory. RPCs between voters take a seeded delay each way (`latency.rs`).
//!
//! A crash stops the node's committer after the writes already queued to it (memory storage
//! has no unsynced tail, so this loses what a process crash loses: requests in flight).

use std::sync::Arc;

use parking_lot::Mutex;
use statemesh::config::{Config, NamespaceConsistency, NamespacePolicy};
use statemesh::identity::Identity;
use statemesh::node::Node;
use statemesh::raft::{LoopbackNet, NodeInfo};
use statemesh::storage::Storage;
use statemesh::strong::StrongDocs;

use super::latency::Delayed;

/// The namespace every document of the run lives in (declared strong).
pub const NAMESPACE: &str = "reg";

fn node_config() -> Config {
    let mut config = statemesh::testkit::member_config(None);
    config.distributed.enabled = true;
    config.namespaces.declared.insert(
        NAMESPACE.to_owned(),
        NamespacePolicy { consistency: NamespaceConsistency::Strong, ..NamespacePolicy::default() },
    );
    config
}

pub fn info(i: usize) -> NodeInfo {
    NodeInfo::new(format!("voter-{i}"), format!("/memory/{i}"))
}

/// What survives a crash of one voter.
struct Durable {
    storage: Arc<dyn Storage>,
    identity: Identity,
}

struct Voter {
    durable: Durable,
    /// The running incarnation; `None` while crashed.
    running: Mutex<Option<(Node, StrongDocs)>>,
    /// Restarts so far (seeds each incarnation's network delays).
    incarnation: Mutex<u64>,
}

/// The voters and their network.
pub struct Cluster {
    pub net: Arc<LoopbackNet>,
    config: Config,
    voters: Vec<Voter>,
    seed: u64,
    /// One-way RPC delay range (ms).
    latency_ms: [u64; 2],
}

impl Cluster {
    /// Starts `count` voters whose RPCs take `latency_ms` each way, and forms them into one
    /// Raft cluster.
    pub async fn start(count: usize, seed: u64, latency_ms: [u64; 2]) -> Result<Self, String> {
        let mut cluster = Self { net: LoopbackNet::new(), config: node_config(), voters: Vec::new(), seed, latency_ms };
        for i in 0..count {
            let node = Node::open(&cluster.config).map_err(|e| format!("voter {i} does not open: {e}"))?;
            let durable = Durable { storage: node.storage().clone(), identity: node.identity().clone() };
            let docs = cluster.start_docs(i, 0, node.clone()).await?;
            cluster.voters.push(Voter { durable, running: Mutex::new(Some((node, docs))), incarnation: Mutex::new(0) });
        }
        let all: Vec<NodeInfo> = (0..count).map(info).collect();
        for i in 0..count {
            if let Some(docs) = cluster.docs(i) {
                docs.path().initialize(all.clone()).await.map_err(|e| format!("initialize voter {i}: {e}"))?;
            }
        }
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.voters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// Voter `i`'s running strong path and node (`None` while it is crashed).
    pub fn running(&self, i: usize) -> Option<(Node, StrongDocs)> {
        self.voters[i].running.lock().clone()
    }

    pub fn docs(&self, i: usize) -> Option<StrongDocs> {
        self.running(i).map(|(_, docs)| docs)
    }

    /// Stops voter `i` as a crash would: off the network, Raft stopped, the node closed.
    pub async fn crash(&self, i: usize) -> Result<(), String> {
        let Some((node, docs)) = self.voters[i].running.lock().take() else { return Ok(()) };
        self.net.unregister(&info(i).peer_id);
        let _ = docs.shutdown().await;
        node.shutdown().await.map_err(|e| format!("voter {i} does not stop: {e}"))
    }

    /// Restarts a crashed voter `i` from its storage alone.
    pub async fn restart(&self, i: usize) -> Result<(), String> {
        if self.voters[i].running.lock().is_some() {
            return Ok(());
        }
        let durable = &self.voters[i].durable;
        let node = Node::open_on(&self.config, durable.storage.clone(), durable.identity.clone())
            .map_err(|e| format!("voter {i} does not reopen: {e}"))?;
        let incarnation = {
            let mut incarnation = self.voters[i].incarnation.lock();
            *incarnation += 1;
            *incarnation
        };
        let docs = self.start_docs(i, incarnation, node.clone()).await?;
        *self.voters[i].running.lock() = Some((node, docs));
        Ok(())
    }

    /// Stops every running voter.
    pub async fn shutdown(&self) {
        for i in 0..self.voters.len() {
            let _ = self.crash(i).await;
        }
    }

    async fn start_docs(&self, i: usize, incarnation: u64, node: Node) -> Result<StrongDocs, String> {
        let salt = self.seed ^ ((i as u64 + 1) << 32) ^ incarnation;
        let transport = Arc::new(Delayed::new(self.net.transport(&info(i)), salt, self.latency_ms));
        let docs = StrongDocs::start_with(node, statemesh::testkit::quick_raft_settings(), info(i), transport)
            .await
            .map_err(|e| format!("voter {i}'s strong path does not start: {e}"))?;
        self.net.register(docs.path().clone());
        Ok(docs)
    }
}
