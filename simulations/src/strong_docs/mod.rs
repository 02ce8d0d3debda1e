//! The strong path for documents under faults: real `Node`s with memory storage running
//! `StrongDocs` (openraft, the project's Raft log store and the document state machine
//! `DocApplier`) on an in-process network, on one thread in virtual time with seeded
//! election timeouts.
//!
//! Clients ([`client`]) make strong writes, compare-and-swaps, transactions and reads at all
//! three levels on random voters while a nemesis isolates and rejoins voters and crashes and
//! restarts one from its storage alone ([`cluster`]). Then the faults heal and the run
//! settles, and the checkers judge it: strong operations are linearizable per document
//! (including the transactions' writes and reads), bounded reads are never older than their
//! bound (`checkers::bounded_reads`), transactions are atomic (`checkers::txn_atomicity`),
//! and no acknowledged write is lost (`checkers::strong_durability`).
//!
//! Determinism: openraft, the clients and the nemesis are tokio tasks on a current-thread
//! runtime with paused time, and the election timeouts draw from the seed; but tokio's
//! `select!` fairness is not seeded, and each `Node` commits on its own OS thread that the
//! state machine waits for. A seed therefore replays its schedule only as far as
//! `--check-determinism` measures (the simulations README gives the figure).

pub mod client;
pub mod cluster;
pub mod latency;
pub mod record;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use statemesh::config::BoundedFallback;
use statemesh::raft::seed_election_timeouts;
use statemesh::strong::ReadLevel;
use tokio::time::{Duration, Instant};

use crate::checkers::strong_durability::Settled;
use crate::checkers::{bounded_reads, strong_durability, txn_atomicity, Violation};
use crate::linearizability::{self, CheckOptions, Op, Operation, Outcome, Verdict};
use crate::rng::SimRng;
use client::{doc_key, Client, ClientLog, ClientPlan, PAIR, REGISTERS};
use cluster::{info, Cluster};

/// How long the healed cluster gets to catch every voter up before durability is judged.
const SETTLE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy)]
pub struct DocsSettings {
    pub voters: usize,
    pub clients: usize,
    pub ops_per_client: usize,
    /// Isolations the nemesis makes at most (each 0.3–1.8 s; it stops when the clients do).
    pub isolations: usize,
    /// Crash-restarts the nemesis makes (each voter down 0.2–1.5 s), among its first rounds.
    pub crashes: usize,
    /// Voter RPCs take a seeded 1–15 ms each way (else they arrive at once: operations
    /// rarely overlap, but seeds replay more faithfully; see the README).
    pub rpc_delay: bool,
    /// Planted bug: strong reads skip the read barrier.
    pub stale_strong_reads: bool,
    /// Planted bug: bounded reads are served without checking staleness.
    pub unchecked_bounded_reads: bool,
}

impl Default for DocsSettings {
    fn default() -> Self {
        Self {
            voters: 3,
            clients: 5,
            ops_per_client: 60,
            isolations: 5,
            crashes: 1,
            rpc_delay: true,
            stale_strong_reads: false,
            unchecked_bounded_reads: false,
        }
    }
}

/// What one seeded run did and what the checkers found.
pub struct DocsRun {
    pub seed: u64,
    pub history: Vec<Operation>,
    /// The first property that did not hold, if any.
    pub violation: Option<Violation>,
    /// One line per client operation and fault, in order: compared by the determinism check.
    pub trace: Vec<String>,
    pub weak_reads: usize,
    pub pair_reads: usize,
    /// Virtual time the run took.
    pub simulated: Duration,
}

/// Runs one seed to completion in virtual time.
pub fn run(seed: u64, settings: DocsSettings) -> Result<DocsRun, String> {
    let runtime = crate::runtime::seeded(seed)?;
    runtime.block_on(run_async(seed, settings))
}

