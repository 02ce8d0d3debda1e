//! The replication state machine: what to send, to whom and when, and what to apply.
//!
//! [`Replica`] is sans-IO. The shell feeds it [`Input`]s (a local commit became durable, a
//! message arrived, a timer fired, storage finished applying records) together with the
//! current time and a random number generator, and carries out the [`Effect`]s it returns
//! (send, broadcast, read the log, apply records, set a timer). Nothing here reads a clock,
//! touches a socket or a disk, or iterates a hash map, so the simulator runs this exact code
//! and a seed replays exactly.
//!
//! Guarantees it is built for:
//! - Convergence does not depend on gossip: periodic anti-entropy with a random peer
//!   exchanges version vectors (O(origins)) and pulls every missing record in bounded pages.
//! - Records may arrive and be applied in any order; the version vector only advances over
//!   contiguous runs that storage has confirmed durable ("persist before acknowledge").
//! - Any node serves any origin's records, so nodes that never meet an origin converge.
//! - Every queue is bounded: records held out of order, in-flight applies, pages.
//! - Nothing a peer sends is taken on its word: every received record is checked against its
//!   origin's key ([`crate::seal`]), a state transfer's version vector against the origins'
//!   seals, and the headers that prove its documents' changes ([`crate::attestation`]) like
//!   records, before anything is stored or counted.

mod peer;
#[cfg(test)]
mod test_keys;
#[cfg(test)]
mod tests;
mod transfer;
#[cfg(test)]
mod transfer_tests;

use std::collections::{BTreeMap, BTreeSet};

use rand_core::RngCore;

use crate::attestation::RecordHeader;
use crate::change_log::{ChangeId, ChangeRecord, Seq};
use crate::ids::{DocKey, NodeId};
use crate::seal::{SealError, SealVerifier, SealedTip};
use crate::version_vector::VersionVector;
use crate::wire::{DocState, Gossip, Message, StateRequest, StateResponse, SyncRequest, SyncResponse};
use peer::{PeerState, SyncState};
use transfer::Transfer;

/// Tunables; the node derives them from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// How often anti-entropy runs with one random peer.
    pub anti_entropy_interval_ms: i64,
    /// A sync request unanswered for this long is forgotten (and retried later).
    pub sync_timeout_ms: i64,
    /// Records per sync response page.
    pub page_records: u32,
    /// Most records held beyond the contiguous prefix (received out of order).
    pub held_records_max: usize,
    /// Documents per state-transfer page.
    pub page_docs: u32,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            anti_entropy_interval_ms: 5_000,
            sync_timeout_ms: 10_000,
            page_records: 512,
            held_records_max: 100_000,
            page_docs: 256,
        }
    }
}

/// Facts the shell reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Records this node originated are durable (in seq order).
    LocalCommitted(Vec<ChangeRecord>),
    /// This node's own log holds every seq up to this one (for commits the shell could not
    /// report one by one, e.g. after falling behind); nothing is gossiped for them.
    LocalDurable(Seq),
    /// Records of another origin that this node stored by another path (the strong path
    /// logs the records it commits under the cluster's origin itself) are durable. They
    /// count as held, so the version vector covers them once their origin is contiguous.
    StoredLocally(Vec<ChangeId>),
    PeerConnected(NodeId),
    /// The anti-entropy request last sent to this peer failed (its connection closed, it
    /// timed out): nothing will answer it, so another pull may start at once rather than
    /// after `sync_timeout_ms`.
    SyncFailed(NodeId),
    PeerDisconnected(NodeId),
    /// The timer set by [`Effect::SetTimer`] fired (extra ticks are harmless).
    Tick,
    Received {
        from: NodeId,
        message: Message,
    },
    /// The shell's answer to [`Effect::ReadLog`].
    LogRead {
        for_peer: NodeId,
        records: Vec<ChangeRecord>,
        more: bool,
        floors: Vec<(NodeId, Seq)>,
    },
    /// Records from [`Effect::Apply`] are durably stored and applied to their documents.
    Persisted(Vec<ChangeId>),
    /// Storage refused records from [`Effect::Apply`] (invalid Automerge, contradictions).
    ApplyFailed {
        ids: Vec<ChangeId>,
        from: NodeId,
        reason: String,
    },
    /// The shell's answer to [`Effect::ReadDocs`]; `vv` was taken before reading.
    DocsRead {
        for_peer: NodeId,
        docs: Vec<DocState>,
        next: Option<DocKey>,
        vv: VersionVector,
        tips: Vec<SealedTip>,
        /// The headers that prove `docs` (see [`crate::attestation`]).
        proofs: Vec<RecordHeader>,
    },
    /// Documents from [`Effect::MergeDocs`] are merged durably (and, on the last page, the
    /// completed version vector is stored).
    DocsMerged {
        from: NodeId,
    },
    /// Documents from [`Effect::MergeDocs`] were refused: a change no proof vouched for,
    /// invalid Automerge, or a storage failure. The transfer ends and counts against the peer.
    MergeFailed {
        from: NodeId,
        reason: String,
    },
}

