//! An in-process transport: strong-path nodes of one process call each other directly.
//!
//! Tests and the simulator run whole clusters in one process with it. Links can be cut in
//! either direction and nodes isolated, to play partitions: a request over a cut link fails
//! as unreachable, and a reply over a cut link is lost (the caller sees a timeout although
//! the receiver acted on the request, as on a real network). Each request is handled in its
//! own task, so a caller that gives up does not cancel the receiver's work halfway.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::network::{RaftTransport, TransportError};
use super::types::NodeInfo;
use super::StrongPath;

#[derive(Default)]
struct Links {
    /// Running nodes by peer id.
    nodes: BTreeMap<String, StrongPath>,
    /// Directed links that carry nothing: `(from, to)`.
    cut: BTreeSet<(String, String)>,
    /// Nodes cut off from everyone, in both directions.
    isolated: BTreeSet<String>,
}

impl Links {
    fn up(&self, from: &str, to: &str) -> bool {
        !self.isolated.contains(from)
            && !self.isolated.contains(to)
            && !self.cut.contains(&(from.to_owned(), to.to_owned()))
    }
}

/// The shared "network" of one in-process cluster.
#[derive(Default)]
pub struct LoopbackNet {
    links: Mutex<Links>,
}

impl LoopbackNet {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The transport `me` sends through.
    pub fn transport(self: &Arc<Self>, me: &NodeInfo) -> Arc<LoopbackTransport> {
        Arc::new(LoopbackTransport { net: self.clone(), me: me.peer_id.clone() })
    }

    /// Makes `node` reachable under its peer id (replacing an earlier incarnation).
    pub fn register(&self, node: StrongPath) {
        self.links.lock().nodes.insert(node.me().peer_id.clone(), node);
    }

    /// Takes a node off the network, as if its process stopped.
    pub fn unregister(&self, peer_id: &str) -> Option<StrongPath> {
        self.links.lock().nodes.remove(peer_id)
    }

    /// Cuts `peer_id` off from every other node, both ways.
    pub fn isolate(&self, peer_id: &str) {
        self.links.lock().isolated.insert(peer_id.to_owned());
    }

    /// Undoes [`LoopbackNet::isolate`].
    pub fn rejoin(&self, peer_id: &str) {
        self.links.lock().isolated.remove(peer_id);
    }

    /// Cuts the link from `from` to `to` (one direction).
    pub fn cut(&self, from: &str, to: &str) {
        self.links.lock().cut.insert((from.to_owned(), to.to_owned()));
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&self, a: &str, b: &str) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Restores every cut link and isolated node.
    pub fn heal_all(&self) {
        let mut links = self.links.lock();
        links.cut.clear();
        links.isolated.clear();
    }

    fn link_up(&self, from: &str, to: &str) -> bool {
        self.links.lock().up(from, to)
    }

    fn route(&self, from: &str, to: &str) -> Result<StrongPath, TransportError> {
        let links = self.links.lock();
        if !links.up(from, to) {
            return Err(TransportError::Unreachable(format!("link {from} → {to} is cut")));
        }
        links.nodes.get(to).cloned().ok_or_else(|| TransportError::Unreachable(format!("{to} is not running")))
    }
}

/// One node's end of a [`LoopbackNet`].
pub struct LoopbackTransport {
    net: Arc<LoopbackNet>,
    me: String,
}

#[async_trait]
impl RaftTransport for LoopbackTransport {
    async fn call(&self, target: &NodeInfo, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, TransportError> {
        let receiver = self.net.route(&self.me, &target.peer_id)?;
        let from = self.me.clone();
        let handling = tokio::spawn(async move { receiver.handle_rpc(&from, &request).await.reply });
        let reply = match tokio::time::timeout(timeout, handling).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(TransportError::Failed(format!("handler of {} failed: {e}", target.peer_id))),
            Err(_) => return Err(TransportError::Timeout(timeout)),
        };
        // The reply travels back over the reverse link, which may have been cut meanwhile.
        if self.net.link_up(&target.peer_id, &self.me) {
            Ok(reply)
        } else {
            Err(TransportError::Timeout(timeout))
        }
    }
}
