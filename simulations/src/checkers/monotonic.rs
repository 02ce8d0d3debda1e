//! Version vectors never go backwards on any node, across crashes included.
//!
//! A vector that shrinks would mean a node forgot records it had told peers it holds,
//! which anti-entropy would never repair (peers believe it already has them).

use statemesh_protocol::{NodeId, VersionVector};

use super::Violation;

/// Compares `node`'s current vector with `last` (its vector after the previous step) and
/// records the current one.
pub fn check(node: &NodeId, last: &mut VersionVector, now: &VersionVector) -> Result<(), Violation> {
    if now == last {
        return Ok(());
    }
    if !now.dominates(last) {
        let lost: Vec<String> = last
            .iter()
            .filter(|(origin, seq)| now.get(origin) < *seq)
            .map(|(origin, seq)| format!("{origin} {seq} -> {}", now.get(origin)))
            .collect();
        return Err(Violation::new("version_vector_monotonic", format!("{node} went back: {}", lost.join(", "))));
    }
    *last = now.clone();
    Ok(())
}