async fn run_async(seed: u64, settings: DocsSettings) -> Result<DocsRun, String> {
    seed_election_timeouts(seed);
    let mut rng = SimRng::new(seed);
    let plan = ClientPlan {
        ops: settings.ops_per_client,
        max_staleness: Duration::from_millis(100 + rng.below(700)),
        fallback: if rng.below(2) == 0 { BoundedFallback::Strong } else { BoundedFallback::Refuse },
        skip_strong_barrier: settings.stale_strong_reads,
        skip_staleness_check: settings.unchecked_bounded_reads,
    };
    let latency_ms = if settings.rpc_delay { [1, 2 + rng.below(14)] } else { [0, 0] };
    let cluster = Arc::new(Cluster::start(settings.voters, seed, latency_ms).await?);
    let start = Instant::now();
    let mut trace = vec![format!("seed {seed}: {settings:?}, bounded reads {plan:?}, RPC delay {latency_ms:?} ms")];
    let mut tasks = Vec::new();
    for id in 0..settings.clients as u64 {
        let cluster = cluster.clone();
        let rng = SimRng::new(seed ^ (0x9e37_79b9 * (id + 1)));
        tasks.push(tokio::spawn(async move { Client::new(id, &cluster, plan, start, rng).run().await }));
    }
    let done = Arc::new(AtomicBool::new(false));
    let nemesis =
        tokio::spawn(nemesis(cluster.clone(), SimRng::new(seed.rotate_left(17)), settings, start, done.clone()));
    let mut log = ClientLog::default();
    for task in tasks {
        let client = task.await.map_err(|e| format!("client task failed: {e}"))?;
        log.history.extend(client.history);
        log.writes.extend(client.writes);
        log.weak_reads.extend(client.weak_reads);
        log.pair_reads.extend(client.pair_reads);
        log.trace.extend(client.trace);
    }
    done.store(true, Ordering::Relaxed);
    let mut events = nemesis.await.map_err(|e| format!("nemesis task failed: {e}"))?;
    events.append(&mut log.trace);
    // In virtual-time order (each line starts with its time in ns); a stable sort keeps the
    // clients' order for lines of the same instant.
    events.sort_by_key(|line| line.split(' ').next().and_then(|t| t.parse::<u64>().ok()).unwrap_or(0));
    trace.extend(events);
    cluster.net.heal_all();
    for i in 0..cluster.len() {
        cluster.restart(i).await?;
    }
    let settled = settle(&cluster, &log).await;
    final_reads(&cluster, &mut log.history, start).await;
    let simulated = start.elapsed();
    cluster.shutdown().await;

    let report = linearizability::check(&log.history, &CheckOptions::default()).map_err(|e| e.to_string())?;
    let violation = match report.verdict() {
        Verdict::Linearizable => None,
        _ => Some(Violation::new("linearizability", report.to_string())),
    }
    .or_else(|| bounded_reads::check(&log.writes, &log.weak_reads))
    .or_else(|| txn_atomicity::check(&log.pair_reads))
    .or_else(|| strong_durability::check(settled.0, &settled.1));
    Ok(DocsRun {
        seed,
        history: log.history,
        violation,
        trace,
        weak_reads: log.weak_reads.len(),
        pair_reads: log.pair_reads.len(),
        simulated,
    })
}