/// Work for the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Send {
        to: NodeId,
        message: Message,
    },
    /// Publish to every peer (gossip topic).
    Broadcast(Message),
    /// Read up to `max_records` of this node's log that `have` lacks, then report
    /// [`Input::LogRead`].
    ReadLog {
        for_peer: NodeId,
        have: VersionVector,
        max_records: u32,
    },
    /// Store these records and apply them to their documents in one batch, then report
    /// [`Input::Persisted`].
    Apply {
        from: NodeId,
        records: Vec<ChangeRecord>,
    },
    /// Wake the replica with [`Input::Tick`] at this time.
    SetTimer {
        at_ms: i64,
    },
    /// A peer sent something invalid; count it (and disconnect a repeat offender).
    Reject {
        from: NodeId,
        reason: String,
    },
    /// Read up to `max_docs` whole documents after `after`, then report [`Input::DocsRead`].
    ReadDocs {
        for_peer: NodeId,
        after: Option<DocKey>,
        max_docs: u32,
    },
    /// Merge these whole documents into ours durably, then report [`Input::DocsMerged`].
    /// `complete` is set on the last page of a transfer: the version vector the node holds
    /// once they are merged, to be stored with them.
    MergeDocs {
        from: NodeId,
        docs: Vec<DocState>,
        complete: Option<VersionVector>,
        /// With `complete`: the tips that prove it, to be stored with it (this node serves
        /// them in turn when it transfers state).
        tips: Vec<SealedTip>,
        /// The page's headers that passed the seal check: a document may be merged only if
        /// each change new to this node is vouched for by one of them, and they are stored
        /// with the documents so this node can prove them in turn.
        proofs: Vec<RecordHeader>,
    },
}

pub struct Replica {
    me: NodeId,
    config: ReplicaConfig,
    /// Highest contiguous durable seq per origin.
    vv: VersionVector,
    /// Durable records beyond the contiguous prefix, per origin.
    held: BTreeMap<NodeId, BTreeSet<Seq>>,
    /// Records handed to storage and not yet confirmed.
    applying: BTreeSet<ChangeId>,
    peers: BTreeMap<NodeId, PeerState>,
    next_anti_entropy_ms: i64,
    /// The one state transfer in progress, if any.
    transfer: Option<Transfer>,
    /// Checks every received record against its origin's key before anything else.
    verifier: SealVerifier,
}

impl Replica {
    /// A replica for node `me` that already holds `vv` (from storage).
    pub fn new(me: NodeId, vv: VersionVector, config: ReplicaConfig) -> Self {
        Self {
            me,
            config,
            vv,
            held: BTreeMap::new(),
            applying: BTreeSet::new(),
            peers: BTreeMap::new(),
            next_anti_entropy_ms: 0,
            transfer: None,
            verifier: SealVerifier::new(),
        }
    }

    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    pub fn peers(&self) -> impl Iterator<Item = &NodeId> {
        self.peers.keys()
    }

    /// Records held out of order (for metrics and the bounded-queue checker).
    pub fn held_records(&self) -> usize {
        self.held.values().map(BTreeSet::len).sum()
    }

