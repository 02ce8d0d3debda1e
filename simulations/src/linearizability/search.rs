//! The search for a linearization of one key's history (Wing & Gong, with Lowe's memoisation).
//!
//! The invocations and completions of the operations with a known outcome form one list of
//! events in time order. At equal times an invocation comes before a completion, so
//! operations whose intervals only touch count as concurrent: the conservative choice, which
//! never reports a violation that hangs on how two clocks' readings tie.
//!
//! From a configuration (the operations linearized so far and the register's value), the
//! candidates to take effect next are the operations invoked before the first completion in
//! the list: that operation is overdue, and nothing invoked after its completion may come
//! before it. An operation of unknown outcome never completes, so it is a candidate from its
//! invocation on. The search linearizes a candidate whose step holds (lifting its two events
//! out of the list), continues from there, and when no candidate works, backtracks to try the
//! next candidate of an earlier configuration. The history is linearizable once every
//! operation of known outcome is linearized: the rest can all take effect after the last of
//! them, where a write, delete or cas of unknown outcome always can and nobody sees it.
//!
//! Before searching, quick checks look for the commonest violations, which need no search and
//! are explained by two or three operations: an ok read or cas that needed a value no operation
//! stores before it completes; or a value that only one operation stores, which the register
//! must have held from the completion of that operation (or of one that needed the value) until
//! the last operation that needs it began, while an operation that cannot happen with that
//! value in the register (a write, or a read of another value) ran entirely in between.
//!
//! What keeps the search from being exponential in practice:
//!
//! - Memoisation (Lowe): the rest of the search depends only on the configuration, so each
//!   configuration reached is remembered and never explored twice. The set is kept as a 128-bit
//!   fingerprint (the XOR of one random word per operation, updated in O(1)); the chance that
//!   two different sets the search reaches share one is around 2^-128 per pair. Values that no
//!   operation left to linearize asks anything of behave alike from then on, so the memo counts
//!   them as one.
//! - Candidates are tried earliest completion first, which is usually the right order.
//! - Rules specific to the register. Each only removes orders that cannot succeed, or orders
//!   for which another order that is tried succeeds as well:
//!   - An observation (an ok read, a failed cas or delete) that holds now is linearized at once,
//!     with no alternative tried: it changes nothing, and nothing pending completed before it
//!     began, so a linearization that places it later can place it now instead.
//!   - Values are unique per write. Once the register leaves a value that only one operation
//!     stores, it never holds that value again. So the search does not move the register away
//!     from such a value while an operation not yet linearized needs it (an ok read or ok cas),
//!     and gives up on a configuration where an operation that cannot happen while the register
//!     holds it completes before the last operation that needs it may take effect (its
//!     invocation; for an unknown cas that must have taken effect, by the next rule, the first
//!     invocation of an operation that would make it worth placing).
//!   - An operation of unknown outcome is linearized before the end only where it changes the
//!     register to a value another candidate needs or hopes for (an unknown cas that expects
//!     it), or away from one a candidate refuses (a failed cas). Placed anywhere else, it could
//!     move later, past operations that do not care, until it meets one of those or is
//!     overwritten, and then it might as well take effect at the end.
//!
//! Every candidate tried and every configuration reached costs one step of the budget; when
//! the budget runs out the search gives up rather than run on.

use std::collections::HashSet;

use rand_core::RngCore;

use super::model::{Demand, KeyHistory, RegisterOp, TimedOp, Value, ABSENT};
use crate::rng::SimRng;

/// What the search found for one key.
#[derive(Debug)]
pub(crate) enum Finding {
    Linearizable,
    /// Found by a quick check.
    Impossible(Impossible),
    NotLinearizable(Deepest),
    GaveUp,
}

/// A violation the quick checks find.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Impossible {
    /// Op `seen_by` needs a value that no op stores before `seen_by` completes;
    /// `first_storer` is the op invoked first of those that store it, if any does.
    NotYetStored { seen_by: usize, first_storer: Option<usize> },
    /// The register certainly held the value only one op stores from the completion of op
    /// `since` (that op if `since_stored`, else one that needed it) until op `until`, which
    /// needs it, began; op `by` cannot happen while the register holds it, yet began after the
    /// one and completed before the other.
    Interrupted { since: usize, since_stored: bool, until: usize, by: usize },
}

