//! The event loop: turns libp2p events and storage completions into replica inputs, and the
//! replica's effects into network and storage work.
//!
//! One task owns the swarm and the sans-IO [`Replica`]; storage work (reading log pages,
//! applying received records) runs on blocking threads and reports back through a bounded
//! channel. Received records are applied one batch at a time: whatever arrives while a batch
//! is being stored is coalesced into the next one, so a busy document pays Automerge's
//! per-call cost once per batch rather than once per change.

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{gossipsub, mdns, ping, Multiaddr, PeerId, Swarm};
use rand::rngs::StdRng;
use statemesh_protocol::replica::{Effect, Input, Replica};
use statemesh_protocol::wire::{self, Gossip, Message, WireLimits};
use statemesh_protocol::{ChangeId, ChangeRecord, NodeId, VersionVector};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::admission::Offenders;
use super::behaviour::{Behaviour, BehaviourEvent, STATUS_REQUEST};
use super::dialer::{AddressBook, Dialer};
use super::peers::PeerTable;
use super::raft_transport::{transport_error, HandlerSlot, NetCommand};
use crate::identity::node_id_of as node_id;
use crate::metrics::{Metrics, PeerStateLabels};
use crate::node::{DocsPage, LogPage, Node, NodeError, NodeSummary, RemoteApply};
use crate::raft::{RpcAnswer, TransportError};

/// Housekeeping (redials, bans, the status view) runs at least this often.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);
/// Anti-entropy requests from one peer waiting for their page; more are refused.
const PENDING_RESPONSES_PER_PEER_MAX: usize = 4;
const COMPLETIONS_CAPACITY: usize = 256;
/// Inbound Raft requests handled at once.
const RAFT_INFLIGHT_MAX: usize = 256;
/// How often each connected peer is asked for its summary (the mesh view's freshness).
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Storage work finished on a blocking thread.
enum Completion {
    Applied { sources: Vec<(ChangeId, NodeId)>, result: Result<RemoteApply, NodeError> },
    LogRead { peer: NodeId, result: Result<LogPage, NodeError> },
    DocsRead { peer: NodeId, result: Result<DocsPage, NodeError> },
    DocsMerged { peer: NodeId, result: Result<(), NodeError> },
    RaftAnswered { peer: PeerId, channel: ResponseChannel<Vec<u8>>, answer: RpcAnswer },
}

/// Which kind of request an inbound stream carried, so each response goes back on a stream
/// of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RequestKind {
    Sync,
    State,
}

pub struct DriverParts {
    pub node: Node,
    pub swarm: Swarm<Behaviour>,
    pub replica: Replica,
    pub rng: StdRng,
    pub topic: gossipsub::IdentTopic,
    pub wire_limits: WireLimits,
    /// Bytes of records per anti-entropy page.
    pub log_page_bytes: usize,
    /// Bytes of documents per state-transfer page.
    pub docs_page_bytes: usize,
    pub gossip_window: Duration,
    pub dialer: Dialer,
    pub commands: mpsc::Receiver<NetCommand>,
    pub raft_handler: HandlerSlot,
    /// Taken before the replica read the node's version vector, so no commit falls between.
    pub local_records: broadcast::Receiver<Arc<ChangeRecord>>,
    /// Records the strong path stored, likewise taken before the version vector was read.
    pub stored_records: broadcast::Receiver<Arc<Vec<ChangeId>>>,
    /// Where who answered at each bootstrap address is published.
    pub address_book: watch::Sender<AddressBook>,
    /// The addresses this node listens on so far (without `/p2p/`).
    pub own_addrs: Vec<Multiaddr>,
}

