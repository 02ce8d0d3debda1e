//! Invariant checkers, one property per file.
//!
//! Safety properties (version vectors never go backwards, queues stay bounded, acknowledged
//! writes survive at their origin) are checked after every step; convergence and full
//! durability are checked once the last fault has healed, within the scenario's liveness
//! budget. The strong-document run (`strong_docs`) has its own: bounded reads within their
//! bound, atomic transactions, no acknowledged strong write lost.

pub mod bounded_reads;
pub mod bounds;
pub mod convergence;
pub mod durability;
pub mod monotonic;
pub mod strong_durability;
pub mod txn_atomicity;

use std::fmt;

/// A property that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub property: &'static str,
    pub detail: String,
}

impl Violation {
    pub fn new(property: &'static str, detail: impl Into<String>) -> Self {
        Self { property, detail: detail.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.property, self.detail)
    }
}
