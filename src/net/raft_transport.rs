//! Raft RPCs over libp2p: the strong path's transport, on the same connections (and so the
//! same pre-shared key, allowlist and bans) as replication.
//!
//! Outbound calls go to the network task as commands and come back through a oneshot with
//! the reply bytes; each call is bounded by the caller's timeout. Inbound requests are handed
//! to the registered [`RaftHandler`] (the node's strong path once it runs); until one is
//! registered, they go unanswered and the caller sees a failure and retries.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use libp2p::request_response::OutboundFailure;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

use crate::raft::{NodeInfo, RaftTransport, RpcAnswer, StrongPath, TransportError};

/// The Raft protocol: one serialized Raft RPC in, its reply out.
pub const RAFT_PROTOCOL: StreamProtocol = StreamProtocol::new("/statemesh/raft/1");
/// Raft calls waiting for the network task; more make callers wait (bounded).
pub const RAFT_COMMANDS_CAPACITY: usize = 1024;

/// What the network task does for the strong path.
pub enum NetCommand {
    RaftCall {
        peer: PeerId,
        addr: Option<Multiaddr>,
        request: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, TransportError>>,
    },
}

/// Answers inbound Raft requests from the (authenticated) peer `from`.
#[async_trait]
pub trait RaftHandler: Send + Sync + 'static {
    async fn handle(&self, from: PeerId, request: &[u8]) -> RpcAnswer;
}

#[async_trait]
impl RaftHandler for StrongPath {
    async fn handle(&self, from: PeerId, request: &[u8]) -> RpcAnswer {
        self.handle_rpc(&from.to_base58(), request).await
    }
}

/// Where the network task finds the handler once the strong path has started.
pub type HandlerSlot = Arc<OnceLock<Arc<dyn RaftHandler>>>;

/// [`RaftTransport`] over the node's libp2p swarm.
#[derive(Clone)]
pub struct Libp2pRaftTransport {
    commands: mpsc::Sender<NetCommand>,
}

impl Libp2pRaftTransport {
    pub fn new(commands: mpsc::Sender<NetCommand>) -> Self {
        Self { commands }
    }
}

#[async_trait]
impl RaftTransport for Libp2pRaftTransport {
    async fn call(&self, target: &NodeInfo, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, TransportError> {
        let peer = PeerId::from_str(&target.peer_id)
            .map_err(|e| TransportError::Failed(format!("`{}` is not a peer id: {e}", target.peer_id)))?;
        let addr = target.addr.parse::<Multiaddr>().ok();
        let (reply, answer) = oneshot::channel();
        let call = async {
            self.commands
                .send(NetCommand::RaftCall { peer, addr, request, reply })
                .await
                .map_err(|_| TransportError::Unreachable("this node's network has stopped".to_string()))?;
            answer.await.map_err(|_| TransportError::Failed("the network dropped the call".to_string()))?
        };
        tokio::time::timeout(timeout, call).await.map_err(|_| TransportError::Timeout(timeout))?
    }
}

/// How a failed outbound request looks to the strong path: unreachable peers make openraft
/// back off, timeouts may have reached the peer.
pub fn transport_error(error: &OutboundFailure) -> TransportError {
    match error {
        OutboundFailure::DialFailure => TransportError::Unreachable(error.to_string()),
        // The request may have gone out before the connection closed.
        OutboundFailure::ConnectionClosed => TransportError::Lost(error.to_string()),
        OutboundFailure::Timeout => TransportError::Failed(format!("request timed out: {error}")),
        other => TransportError::Failed(other.to_string()),
    }
}
