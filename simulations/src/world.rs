//! The world: one seeded run, driven by an event queue in virtual time.
//!
//! Events are ordered by `(time, sequence number)`, the sequence number breaking ties in the
//! order events were scheduled, so nothing depends on hash-map order or wall time. Each
//! event advances exactly one node (or the fault state) and is followed by the per-step
//! checkers. After the last fault heals, periodic checks look for convergence until the
//! liveness budget runs out.

use std::collections::BTreeMap;
use std::sync::Arc;

use statemesh_protocol::replica::{Effect, Input, Replica, ReplicaConfig};
use statemesh_protocol::wire::{self, Message, WireLimits};
use statemesh_protocol::{ChangeId, ChangeRecord, DocId, DocKey, Namespace, NodeId};

use crate::checkers::{bounds, convergence, durability, monotonic, Violation};
use crate::clock::NodeClock;
use crate::faults::{FaultPlan, PlantedBug};
use crate::network::Network;
use crate::node::{write_op, SimNode};
use crate::rng::SimRng;
use crate::scenario::Scenario;
use crate::trace::{fnv, Trace};

/// How often convergence is checked once every fault has healed.
const CHECK_EVERY_MS: i64 = 100;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the scenario's `planted_bug`.
    pub bug: Option<PlantedBug>,
    /// Print every trace line.
    pub echo_trace: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub events: u64,
    pub messages_sent: u64,
    pub messages_lost: u64,
    pub writes_acknowledged: u64,
    pub rejects: u64,
    pub crashes: u64,
}

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    pub violation: Option<Violation>,
    /// Simulated time when the run ended (converged or failed).
    pub sim_ms: i64,
    pub trace_hash: u64,
    pub trace_lines: u64,
    pub trace_tail: Vec<String>,
    pub stats: Stats,
}

enum Event {
    Deliver {
        from: usize,
        to: usize,
        bytes: Arc<Vec<u8>>,
    },
    Stored {
        node: usize,
        incarnation: u64,
        from: NodeId,
        records: Vec<ChangeRecord>,
    },
    Tick {
        node: usize,
        incarnation: u64,
        at: i64,
    },
    Write {
        node: usize,
    },
    /// `PlantedBug::AckBeforeStore`: the late store of acknowledged writes.
    Flush {
        node: usize,
        incarnation: u64,
    },
    PartitionStart(usize),
    PartitionEnd(usize),
    Crash(usize),
    Restart(usize),
    CheckConvergence,
}

struct World<'a> {
    scenario: &'a Scenario,
    bug: Option<PlantedBug>,
    config: ReplicaConfig,
    rng: SimRng,
    /// Chance that one apply hits slow storage, drawn once per seed.
    slow_percent: u64,
    now: i64,
    next_event: u64,
    queue: BTreeMap<(i64, u64), Event>,
    nodes: Vec<SimNode>,
    index: BTreeMap<NodeId, usize>,
    network: Network,
    plan: FaultPlan,
    /// Which crashes took a node down (a crash of a node already down does nothing).
    crash_applied: Vec<bool>,
    /// Pairs whose replicas currently see each other connected, `a * n + b`.
    connected: Vec<bool>,
    acknowledged: Vec<ChangeId>,
    namespace: Namespace,
    trace: Trace,
    stats: Stats,
}

/// Runs `scenario` with `seed` to the end: convergence, or the first violated property.
pub fn run_seed(scenario: &Scenario, seed: u64, options: &RunOptions) -> Outcome {
    let mut world = World::new(scenario, seed, options);
    let violation = world.run().err();
    if let Some(v) = &violation {
        world.trace.line(world.now, format!("VIOLATION {v}"));
    }
    Outcome {
        seed,
        violation,
        sim_ms: world.now,
        trace_hash: world.trace.hash(),
        trace_lines: world.trace.lines(),
        trace_tail: world.trace.tail(),
        stats: world.stats,
    }
}