    pub fn applying_records(&self) -> usize {
        self.applying.len()
    }

    /// Advances the state machine by one input.
    pub fn handle(&mut self, now_ms: i64, rng: &mut dyn RngCore, input: Input) -> Vec<Effect> {
        let mut effects = Vec::new();
        match input {
            Input::LocalCommitted(records) => self.local_committed(records, &mut effects),
            Input::LocalDurable(seq) => {
                let me = self.me.clone();
                self.vv.advance(&me, seq);
            }
            Input::StoredLocally(ids) => self.stored_locally(ids),
            Input::PeerConnected(peer) => {
                if peer != self.me {
                    self.peers.entry(peer.clone()).or_default();
                    self.request_sync(&peer, now_ms, &mut effects);
                }
            }
            Input::SyncFailed(peer) => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.request_failed();
                }
            }
            Input::PeerDisconnected(peer) => {
                self.peers.remove(&peer);
                if self.transfer.as_ref().is_some_and(|t| t.peer == peer) {
                    self.transfer = None;
                }
            }
            Input::Tick => self.tick(now_ms, rng, &mut effects),
            Input::Received { from, message } => self.received(from, message, now_ms, &mut effects),
            Input::LogRead { for_peer, records, more, floors } => {
                effects.push(Effect::Send {
                    to: for_peer,
                    message: Message::SyncResponse(SyncResponse { records, more, floors }),
                });
            }
            Input::Persisted(ids) => self.persisted(ids, now_ms, &mut effects),
            Input::ApplyFailed { ids, from, reason } => {
                for id in &ids {
                    self.applying.remove(id);
                }
                if let Some(peer) = self.peers.get_mut(&from) {
                    peer.sync = SyncState::Idle;
                }
                effects.push(Effect::Reject { from, reason });
            }
            Input::DocsRead { for_peer, docs, next, vv, tips, proofs } => {
                effects.push(Effect::Send {
                    to: for_peer,
                    message: Message::StateResponse(StateResponse { docs, next, vv, tips, proofs }),
                });
            }
            Input::DocsMerged { from } => self.docs_merged(&from, now_ms, &mut effects),
            Input::MergeFailed { from, reason } => {
                if self.transfer.as_ref().is_some_and(|t| t.peer == from) {
                    self.transfer = None;
                }
                effects.push(Effect::Reject { from, reason });
            }
        }
        effects
    }

    fn local_committed(&mut self, records: Vec<ChangeRecord>, effects: &mut Vec<Effect>) {
        let records: Vec<ChangeRecord> = records.into_iter().filter(|r| r.id.origin == self.me).collect();
        for record in &records {
            self.vv.advance(&self.me, record.id.seq);
        }
        if !records.is_empty() && !self.peers.is_empty() {
            effects.push(Effect::Broadcast(Message::Gossip(Gossip { records })));
        }
    }

    fn tick(&mut self, now_ms: i64, rng: &mut dyn RngCore, effects: &mut Vec<Effect>) {
        for peer in self.peers.values_mut() {
            peer.expire_sync(now_ms, self.config.sync_timeout_ms);
        }
        if self.transfer.as_ref().is_some_and(|t| t.expired(now_ms, self.config.sync_timeout_ms)) {
            // Abandoned; the next page with a floor starts a new one.
            self.transfer = None;
        }
        // One pull at a time: while a page is in flight or being stored, another peer asked
        // with the same version vector would send the same records again.
        let pulling = self.peers.values().any(|p| p.sync != SyncState::Idle);
        if now_ms >= self.next_anti_entropy_ms {
            self.next_anti_entropy_ms = now_ms + self.config.anti_entropy_interval_ms;
            if !pulling && !self.peers.is_empty() {
                let peers: Vec<NodeId> = self.peers.keys().cloned().collect();
                let pick = (rng.next_u64() % peers.len() as u64) as usize;
                self.request_sync(&peers[pick], now_ms, effects);
            }
        }
        effects.push(Effect::SetTimer { at_ms: self.next_anti_entropy_ms });
    }

    fn request_sync(&mut self, peer: &NodeId, now_ms: i64, effects: &mut Vec<Effect>) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        if state.sync != SyncState::Idle {
            return;
        }
        state.sync = SyncState::Awaiting { since_ms: now_ms };
        effects.push(Effect::Send {
            to: peer.clone(),
            message: Message::SyncRequest(SyncRequest {
                have: self.anticipated_vv(),
                max_records: self.config.page_records,
            }),
        });
    }

    /// The version vector this node will hold once what it is storing is durable: what a
    /// pull asks past, so the next page can be fetched while the last one is being stored.
    /// Records whose storing fails leave a gap the next pull from the durable vector fills.
    fn anticipated_vv(&self) -> VersionVector {
        let mut pending: BTreeMap<&NodeId, BTreeSet<Seq>> = BTreeMap::new();
        for id in &self.applying {
            pending.entry(&id.origin).or_default().insert(id.seq);
        }
        for (origin, seqs) in &self.held {
            pending.entry(origin).or_default().extend(seqs);
        }
        let mut vv = self.vv.clone();
        for (origin, seqs) in pending {
            let mut next = vv.get(origin) + 1;
            while seqs.contains(&next) {
                next += 1;
            }
            vv.advance(origin, next - 1);
        }
        vv
    }

    /// Whether a pull may go on while records are being stored: at most one page may wait
    /// for storage while the next is fetched, so a catch-up overlaps the peer's reading and
    /// sending with this node's storing, and memory stays at two pages.
    fn may_pull_ahead(&self) -> bool {
        self.applying.len() <= self.config.page_records as usize
    }

    fn received(&mut self, from: NodeId, message: Message, now_ms: i64, effects: &mut Vec<Effect>) {
        match message {
            Message::Gossip(Gossip { records }) => {
                if self.accept_records(&from, records, effects) {
                    self.peers.entry(from.clone()).or_default();
                    self.request_sync(&from, now_ms, effects);
                }
            }
            Message::SyncRequest(SyncRequest { have, max_records }) => {
                let max_records = max_records.clamp(1, self.config.page_records);
                effects.push(Effect::ReadLog { for_peer: from, have, max_records });
            }
            Message::StateRequest(StateRequest { after, max_docs }) => {
                let max_docs = max_docs.clamp(1, self.config.page_docs);
                effects.push(Effect::ReadDocs { for_peer: from, after, max_docs });
            }
            Message::StateResponse(response) => self.state_response(&from, response, effects),
            Message::SyncResponse(SyncResponse { records, more, floors }) => {
                if floors.iter().any(|(origin, floor)| self.vv.get(origin) + 1 < *floor) {
                    self.start_transfer(&from, now_ms, effects);
                }
                let page_had_records = !records.is_empty();
                self.accept_records(&from, records, effects);
                let pull_ahead = self.may_pull_ahead();
                let Some(peer) = self.peers.get_mut(&from) else { return };
                if pull_ahead {
                    // The next page is asked for past what is being stored.
                    peer.sync = SyncState::Idle;
                    if more && page_had_records {
                        self.request_sync(&from, now_ms, effects);
                    }
                } else {
                    // Two pages wait for storage: ask again once one is durable.
                    peer.sync = SyncState::Persisting { more };
                }
            }
        }
    }

    // ---- state transfer ----

    /// Asks `peer` for whole documents, unless a transfer is already running.
    fn start_transfer(&mut self, peer: &NodeId, now_ms: i64, effects: &mut Vec<Effect>) {
        if self.transfer.is_some() {
            return;
        }
        self.transfer = Some(Transfer::new(peer.clone(), now_ms));
        self.request_docs(peer, None, effects);
    }

    fn request_docs(&self, peer: &NodeId, after: Option<DocKey>, effects: &mut Vec<Effect>) {
        effects.push(Effect::Send {
            to: peer.clone(),
            message: Message::StateRequest(StateRequest { after, max_docs: self.config.page_docs }),
        });
    }

    fn state_response(&mut self, from: &NodeId, response: StateResponse, effects: &mut Vec<Effect>) {
        let Some(first_page) =
            self.transfer.as_ref().filter(|t| &t.peer == from && t.awaiting_page()).map(|t| !t.has_cover())
        else {
            // Late or unsolicited: nothing waits for it.
            return;
        };
        let StateResponse { docs, next, vv, tips, proofs } = response;
        // Proofs are checked per page, like records; the shell merges only what they vouch for.
        let (proofs, refused) = self.verifier.verify(proofs);
        reject_refused(from, &refused, effects);
        // Only the first page's vector counts (see `Transfer`), so only it is checked.
        let cover = first_page.then(|| {
            let (proven, refusal) = prove_cover(&mut self.verifier, &self.me, vv, tips);
            if let Some(reason) = refusal {
                effects.push(Effect::Reject { from: from.clone(), reason });
            }
            proven
        });
        let Some(transfer) = self.transfer.as_mut() else { return };
        let (complete, tips) = match transfer.page_arrived(cover, next) {
            Some((theirs, tips)) => {
                let mut merged = self.vv.clone();
                merged.merge(&theirs);
                (Some(merged), tips)
            }
            None => (None, Vec::new()),
        };
        effects.push(Effect::MergeDocs { from: from.clone(), docs, complete, tips, proofs });
    }

    fn docs_merged(&mut self, from: &NodeId, now_ms: i64, effects: &mut Vec<Effect>) {
        let Some(transfer) = self.transfer.as_mut().filter(|t| &t.peer == from) else { return };
        match transfer.merged(now_ms) {
            transfer::Next::Page(after) => self.request_docs(from, Some(after), effects),
            transfer::Next::Done(theirs) => {
                self.transfer = None;
                self.vv.merge(&theirs);
                self.absorb_held();
                // Fetch whatever lies beyond the transferred state.
                if let Some(peer) = self.peers.get_mut(from) {
                    peer.sync = SyncState::Idle;
                }
                self.request_sync(from, now_ms, effects);
            }
        }
    }

    /// Drops held records the version vector now covers and advances over the contiguous
    /// rest.
    fn stored_locally(&mut self, ids: Vec<ChangeId>) {
        for id in ids {
            if id.origin == self.me || id.seq <= self.vv.get(&id.origin) {
                continue;
            }
            // Beyond the bound, anti-entropy fetches them again later (finding them held).
            if self.held_records() + self.applying.len() >= self.config.held_records_max {
                break;
            }
            self.held.entry(id.origin).or_default().insert(id.seq);
        }
        self.absorb_held();
    }

    fn absorb_held(&mut self) {
        let vv = &mut self.vv;
        self.held.retain(|origin, seqs| {
            let mut next = vv.get(origin) + 1;
            seqs.retain(|seq| *seq >= next);
            while seqs.remove(&next) {
                next += 1;
            }
            vv.advance(origin, next - 1);
            !seqs.is_empty()
        });
    }

    /// Validates incoming records and hands the new ones to storage. Returns whether a gap
    /// remains in some origin after them (a reason to pull).
    ///
    /// Origin authentication comes first, over everything the message carries beyond the
    /// version vector (a record held out of order may still be the one whose seal vouches for
    /// the others): nothing that fails it is stored, relayed or counted as held.
    fn accept_records(&mut self, from: &NodeId, mut records: Vec<ChangeRecord>, effects: &mut Vec<Effect>) -> bool {
        // What the version vector covers is dropped unchecked: it vouches only for records
        // below it, which are held too.
        records.retain(|record| !self.vv.contains(&record.id.origin, record.id.seq));
        let (records, refused) = self.verifier.verify(records);
        reject_refused(from, &refused, effects);
        let mut fresh = Vec::new();
        for record in records {
            let id = record.id.clone();
            if id.seq == 0 {
                effects.push(Effect::Reject { from: from.clone(), reason: format!("record {id} has seq 0") });
                continue;
            }
            if id.origin == self.me && id.seq > self.vv.get(&self.me) {
                // Only this node writes its own seqs; a peer claiming more is wrong (or this
                // node lost data it had acknowledged, which must not be papered over).
                effects.push(Effect::Reject {
                    from: from.clone(),
                    reason: format!("record {id} claims a seq this node never wrote"),
                });
                continue;
            }
            let held = self.held.get(&id.origin).is_some_and(|s| s.contains(&id.seq));
            if self.vv.contains(&id.origin, id.seq) || held || self.applying.contains(&id) {
                continue;
            }
            if self.held_records() + self.applying.len() >= self.config.held_records_max
                && id.seq != self.vv.get(&id.origin) + 1
            {
                // Bounded: drop far-ahead records; anti-entropy brings them again in order.
                continue;
            }
            self.applying.insert(id);
            fresh.push(record);
        }
        if !fresh.is_empty() {
            effects.push(Effect::Apply { from: from.clone(), records: fresh });
        }
        self.has_gap()
    }

    /// Whether any origin has records beyond a hole (held or applying past vv + 1).
    fn has_gap(&self) -> bool {
        let pending = self.applying.iter().map(|id| (&id.origin, id.seq));
        let held = self.held.iter().flat_map(|(origin, seqs)| seqs.iter().map(move |s| (origin, *s)));
        let mut next_needed: BTreeMap<&NodeId, Seq> = BTreeMap::new();
        let mut known: BTreeMap<&NodeId, BTreeSet<Seq>> = BTreeMap::new();
        for (origin, seq) in pending.chain(held) {
            known.entry(origin).or_default().insert(seq);
            next_needed.entry(origin).or_insert_with(|| self.vv.get(origin) + 1);
        }
        known
            .iter()
            .any(|(origin, seqs)| seqs.iter().zip(next_needed[origin]..).any(|(seq, expected)| *seq != expected))
    }

    fn persisted(&mut self, ids: Vec<ChangeId>, now_ms: i64, effects: &mut Vec<Effect>) {
        for id in ids {
            if self.applying.remove(&id) {
                self.held.entry(id.origin).or_default().insert(id.seq);
            }
        }
        self.absorb_held();
        if self.may_pull_ahead() {
            let continuing: Vec<NodeId> = self
                .peers
                .iter_mut()
                .filter_map(|(id, p)| match p.sync {
                    SyncState::Persisting { more } => {
                        p.sync = SyncState::Idle;
                        more.then(|| id.clone())
                    }
                    _ => None,
                })
                .collect();
            for peer in continuing {
                self.request_sync(&peer, now_ms, effects);
            }
        }
    }
}

