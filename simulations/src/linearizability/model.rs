//! The register each key is checked against, and what each client outcome says about it.
//!
//! A key is a register holding `Option<String>`, absent at first. Every client operation
//! becomes at most one [`RegisterOp`], a step that either holds in a given state (and yields
//! the next one) or does not:
//!
//! | client operation | outcome | register step |
//! |---|---|---|
//! | read | ok | `Observe(result)` |
//! | read | fail, unknown | none: it constrains nothing |
//! | write v | ok, unknown | `Set(v)` |
//! | write v | fail | none: it did not take effect |
//! | delete | ok, unknown | `Set(absent)` |
//! | delete | fail (not found) | `Observe(absent)` |
//! | cas e -> n | ok | `CompareAndSet { e, n }` |
//! | cas e -> n | fail | `ObserveNot(e)` |
//! | cas e -> n | unknown | `MaybeCompareAndSet { e, n }`, or `CompareAndSet { e, n }` if `n` was seen |
//!
//! An operation of unknown outcome may take effect at any time after its invocation, or never.
//! The search gives it no completion, so it may be placed anywhere after its invocation,
//! including after everything else, where it affects nothing any client saw: that covers
//! "never". An unknown cas placed where the register does not hold `e` changes nothing. But
//! when an ok read or ok cas saw `n` and nothing else stores it, the cas did take effect, so it
//! needs `e` like an ok cas does (and may make an earlier unknown cas that stored `e` needed in
//! turn). Saying so up front spares the search from trying the orders where it did not.
//!
//! Values are interned per key, so states compare and hash as small integers.

use std::collections::HashMap;

use super::history::{Op, Operation, Outcome};

/// An interned register value; [`ABSENT`] is the absent key.
pub(crate) type Value = u32;
pub(crate) const ABSENT: Value = 0;

/// The value names of one key.
#[derive(Debug, Default)]
pub(crate) struct Values {
    ids: HashMap<String, Value>,
    names: Vec<String>,
}

impl Values {
    fn intern(&mut self, value: Option<&str>) -> Value {
        let Some(name) = value else { return ABSENT };
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        self.names.push(name.to_owned());
        let id = Value::try_from(self.names.len()).expect("fewer than 2^32 distinct values per key");
        self.ids.insert(name.to_owned(), id);
        id
    }

    /// The value's name; `None` for [`ABSENT`].
    pub(crate) fn name(&self, value: Value) -> Option<&str> {
        let index = usize::try_from(value).ok()?.checked_sub(1)?;
        self.names.get(index).map(String::as_str)
    }

    /// How many values there are, [`ABSENT`] included: every `Value` is below this.
    pub(crate) fn count(&self) -> usize {
        self.names.len() + 1
    }
}

/// One step of the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterOp {
    /// Holds if the register holds the value; changes nothing.
    Observe(Value),
    /// Holds if the register does not hold the value; changes nothing.
    ObserveNot(Value),
    /// Always holds; the register then holds the value.
    Set(Value),
    /// Holds if the register holds `expected`; it then holds `new`.
    CompareAndSet { expected: Value, new: Value },
    /// Always holds; the register then holds `new` if it held `expected`, else nothing changes.
    MaybeCompareAndSet { expected: Value, new: Value },
}

impl RegisterOp {
    /// The register step an operation stands for, or `None` if it constrains nothing.
    fn from_operation(operation: &Operation, values: &mut Values) -> Option<Self> {
        let outcome = operation.outcome;
        Some(match &operation.op {
            Op::Read { result } if outcome == Outcome::Ok => Self::Observe(values.intern(result.as_deref())),
            Op::Read { .. } => return None,
            Op::Write { .. } if outcome == Outcome::Fail => return None,
            Op::Write { value } => Self::Set(values.intern(Some(value))),
            Op::Delete if outcome == Outcome::Fail => Self::Observe(ABSENT),
            Op::Delete => Self::Set(ABSENT),
            Op::Cas { expected, new } => {
                let (expected, new) = (values.intern(expected.as_deref()), values.intern(Some(new)));
                match outcome {
                    Outcome::Ok => Self::CompareAndSet { expected, new },
                    Outcome::Fail => Self::ObserveNot(expected),
                    Outcome::Unknown => Self::MaybeCompareAndSet { expected, new },
                }
            }
        })
    }

