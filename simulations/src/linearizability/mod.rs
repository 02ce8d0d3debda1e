//! A linearizability checker for key-value histories.
//!
//! The strong path promises that every operation on a key appears to take effect at one
//! instant between its invocation and its completion, in one order all clients agree on. The
//! only evidence of that from outside is what clients saw: a history of invocations, answers
//! and their times. This module decides whether such a history could have come from a single
//! atomic register per key, for the simulator's strong-path checks, for integration tests, and
//! for histories recorded to a file by a chaos run (`simulations check-history FILE`).
//!
//! How:
//!
//! - Per key: linearizability is compositional (Herlihy & Wing), so a history is linearizable
//!   exactly when each key's sub-history is, and each key is checked alone.
//! - [`model`]: each key is a register of `Option<String>`, absent at first, and each operation
//!   with its outcome is one step of it (reads, puts, deletes, compare-and-set, with outcomes
//!   `ok`, `fail` and `unknown`). Clients should write values no other write uses: the search
//!   relies on that for its speed, though not for its verdict.
//! - [`search`]: quick checks for the commonest violations, then a depth-first search for a
//!   linearization (Wing & Gong) that remembers every configuration it has explored (Lowe), as
//!   in Porcupine, pruned by what a register with unique values allows, within a step budget.
//! - [`history`]: the operation types and the JSON-lines history file.
//!
//! A key that is not linearizable is reported with the two or three operations that contradict
//! each other when a quick check finds it, else with the longest linearizable prefix the search
//! found and the operations none of which could come next. A key whose search ran out of budget
//! is reported as such, neither passed nor failed.

mod history;
mod model;
mod search;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use history::ShowValue;
pub use history::{parse_history, read_history_file, ClientId, HistoryError, Op, Operation, Outcome};
use model::{Demand, KeyHistory};
use search::{search, Deepest, Finding, Impossible};

/// The default step budget per key. A linearizable key of a few thousand operations from a few
/// dozen clients usually takes well under a million steps; running through this budget takes
/// about a second and some tens of MB.
pub const DEFAULT_BUDGET_STEPS: u64 = 10_000_000;

/// How hard to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// Search steps allowed per key before giving up on it.
    pub budget_steps: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { budget_steps: DEFAULT_BUDGET_STEPS }
    }
}

/// Checks every key of `history` (in any order; times are what count). Fails only on an
/// invalid operation (a definite outcome without a completion time, or completing before
/// its invocation).
pub fn check(history: &[Operation], options: &CheckOptions) -> Result<Report, HistoryError> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, operation) in history.iter().enumerate() {
        operation.validate().map_err(|message| HistoryError::Operation { number: index + 1, message })?;
        by_key.entry(&operation.key).or_default().push(index);
    }
    let keys = by_key.into_iter().map(|(key, indices)| check_key(history, key, &indices, options)).collect();
    Ok(Report { keys })
}

fn check_key(history: &[Operation], key: &str, indices: &[usize], options: &CheckOptions) -> KeyReport {
    let register = KeyHistory::build(history, indices);
    let outcome = search(&register, options.budget_steps);
    let numbering = Numbering { history, register: &register };
    let violation = |cause| KeyResult::NotLinearizable(Box::new(Violation { key: key.to_owned(), cause }));
    let result = match outcome.finding {
        Finding::Linearizable => KeyResult::Linearizable,
        Finding::GaveUp => KeyResult::GaveUp,
        Finding::Impossible(impossible) => violation(numbering.impossible(impossible)),
        Finding::NotLinearizable(deepest) => violation(numbering.stuck(&deepest)),
    };
    KeyReport {
        key: key.to_owned(),
        operations: indices.len(),
        constraining: register.ops.len(),
        steps: outcome.steps,
        result,
    }
}

/// The result for a whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// One per key, in key order.
    pub keys: Vec<KeyReport>,
}

/// The result for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    pub key: String,
    /// Operations on the key in the history.
    pub operations: usize,
    /// Of those, the ones that constrain the register (not failed writes, failed or unknown reads).
    pub constraining: usize,
    /// Search steps spent.
    pub steps: u64,
    pub result: KeyResult,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyResult {
    Linearizable,
    NotLinearizable(Box<Violation>),
    /// The step budget ran out first.
    GaveUp,
}

