//! Convergence: once faults have healed, every node holds the same thing.
//!
//! "Same" is checked at three levels, cheapest first: identical version vectors (and nothing
//! left in flight), identical Automerge heads per document, identical JSON per document.
//! Equal vectors with different documents would mean a record was applied differently.

use super::Violation;
use crate::node::SimNode;

/// `Ok` when every node is up and all agree; otherwise the first difference found.
pub fn check(nodes: &[SimNode]) -> Result<(), Violation> {
    let fail = |detail: String| Err(Violation::new("convergence", detail));
    let Some(first) = nodes.first() else { return Ok(()) };
    let Some(first_replica) = &first.replica else { return fail(format!("{} is down", first.id)) };
    let vv = first_replica.version_vector();
    for node in nodes {
        let Some(replica) = &node.replica else { return fail(format!("{} is down", node.id)) };
        if replica.version_vector() != vv {
            return fail(format!(
                "version vectors differ: {} has {:?}, {} has {:?}",
                first.id,
                vv,
                node.id,
                replica.version_vector()
            ));
        }
        if replica.held_records() + replica.applying_records() > 0 {
            return fail(format!("{} still has records held or applying", node.id));
        }
    }
    for node in &nodes[1..] {
        if node.storage.docs.len() != first.storage.docs.len() {
            return fail(format!(
                "{} has {} documents, {} has {}",
                first.id,
                first.storage.docs.len(),
                node.id,
                node.storage.docs.len()
            ));
        }
        for ((key, a), (other_key, b)) in first.storage.docs.iter().zip(&node.storage.docs) {
            if key != other_key {
                return fail(format!("document sets differ: {} has {key:?}, {} has {other_key:?}", first.id, node.id));
            }
            if a.version() != b.version() {
                return fail(format!("heads of {key:?} differ between {} and {}", first.id, node.id));
            }
            if a.to_json() != b.to_json() {
                return fail(format!("JSON of {key:?} differs between {} and {}", first.id, node.id));
            }
        }
    }
    Ok(())
}
