//! Every queue stays bounded: records a replica holds out of order or has in flight to
//! storage, and messages in flight in the network.
//!
//! Unbounded queues are how a partition that heals turns into an out-of-memory crash; the
//! protocol promises bounds, the checker holds it to the scenario's numbers.

use super::Violation;
use crate::node::SimNode;
use crate::scenario::Bounds;

pub fn check_replica(node: &SimNode, bounds: &Bounds) -> Result<(), Violation> {
    let Some(replica) = &node.replica else { return Ok(()) };
    let queued = replica.held_records() + replica.applying_records();
    if queued > bounds.replica_queue_max {
        return Err(Violation::new(
            "queues_bounded",
            format!("{} holds {queued} records out of order or applying (max {})", node.id, bounds.replica_queue_max),
        ));
    }
    Ok(())
}

pub fn check_network(in_flight: usize, bounds: &Bounds) -> Result<(), Violation> {
    if in_flight > bounds.network_queue_max {
        return Err(Violation::new(
            "queues_bounded",
            format!("{in_flight} messages in flight (max {})", bounds.network_queue_max),
        ));
    }
    Ok(())
}
