//! Raft's RPCs over a transport the node provides, and their wire encoding.
//!
//! openraft asks for a client per peer and sends it append-entries, vote and install-snapshot
//! requests. Each is wrapped in our own [`RaftRpc`] enum, addressed to the target's Raft id
//! (so a message that reaches the wrong node is refused rather than acted on), encoded as a
//! version byte followed by bincode, and handed to a [`RaftTransport`] with a deadline. The
//! real transport is libp2p request-response, provided by the networking module; tests use
//! the in-process `loopback`.
//!
//! Failure mapping matters for liveness: an unreachable peer is reported as openraft's
//! `Unreachable`, which makes the replication task back off instead of spinning, while a
//! timeout or a garbled reply is a `Network` error that is retried at the next heartbeat.

use std::time::Duration;

use async_trait::async_trait;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{AnyError, RPCTypes};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::types::{LogId, NodeInfo, RaftNodeId, TypeConfig};

/// Why a transport call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection to the peer could be made (down, partitioned, unknown address): the
    /// request certainly never reached it.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The connection closed before the reply came: the request may have reached the peer,
    /// which may have acted on it.
    #[error("connection lost: {0}")]
    Lost(String),
    /// The request went out but no reply arrived in time; the peer may have acted on it.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// Anything else the transport saw go wrong.
    #[error("transport failed: {0}")]
    Failed(String),
}

/// Carries one request to a peer and brings back its reply. The networking module implements
/// it over libp2p; the remote side passes the bytes to `StrongPath::handle_rpc`.
#[async_trait]
pub trait RaftTransport: Send + Sync + 'static {
    /// Sends `request` to `target` and waits at most `timeout` for the reply bytes.
    async fn call(&self, target: &NodeInfo, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, TransportError>;
}

/// Version of the wire encoding below; a peer speaking another is refused.
const WIRE_VERSION: u8 = 1;

/// A request between strong-path nodes.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum RaftRpc {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<RaftNodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A follower asks the leader for a read index (Raft §6.4) to serve a linearizable read
    /// locally once it has applied that far.
    ReadIndex,
    /// A member hands the leader a request of the node's own (see `forward.rs`).
    Forward(Vec<u8>),
}

/// A request and the Raft id it is meant for.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct Envelope {
    pub target: RaftNodeId,
    pub rpc: RaftRpc,
}

/// Why the leader would not give out a read index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ReadIndexRefusal {
    NotLeader { leader: Option<NodeInfo> },
    Unavailable { reason: String },
}

/// The reply to a [`RaftRpc`].
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum RaftReply {
    AppendEntries(Result<AppendEntriesResponse<RaftNodeId>, RaftError<RaftNodeId>>),
    Vote(Result<VoteResponse<RaftNodeId>, RaftError<RaftNodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<RaftNodeId>, RaftError<RaftNodeId, InstallSnapshotError>>),
    ReadIndex(Result<Option<LogId>, ReadIndexRefusal>),
    /// The forward handler's answer, or why the request was not handled.
    Forwarded(Result<Vec<u8>, String>),
    /// The message could not be acted on at all (wrong target, bad encoding, stopped node).
    Refused(String),
}

/// Why bytes could not be decoded into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("unknown wire version {0}")]
    Version(u8),
    #[error("empty message")]
    Empty,
    #[error("undecodable message: {0}")]
    Decode(String),
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![WIRE_VERSION];
    // Encoding plain data into a Vec cannot fail.
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard()).expect("raft message encodes");
    out
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], max_bytes: usize) -> Result<T, WireError> {
    if bytes.len() > max_bytes {
        return Err(WireError::TooLarge { size: bytes.len(), limit: max_bytes });
    }
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::Version(version));
    }
    // `max_bytes` is the configured message limit (at most 64 MiB, which covers a snapshot
    // chunk of half of it with room to spare); within it, what a length prefix may claim
    // follows the bytes that actually arrived.
    statemesh_protocol::bounded::decode(body, max_bytes).map_err(|e| WireError::Decode(e.to_string()))
}

