//! One client of a strong-document run: operations on a random voter at random times, each
//! recorded with what the client learnt of its outcome.
//!
//! Documents: two single registers `r0`, `r1` (`{"v": value}`, written by puts and by
//! compare-and-swaps on the ETag of the client's last strong read), and a pair `p0`, `p1`
//! written only by transactions, always both to one value (a multi-put, or a guarded
//! multi-put that compares `p0`'s value first) and read both at once by a read-only
//! transaction. Reads of the registers go at `strong`, `bounded` and `eventual` level.
//! Every written value is unique.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use statemesh::config::BoundedFallback;
use statemesh::node::{Compare, CompareOp, CompareTarget, Node, NodeError, Precondition, TxnOp, TxnStep};
use statemesh::protocol::{DocKey, Version};
use statemesh::raft::StrongError;
use statemesh::strong::{ReadLevel, StrongDocError, StrongDocs, StrongTxn};
use tokio::time::{Duration, Instant};

use super::cluster::{Cluster, NAMESPACE};
use super::record::{PairRead, WeakLevel, WeakRead, WriteRecord};
use crate::linearizability::{Op, Operation, Outcome};
use crate::rng::SimRng;

pub const REGISTERS: [&str; 2] = ["r0", "r1"];
pub const PAIR: [&str; 2] = ["p0", "p1"];
/// Pause after a refused operation.
const REFUSED_BACKOFF: Duration = Duration::from_millis(100);

/// Choices a seed fixes for every client.
#[derive(Debug, Clone, Copy)]
pub struct ClientPlan {
    pub ops: usize,
    pub max_staleness: Duration,
    pub fallback: BoundedFallback,
    /// Planted bug: strong reads skip the read barrier.
    pub skip_strong_barrier: bool,
    /// Planted bug: bounded reads are served without checking staleness.
    pub skip_staleness_check: bool,
}

/// Everything one client recorded.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub history: Vec<Operation>,
    pub writes: Vec<WriteRecord>,
    pub weak_reads: Vec<WeakRead>,
    pub pair_reads: Vec<PairRead>,
    pub trace: Vec<String>,
}

pub fn doc_key(id: &str) -> DocKey {
    statemesh::testkit::key(NAMESPACE, id)
}

/// What a finished request tells about its effect.
enum Effect {
    /// It took effect, at this Raft index.
    Done(Option<u64>),
    /// It certainly did not take effect (refused, or a failed precondition: `failed`).
    Refused { failed: bool },
    /// It may or may not take effect.
    Unknown,
}

fn classify(error: &StrongDocError) -> Effect {
    match error {
        StrongDocError::Node(NodeError::VersionMismatch { .. } | NodeError::Precondition(_)) => {
            Effect::Refused { failed: true }
        }
        StrongDocError::Remote { code, .. } if code == "precondition_failed" => Effect::Refused { failed: true },
        StrongDocError::Strong(StrongError::NotLeader { .. } | StrongError::Unavailable { .. }) => {
            Effect::Refused { failed: false }
        }
        StrongDocError::Remote { code, .. } if code == "not_leader" || code == "unavailable" => {
            Effect::Refused { failed: false }
        }
        _ => Effect::Unknown,
    }
}

/// The register value of a document's JSON.
pub fn register_value(json: &Value) -> Option<String> {
    json.get("v").and_then(Value::as_str).map(str::to_owned)
}

/// The voter an operation goes to, as it runs now.
struct At<'a> {
    voter: usize,
    node: &'a Node,
    docs: &'a StrongDocs,
}

pub struct Client<'a> {
    pub id: u64,
    pub cluster: &'a Cluster,
    pub plan: ClientPlan,
    pub start: Instant,
    pub rng: SimRng,
    pub log: ClientLog,
    /// The value and version this client last read of each register, by strong read.
    last_read: BTreeMap<&'static str, Option<(String, Version)>>,
    /// The value this client last saw the pair at.
    last_pair: Option<String>,
}

