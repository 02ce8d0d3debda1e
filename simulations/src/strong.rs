//! The strong path under faults: real openraft voters running the project's Raft log store,
//! state machine plumbing and RPC encoding over an in-process network, on one thread in
//! virtual time with seeded election timeouts. Concurrent clients write, compare-and-swap
//! and read (read index) one register while a nemesis isolates and rejoins voters; every
//! client operation is recorded and the history is checked for linearizability.
//!
//! The state machine is the register map `statemesh::raft::KvApplier`: a faster model of the
//! same Raft layer (`strong --registers`); the default `strong` run and the CI smoke set run
//! the documents themselves (`strong_docs`). Determinism: openraft and the clients are tokio tasks on a
//! current-thread runtime with paused time, and openraft's election timeouts draw from a
//! seeded generator; tokio's own `select!` fairness is not seeded, so a seed replays its
//! schedule only as far as `--check-determinism` shows (it compares two runs' traces): about
//! 2 % of seeds replayed differently in a 500-seed sweep.

use std::sync::Arc;
use std::time::Duration;

use statemesh::raft::{
    seed_election_timeouts, KvApplier, KvOp, KvOutcome, LoopbackNet, NodeInfo, RaftInstruments, StartOptions,
    StrongError, StrongPath,
};
use statemesh::storage::MemoryStorage;
use tokio::time::Instant;

use crate::linearizability::{self, CheckOptions, Op, Operation, Outcome, Report};
use crate::rng::SimRng;

const KEY: &[u8] = b"register";