    /// The state after this step from `state`, or `None` if the step cannot happen there.
    pub(crate) fn apply(self, state: Value) -> Option<Value> {
        match self {
            Self::Observe(value) => (state == value).then_some(state),
            Self::ObserveNot(value) => (state != value).then_some(state),
            Self::Set(value) => Some(value),
            Self::CompareAndSet { expected, new } => (state == expected).then_some(new),
            Self::MaybeCompareAndSet { expected, new } => Some(if state == expected { new } else { state }),
        }
    }

    /// Whether the step never changes the register, whatever the state.
    pub(crate) fn is_observation(self) -> bool {
        matches!(self, Self::Observe(_) | Self::ObserveNot(_))
    }

    /// What the step asks of the value the register holds before it, if anything.
    pub(crate) fn demand(self) -> Option<Demand> {
        match self {
            Self::Observe(value) | Self::CompareAndSet { expected: value, .. } => Some(Demand::Needs(value)),
            Self::MaybeCompareAndSet { expected, .. } => Some(Demand::HopesFor(expected)),
            Self::ObserveNot(value) => Some(Demand::Refuses(value)),
            Self::Set(_) => None,
        }
    }

    /// The value this step may store ([`ABSENT`] for a delete).
    pub(crate) fn stored_value(self) -> Option<Value> {
        match self {
            Self::Set(value) => Some(value),
            Self::CompareAndSet { new, .. } | Self::MaybeCompareAndSet { new, .. } => Some(new),
            _ => None,
        }
    }
}

/// What a step asks of the value the register holds before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Demand {
    /// The step can only happen while the register holds the value.
    Needs(Value),
    /// The step only has an effect while the register holds the value (an unknown cas).
    HopesFor(Value),
    /// The step can only happen while the register does not hold the value.
    Refuses(Value),
}

/// A register step with its operation's real-time interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimedOp {
    pub op: RegisterOp,
    pub invoke_ns: u64,
    /// `None`: the outcome is unknown, so it may complete at any time after the invocation.
    pub complete_ns: Option<u64>,
}

impl TimedOp {
    /// An op of unknown outcome, which may also never take effect.
    pub(crate) fn is_optional(&self) -> bool {
        self.complete_ns.is_none()
    }
}

/// One key's history as the search sees it.
#[derive(Debug, Default)]
pub(crate) struct KeyHistory {
    pub ops: Vec<TimedOp>,
    /// For each entry of `ops`, the index of its operation in the checked history.
    pub origins: Vec<usize>,
    pub values: Values,
}

impl KeyHistory {
    /// The register steps of `history[i]` for each `i` in `indices`, dropping operations that
    /// constrain nothing.
    pub(crate) fn build(history: &[Operation], indices: &[usize]) -> Self {
        let mut key = Self::default();
        for &index in indices {
            let operation = &history[index];
            if let Some(op) = RegisterOp::from_operation(operation, &mut key.values) {
                let complete_ns = match operation.outcome {
                    Outcome::Unknown => None,
                    Outcome::Ok | Outcome::Fail => operation.complete_ns,
                };
                key.ops.push(TimedOp { op, invoke_ns: operation.invoke_ns, complete_ns });
                key.origins.push(index);
            }
        }
        key.require_seen_effects();
        key
    }

    /// Turns every unknown cas whose new value was seen, and that nothing else stores, into a
    /// cas that took effect, until there is none left.
    fn require_seen_effects(&mut self) {
        loop {
            let mut needed = vec![false; self.values.count()];
            let mut stores = vec![0u32; self.values.count()];
            for timed in &self.ops {
                if let Some(Demand::Needs(value)) = timed.op.demand() {
                    needed[value as usize] = true;
                }
                if let Some(value) = timed.op.stored_value() {
                    stores[value as usize] += 1;
                }
            }
            let mut changed = false;
            for timed in &mut self.ops {
                if let RegisterOp::MaybeCompareAndSet { expected, new } = timed.op {
                    if needed[new as usize] && stores[new as usize] == 1 {
                        timed.op = RegisterOp::CompareAndSet { expected, new };
                        changed = true;
                    }
                }
            }
            if !changed {
                return;
            }
        }
    }
}