/// Where the search got furthest in a history it could not linearize.
#[derive(Debug, Clone)]
pub(crate) struct Deepest {
    /// The longest linearizable prefix found, as indices into the key's ops, in order.
    pub prefix: Vec<usize>,
    /// The register after that prefix.
    pub state: Value,
    /// The candidates at that point, in invocation order: none could be linearized next.
    pub pending: Vec<usize>,
    /// The op that had to be linearized next and could not be.
    pub overdue: usize,
    /// When `state` is a value that only one op stores: the ops not linearized that need it,
    /// which kept the register from moving on.
    pub still_needing: Vec<usize>,
}

/// The finding and the steps spent on it.
#[derive(Debug)]
pub(crate) struct SearchOutcome {
    pub finding: Finding,
    pub steps: u64,
}

/// Searches for a linearization of `key`, giving up after `budget_steps` steps.
pub(crate) fn search(key: &KeyHistory, budget_steps: u64) -> SearchOutcome {
    let facts = ValueFacts::new(&key.ops, key.values.count());
    if let Some(impossible) = not_yet_stored(&key.ops, &facts).or_else(|| interrupted(&key.ops, &facts)) {
        return SearchOutcome { finding: Finding::Impossible(impossible), steps: 0 };
    }
    let mut search = Search::new(&key.ops, facts);
    let finding = search.run(budget_steps);
    SearchOutcome { finding, steps: search.steps }
}

/// What the ops say about each value.
struct ValueFacts {
    /// The ops that may store it.
    storers: Vec<Vec<usize>>,
    /// The ops that need it (ok reads and cas, and unknown cas that must have taken effect).
    needers: Vec<Vec<usize>>,
    /// Once the register holds it, and if only one op stores it, how long it must keep it: the
    /// latest time an op that needs it may take effect from. That is the op's invocation, or for
    /// an unknown cas that must have taken effect, the first invocation of an op that makes
    /// taking effect worth it (see the rule for unknown outcomes above).
    needed_until: Vec<u64>,
}

impl ValueFacts {
    fn new(ops: &[TimedOp], value_count: usize) -> Self {
        let mut storers = vec![Vec::new(); value_count];
        let mut needers = vec![Vec::new(); value_count];
        let (mut first_wanted, mut first_refused) = (vec![u64::MAX; value_count], vec![u64::MAX; value_count]);
        for (index, op) in ops.iter().enumerate() {
            if let Some(value) = op.op.stored_value() {
                storers[value as usize].push(index);
            }
            let first = match op.op.demand() {
                Some(Demand::Needs(value)) => {
                    needers[value as usize].push(index);
                    &mut first_wanted[value as usize]
                }
                Some(Demand::HopesFor(value)) => &mut first_wanted[value as usize],
                Some(Demand::Refuses(value)) => &mut first_refused[value as usize],
                None => continue,
            };
            *first = (*first).min(op.invoke_ns);
        }
        let takes_effect_from = |op: usize| match ops[op].op {
            RegisterOp::CompareAndSet { expected, new } if ops[op].is_optional() => {
                ops[op].invoke_ns.max(first_wanted[new as usize].min(first_refused[expected as usize]))
            }
            _ => ops[op].invoke_ns,
        };
        let needed_until =
            needers.iter().map(|needers| needers.iter().map(|&op| takes_effect_from(op)).max().unwrap_or(0)).collect();
        ValueFacts { storers, needers, needed_until }
    }

    fn stored_once(&self, value: Value) -> bool {
        value != ABSENT && self.storers[value as usize].len() == 1
    }
}