/// Decodes a request as [`super::StrongPath::handle_rpc`] does, and says which Raft node it is
/// addressed to. Public so that the fuzzer drives exactly the node's decoding path.
pub fn decode_request(bytes: &[u8], max_rpc_bytes: usize) -> Result<RaftNodeId, String> {
    decode::<Envelope>(bytes, max_rpc_bytes).map(|envelope| envelope.target).map_err(|e| e.to_string())
}

/// Decodes a reply as the sending side does; public for the same reason.
pub fn decode_reply(bytes: &[u8], max_rpc_bytes: usize) -> Result<(), String> {
    decode::<RaftReply>(bytes, max_rpc_bytes).map(drop).map_err(|e| e.to_string())
}

/// Real encodings of every kind of request and of a few replies, for the fuzzer's seed corpus:
/// mutations of real messages reach far deeper into the decoder than random bytes do.
#[doc(hidden)]
pub fn sample_encodings() -> Vec<Vec<u8>> {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::{CommittedLeaderId, EntryPayload, Membership};

    use super::types::{Command, Entry, SnapshotMeta, StoredMembership, Vote};

    let log_id = |term, index| LogId::new(CommittedLeaderId::new(term, 1), index);
    let node = NodeInfo::new("12D3KooWPeerOne", "/ip4/10.0.0.1/tcp/7000");
    let members: BTreeMap<RaftNodeId, NodeInfo> = [(1, node.clone())].into_iter().collect();
    let membership = Membership::new(vec![BTreeSet::from([1])], members);
    let entries = vec![
        Entry { log_id: log_id(2, 5), payload: EntryPayload::Blank },
        Entry { log_id: log_id(2, 6), payload: EntryPayload::Normal(Command { kind: 1, payload: vec![1, 2, 3, 4] }) },
        Entry { log_id: log_id(2, 7), payload: EntryPayload::Membership(membership.clone()) },
    ];
    let vote = Vote::new_committed(2, 1);
    let requests = [
        RaftRpc::AppendEntries(AppendEntriesRequest {
            vote,
            prev_log_id: Some(log_id(2, 4)),
            entries,
            leader_commit: Some(log_id(2, 4)),
        }),
        RaftRpc::Vote(VoteRequest::new(Vote::new(3, 1), Some(log_id(2, 7)))),
        RaftRpc::InstallSnapshot(InstallSnapshotRequest {
            vote,
            meta: SnapshotMeta {
                last_log_id: Some(log_id(2, 7)),
                last_membership: StoredMembership::new(Some(log_id(2, 7)), membership),
                snapshot_id: "2-7-1".to_owned(),
            },
            offset: 0,
            data: vec![7; 64],
            done: true,
        }),
        RaftRpc::ReadIndex,
        RaftRpc::Forward(vec![1, 0, 5]),
    ];
    let mut out: Vec<Vec<u8>> = requests.into_iter().map(|rpc| encode(&Envelope { target: 1, rpc })).collect();
    out.push(encode(&RaftReply::ReadIndex(Ok(Some(log_id(2, 7))))));
    out.push(encode(&RaftReply::Forwarded(Ok(vec![1, 2]))));
    out.push(encode(&RaftReply::Refused("wrong target".to_owned())));
    out
}

/// Creates openraft's per-peer clients.
pub(crate) struct NetworkFactory {
    pub me: RaftNodeId,
    pub transport: std::sync::Arc<dyn RaftTransport>,
    pub max_rpc_bytes: usize,
    /// Longest pause between attempts to reach an unreachable peer.
    pub backoff_max: Duration,
    pub backoff_min: Duration,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: RaftNodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            me: self.me,
            target,
            node: node.clone(),
            transport: self.transport.clone(),
            max_rpc_bytes: self.max_rpc_bytes,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
        }
    }
}

/// Sends Raft RPCs to one peer.
pub(crate) struct PeerClient {
    me: RaftNodeId,
    target: RaftNodeId,
    node: NodeInfo,
    transport: std::sync::Arc<dyn RaftTransport>,
    max_rpc_bytes: usize,
    backoff_min: Duration,
    backoff_max: Duration,
}