/// Isolates and rejoins voters, and crashes and restarts them (the crashes among the first
/// two rounds), until the clients are done and every crash has happened. Returns its trace.
async fn nemesis(
    cluster: Arc<Cluster>,
    mut rng: SimRng,
    settings: DocsSettings,
    start: Instant,
    done: Arc<AtomicBool>,
) -> Vec<String> {
    let mut trace = Vec::new();
    let now = || start.elapsed().as_nanos();
    let total = settings.isolations + settings.crashes;
    let mut crash_rounds: Vec<usize> = Vec::new();
    while crash_rounds.len() < settings.crashes.min(total) {
        let round = rng.below(total.min(2).max(settings.crashes) as u64) as usize;
        if !crash_rounds.contains(&round) {
            crash_rounds.push(round);
        }
    }
    for round in 0..total {
        tokio::time::sleep(Duration::from_millis(200 + rng.below(600))).await;
        if done.load(Ordering::Relaxed) && crash_rounds.iter().all(|r| *r < round) {
            break;
        }
        let victim = rng.below(cluster.len() as u64) as usize;
        if crash_rounds.contains(&round) {
            trace.push(format!("{} crash voter-{victim}", now()));
            if let Err(e) = cluster.crash(victim).await {
                trace.push(format!("{} {e}", now()));
            }
            tokio::time::sleep(Duration::from_millis(200 + rng.below(1300))).await;
            trace.push(format!("{} restart voter-{victim}", now()));
            if let Err(e) = cluster.restart(victim).await {
                trace.push(format!("{} {e}", now()));
            }
        } else {
            trace.push(format!("{} isolate voter-{victim}", now()));
            cluster.net.isolate(&info(victim).peer_id);
            tokio::time::sleep(Duration::from_millis(300 + rng.below(1500))).await;
            trace.push(format!("{} rejoin voter-{victim}", now()));
            cluster.net.rejoin(&info(victim).peer_id);
        }
    }
    trace
}

/// Waits (up to [`SETTLE`]) until every voter has applied the highest acknowledged index
/// and everything any voter has applied (writes whose outcome a client never learnt commit
/// too), then reads what each holds locally.
async fn settle(cluster: &Cluster, log: &ClientLog) -> (Option<u64>, Vec<Settled>) {
    let owed = log.writes.iter().filter(|w| w.acknowledged).filter_map(|w| w.index).max();
    let deadline = Instant::now() + SETTLE;
    let applied = |i: usize| cluster.docs(i).and_then(|d| d.applied_index());
    let behind = || {
        let target = (0..cluster.len()).map(applied).max().flatten().max(owed);
        (0..cluster.len()).any(|i| applied(i) < target)
    };
    while Instant::now() < deadline && behind() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut settled = Vec::new();
    for voter in 0..cluster.len() {
        let mut values = Vec::new();
        if let Some((node, _)) = cluster.running(voter) {
            for id in REGISTERS.iter().chain(PAIR.iter()) {
                let value = node.get(&doc_key(id)).await.ok().and_then(|view| client::register_value(&view.json));
                values.push(((*id).to_owned(), value));
            }
        }
        settled.push(Settled { voter, applied: applied(voter), values });
    }
    (owed, settled)
}

/// One strong read of every document on every voter after the run, recorded in the history:
/// a write lost in a restart shows up as a read of an older value.
async fn final_reads(cluster: &Cluster, history: &mut Vec<Operation>, start: Instant) {
    let now = || u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    for voter in 0..cluster.len() {
        let Some((node, docs)) = cluster.running(voter) else { continue };
        for id in REGISTERS.iter().chain(PAIR.iter()) {
            let invoke = now();
            if docs.prepare_read(ReadLevel::Strong, None).await.is_err() {
                continue;
            }
            let result = match node.get(&doc_key(id)).await {
                Ok(view) => client::register_value(&view.json),
                Err(statemesh::node::NodeError::NotFound(_)) => None,
                Err(_) => continue,
            };
            history.push(Operation {
                key: (*id).to_owned(),
                client: 1_000 + voter as u64,
                op: Op::Read { result },
                invoke_ns: invoke,
                complete_ns: Some(now()),
                outcome: Outcome::Ok,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_runs_under_isolations_and_a_restart_hold_every_property() {
        for seed in 1..=3 {
            let run = run(seed, DocsSettings::default()).expect("run");
            assert_eq!(run.violation, None, "seed {seed}");
            assert!(run.history.len() > 80, "seed {seed} recorded only {} operations", run.history.len());
            assert!(run.weak_reads > 0 && run.pair_reads > 0, "seed {seed} made no weak or pair reads");
            assert!(run.trace.iter().any(|line| line.contains("restart voter")), "seed {seed} restarted nobody");
        }
    }
}