/// A quick check: a value some op needs before any op may have stored it. The register holds
/// [`ABSENT`] from the start.
fn not_yet_stored(ops: &[TimedOp], facts: &ValueFacts) -> Option<Impossible> {
    (1..facts.storers.len()).find_map(|value| {
        let (seen_by, seen_at) = first_completing(ops, &facts.needers[value])?;
        let first_storer = facts.storers[value].iter().copied().min_by_key(|&op| (ops[op].invoke_ns, op));
        let stored_in_time = first_storer.is_some_and(|storer| ops[storer].invoke_ns <= seen_at);
        (!stored_in_time).then_some(Impossible::NotYetStored { seen_by, first_storer })
    })
}

/// Of `candidates`, the op of known outcome that completes first, and when.
fn first_completing(ops: &[TimedOp], candidates: &[usize]) -> Option<(usize, u64)> {
    let completing = candidates.iter().filter_map(|&op| Some((ops[op].complete_ns?, op)));
    completing.min().map(|(complete_ns, op)| (op, complete_ns))
}

/// A quick check: a value only one op stores was certainly held from the completion of that
/// op or of one that needed it, until the last op that needs it began; an op of known outcome
/// that cannot happen while the register holds it ran entirely in between.
fn interrupted(ops: &[TimedOp], facts: &ValueFacts) -> Option<Impossible> {
    let mut by_invocation: Vec<usize> = (0..ops.len()).filter(|&op| !ops[op].is_optional()).collect();
    by_invocation.sort_by_key(|&op| (ops[op].invoke_ns, op));
    (1..facts.storers.len()).find_map(|value| {
        if !facts.stored_once(value as Value) {
            return None;
        }
        let storer = facts.storers[value][0];
        let until = facts.needers[value].iter().copied().max_by_key(|&op| (ops[op].invoke_ns, op))?;
        let held_until = ops[until].invoke_ns;
        let (since, held_since) = first_completing(ops, &[&[storer][..], &facts.needers[value]].concat())?;
        if held_since >= held_until {
            return None;
        }
        let first = by_invocation.partition_point(|&op| ops[op].invoke_ns <= held_since);
        let inside = by_invocation[first..].iter().take_while(|&&op| ops[op].invoke_ns < held_until);
        let by = inside.copied().find(|&op| {
            let holds = ops[op].op.apply(value as Value) == Some(value as Value);
            op != storer && !holds && ops[op].complete_ns.is_some_and(|complete_ns| complete_ns < held_until)
        })?;
        Some(Impossible::Interrupted { since, since_stored: since == storer, until, by })
    })
}

/// The memo's class of every value that no op left to linearize asks anything of.
const SETTLED: Value = Value::MAX;

/// The list head; events are numbered from 1 and the tail follows the last.
const HEAD: usize = 0;

/// The invocation and completion events of the ops of known outcome, in time order, as a
/// doubly linked list that lifts an op's two events out in O(1) and, undone in reverse order,
/// puts them back where they were.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The op each event belongs to, whether it is the invocation, and when it happens.
    op: Vec<usize>,
    is_invocation: Vec<bool>,
    time: Vec<u64>,
    /// Per op, its two events (unused for ops of unknown outcome).
    invocation: Vec<usize>,
    completion: Vec<usize>,
    tail: usize,
}

impl Events {
    fn new(ops: &[TimedOp]) -> Self {
        // Sort key: (time, completion after invocation, op).
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (index, op) in ops.iter().enumerate() {
            if let Some(complete_ns) = op.complete_ns {
                order.push((op.invoke_ns, false, index));
                order.push((complete_ns, true, index));
            }
        }
        order.sort_unstable();
        let tail = order.len() + 1;
        let mut events = Events {
            next: (1..=tail).chain([tail]).collect(),
            prev: [HEAD].into_iter().chain(0..tail).collect(),
            op: vec![usize::MAX; tail + 1],
            is_invocation: vec![false; tail + 1],
            time: vec![u64::MAX; tail + 1],
            invocation: vec![0; ops.len()],
            completion: vec![0; ops.len()],
            tail,
        };
        for (position, &(time, is_completion, index)) in order.iter().enumerate() {
            let event = position + 1;
            events.op[event] = index;
            events.is_invocation[event] = !is_completion;
            events.time[event] = time;
            match is_completion {
                true => events.completion[index] = event,
                false => events.invocation[index] = event,
            }
        }
        events
    }