pub struct Driver {
    node: Node,
    metrics: Arc<Metrics>,
    swarm: Swarm<Behaviour>,
    replica: Replica,
    rng: StdRng,
    started: Instant,
    topic: gossipsub::IdentTopic,
    wire_limits: WireLimits,
    log_page_bytes: usize,
    docs_page_bytes: usize,
    peers: PeerTable,
    dialer: Dialer,
    offenders: Offenders,
    responders: HashMap<(PeerId, RequestKind), VecDeque<ResponseChannel<Vec<u8>>>>,
    /// Anti-entropy requests in flight (each ends in exactly one response or failure event),
    /// so a failed one can be reported to the replica.
    sync_requests: HashSet<request_response::OutboundRequestId>,
    /// Received records waiting for the batch in flight to finish, with who sent them.
    apply_queue: Vec<(NodeId, ChangeRecord)>,
    applying: bool,
    completions_tx: mpsc::Sender<Completion>,
    completions_rx: mpsc::Receiver<Completion>,
    local_records: Option<broadcast::Receiver<Arc<ChangeRecord>>>,
    stored_records: Option<broadcast::Receiver<Arc<Vec<ChangeId>>>>,
    address_book: watch::Sender<AddressBook>,
    own_addrs: Vec<Multiaddr>,
    gossip_buffer: Vec<ChangeRecord>,
    gossip_window: Duration,
    gossip_due: Option<Instant>,
    replica_timer: Instant,
    commands: mpsc::Receiver<NetCommand>,
    raft_handler: HandlerSlot,
    raft_calls: HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<Vec<u8>, TransportError>>>,
    /// Inbound Raft requests being handled; beyond the limit they go unanswered.
    raft_inflight: Arc<tokio::sync::Semaphore>,
    /// Inputs refused from peers so far (to tell whether handling a message refused any).
    refusals: u64,
    /// When connected peers are next asked for their summaries.
    next_status_round: Instant,
}

impl Driver {
    pub fn new(parts: DriverParts) -> Self {
        let (completions_tx, completions_rx) = mpsc::channel(COMPLETIONS_CAPACITY);
        let started = Instant::now();
        Self {
            metrics: parts.node.metrics().clone(),
            local_records: Some(parts.local_records),
            stored_records: Some(parts.stored_records),
            address_book: parts.address_book,
            own_addrs: parts.own_addrs,
            node: parts.node,
            swarm: parts.swarm,
            replica: parts.replica,
            rng: parts.rng,
            started,
            topic: parts.topic,
            wire_limits: parts.wire_limits,
            log_page_bytes: parts.log_page_bytes,
            docs_page_bytes: parts.docs_page_bytes,
            peers: PeerTable::default(),
            dialer: parts.dialer,
            offenders: Offenders::default(),
            responders: HashMap::new(),
            sync_requests: HashSet::new(),
            apply_queue: Vec::new(),
            applying: false,
            completions_tx,
            completions_rx,
            gossip_buffer: Vec::new(),
            gossip_window: parts.gossip_window,
            gossip_due: None,
            replica_timer: started,
            commands: parts.commands,
            raft_handler: parts.raft_handler,
            raft_calls: HashMap::new(),
            raft_inflight: Arc::new(tokio::sync::Semaphore::new(RAFT_INFLIGHT_MAX)),
            refusals: 0,
            next_status_round: started,
        }
    }