/// A failed exchange, before it is typed for a particular RPC.
enum CallFailure {
    /// Never sent.
    Unreachable(TransportError),
    /// Maybe sent; for openraft as good as unreachable (it backs off the same way).
    Lost(TransportError),
    Timeout(Duration),
    Network(String),
}

impl CallFailure {
    fn into_rpc_error<E: std::error::Error>(
        self,
        action: RPCTypes,
        me: RaftNodeId,
        target: RaftNodeId,
    ) -> RPCError<RaftNodeId, NodeInfo, E> {
        match self {
            CallFailure::Unreachable(e) | CallFailure::Lost(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallFailure::Timeout(timeout) => RPCError::Timeout(Timeout { action, id: me, target, timeout }),
            CallFailure::Network(reason) => RPCError::Network(NetworkError::new(&AnyError::error(reason))),
        }
    }
}

/// Sends one encoded request and decodes the reply; shared by the Raft RPCs and read-index.
pub(crate) async fn exchange(
    transport: &dyn RaftTransport,
    target: &NodeInfo,
    request: Vec<u8>,
    timeout: Duration,
    max_rpc_bytes: usize,
) -> Result<RaftReply, CallFailureView> {
    let reply = match transport.call(target, request, timeout).await {
        Ok(reply) => reply,
        Err(e @ TransportError::Unreachable(_)) => return Err(CallFailureView(CallFailure::Unreachable(e))),
        Err(e @ TransportError::Lost(_)) => return Err(CallFailureView(CallFailure::Lost(e))),
        Err(TransportError::Timeout(after)) => return Err(CallFailureView(CallFailure::Timeout(after))),
        Err(e @ TransportError::Failed(_)) => return Err(CallFailureView(CallFailure::Network(e.to_string()))),
    };
    match decode::<RaftReply>(&reply, max_rpc_bytes) {
        Ok(RaftReply::Refused(reason)) => Err(CallFailureView(CallFailure::Network(format!("peer refused: {reason}")))),
        Ok(reply) => Ok(reply),
        Err(e) => Err(CallFailureView(CallFailure::Network(e.to_string()))),
    }
}

/// A failed exchange as seen outside this module: its description, and whether the request
/// certainly never reached the peer.
pub(crate) struct CallFailureView(CallFailure);

impl CallFailureView {
    pub(crate) fn never_sent(&self) -> bool {
        matches!(self.0, CallFailure::Unreachable(_))
    }
}

impl std::fmt::Display for CallFailureView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            CallFailure::Unreachable(e) | CallFailure::Lost(e) => write!(f, "{e}"),
            CallFailure::Timeout(after) => write!(f, "no reply within {after:?}"),
            CallFailure::Network(reason) => write!(f, "{reason}"),
        }
    }
}