/// The verdict for a whole history: a violation anywhere outweighs giving up elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    GaveUp,
}

/// An operation and its number in the checked history, counted from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedOperation {
    pub number: usize,
    pub operation: Operation,
}

/// Why a key is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    pub cause: Cause,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// `seen_by` (an ok read or cas) needed `value`, yet no operation stores it before
    /// `seen_by` completed; `first_storer` is the first invoked of those that store it, if any.
    NotYetStored { value: String, seen_by: NumberedOperation, first_storer: Option<NumberedOperation> },
    /// The register certainly held `value`, which only one operation stores, from the
    /// completion of `since` (that operation, or one that needed the value) until `until`, which
    /// needed it, began; yet `by`, which cannot happen while the register holds it (a write, a
    /// read of another value), ran entirely in between.
    Interrupted {
        value: String,
        since: NumberedOperation,
        /// Whether `since` stored the value (else it needed it).
        since_stored: bool,
        until: NumberedOperation,
        by: NumberedOperation,
    },
    /// No order of the operations works; this is where the search got furthest.
    Stuck(Stuck),
}

/// The furthest point a search that found no linearization reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// Length of the longest linearizable prefix found.
    pub linearized: usize,
    /// The register after that prefix.
    pub state: Option<String>,
    /// The prefix's last operations, in linearization order.
    pub prefix_tail: Vec<NumberedOperation>,
    /// The operations that could have come next there (none could): the overdue one first,
    /// then the others in invocation order.
    pub candidates: Vec<NumberedOperation>,
    /// The number of the operation that had to come next: the first to complete, or one that
    /// completed before an operation that needs the register's value began.
    pub overdue: usize,
    /// When nothing else stores the register's value: the operations not linearized that
    /// still need it, so it could not be replaced yet.
    pub still_needing: Vec<NumberedOperation>,
}

/// How many of the prefix's last operations a violation shows.
const PREFIX_TAIL: usize = 8;
/// How many operations a report lists in one place.
const OPERATIONS_SHOWN: usize = 16;

/// Numbers the key's ops as operations of the checked history.
struct Numbering<'a> {
    history: &'a [Operation],
    register: &'a KeyHistory,
}

impl Numbering<'_> {
    fn number(&self, op: usize) -> NumberedOperation {
        let index = self.register.origins[op];
        NumberedOperation { number: index + 1, operation: self.history[index].clone() }
    }

    fn impossible(&self, impossible: Impossible) -> Cause {
        match impossible {
            Impossible::NotYetStored { seen_by, first_storer } => Cause::NotYetStored {
                value: self.needed_value(seen_by),
                seen_by: self.number(seen_by),
                first_storer: first_storer.map(|op| self.number(op)),
            },
            Impossible::Interrupted { since, since_stored, until, by } => Cause::Interrupted {
                value: self.needed_value(until),
                since: self.number(since),
                since_stored,
                until: self.number(until),
                by: self.number(by),
            },
        }
    }

    fn needed_value(&self, op: usize) -> String {
        let needed = match self.register.ops[op].op.demand() {
            Some(Demand::Needs(value)) => self.register.values.name(value),
            _ => None,
        };
        needed.unwrap_or_default().to_owned()
    }

    fn stuck(&self, deepest: &Deepest) -> Cause {
        let tail_start = deepest.prefix.len().saturating_sub(PREFIX_TAIL);
        let others = deepest.pending.iter().copied().filter(|&op| op != deepest.overdue);
        Cause::Stuck(Stuck {
            linearized: deepest.prefix.len(),
            state: self.register.values.name(deepest.state).map(str::to_owned),
            prefix_tail: deepest.prefix[tail_start..].iter().map(|&op| self.number(op)).collect(),
            candidates: std::iter::once(deepest.overdue).chain(others).map(|op| self.number(op)).collect(),
            overdue: self.register.origins[deepest.overdue] + 1,
            still_needing: deepest.still_needing.iter().map(|&op| self.number(op)).collect(),
        })
    }
}

impl Report {
    pub fn verdict(&self) -> Verdict {
        let any = |wanted: fn(&KeyResult) -> bool| self.keys.iter().any(|key| wanted(&key.result));
        if any(|result| matches!(result, KeyResult::NotLinearizable(_))) {
            Verdict::NotLinearizable
        } else if any(|result| matches!(result, KeyResult::GaveUp)) {
            Verdict::GaveUp
        } else {
            Verdict::Linearizable
        }
    }

