//! No acknowledged write is lost.
//!
//! A local write is acknowledged once its record is stored; from then on it must stay in its
//! origin's storage across crashes (checked at every restart) and, after convergence, be
//! stored on every node.

use statemesh_protocol::ChangeId;

use super::Violation;
use crate::node::SimNode;

/// After `node` restarts: every write it acknowledged is still in its storage.
pub fn check_origin(node: &SimNode, acknowledged: &[ChangeId]) -> Result<(), Violation> {
    let lost: Vec<String> = acknowledged
        .iter()
        .filter(|id| id.origin == node.id && !node.storage.records.contains_key(id))
        .map(ToString::to_string)
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(Violation::new(
            "durability",
            format!("{} restarted without acknowledged write(s) {}", node.id, lost.join(", ")),
        ))
    }
}

/// After convergence: every acknowledged write is stored on every node.
pub fn check_everywhere(nodes: &[SimNode], acknowledged: &[ChangeId]) -> Result<(), Violation> {
    for node in nodes {
        if let Some(id) = acknowledged.iter().find(|id| !node.storage.records.contains_key(id)) {
            return Err(Violation::new("durability", format!("acknowledged write {id} is missing on {}", node.id)));
        }
    }
    Ok(())
}