impl<'a> Client<'a> {
    pub fn new(id: u64, cluster: &'a Cluster, plan: ClientPlan, start: Instant, rng: SimRng) -> Self {
        Self { id, cluster, plan, start, rng, log: ClientLog::default(), last_read: BTreeMap::new(), last_pair: None }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub async fn run(mut self) -> ClientLog {
        for i in 0..self.plan.ops {
            tokio::time::sleep(Duration::from_millis(self.rng.below(40))).await;
            let voter = self.rng.below(self.cluster.len() as u64) as usize;
            // A crashed voter refuses the connection: nothing happens.
            let Some((node, docs)) = self.cluster.running(voter) else { continue };
            let at = At { voter, node: &node, docs: &docs };
            let recorded = self.log.history.len() + self.log.weak_reads.len();
            let register = REGISTERS[self.rng.below(2) as usize];
            let value = format!("c{}-{i}", self.id);
            match self.rng.below(100) {
                0..=19 => self.put(at.docs, register, value).await,
                20..=31 => self.cas(at.docs, register, value).await,
                32..=46 => self.strong_read(&at, register).await,
                47..=61 => self.weak_read(&at, register, true).await,
                62..=67 => self.weak_read(&at, register, false).await,
                68..=79 => self.pair_write(at.docs, value, false).await,
                80..=87 => self.pair_write(at.docs, value, true).await,
                _ => self.pair_read(at.docs).await,
            }
            // Refused (no leader, no quorum, too stale): back off, as a client given a 503
            // does, rather than spend the run's operations while the cluster recovers.
            if self.log.history.len() + self.log.weak_reads.len() == recorded {
                tokio::time::sleep(REFUSED_BACKOFF).await;
            }
        }
        self.log
    }

    fn record(&mut self, key: &str, op: Op, outcome: Outcome, invoke_ns: u64, complete_ns: u64) {
        self.log.trace.push(format!("{invoke_ns} {complete_ns} c{} {key} {op:?} {outcome:?}", self.id));
        self.log.history.push(Operation {
            key: key.to_owned(),
            client: self.id,
            op,
            invoke_ns,
            complete_ns: (outcome != Outcome::Unknown).then_some(complete_ns),
            outcome,
        });
    }

    /// Records a write attempt of `value` to `key` as `op`, with what `effect` says of it.
    fn record_write(&mut self, key: &str, op: Op, value: &str, effect: &Effect, invoke_ns: u64) {
        let complete_ns = self.now();
        let (outcome, index) = match effect {
            Effect::Done(index) => (Outcome::Ok, *index),
            Effect::Refused { failed: true } => (Outcome::Fail, None),
            Effect::Refused { failed: false } => return,
            Effect::Unknown => (Outcome::Unknown, None),
        };
        if outcome != Outcome::Fail {
            self.log.writes.push(WriteRecord {
                key: key.to_owned(),
                value: value.to_owned(),
                acknowledged: outcome == Outcome::Ok,
                index,
                invoke_ns,
                complete_ns,
            });
        }
        self.record(key, op, outcome, invoke_ns, complete_ns);
    }

    async fn put(&mut self, docs: &StrongDocs, key: &'static str, value: String) {
        let invoke = self.now();
        let result = docs.write(&doc_key(key), &TxnOp::Put(json!({ "v": value })), &Precondition::None).await;
        let effect = result.map_or_else(|e| classify(&e), |w| Effect::Done(w.index));
        self.record_write(key, Op::Write { value: value.clone() }, &value, &effect, invoke);
    }

    /// Compare-and-swap on the version of this client's last strong read of `key`
    /// (`If-None-Match: *` when it last found the document absent, or never read it).
    async fn cas(&mut self, docs: &StrongDocs, key: &'static str, value: String) {
        let expected = self.last_read.get(key).cloned().flatten();
        let pre = match &expected {
            Some((_, version)) => Precondition::IfMatch(version.clone()),
            None => Precondition::Absent,
        };
        let invoke = self.now();
        let result = docs.write(&doc_key(key), &TxnOp::Put(json!({ "v": value })), &pre).await;
        let effect = result.map_or_else(|e| classify(&e), |w| Effect::Done(w.index));
        let op = Op::Cas { expected: expected.map(|(v, _)| v), new: value.clone() };
        self.record_write(key, op, &value, &effect, invoke);
    }

    /// Reads `key` on this voter after `level` allows it; `None` when the read was refused.
    async fn read(at: &At<'_>, key: &str, level: Option<ReadLevel>) -> Option<Option<(String, Version)>> {
        if let Some(level) = level {
            at.docs.prepare_read(level, None).await.ok()?;
        }
        match at.node.get(&doc_key(key)).await {
            Ok(view) => Some(register_value(&view.json).map(|v| (v, view.version))),
            Err(NodeError::NotFound(_)) => Some(None),
            Err(_) => None,
        }
    }

    async fn strong_read(&mut self, at: &At<'_>, key: &'static str) {
        let invoke = self.now();
        let level = (!self.plan.skip_strong_barrier).then_some(ReadLevel::Strong);
        let Some(read) = Self::read(at, key, level).await else { return };
        let complete = self.now();
        self.record(key, Op::Read { result: read.as_ref().map(|(v, _)| v.clone()) }, Outcome::Ok, invoke, complete);
        self.last_read.insert(key, read);
    }

    async fn weak_read(&mut self, at: &At<'_>, key: &'static str, bounded: bool) {
        let (level, checked) = if bounded {
            let level = WeakLevel::Bounded {
                max_staleness_ns: u64::try_from(self.plan.max_staleness.as_nanos()).unwrap_or(u64::MAX),
            };
            let read = ReadLevel::Bounded { max_staleness: self.plan.max_staleness, fallback: self.plan.fallback };
            (level, (!self.plan.skip_staleness_check).then_some(read))
        } else {
            (WeakLevel::Eventual, Some(ReadLevel::Eventual))
        };
        let invoke = self.now();
        let Some(read) = Self::read(at, key, checked).await else { return };
        let complete = self.now();
        let result = read.map(|(v, _)| v);
        self.log
            .trace
            .push(format!("{invoke} {complete} c{} {key} {level:?} read {result:?} on {}", self.id, at.voter));
        self.log.weak_reads.push(WeakRead {
            key: key.to_owned(),
            client: self.id,
            voter: at.voter,
            level,
            result,
            invoke_ns: invoke,
            complete_ns: complete,
        });
    }

    /// A transaction writing `value` to both documents of the pair; `guarded`: only if `p0`
    /// still holds the value this client last saw the pair at.
    async fn pair_write(&mut self, docs: &StrongDocs, value: String, guarded: bool) {
        let put = |id: &str| TxnStep::Write(doc_key(id), TxnOp::Put(json!({ "v": value })));
        let expected = self.last_pair.clone();
        let compares = if guarded {
            let target = match &expected {
                Some(seen) => CompareTarget::Value { pointer: "/v".to_owned(), value: json!(seen) },
                None => CompareTarget::Exists(false),
            };
            vec![Compare { key: doc_key(PAIR[0]), op: CompareOp::Eq, target }]
        } else {
            Vec::new()
        };
        let txn = StrongTxn { compares, success: vec![put(PAIR[0]), put(PAIR[1])], failure: Vec::new() };
        let invoke = self.now();
        let effect = match docs.txn(txn).await {
            Ok(done) if done.body.get("succeeded").and_then(Value::as_bool) == Some(true) => Effect::Done(done.index),
            Ok(_) => Effect::Refused { failed: true },
            Err(e) => classify(&e),
        };
        for key in PAIR {
            let op = if guarded {
                Op::Cas { expected: expected.clone(), new: value.clone() }
            } else {
                Op::Write { value: value.clone() }
            };
            self.record_write(key, op, &value, &effect, invoke);
        }
    }

    /// Reads both documents of the pair in one read-only transaction.
    async fn pair_read(&mut self, docs: &StrongDocs) {
        let txn = StrongTxn {
            compares: Vec::new(),
            success: PAIR.iter().map(|id| TxnStep::Get(doc_key(id))).collect(),
            failure: Vec::new(),
        };
        let invoke = self.now();
        let Ok(done) = docs.txn(txn).await else { return };
        let complete = self.now();
        let results = done.body.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
        let values: Vec<Option<String>> = results.iter().map(|r| r.get("document").and_then(register_value)).collect();
        let [a, b] = values.as_slice() else {
            self.log.trace.push(format!("{invoke} c{} pair read answered {}", self.id, done.body));
            return;
        };
        for (key, result) in PAIR.iter().zip([a, b]) {
            self.record(key, Op::Read { result: result.clone() }, Outcome::Ok, invoke, complete);
        }
        self.last_pair = a.clone();
        self.log.pair_reads.push(PairRead {
            client: self.id,
            values: [a.clone(), b.clone()],
            invoke_ns: invoke,
            complete_ns: complete,
        });
    }
}