impl<'a> World<'a> {
    fn new(scenario: &'a Scenario, seed: u64, options: &RunOptions) -> Self {
        let mut rng = SimRng::new(seed);
        let r = &scenario.replica;
        let config = ReplicaConfig {
            anti_entropy_interval_ms: r.anti_entropy_interval_ms,
            sync_timeout_ms: r.sync_timeout_ms,
            page_records: r.page_records,
            held_records_max: r.held_records_max,
            ..ReplicaConfig::default()
        };
        let n = scenario.nodes;
        let network = Network::new(n, &scenario.network, &mut rng);
        let plan = FaultPlan::derive(scenario, &mut rng);
        let slow_percent = rng.range(scenario.storage.slow_percent) as u64;
        // Clocks draw from their own generator, so a scenario without skew replays as before.
        let mut clock_rng = SimRng::new(seed ^ 0xc10c_c10c_c10c_c10c);
        let faults = &scenario.faults;
        let nodes: Vec<SimNode> = (0..n)
            .map(|i| {
                let clock = NodeClock::draw(&mut clock_rng, faults.clock_skew_ms, faults.clock_drift_ppm);
                SimNode::new(i, config.clone(), clock)
            })
            .collect();
        let index = nodes.iter().enumerate().map(|(i, node)| (node.id.clone(), i)).collect();
        let mut trace = Trace::new(options.echo_trace);
        trace.line(0, format!("seed {seed} scenario {} nodes {n} network {:?}", scenario.name, network.settings));
        for p in &plan.partitions {
            trace.line(
                0,
                format!("plan partition {:?} {}..{} cutting {} links", p.mode, p.start_ms, p.end_ms, p.cut.len()),
            );
        }
        for c in &plan.crashes {
            trace.line(0, format!("plan crash n{:03} at {} for {}", c.node, c.at_ms, c.down_ms));
        }
        for (i, node) in nodes.iter().enumerate().filter(|(_, node)| node.clock != NodeClock::default()) {
            trace.line(
                0,
                format!("clock n{i:03} offset {} ms drift {} ppm", node.clock.offset_ms, node.clock.drift_ppm),
            );
        }
        Self {
            scenario,
            bug: options.bug.or(scenario.planted_bug),
            config,
            rng,
            slow_percent,
            now: 0,
            next_event: 0,
            queue: BTreeMap::new(),
            crash_applied: vec![false; plan.crashes.len()],
            nodes,
            index,
            network,
            plan,
            connected: vec![false; n * n],
            acknowledged: Vec::new(),
            namespace: Namespace::new("sim").expect("a valid namespace"),
            trace,
            stats: Stats::default(),
        }
    }

    fn schedule(&mut self, at: i64, event: Event) {
        self.queue.insert((at.max(self.now), self.next_event), event);
        self.next_event += 1;
    }

    fn run(&mut self) -> Result<(), Violation> {
        let s = self.scenario;
        for node in 0..s.nodes {
            let at = self.rng.range([0, s.replica.anti_entropy_interval_ms - 1]);
            self.arm_timer(node, at);
        }
        for _ in 0..s.workload.writes {
            let at = self.rng.range([0, s.duration_ms - 1]);
            let node = self.rng.below(s.nodes as u64) as usize;
            self.schedule(at, Event::Write { node });
        }
        for i in 0..self.plan.partitions.len() {
            let (start, end) = (self.plan.partitions[i].start_ms, self.plan.partitions[i].end_ms);
            self.schedule(start, Event::PartitionStart(i));
            self.schedule(end, Event::PartitionEnd(i));
        }
        for i in 0..self.plan.crashes.len() {
            self.schedule(self.plan.crashes[i].at_ms, Event::Crash(i));
        }
        let quiet_at = s.duration_ms.max(self.plan.last_heal_ms());
        let deadline = quiet_at + s.liveness_budget_ms;
        self.schedule(quiet_at, Event::CheckConvergence);
        self.refresh_connections()?;

        while let Some(((at, _), event)) = self.queue.pop_first() {
            self.now = at;
            self.stats.events += 1;
            if let Event::CheckConvergence = event {
                match convergence::check(&self.nodes) {
                    Ok(()) => {
                        self.trace.line(self.now, "converged".into());
                        return durability::check_everywhere(&self.nodes, &self.acknowledged);
                    }
                    Err(violation) if self.now >= deadline => {
                        return Err(Violation::new(
                            violation.property,
                            format!(
                                "not converged {} ms after the last heal (liveness budget): {}",
                                self.now - quiet_at,
                                violation.detail
                            ),
                        ));
                    }
                    Err(_) => self.schedule((self.now + CHECK_EVERY_MS).min(deadline), Event::CheckConvergence),
                }
                continue;
            }
            self.event(event)?;
        }
        Err(Violation::new("liveness", "the event queue ran dry before convergence"))
    }