    fn first(&self) -> usize {
        self.next[HEAD]
    }

    /// The ops invoked before the first completion, and that completion (the tail when there
    /// is none).
    fn window(&self) -> (Vec<usize>, usize) {
        let mut event = self.first();
        let mut ops = Vec::new();
        while event != self.tail && self.is_invocation[event] {
            ops.push(self.op[event]);
            event = self.next[event];
        }
        (ops, event)
    }

    /// The ops not linearized that complete before `time`, in completion order.
    fn completing_before(&self, time: u64) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(self.first()), |&event| Some(self.next[event]))
            .take_while(move |&event| self.time[event] < time)
            .filter(|&event| !self.is_invocation[event])
            .map(|event| self.op[event])
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.invocation[op]);
        self.unlink(self.completion[op]);
    }

    fn unlift(&mut self, op: usize) {
        self.relink(self.completion[op]);
        self.relink(self.invocation[op]);
    }

    fn unlink(&mut self, event: usize) {
        let (prev, next) = (self.prev[event], self.next[event]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, event: usize) {
        let (prev, next) = (self.prev[event], self.next[event]);
        self.next[prev] = event;
        self.prev[next] = event;
    }
}

/// How many ops not linearized yet make each kind of [`Demand`] on one value.
#[derive(Debug, Clone, Copy, Default)]
struct UnmetDemands {
    needs: u32,
    hopes: u32,
    refusals: u32,
}

impl UnmetDemands {
    fn adjust(unmet: &mut [UnmetDemands], demand: Demand, delta: i32) {
        let count = match demand {
            Demand::Needs(value) => &mut unmet[value as usize].needs,
            Demand::HopesFor(value) => &mut unmet[value as usize].hopes,
            Demand::Refuses(value) => &mut unmet[value as usize].refusals,
        };
        *count = count.checked_add_signed(delta).expect("a demand is settled once per linearization");
    }

    fn is_empty(&self) -> bool {
        self.needs + self.hopes + self.refusals == 0
    }
}

/// The moves out of one configuration, in the order they are tried.
#[derive(Default)]
struct Choices {
    candidates: Vec<usize>,
    /// The values some candidate needs or hopes for, sorted.
    wanted: Vec<Value>,
    /// Whether some candidate refuses the current value.
    refused: bool,
}

/// A configuration on the search path, and the move that left it.
struct Level {
    /// Empty when the observation rule chose the move, which leaves no alternative.
    choices: Choices,
    /// Which candidate was linearized.
    chosen: usize,
    op: usize,
    state_before: Value,
}