/// What one seeded run did.
pub struct StrongRun {
    pub seed: u64,
    pub history: Vec<Operation>,
    pub report: Report,
    /// One line per client operation and fault, in order: compared by the determinism check.
    pub trace: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct StrongSettings {
    pub voters: usize,
    pub clients: usize,
    pub ops_per_client: usize,
    /// Planted bug: reads answer from the local replica without a read index.
    pub stale_reads: bool,
}

impl Default for StrongSettings {
    fn default() -> Self {
        Self { voters: 3, clients: 5, ops_per_client: 30, stale_reads: false }
    }
}

fn info(i: usize) -> NodeInfo {
    NodeInfo::new(format!("voter-{i}"), format!("/memory/{i}"))
}

struct Voter {
    path: StrongPath,
    kv: Arc<KvApplier>,
}

/// Runs one seed to completion (virtual time; about a second of wall time).
pub fn run(seed: u64, settings: StrongSettings) -> Result<StrongRun, String> {
    let runtime = crate::runtime::seeded(seed)?;
    runtime.block_on(async move {
        seed_election_timeouts(seed);
        let net = LoopbackNet::new();
        let mut voters = Vec::new();
        for i in 0..settings.voters {
            let storage = Arc::new(MemoryStorage::new());
            let kv = Arc::new(KvApplier::new(storage.clone()));
            let path = StrongPath::start(StartOptions {
                me: info(i),
                settings: statemesh::testkit::quick_raft_settings(),
                storage,
                applier: kv.clone(),
                transport: net.transport(&info(i)),
                instruments: RaftInstruments::default(),
            })
            .await
            .map_err(|e| format!("voter {i} does not start: {e}"))?;
            net.register(path.clone());
            voters.push(Voter { path, kv });
        }
        let all: Vec<NodeInfo> = (0..settings.voters).map(info).collect();
        for voter in &voters {
            voter.path.initialize(all.clone()).await.map_err(|e| format!("initialize: {e}"))?;
        }
        let voters = Arc::new(voters);
        let start = Instant::now();
        let trace = Arc::new(SharedTrace::default());
        let mut tasks = Vec::new();
        for client in 0..settings.clients {
            let voters = voters.clone();
            let trace = trace.clone();
            let mut rng = SimRng::new(seed ^ (0x9e37_79b9 * (client as u64 + 1)));
            tasks.push(tokio::spawn(async move {
                let mut history = Vec::new();
                let mut last_read: Option<(String, u64)> = None;
                for i in 0..settings.ops_per_client {
                    tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
                    let home = rng.below(voters.len() as u64) as usize;
                    let value = format!("c{client}-{i}");
                    let op = match rng.below(3) {
                        0 => Step::Write(value),
                        1 => Step::Read,
                        _ => Step::Cas(last_read.clone(), value),
                    };
                    let invoke = start.elapsed().as_nanos() as u64;
                    let recorded = perform(&voters, home, &op, &mut last_read, settings.stale_reads).await;
                    let complete = start.elapsed().as_nanos() as u64;
                    if let Some((op, outcome)) = recorded {
                        trace.push(format!("{invoke} {complete} c{client} {op:?} {outcome:?}"));
                        history.push(Operation {
                            key: "register".to_string(),
                            client: client as u64,
                            op,
                            invoke_ns: invoke,
                            complete_ns: (outcome != Outcome::Unknown).then_some(complete),
                            outcome,
                        });
                    }
                }
                history
            }));
        }
        let nemesis = {
            let net = net.clone();
            let trace = trace.clone();
            let mut rng = SimRng::new(seed.rotate_left(17));
            let voters = settings.voters;
            tokio::spawn(async move {
                for _ in 0..6 {
                    tokio::time::sleep(Duration::from_millis(200 + rng.below(600))).await;
                    let victim = rng.below(voters as u64) as usize;
                    trace.push(format!("{} isolate voter-{victim}", start.elapsed().as_nanos()));
                    net.isolate(&info(victim).peer_id);
                    tokio::time::sleep(Duration::from_millis(300 + rng.below(1500))).await;
                    trace.push(format!("{} rejoin voter-{victim}", start.elapsed().as_nanos()));
                    net.rejoin(&info(victim).peer_id);
                }
            })
        };
        let mut history = Vec::new();
        for task in tasks {
            history.extend(task.await.map_err(|e| format!("client task failed: {e}"))?);
        }
        nemesis.abort();
        net.heal_all();
        for voter in voters.iter() {
            let _ = voter.path.shutdown().await;
        }
        let report = linearizability::check(&history, &CheckOptions::default()).map_err(|e| e.to_string())?;
        Ok(StrongRun { seed, history, report, trace: trace.take() })
    })
}

#[derive(Debug, Clone)]
enum Step {
    Write(String),
    Read,
    /// Expect what this client last read (value and version), then write the new value.
    Cas(Option<(String, u64)>, String),
}

/// Runs one client step against `home` (following a NotLeader answer once) and says what to
/// record: `None` when the operation certainly had no effect and observed nothing.
async fn perform(
    voters: &[Voter],
    home: usize,
    step: &Step,
    last_read: &mut Option<(String, u64)>,
    stale_reads: bool,
) -> Option<(Op, Outcome)> {
    match step {
        Step::Read => {
            let voter = &voters[home];
            if !stale_reads {
                voter.path.read_index().await.ok()??;
            }
            let register = voter.kv.get(KEY).ok()?;
            *last_read = register.as_ref().map(|r| (String::from_utf8_lossy(&r.value).into_owned(), r.version));
            Some((Op::Read { result: last_read.as_ref().map(|(v, _)| v.clone()) }, Outcome::Ok))
        }
        Step::Write(value) => {
            let op = KvOp::Put { key: KEY.to_vec(), value: value.as_bytes().to_vec() };
            let outcome = propose(voters, home, &op).await;
            let recorded = Op::Write { value: value.clone() };
            match outcome {
                Proposed::Done(_) => Some((recorded, Outcome::Ok)),
                Proposed::NoEffect => None,
                Proposed::Unknown => Some((recorded, Outcome::Unknown)),
            }
        }
        Step::Cas(expected, value) => {
            let op = KvOp::CompareAndSwap {
                key: KEY.to_vec(),
                expected: expected.as_ref().map(|(_, version)| *version),
                value: Some(value.as_bytes().to_vec()),
            };
            let recorded = Op::Cas { expected: expected.as_ref().map(|(v, _)| v.clone()), new: value.clone() };
            match propose(voters, home, &op).await {
                Proposed::Done(KvOutcome::Written { .. }) => Some((recorded, Outcome::Ok)),
                Proposed::Done(KvOutcome::Conflict { .. }) => Some((recorded, Outcome::Fail)),
                Proposed::Done(_) | Proposed::NoEffect => None,
                Proposed::Unknown => Some((recorded, Outcome::Unknown)),
            }
        }
    }
}

enum Proposed {
    Done(KvOutcome),
    /// Refused before it could commit anywhere.
    NoEffect,
    /// May or may not have taken effect.
    Unknown,
}

async fn propose(voters: &[Voter], home: usize, op: &KvOp) -> Proposed {
    let mut target = home;
    for _ in 0..2 {
        match voters[target].path.propose(op.to_command()).await {
            Ok(committed) => {
                return match KvOutcome::from_result(&committed.result) {
                    Ok(outcome) => Proposed::Done(outcome),
                    Err(_) => Proposed::Unknown,
                }
            }
            Err(StrongError::NotLeader { leader: Some(leader) }) => {
                match voters.iter().position(|v| v.path.me().peer_id == leader.peer_id) {
                    Some(next) => target = next,
                    None => return Proposed::NoEffect,
                }
            }
            Err(StrongError::NotLeader { .. } | StrongError::Unavailable { .. }) => return Proposed::NoEffect,
            Err(_) => return Proposed::Unknown,
        }
    }
    Proposed::NoEffect
}

/// The trace shared by the tasks of one run.
#[derive(Default)]
struct SharedTrace(std::sync::Mutex<Vec<String>>);

impl SharedTrace {
    fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }

    fn take(&self) -> Vec<String> {
        self.0.lock().map(|mut lines| std::mem::take(&mut *lines)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::Verdict;

    #[test]
    fn strong_runs_under_isolations_are_linearizable() {
        for seed in 1..=5 {
            let run = run(seed, StrongSettings::default()).expect("run");
            assert_eq!(run.report.verdict(), Verdict::Linearizable, "seed {seed}:\n{}", run.report);
            assert!(run.history.len() > 100, "seed {seed} recorded only {} operations", run.history.len());
            assert!(run.trace.iter().any(|line| line.contains("isolate")), "seed {seed} injected no fault");
        }
    }

    #[test]
    fn stale_strong_reads_are_caught_by_the_checker() {
        let planted = StrongSettings { stale_reads: true, ..StrongSettings::default() };
        let caught =
            (1..=10).filter(|seed| run(*seed, planted).expect("run").report.verdict() != Verdict::Linearizable);
        assert!(caught.count() > 0, "no seed exposed reads that skip the read index");
    }
}