    /// Runs until `stop` changes (or its sender is dropped).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        self.housekeeping();
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING_EVERY;
        loop {
            let timer = self.replica_timer.min(next_housekeeping);
            let gossip_due = self.gossip_due;
            tokio::select! {
                _ = stop.changed() => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(done) = self.completions_rx.recv() => self.on_completion(done),
                Some(command) = self.commands.recv() => self.on_command(command),
                record = recv_local(&mut self.local_records) => self.on_local_record(record),
                stored = recv_local(&mut self.stored_records) => self.on_stored_records(stored),
                _ = tokio::time::sleep_until(gossip_due.unwrap_or(timer).into()), if gossip_due.is_some() => {
                    self.flush_gossip();
                }
                _ = tokio::time::sleep_until(timer.into()) => {
                    let now = Instant::now();
                    if now >= self.replica_timer {
                        // Re-armed by the replica's SetTimer effect.
                        self.replica_timer = now + HOUSEKEEPING_EVERY;
                        self.input(Input::Tick);
                    }
                    if now >= next_housekeeping {
                        next_housekeeping = now + HOUSEKEEPING_EVERY;
                        self.housekeeping();
                    }
                }
            }
        }
        tracing::info!("replication stopped");
    }

    fn publish_address_book(&self) {
        let book = self.dialer.book(&self.own_addrs);
        self.address_book.send_if_modified(|current| {
            let changed = *current != book;
            *current = book;
            changed
        });
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn input(&mut self, input: Input) {
        let now = self.now_ms();
        let effects = self.replica.handle(now, &mut self.rng, input);
        for effect in effects {
            self.execute(effect);
        }
    }

    /// Hands a message that may carry records to the replica, after telling it how far this
    /// node's own log reaches. Peers fetch this node's records from its log as soon as they
    /// are durable, while the replica hears of them only when their gossip is flushed; a
    /// peer relaying them back before then would otherwise look like one claiming seqs this
    /// node never wrote, and enough of those get an honest peer banned.
    fn received(&mut self, from: NodeId, message: Message) {
        self.input(Input::LocalDurable(self.node.durable_local_seq()));
        self.input(Input::Received { from, message });
    }

    fn execute(&mut self, effect: Effect) {
        match effect {
            Effect::Send { to, message } => self.send(&to, message),
            Effect::Broadcast(Message::Gossip(gossip)) => self.publish(gossip.records),
            Effect::Broadcast(other) => tracing::debug!(kind = other.kind(), "only gossip is broadcast"),
            Effect::ReadLog { for_peer, have, max_records } => self.read_log(for_peer, have, max_records),
            Effect::Apply { from, records } => {
                self.apply_queue.extend(records.into_iter().map(|r| (from.clone(), r)));
                self.start_apply();
            }
            Effect::SetTimer { at_ms } => {
                let at = self.started + Duration::from_millis(u64::try_from(at_ms).unwrap_or(0));
                self.replica_timer = at;
            }
            Effect::Reject { from, reason } => self.offence(&from, &reason),
            Effect::ReadDocs { for_peer, after, max_docs } => {
                let (node, done, page_bytes) = (self.node.clone(), self.completions_tx.clone(), self.docs_page_bytes);
                tokio::spawn(async move {
                    let result = node.read_docs(after, max_docs, page_bytes).await;
                    let _ = done.send(Completion::DocsRead { peer: for_peer, result }).await;
                });
            }
            Effect::MergeDocs { from, docs, complete, tips, proofs } => {
                tracing::info!(peer = %from, docs = docs.len(), last = complete.is_some(), "merging transferred documents");
                let (node, done) = (self.node.clone(), self.completions_tx.clone());
                tokio::spawn(async move {
                    let result = node.merge_docs(from.clone(), docs, complete, tips, proofs).await;
                    let _ = done.send(Completion::DocsMerged { peer: from, result }).await;
                });
            }
        }
    }

    // ---- sending ----

    fn send(&mut self, to: &NodeId, message: Message) {
        let Some(peer) = peer_id(to) else { return };
        let kind = message.kind();
        let bytes = wire::encode(&message);
        self.metrics.record_wire("out", kind, bytes.len());
        match message {
            Message::SyncRequest(_) | Message::StateRequest(_) => {
                let is_sync = matches!(message, Message::SyncRequest(_));
                if is_sync {
                    self.metrics.anti_entropy_rounds.inc();
                }
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, bytes);
                if is_sync {
                    self.sync_requests.insert(id);
                }
            }
            Message::SyncResponse(_) | Message::StateResponse(_) => {
                let kind =
                    if matches!(message, Message::SyncResponse(_)) { RequestKind::Sync } else { RequestKind::State };
                let channel = self.responders.get_mut(&(peer, kind)).and_then(VecDeque::pop_front);
                if let Some(channel) = channel {
                    // The peer may have gone away meanwhile; nothing to do then.
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, bytes);
                }
            }
            Message::Gossip(_) => tracing::debug!("gossip is published, not sent"),
        }
    }

    /// Publishes records on the gossip topic, split so no message exceeds the limit. Splits
    /// fall after sealed records, so each message can be checked on its own; a sealed run too
    /// large for one message is left to anti-entropy.
    fn publish(&mut self, records: Vec<ChangeRecord>) {
        let message = Message::Gossip(Gossip { records });
        let bytes = wire::encode(&message);
        if bytes.len() > self.wire_limits.message_bytes_max {
            let Message::Gossip(Gossip { mut records }) = message else { return };
            if let Some(split) = seal_boundary_near_middle(&records) {
                let rest = records.split_off(split);
                self.publish(records);
                self.publish(rest);
            }
            return;
        }
        let len = bytes.len();
        match self.swarm.behaviour_mut().gossip.publish(self.topic.clone(), bytes) {
            Ok(_) => self.metrics.record_wire("out", "gossip", len),
            Err(error) => tracing::debug!(%error, "gossip not published (anti-entropy will deliver)"),
        }
    }

    fn on_local_record(&mut self, record: Result<Arc<ChangeRecord>, broadcast::error::RecvError>) {
        match record {
            Ok(record) => {
                self.gossip_buffer.push(ChangeRecord::clone(&record));
                if self.gossip_window.is_zero() {
                    self.flush_gossip();
                } else if self.gossip_due.is_none() {
                    self.gossip_due = Some(Instant::now() + self.gossip_window);
                }
            }
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                // Gossip is only a hint: peers get these through anti-entropy. The replica
                // must still learn how far the local log reaches. What is buffered after the
                // gap cannot reach its seal any more.
                self.metrics.gossip_lagged.inc_by(skipped);
                self.flush_gossip();
                self.gossip_buffer.clear();
                self.input(Input::LocalDurable(self.node.durable_local_seq()));
            }
            Err(broadcast::error::RecvError::Closed) => self.local_records = None,
        }
    }

    /// The strong path stored records of the cluster's origin: they count as held.
    fn on_stored_records(&mut self, stored: Result<Arc<Vec<ChangeId>>, broadcast::error::RecvError>) {
        match stored {
            Ok(ids) => {
                self.input(Input::StoredLocally(ids.to_vec()));
                self.node.set_replicated_vv(self.replica.version_vector());
            }
            // Missed ones are fetched (and found held) through anti-entropy.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => self.stored_records = None,
        }
    }

    /// Gossips the buffered records up to the last sealed one; the rest of its batch is
    /// still arriving and goes out with its seal.
    fn flush_gossip(&mut self) {
        self.gossip_due = None;
        let Some(last_seal) = self.gossip_buffer.iter().rposition(|r| r.seal.is_some()) else { return };
        let rest = self.gossip_buffer.split_off(last_seal + 1);
        let records = std::mem::replace(&mut self.gossip_buffer, rest);
        self.input(Input::LocalCommitted(records));
    }

    // ---- storage work ----

    fn read_log(&mut self, peer: NodeId, have: VersionVector, max_records: u32) {
        let node = self.node.clone();
        let done = self.completions_tx.clone();
        let page_bytes = self.log_page_bytes;
        tokio::spawn(async move {
            let result = node.read_log(have, max_records, page_bytes).await;
            let _ = done.send(Completion::LogRead { peer, result }).await;
        });
    }

    /// Starts storing the queued records unless a batch is already in flight.
    fn start_apply(&mut self) {
        if self.applying || self.apply_queue.is_empty() {
            return;
        }
        self.applying = true;
        let queued = std::mem::take(&mut self.apply_queue);
        let sources: Vec<(ChangeId, NodeId)> = queued.iter().map(|(from, r)| (r.id.clone(), from.clone())).collect();
        let records: Vec<ChangeRecord> = queued.into_iter().map(|(_, r)| r).collect();
        let node = self.node.clone();
        let vv = self.replica.version_vector().clone();
        let done = self.completions_tx.clone();
        tokio::spawn(async move {
            let result = node.apply_remote(records, vv).await;
            let _ = done.send(Completion::Applied { sources, result }).await;
        });
    }

    fn on_completion(&mut self, done: Completion) {
        match done {
            Completion::LogRead { peer, result } => {
                let page = result.unwrap_or_else(|error| {
                    tracing::error!(%error, "cannot read the change log for a peer");
                    LogPage::default()
                });
                self.input(Input::LogRead {
                    for_peer: peer,
                    records: page.records,
                    more: page.more,
                    floors: page.floors,
                });
            }
            Completion::Applied { sources, result } => {
                self.applying = false;
                match result {
                    Ok(report) => self.applied(sources, report),
                    // Storage failed: the node stops accepting work; the records stay
                    // unconfirmed rather than being blamed on the peer.
                    Err(error) => tracing::error!(%error, "cannot store received changes"),
                }
                self.start_apply();
            }
            Completion::DocsRead { peer, result } => {
                let page = result.unwrap_or_else(|error| {
                    tracing::error!(%error, "cannot read documents for a peer");
                    DocsPage::default()
                });
                self.input(Input::DocsRead {
                    for_peer: peer,
                    docs: page.docs,
                    next: page.next,
                    vv: page.vv,
                    tips: page.tips,
                    proofs: page.proofs,
                });
            }
            Completion::RaftAnswered { peer, channel, answer } => {
                if let Some(reason) = &answer.refused {
                    self.offence(&node_id(&peer), reason);
                }
                // The caller may have given up meanwhile.
                let _ = self.swarm.behaviour_mut().raft.send_response(channel, answer.reply);
            }
            Completion::DocsMerged { peer, result } => match result {
                Ok(()) => self.input(Input::DocsMerged { from: peer }),
                Err(NodeError::Document(error)) => {
                    self.input(Input::MergeFailed { from: peer, reason: format!("transferred document: {error}") });
                }
                // Storage failed: the transfer times out and the node stops accepting work.
                Err(error) => tracing::error!(%error, "cannot store transferred documents"),
            },
        }
    }

    fn applied(&mut self, sources: Vec<(ChangeId, NodeId)>, report: RemoteApply) {
        let from: HashMap<ChangeId, NodeId> = sources.into_iter().collect();
        let mut refused: HashMap<NodeId, (Vec<ChangeId>, String)> = HashMap::new();
        for (id, reason) in report.rejected {
            if let Some(peer) = from.get(&id) {
                let entry = refused.entry(peer.clone()).or_insert_with(|| (Vec::new(), reason));
                entry.0.push(id);
            }
        }
        self.input(Input::Persisted(report.persisted));
        for (peer, (ids, reason)) in refused {
            self.input(Input::ApplyFailed { ids, from: peer, reason });
        }
        self.node.set_replicated_vv(self.replica.version_vector());
    }

    // ---- network events ----

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening for peers");
                let address = super::without_peer_id(&address);
                if !self.own_addrs.contains(&address) {
                    self.own_addrs.push(address);
                    self.publish_address_book();
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                if self.offenders.is_banned(&peer_id, Instant::now()) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                self.dialer.connected(connection_id, peer_id);
                self.publish_address_book();
                if num_established.get() == 1 {
                    tracing::info!(peer = %peer_id, address = %endpoint.get_remote_address(), "peer connected");
                    self.peers.connected(peer_id, endpoint.get_remote_address().clone(), crate::clock::now_ms());
                    self.publish_peers();
                    self.input(Input::PeerConnected(node_id(&peer_id)));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, cause, .. } => {
                self.dialer.ended(connection_id, Instant::now());
                if num_established == 0 {
                    tracing::info!(peer = %peer_id, cause = ?cause, "peer disconnected");
                    self.peers.disconnected(&peer_id);
                    self.responders.retain(|(peer, _), _| *peer != peer_id);
                    self.publish_peers();
                    self.input(Input::PeerDisconnected(node_id(&peer_id)));
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                if matches!(error, DialError::LocalPeerId { .. }) {
                    self.dialer.own_address(connection_id);
                    self.publish_address_book();
                } else {
                    tracing::debug!(%error, "dial failed");
                    self.dialer.ended(connection_id, Instant::now());
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossip(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                // Validated before gossipsub forwards it: the envelope, then the replica's
                // checks of the records. Honest nodes forward only what they validated, so
                // whoever handed over an invalid message is the one to blame.
                let from = node_id(&propagation_source);
                self.peers.heard_from(&propagation_source, crate::clock::now_ms());
                let refusals = self.refusals;
                match self.decode(&message.data, "in") {
                    Ok(message @ Message::Gossip(_)) => self.received(from.clone(), message),
                    Ok(other) => self.offence(&from, &format!("{} on the gossip topic", other.kind())),
                    Err(reason) => self.offence(&from, &reason),
                }
                let verdict = if self.refusals == refusals {
                    gossipsub::MessageAcceptance::Accept
                } else {
                    gossipsub::MessageAcceptance::Reject
                };
                let gossip = &mut self.swarm.behaviour_mut().gossip;
                let _ = gossip.report_message_validation_result(&message_id, &propagation_source, verdict);
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.on_sync_request(peer, &request, channel);
                }
                request_response::Message::Response { request_id, response } => {
                    self.sync_requests.remove(&request_id);
                    match self.decode(&response, "in") {
                        Ok(message @ (Message::SyncResponse(_) | Message::StateResponse(_))) => {
                            let now = crate::clock::now_ms();
                            self.peers.synced(&peer, now);
                            self.received(node_id(&peer), message);
                        }
                        Ok(other) => self.offence(&node_id(&peer), &format!("{} as a sync response", other.kind())),
                        Err(reason) => self.offence(&node_id(&peer), &reason),
                    }
                }
            },
            BehaviourEvent::Sync(request_response::Event::OutboundFailure { peer, request_id, error, .. }) => {
                tracing::debug!(%peer, %error, "anti-entropy request failed");
                if self.sync_requests.remove(&request_id) {
                    self.input(Input::SyncFailed(node_id(&peer)));
                }
            }
            BehaviourEvent::Sync(request_response::Event::InboundFailure { peer, error, .. }) => {
                tracing::debug!(%peer, %error, "anti-entropy response failed");
            }
            BehaviourEvent::Raft(request_response::Event::Message { peer, message, .. }) => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.on_raft_request(peer, request, channel);
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.raft_calls.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            BehaviourEvent::Raft(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                if let Some(reply) = self.raft_calls.remove(&request_id) {
                    let _ = reply.send(Err(transport_error(&error)));
                }
            }
            BehaviourEvent::Ping(ping::Event { peer, result: Ok(_), .. }) => {
                self.peers.heard_from(&peer, crate::clock::now_ms());
            }
            BehaviourEvent::Status(event) => self.on_status_event(event),
            BehaviourEvent::Ping(ping::Event { peer, connection, result: Err(error) })
                if !matches!(error, ping::Failure::Unsupported) =>
            {
                // A dead connection would otherwise stay "connected" until TCP gives up. (A
                // peer that does not speak ping at all is not a dead one.)
                tracing::info!(%peer, %error, "ping failed; closing the connection");
                self.swarm.close_connection(connection);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if peer != *self.swarm.local_peer_id() && !self.swarm.is_connected(&peer) {
                        tracing::debug!(%peer, %addr, "discovered on the local network");
                        // Both nodes usually discover each other at the same moment and dial at
                        // once. From their listening ports, the two dials would be one TCP
                        // simultaneous open that both sides treat as outgoing: it fails, and
                        // mDNS reports the address only once. A fresh port keeps them apart.
                        let opts = DialOpts::peer_id(peer).addresses(vec![addr]).allocate_new_port().build();
                        let _ = self.swarm.dial(opts);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_sync_request(&mut self, peer: PeerId, request: &[u8], channel: ResponseChannel<Vec<u8>>) {
        match self.decode(request, "in") {
            Ok(message @ (Message::SyncRequest(_) | Message::StateRequest(_))) => {
                let kind = match &message {
                    Message::SyncRequest(sync) => {
                        self.peers.saw_request(&peer, &sync.have, crate::clock::now_ms());
                        RequestKind::Sync
                    }
                    _ => RequestKind::State,
                };
                let pending = self.responders.entry((peer, kind)).or_default();
                if pending.len() >= PENDING_RESPONSES_PER_PEER_MAX {
                    // Dropping the channel tells the peer its request went unanswered.
                    tracing::debug!(%peer, "too many requests in flight from one peer");
                    return;
                }
                pending.push_back(channel);
                self.input(Input::Received { from: node_id(&peer), message });
            }
            Ok(other) => self.offence(&node_id(&peer), &format!("{} as a sync request", other.kind())),
            Err(reason) => self.offence(&node_id(&peer), &reason),
        }
    }

    // ---- the strong path's Raft RPCs ----

    fn on_command(&mut self, command: NetCommand) {
        match command {
            NetCommand::RaftCall { peer, addr, request, reply } => {
                if let Some(addr) = addr {
                    self.swarm.add_peer_address(peer, addr);
                }
                self.metrics.record_wire("out", "raft", request.len());
                let id = self.swarm.behaviour_mut().raft.send_request(&peer, request);
                self.raft_calls.insert(id, reply);
            }
        }
    }

    fn on_raft_request(&mut self, peer: PeerId, request: Vec<u8>, channel: ResponseChannel<Vec<u8>>) {
        self.metrics.record_wire("in", "raft", request.len());
        let Some(handler) = self.raft_handler.get().cloned() else {
            // The strong path is not running here: dropping the channel refuses the call.
            return;
        };
        let Ok(permit) = self.raft_inflight.clone().try_acquire_owned() else {
            tracing::debug!("too many Raft requests in flight; refusing one");
            return;
        };
        let done = self.completions_tx.clone();
        tokio::spawn(async move {
            let answer = handler.handle(peer, &request).await;
            drop(permit);
            let _ = done.send(Completion::RaftAnswered { peer, channel, answer }).await;
        });
    }

    /// Decodes an envelope, counting it; the error is a reason fit for logs.
    fn decode(&self, bytes: &[u8], direction: &'static str) -> Result<Message, String> {
        let message = wire::decode(bytes, &self.wire_limits).map_err(|e| format!("undecodable message: {e}"))?;
        self.metrics.record_wire(direction, message.kind(), bytes.len());
        Ok(message)
    }

    /// A peer sent something invalid: count it, and disconnect and ban a repeat offender.
    fn offence(&mut self, from: &NodeId, reason: &str) {
        self.refusals += 1;
        self.metrics.p2p_rejected.inc();
        tracing::warn!(peer = %from, reason, "refused input from a peer");
        let Some(peer) = peer_id(from) else { return };
        if self.offenders.offend(peer, Instant::now()) {
            tracing::warn!(%peer, "disconnecting a peer that keeps sending invalid messages");
            self.swarm.behaviour_mut().bans.block_peer(peer);
        }
    }

    // ---- summaries for the mesh view ----

    fn on_status_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        let now_ms = crate::clock::now_ms();
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.metrics.record_wire("in", "status_request", request.len());
                    if !self.peers.may_answer(&peer, Instant::now()) {
                        // Dropping the channel refuses the request: the peer asks too often.
                        return;
                    }
                    let summary = serde_json::to_vec(&self.node.summary()).unwrap_or_default();
                    self.metrics.record_wire("out", "status", summary.len());
                    let _ = self.swarm.behaviour_mut().status.send_response(channel, summary);
                }
                request_response::Message::Response { response, .. } => {
                    self.metrics.record_wire("in", "status", response.len());
                    let summary = match serde_json::from_slice::<NodeSummary>(&response) {
                        Ok(summary) if summary.id == peer.to_string() => Some(summary),
                        Ok(_) => {
                            self.offence(&node_id(&peer), "a status summary naming another node");
                            None
                        }
                        Err(error) => {
                            self.offence(&node_id(&peer), &format!("undecodable status summary: {error}"));
                            None
                        }
                    };
                    self.peers.answered_us(&peer, summary, now_ms);
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "status request failed");
                self.peers.answered_us(&peer, None, now_ms);
            }
            _ => {}
        }
    }

    /// Asks every connected peer not already being asked for its summary.
    fn ask_for_summaries(&mut self) {
        for peer in self.peers.take_due_for_status() {
            self.metrics.record_wire("out", "status_request", STATUS_REQUEST.len());
            self.swarm.behaviour_mut().status.send_request(&peer, STATUS_REQUEST.to_vec());
        }
    }

    // ---- housekeeping ----

    fn housekeeping(&mut self) {
        let now = Instant::now();
        for peer in self.offenders.expire(now) {
            self.swarm.behaviour_mut().bans.unblock_peer(peer);
        }
        let swarm = &self.swarm;
        let due = self.dialer.due(now, |peer| swarm.is_connected(peer));
        for (index, addr) in due {
            let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
            let connection = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => self.dialer.dialing(index, connection),
                Err(error) => {
                    tracing::debug!(%addr, %error, "cannot dial");
                    self.dialer.dial_refused(index, now);
                }
            }
        }
        if now >= self.next_status_round {
            self.next_status_round = now + STATUS_EVERY;
            self.ask_for_summaries();
        }
        self.publish_peers();
    }

    fn publish_peers(&mut self) {
        let view = self.peers.view(&self.node.version_vector(), crate::clock::now_ms());
        let connected = self.peers.len();
        self.metrics.peers_connected.set(connected as i64);
        let by_state = &self.metrics.peers;
        by_state.get_or_create(&PeerStateLabels { state: "connected" }).set(connected as i64);
        by_state.get_or_create(&PeerStateLabels { state: "unreachable" }).set((view.len() - connected) as i64);
        let banned = self.offenders.banned_count(Instant::now());
        by_state.get_or_create(&PeerStateLabels { state: "banned" }).set(banned as i64);
        let lag = view.iter().filter(|p| p.connected).map(|p| p.info.changes_we_lack as i64).sum();
        self.metrics.replication_lag_changes.set(lag);
        self.node.set_mesh_peers(view);
    }
}

/// Where to split an oversized gossip message: after the sealed record nearest its middle
/// (never at its end, which would not split it).
fn seal_boundary_near_middle(records: &[ChangeRecord]) -> Option<usize> {
    let middle = records.len() / 2;
    (1..records.len()).filter(|&at| records[at - 1].seal.is_some()).min_by_key(|&at| at.abs_diff(middle))
}

async fn recv_local<T: Clone>(rx: &mut Option<broadcast::Receiver<T>>) -> Result<T, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn peer_id(node: &NodeId) -> Option<PeerId> {
    PeerId::from_str(node.as_str()).ok()
}