struct Search<'a> {
    ops: &'a [TimedOp],
    events: Events,
    state: Value,
    /// XOR of `op_prints` over the linearized ops.
    fingerprint: u128,
    op_prints: Vec<u128>,
    seen: HashSet<(u128, Value)>,
    stack: Vec<Level>,
    linearized: Vec<bool>,
    /// Ops of known outcome not linearized yet.
    definite_left: usize,
    /// Per value, the [`Demand`]s on it of the ops not linearized yet.
    unmet: Vec<UnmetDemands>,
    facts: ValueFacts,
    /// Per value: the ops of unknown outcome that may store it.
    unknown_storing: Vec<Vec<usize>>,
    /// The ops of unknown outcome, by invocation.
    unknown_by_invocation: Vec<usize>,
    deepest: Option<Deepest>,
    steps: u64,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [TimedOp], facts: ValueFacts) -> Self {
        let mut rng = SimRng::new(0x6c69_6e65_6172_697a);
        let op_prints = ops.iter().map(|_| (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())).collect();
        let mut unmet = vec![UnmetDemands::default(); facts.storers.len()];
        for demand in ops.iter().filter_map(|op| op.op.demand()) {
            UnmetDemands::adjust(&mut unmet, demand, 1);
        }
        let unknown_storing = facts
            .storers
            .iter()
            .map(|storers| storers.iter().copied().filter(|&op| ops[op].is_optional()).collect())
            .collect();
        let mut unknown_by_invocation: Vec<usize> = (0..ops.len()).filter(|&op| ops[op].is_optional()).collect();
        unknown_by_invocation.sort_by_key(|&op| ops[op].invoke_ns);
        let mut search = Search {
            ops,
            events: Events::new(ops),
            state: ABSENT,
            fingerprint: 0,
            op_prints,
            seen: HashSet::new(),
            stack: Vec::new(),
            linearized: vec![false; ops.len()],
            definite_left: ops.iter().filter(|op| !op.is_optional()).count(),
            unmet,
            facts,
            unknown_storing,
            unknown_by_invocation,
            deepest: None,
            steps: 0,
        };
        search.seen.insert((0, search.class_of(ABSENT)));
        search
    }

    fn run(&mut self, budget_steps: u64) -> Finding {
        loop {
            // At a configuration just reached.
            if self.definite_left == 0 {
                return Finding::Linearizable;
            }
            if self.steps >= budget_steps {
                return Finding::GaveUp;
            }
            self.steps += 1;
            let (window, first_completion) = self.events.window();
            let moved = if let Some(op) = self.op_that_cannot_wait() {
                self.note_if_deepest(window, op);
                false
            } else if let Some(op) = self.observation_that_holds(&window) {
                // If that was explored already, it failed, and so does this configuration.
                self.enter(Choices::default(), 0, op)
            } else {
                match self.enter_first(self.choices(window, self.events.time[first_completion]), 0) {
                    Ok(()) => true,
                    Err(choices) => {
                        self.note_if_deepest(choices.candidates, self.events.op[first_completion]);
                        false
                    }
                }
            };
            if !moved && !self.backtrack() {
                let deepest = self.deepest.take().expect("a failed search was stuck at least once");
                return Finding::NotLinearizable(deepest);
            }
        }
    }

    /// While the register holds a value stored once and still needed, it holds it until the
    /// last op that needs it may take effect; an op that completes before then and cannot
    /// happen without changing the value dooms this configuration.
    fn op_that_cannot_wait(&self) -> Option<usize> {
        let state = self.state;
        if !self.facts.stored_once(state) || self.unmet[state as usize].needs == 0 {
            return None;
        }
        let mut completing = self.events.completing_before(self.facts.needed_until[state as usize]);
        completing.find(|&op| self.ops[op].op.apply(state) != Some(state))
    }

    /// An observation in `window` that holds now.
    fn observation_that_holds(&self, window: &[usize]) -> Option<usize> {
        window.iter().copied().find(|&op| {
            let step = self.ops[op].op;
            step.is_observation() && step.apply(self.state).is_some()
        })
    }

    /// The candidates, earliest completion first: the ops of known outcome in `window`, and
    /// those of unknown outcome invoked by `window_end` that may be worth linearizing now.
    fn choices(&self, window: Vec<usize>, window_end: u64) -> Choices {
        let unknown_pending = |op: &&usize| self.ops[**op].invoke_ns <= window_end && !self.linearized[**op];
        let mut choices = Choices { candidates: window, ..Choices::default() };
        let mut next = 0;
        while let Some(&op) = choices.candidates.get(next) {
            next += 1;
            match self.ops[op].op.demand() {
                Some(Demand::Needs(value) | Demand::HopesFor(value)) if !choices.wanted.contains(&value) => {
                    choices.wanted.push(value);
                    choices.candidates.extend(self.unknown_storing[value as usize].iter().filter(unknown_pending));
                }
                Some(Demand::Refuses(value)) if value == self.state && !choices.refused => {
                    choices.refused = true;
                    let invoked =
                        self.unknown_by_invocation.iter().take_while(|&&op| self.ops[op].invoke_ns <= window_end);
                    choices.candidates.extend(invoked.filter(|&&op| !self.linearized[op]));
                }
                _ => {}
            }
        }
        choices.wanted.sort_unstable();
        choices
            .candidates
            .sort_by_key(|&op| (self.ops[op].complete_ns.unwrap_or(u64::MAX), self.ops[op].invoke_ns, op));
        choices.candidates.dedup();
        choices
    }

    /// Linearizes the first candidate from `from` on that may be linearized and leads to a
    /// configuration not reached before; gives the choices back if there is none.
    fn enter_first(&mut self, choices: Choices, from: usize) -> Result<(), Choices> {
        for chosen in from..choices.candidates.len() {
            self.steps += 1;
            let op = choices.candidates[chosen];
            if self.may_linearize(op, &choices) && self.enter(Choices::default(), chosen, op) {
                self.stack.last_mut().expect("just entered").choices = choices;
                return Ok(());
            }
        }
        Err(choices)
    }

    /// Whether `op` holds now, is worth linearizing here if its outcome is unknown, and does
    /// not move the register away from a value still needed.
    fn may_linearize(&self, op: usize, choices: &Choices) -> bool {
        let (state, step) = (self.state, self.ops[op].op);
        let Some(next) = step.apply(state) else { return false };
        let unknown = self.ops[op].is_optional();
        if next == state {
            return !unknown;
        }
        if unknown && !choices.refused && choices.wanted.binary_search(&next).is_err() {
            return false;
        }
        let own_need = u32::from(step.demand() == Some(Demand::Needs(state)));
        !self.facts.stored_once(state) || self.unmet[state as usize].needs <= own_need
    }

    /// Linearizes `op` unless it does not hold or the configuration it leads to was reached
    /// before; returns whether it did.
    fn enter(&mut self, choices: Choices, chosen: usize, op: usize) -> bool {
        let Some(next) = self.ops[op].op.apply(self.state) else { return false };
        self.mark(op, true);
        if !self.seen.insert((self.fingerprint, self.class_of(next))) {
            self.mark(op, false);
            return false;
        }
        self.stack.push(Level { choices, chosen, op, state_before: self.state });
        self.state = next;
        true
    }

    /// Undoes moves until a configuration with an untried candidate that works; returns
    /// whether there was one.
    fn backtrack(&mut self) -> bool {
        while let Some(level) = self.stack.pop() {
            self.mark(level.op, false);
            self.state = level.state_before;
            if self.enter_first(level.choices, level.chosen + 1).is_ok() {
                return true;
            }
        }
        false
    }

    /// The state as the memo sees it: values that no op left to linearize asks anything of
    /// share one class.
    fn class_of(&self, state: Value) -> Value {
        match self.unmet[state as usize].is_empty() {
            true => SETTLED,
            false => state,
        }
    }

    /// Lifts `op` out of the list, adds it to the fingerprint and settles its demand, or the
    /// reverse.
    fn mark(&mut self, op: usize, linearized: bool) {
        let timed = self.ops[op];
        self.linearized[op] = linearized;
        self.fingerprint ^= self.op_prints[op];
        let delta = if linearized { -1 } else { 1 };
        if !timed.is_optional() {
            match linearized {
                true => self.events.lift(op),
                false => self.events.unlift(op),
            }
            self.definite_left = self.definite_left.checked_add_signed(delta as isize).expect("counted once");
        }
        if let Some(demand) = timed.op.demand() {
            UnmetDemands::adjust(&mut self.unmet, demand, delta);
        }
    }

    /// Where no candidate works: remembers this point if it is the furthest yet.
    fn note_if_deepest(&mut self, mut pending: Vec<usize>, overdue: usize) {
        if self.deepest.as_ref().is_some_and(|deepest| deepest.prefix.len() >= self.stack.len()) {
            return;
        }
        pending.sort_unstable_by_key(|&op| (self.ops[op].invoke_ns, op));
        let state = self.state;
        let held_by_need = self.facts.stored_once(state) && self.unmet[state as usize].needs > 0;
        let still_needing = match held_by_need {
            true => self.facts.needers[state as usize].iter().copied().filter(|&op| !self.linearized[op]).collect(),
            false => Vec::new(),
        };
        self.deepest = Some(Deepest {
            prefix: self.stack.iter().map(|level| level.op).collect(),
            state,
            pending,
            overdue,
            still_needing,
        });
    }
}