/// The part of a state responder's version vector its tips prove, with those tips, and why
/// the rest was refused. This node's own entry is dropped: only it knows how far it wrote.
/// One offence per message, however many of its records failed.
fn reject_refused(from: &NodeId, refused: &[SealError], effects: &mut Vec<Effect>) {
    if let Some(first) = refused.first() {
        let more = match refused.len() {
            1 => String::new(),
            n => format!(" (and {} more refusals in the same message)", n - 1),
        };
        effects.push(Effect::Reject { from: from.clone(), reason: format!("{first}{more}") });
    }
}

fn prove_cover(
    verifier: &mut SealVerifier,
    me: &NodeId,
    vv: VersionVector,
    tips: Vec<SealedTip>,
) -> ((VersionVector, Vec<SealedTip>), Option<String>) {
    let mut by_origin: BTreeMap<NodeId, SealedTip> = BTreeMap::new();
    for tip in tips {
        by_origin.entry(tip.id.origin.clone()).or_insert(tip);
    }
    let mut proven = VersionVector::new();
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for (origin, seq) in vv.iter() {
        if origin == me {
            continue;
        }
        match by_origin.remove(origin) {
            Some(tip) if tip.id.seq == seq => match verifier.check_tip(&tip) {
                Ok(()) => {
                    proven.advance(origin, seq);
                    kept.push(tip);
                }
                Err(error) => refused.push(error.to_string()),
            },
            _ => refused.push(format!("no seal proves that {origin} wrote up to seq {seq}")),
        }
    }
    let reason = refused.first().map(|first| match refused.len() {
        1 => format!("state transfer: {first}"),
        n => format!("state transfer: {first} (and {} more)", n - 1),
    });
    ((proven, kept), reason)
}
