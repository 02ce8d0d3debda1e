//! Forwarding: a member that does not lead hands a request to the leader over the Raft
//! transport and relays the answer.
//!
//! Only the leader may propose, but a client may reach any member (a learner near it, a voter
//! behind a load balancer). Rather than redirecting clients, the member passes the request on:
//! the bytes are the node's own (this module never looks inside them), carried as one more
//! Raft RPC so they share the transport's admission rules, limits and timeouts. The leader
//! answers with its [`ForwardHandler`]; a leader that has just stepped down refuses, and the
//! caller learns the new leader from its next [`StrongPath::route`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::network::{self, Envelope, RaftReply, RaftRpc};
use super::{LeaderView, NodeInfo, StrongError, StrongPath};

/// Extra time a forwarding member waits beyond the leader's own request timeout, so the
/// leader's answer (even a timeout) arrives before the member gives up.
const FORWARD_MARGIN: Duration = Duration::from_secs(1);

/// Handles the requests other members forward to this node while it leads.
#[async_trait]
pub trait ForwardHandler: Send + Sync + 'static {
    /// Executes `request` (as encoded by the forwarding member) and returns the encoded
    /// answer, or why it could not be handled at all.
    async fn handle_forwarded(&self, request: Vec<u8>) -> Result<Vec<u8>, String>;
}

/// Where a request for the leader should go, as this node sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This node leads (and a quorum acknowledged it recently): handle it here.
    Local,
    /// Another member leads: forward it there.
    Leader(NodeInfo),
}

impl StrongPath {
    /// Installs the handler for forwarded requests. Only the first call takes effect.
    pub fn set_forward_handler(&self, handler: Arc<dyn ForwardHandler>) {
        let _ = self.inner.forward_handler.set(handler);
    }

    /// Where a request for the leader should go. Waits (up to the request timeout) while no
    /// leader is known; fails with [`StrongError::Unavailable`] if none emerges.
    pub async fn route(&self) -> Result<Route, StrongError> {
        match self.leader_view(self.deadline()).await? {
            LeaderView::Me => Ok(Route::Local),
            LeaderView::Other(Some(leader)) => Ok(Route::Leader(leader)),
            LeaderView::Other(None) => {
                Err(StrongError::Unavailable { reason: "the leader's address is not known yet".to_owned() })
            }
        }
    }

    /// Sends `request` to `leader`'s forward handler and returns its answer. A transport
    /// failure is [`StrongError::Indeterminate`]: the leader may have acted on the request.
    pub async fn forward(&self, leader: &NodeInfo, request: Vec<u8>) -> Result<Vec<u8>, StrongError> {
        let envelope = network::encode(&Envelope { target: leader.raft_id(), rpc: RaftRpc::Forward(request) });
        let timeout = self.inner.settings.request_timeout + FORWARD_MARGIN;
        let started = Instant::now();
        let reply =
            network::exchange(self.inner.transport.as_ref(), leader, envelope, timeout, self.inner.max_rpc_bytes)
                .await
                .map_err(|e| {
                    if e.never_sent() {
                        StrongError::Unavailable { reason: format!("the leader {leader} is unreachable: {e}") }
                    } else {
                        StrongError::Indeterminate {
                            reason: format!(
                                "forwarded to the leader {leader}, no answer after {:?}: {e}",
                                started.elapsed()
                            ),
                        }
                    }
                })?;
        match reply {
            RaftReply::Forwarded(Ok(answer)) => Ok(answer),
            RaftReply::Forwarded(Err(reason)) => Err(StrongError::Unavailable {
                reason: format!("the leader {leader} did not take the request: {reason}"),
            }),
            _ => Err(StrongError::Unavailable {
                reason: "the leader answered a forwarded request with another reply".to_owned(),
            }),
        }
    }

    /// The leader's side of [`StrongPath::forward`].
    pub(super) async fn serve_forwarded(&self, request: Vec<u8>) -> Result<Vec<u8>, String> {
        let Some(handler) = self.inner.forward_handler.get() else {
            return Err("this node does not take forwarded requests".to_owned());
        };
        handler.handle_forwarded(request).await
    }
}