impl PeerClient {
    /// Encodes `rpc` for this peer; a request over the size limit is refused here, with a
    /// hint to split when it is a batch of entries.
    // openraft's RPC error is large, and its network trait returns it as it is.
    #[allow(clippy::result_large_err)]
    fn encode<E: std::error::Error>(
        &self,
        rpc: RaftRpc,
        action: RPCTypes,
    ) -> Result<Vec<u8>, RPCError<RaftNodeId, NodeInfo, E>> {
        let entries = match &rpc {
            RaftRpc::AppendEntries(request) => request.entries.len() as u64,
            _ => 0,
        };
        let request = encode(&Envelope { target: self.target, rpc });
        if request.len() <= self.max_rpc_bytes {
            return Ok(request);
        }
        if entries > 1 {
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2)));
        }
        let reason = format!("{action} request of {} bytes exceeds {}", request.len(), self.max_rpc_bytes);
        Err(RPCError::Network(NetworkError::new(&AnyError::error(reason))))
    }

    async fn call<E: std::error::Error>(
        &self,
        rpc: RaftRpc,
        action: RPCTypes,
        timeout: Duration,
    ) -> Result<RaftReply, RPCError<RaftNodeId, NodeInfo, E>> {
        let request = self.encode(rpc, action)?;
        exchange(self.transport.as_ref(), &self.node, request, timeout, self.max_rpc_bytes)
            .await
            .map_err(|failure| failure.0.into_rpc_error(action, self.me, self.target))
    }

    fn unexpected<E: std::error::Error>(&self, action: RPCTypes) -> RPCError<RaftNodeId, NodeInfo, E> {
        RPCError::Network(NetworkError::new(&AnyError::error(format!("peer answered {action} with another reply"))))
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<RaftNodeId, NodeInfo, E> {
        RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<RaftNodeId>, RPCError<RaftNodeId, NodeInfo, RaftError<RaftNodeId>>> {
        match self.call(RaftRpc::AppendEntries(rpc), RPCTypes::AppendEntries, option.hard_ttl()).await? {
            RaftReply::AppendEntries(Ok(response)) => Ok(response),
            RaftReply::AppendEntries(Err(e)) => Err(self.remote(e)),
            _ => Err(self.unexpected(RPCTypes::AppendEntries)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<RaftNodeId>,
        RPCError<RaftNodeId, NodeInfo, RaftError<RaftNodeId, InstallSnapshotError>>,
    > {
        match self.call(RaftRpc::InstallSnapshot(rpc), RPCTypes::InstallSnapshot, option.hard_ttl()).await? {
            RaftReply::InstallSnapshot(Ok(response)) => Ok(response),
            RaftReply::InstallSnapshot(Err(e)) => Err(self.remote(e)),
            _ => Err(self.unexpected(RPCTypes::InstallSnapshot)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftNodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftNodeId>, RPCError<RaftNodeId, NodeInfo, RaftError<RaftNodeId>>> {
        match self.call(RaftRpc::Vote(rpc), RPCTypes::Vote, option.hard_ttl()).await? {
            RaftReply::Vote(Ok(response)) => Ok(response),
            RaftReply::Vote(Err(e)) => Err(self.remote(e)),
            _ => Err(self.unexpected(RPCTypes::Vote)),
        }
    }

    fn backoff(&self) -> Backoff {
        // Doubling pauses: a peer that is briefly away is retried soon, one that is gone
        // costs little.
        let (min, max) = (self.backoff_min, self.backoff_max);
        Backoff::new(std::iter::successors(Some(min), move |last| Some((*last * 2).min(max))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_refuses_oversized_foreign_and_garbled_messages() {
        let bytes = encode(&Envelope { target: 7, rpc: RaftRpc::ReadIndex });
        let envelope: Envelope = decode(&bytes, 1024).expect("round trip");
        assert_eq!(envelope.target, 7);
        assert!(matches!(decode::<Envelope>(&bytes, 2), Err(WireError::TooLarge { .. })));
        let mut foreign = bytes.clone();
        foreign[0] = 99;
        assert!(matches!(decode::<Envelope>(&foreign, 1024), Err(WireError::Version(99))));
        assert!(matches!(decode::<Envelope>(&[], 1024), Err(WireError::Empty)));
        assert!(matches!(decode::<Envelope>(&[WIRE_VERSION, 200, 1, 2], 1024), Err(WireError::Decode(_))));
    }

    #[test]
    fn a_forward_claiming_a_terabyte_is_refused_without_allocating_it() {
        // Version, target 7, `Forward` (variant 4), then a byte buffer claiming 2^40 bytes:
        // thirteen bytes. The old fixed 256 MiB limit let claims up to that through.
        for claimed in [1u64 << 40, 200 << 20] {
            let mut hostile = vec![WIRE_VERSION, 7, 4, 0xfd];
            hostile.extend_from_slice(&claimed.to_le_bytes());
            assert!(matches!(decode::<Envelope>(&hostile, 16 << 20), Err(WireError::Decode(_))));
        }
        // A legitimate forward still decodes.
        let forward = encode(&Envelope { target: 7, rpc: RaftRpc::Forward(vec![5; 100_000]) });
        let decoded: Envelope = decode(&forward, 16 << 20).expect("decodes");
        assert!(matches!(decoded.rpc, RaftRpc::Forward(bytes) if bytes.len() == 100_000));
    }
}