    fn event(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Deliver { from, to, bytes } => {
                self.network.in_flight -= 1;
                if !self.nodes[to].is_up() || self.network.is_cut(from, to) {
                    self.stats.messages_lost += 1;
                    return Ok(());
                }
                let message = wire::decode(&bytes, &WireLimits::default()).map_err(|e| {
                    Violation::new("wire", format!("message n{from:03}->n{to:03} does not decode: {e}"))
                })?;
                self.trace
                    .line(self.now, format!("deliver n{from:03}->n{to:03} {} {:016x}", message.kind(), fnv(0, &bytes)));
                let from = self.nodes[from].id.clone();
                self.feed(to, Input::Received { from, message })
            }
            Event::Stored { node, incarnation, from, records } => {
                if self.nodes[node].incarnation != incarnation {
                    self.trace.line(self.now, format!("n{node:03} lost {} unstored records in a crash", records.len()));
                    return Ok(());
                }
                let ids: Vec<ChangeId> = records.iter().map(|r| r.id.clone()).collect();
                self.trace.line(self.now, format!("n{node:03} stored {} records", ids.len()));
                let target = &mut self.nodes[node];
                match target.storage.apply(&target.actor, records) {
                    Ok(()) => self.feed(node, Input::Persisted(ids)),
                    Err(reason) => self.feed(node, Input::ApplyFailed { ids, from, reason }),
                }
            }
            Event::Tick { node, incarnation, at } => {
                let target = &mut self.nodes[node];
                if target.incarnation != incarnation || target.timer_at != Some(at) {
                    return Ok(());
                }
                target.timer_at = None;
                self.feed(node, Input::Tick)
            }
            Event::Write { node } => self.write(node),
            Event::Flush { node, incarnation } => {
                let target = &mut self.nodes[node];
                if target.incarnation == incarnation {
                    for record in std::mem::take(&mut target.unstored) {
                        target.storage.records.insert(record.id.clone(), record);
                    }
                }
                Ok(())
            }
            Event::PartitionStart(i) | Event::PartitionEnd(i) => {
                let start = matches!(event, Event::PartitionStart(_));
                let p = &self.plan.partitions[i];
                self.trace.line(self.now, format!("partition {:?} {}", p.mode, if start { "starts" } else { "heals" }));
                self.network.apply_cut(&p.cut, start);
                self.refresh_connections()
            }
            Event::Crash(i) => self.crash(i),
            Event::Restart(i) => self.restart(i),
            // Handled by the run loop, which owns the liveness deadline.
            Event::CheckConvergence => Ok(()),
        }
    }

    fn write(&mut self, node: usize) -> Result<(), Violation> {
        if !self.nodes[node].is_up() {
            return Ok(());
        }
        let w = &self.scenario.workload;
        let doc = DocKey::new(
            self.namespace.clone(),
            DocId::new(format!("doc{}", self.rng.below(w.docs))).expect("generated doc ids are valid"),
        );
        let op = write_op(
            self.rng.below(100),
            w.put_percent,
            w.delete_percent,
            self.rng.below(8),
            self.rng.below(1_000),
            node,
        );
        let record = self.nodes[node]
            .local_write(&doc, &op, self.now)
            .map_err(|e| Violation::new("workload", format!("n{node:03}: {e}")))?;
        let Some(record) = record else { return Ok(()) };
        self.trace.line(self.now, format!("n{node:03} writes {} to {}", record.id, doc.doc_id.as_str()));
        self.acknowledged.push(record.id.clone());
        self.stats.writes_acknowledged += 1;
        if self.bug == Some(PlantedBug::AckBeforeStore) {
            // The bug: acknowledged now, stored later, lost if the node crashes in between.
            let delay = self.rng.range(self.scenario.storage.slow_persist_ms) + 2_000;
            let incarnation = self.nodes[node].incarnation;
            self.nodes[node].unstored.push(record.clone());
            self.schedule(self.now + delay, Event::Flush { node, incarnation });
        } else {
            // Persist before acknowledge: the record is durable before anyone hears of it.
            self.nodes[node].storage.records.insert(record.id.clone(), record.clone());
        }
        self.feed(node, Input::LocalCommitted(vec![record]))
    }

    fn crash(&mut self, i: usize) -> Result<(), Violation> {
        let crash = self.plan.crashes[i].clone();
        let node = &mut self.nodes[crash.node];
        if !node.is_up() {
            return Ok(());
        }
        self.crash_applied[i] = true;
        self.stats.crashes += 1;
        node.replica = None;
        node.incarnation += 1;
        node.timer_at = None;
        node.unstored.clear();
        self.trace.line(self.now, format!("n{:03} crashes", crash.node));
        self.schedule(self.now + crash.down_ms, Event::Restart(i));
        self.refresh_connections()
    }

    fn restart(&mut self, i: usize) -> Result<(), Violation> {
        if !self.crash_applied[i] {
            return Ok(());
        }
        let n = self.plan.crashes[i].node;
        let node = &mut self.nodes[n];
        // Only durable state survives: the replica starts from what storage holds.
        let vv = node.storage.version_vector();
        durability::check_origin(node, &self.acknowledged)?;
        monotonic::check(&node.id, &mut node.last_vv, &vv)?;
        node.replica = Some(Replica::new(node.id.clone(), vv, self.config.clone()));
        self.trace.line(self.now, format!("n{n:03} restarts"));
        let at = self.now + self.rng.range([0, self.scenario.replica.anti_entropy_interval_ms - 1]);
        self.arm_timer(n, at);
        self.refresh_connections()
    }

    /// Tells replicas about links that opened or closed (partitions, crashes, restarts).
    fn refresh_connections(&mut self) -> Result<(), Violation> {
        let n = self.nodes.len();
        for a in 0..n {
            for b in a + 1..n {
                let want = self.nodes[a].is_up() && self.nodes[b].is_up() && self.network.connected(a, b);
                if want == self.connected[a * n + b] {
                    continue;
                }
                self.connected[a * n + b] = want;
                let (id_a, id_b) = (self.nodes[a].id.clone(), self.nodes[b].id.clone());
                if want {
                    self.feed(a, Input::PeerConnected(id_b))?;
                    self.feed(b, Input::PeerConnected(id_a))?;
                } else {
                    self.feed(a, Input::PeerDisconnected(id_b))?;
                    self.feed(b, Input::PeerDisconnected(id_a))?;
                }
            }
        }
        Ok(())
    }

    fn arm_timer(&mut self, node: usize, at: i64) {
        let target = &mut self.nodes[node];
        if target.timer_at == Some(at) {
            return;
        }
        target.timer_at = Some(at);
        let incarnation = target.incarnation;
        self.schedule(at, Event::Tick { node, incarnation, at });
    }

    /// Hands one input to a node's replica, carries out its effects, then runs the
    /// per-step checkers on that node.
    fn feed(&mut self, node: usize, input: Input) -> Result<(), Violation> {
        let now = self.nodes[node].clock.local(self.now);
        let Some(replica) = self.nodes[node].replica.as_mut() else { return Ok(()) };
        let effects = replica.handle(now, &mut self.rng, input);
        for effect in effects {
            self.effect(node, effect)?;
        }
        let target = &mut self.nodes[node];
        if let Some(replica) = &target.replica {
            monotonic::check(&target.id, &mut target.last_vv, replica.version_vector())?;
        }
        bounds::check_replica(target, &self.scenario.bounds)?;
        bounds::check_network(self.network.in_flight, &self.scenario.bounds)
    }

    fn effect(&mut self, node: usize, effect: Effect) -> Result<(), Violation> {
        match effect {
            Effect::Send { to, message } => {
                let to = self.node_index(&to)?;
                let bytes = Arc::new(wire::encode(&message));
                self.send(node, to, &message, bytes);
            }
            Effect::Broadcast(message) => {
                let bytes = Arc::new(wire::encode(&message));
                for to in 0..self.nodes.len() {
                    if to != node && self.connected[node.min(to) * self.nodes.len() + node.max(to)] {
                        self.send(node, to, &message, bytes.clone());
                    }
                }
            }
            Effect::ReadLog { for_peer, have, max_records } => {
                let (mut records, more) = self.nodes[node].read_log(&have, max_records);
                if self.bug == Some(PlantedBug::SkipSeqRange) {
                    records.retain(|record| !matches!(record.id.seq % 10, 3 | 4));
                }
                self.feed(node, Input::LogRead { for_peer, records, more, floors: Vec::new() })?;
            }
            Effect::Apply { from, records } => {
                let storage = &self.scenario.storage;
                let delay = if self.rng.chance(self.slow_percent) {
                    self.rng.range(storage.slow_persist_ms)
                } else {
                    self.rng.range(storage.persist_ms)
                };
                let incarnation = self.nodes[node].incarnation;
                self.schedule(self.now + delay, Event::Stored { node, incarnation, from, records });
            }
            // The replica sets timers on its own clock.
            Effect::SetTimer { at_ms } => self.arm_timer(node, self.nodes[node].clock.global(at_ms)),
            Effect::Reject { from, reason } => {
                self.stats.rejects += 1;
                self.trace.line(self.now, format!("n{node:03} rejects {from}: {reason}"));
            }
            Effect::ReadDocs { for_peer, .. } | Effect::MergeDocs { from: for_peer, .. } => {
                // Nothing prunes logs in this simulation, so no peer may report a floor and
                // no state transfer may start.
                return Err(Violation::new(
                    "no_state_transfer",
                    format!("n{node:03} started a state transfer with {for_peer} although no log is pruned"),
                ));
            }
        }
        Ok(())
    }

    fn send(&mut self, from: usize, to: usize, message: &Message, bytes: Arc<Vec<u8>>) {
        self.stats.messages_sent += 1;
        if self.bug == Some(PlantedBug::DropSyncRequests) && matches!(message, Message::SyncRequest(_)) {
            self.stats.messages_lost += 1;
            return;
        }
        let arrivals = self.network.arrivals(from, to, self.now, &mut self.rng);
        if arrivals.is_empty() {
            self.stats.messages_lost += 1;
        }
        for at in arrivals {
            self.network.in_flight += 1;
            self.schedule(at, Event::Deliver { from, to, bytes: bytes.clone() });
        }
    }

    fn node_index(&self, id: &NodeId) -> Result<usize, Violation> {
        self.index.get(id).copied().ok_or_else(|| Violation::new("protocol", format!("effect names unknown node {id}")))
    }
}