    pub fn is_linearizable(&self) -> bool {
        self.verdict() == Verdict::Linearizable
    }

    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.keys.iter().filter_map(|key| match &key.result {
            KeyResult::NotLinearizable(violation) => Some(violation.as_ref()),
            _ => None,
        })
    }
}

/// One line per key (a violation adds its explanation), then a summary line.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for key in &self.keys {
            writeln!(f, "{key}")?;
        }
        let count = |wanted: fn(&KeyResult) -> bool| self.keys.iter().filter(|key| wanted(&key.result)).count();
        let violated = count(|result| matches!(result, KeyResult::NotLinearizable(_)));
        let gave_up = count(|result| matches!(result, KeyResult::GaveUp));
        let operations: usize = self.keys.iter().map(|key| key.operations).sum();
        let verdict = match self.verdict() {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "NOT LINEARIZABLE",
            Verdict::GaveUp => "UNDECIDED (search gave up)",
        };
        let (keys, operations) = (counted(self.keys.len(), "key"), counted(operations, "operation"));
        write!(f, "history {verdict}: {keys}, {operations}; {violated} not linearizable, {gave_up} gave up")
    }
}

impl fmt::Display for KeyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operations = counted(self.operations, "operation");
        write!(f, "key {:?}: {operations} ({} constraining), ", self.key, self.constraining)?;
        match &self.result {
            KeyResult::Linearizable => write!(f, "linearizable in {} steps", self.steps),
            KeyResult::GaveUp => write!(f, "gave up after {} steps", self.steps),
            KeyResult::NotLinearizable(violation) => write!(f, "NOT linearizable\n{violation}"),
        }
    }
}

/// Several indented lines, the last without a newline.
impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Cause::NotYetStored { value, seen_by, first_storer: None } => {
                write!(f, "  op {} needed {value:?}, which no operation stores:", seen_by.number)?;
                write_operations(f, std::slice::from_ref(seen_by))
            }
            Cause::NotYetStored { value, seen_by, first_storer: Some(first) } => {
                write!(
                    f,
                    "  op {} needed {value:?}, but op {}, the first to store it, began after op {} completed:",
                    seen_by.number, first.number, seen_by.number
                )?;
                write_operations(f, &[seen_by.clone(), first.clone()])
            }
            Cause::Interrupted { value, since, since_stored, until, by } => {
                let role = if *since_stored { "stored" } else { "needed" };
                write!(
                    f,
                    "  the register held {value:?} from the completion of op {}, which {role} it, to the start of \
                     op {}, which needed it, yet op {}, which cannot happen while it does, ran entirely in between:",
                    since.number, until.number, by.number
                )?;
                write_operations(f, &[since.clone(), by.clone(), until.clone()])
            }
            Cause::Stuck(stuck) => write!(f, "{stuck}"),
        }
    }
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let holds = ShowValue(self.state.as_deref());
        let prefix = counted(self.linearized, "operation");
        write!(f, "  longest linearizable prefix: {prefix}, after which the register holds {holds}")?;
        if !self.prefix_tail.is_empty() {
            write!(f, "\n  its last operations, in linearization order:")?;
            write_operations(f, &self.prefix_tail)?;
        }
        write!(f, "\n  then op {} had to take effect, but neither it nor any other candidate could:", self.overdue)?;
        write_operations(f, &self.candidates)?;
        if !self.still_needing.is_empty() {
            write!(f, "\n  and nothing else stores {holds}, which these operations still needed:")?;
            write_operations(f, &self.still_needing)?;
        }
        Ok(())
    }
}

/// `1 key`, `2 keys`.
fn counted(count: usize, noun: &str) -> String {
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
}

/// One indented line per operation, up to [`OPERATIONS_SHOWN`].
fn write_operations(f: &mut fmt::Formatter<'_>, operations: &[NumberedOperation]) -> fmt::Result {
    for operation in operations.iter().take(OPERATIONS_SHOWN) {
        write!(f, "\n    {operation}")?;
    }
    if operations.len() > OPERATIONS_SHOWN {
        write!(f, "\n    ... and {} more", operations.len() - OPERATIONS_SHOWN)?;
    }
    Ok(())
}

impl fmt::Display for NumberedOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op {}: {}", self.number, self.operation)
    }
}
