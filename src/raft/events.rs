//! One log line per change of the strong path's state an operator cares about.
//!
//! openraft logs from inside its loops: while a member is unreachable it repeats the same
//! warning on every heartbeat and every read barrier, tens of lines a second, which drowns
//! everything else (its logs are off in the default filter; see `log.level`). This task
//! watches openraft's metrics instead and logs transitions only: this node's role, the
//! leader and term, the membership, a leader losing and regaining its quorum, and the path
//! stopping. It ends when the Raft node shuts down.

use std::time::Duration;

use openraft::ServerState;

use super::types::{RaftMetrics, RaftNodeId};
use super::{role_of, Raft, RaftInstruments};

/// What the last log line said, to tell a transition from a repeat.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    role: Option<ServerState>,
    term: u64,
    leader: Option<RaftNodeId>,
    voters: Vec<RaftNodeId>,
    learners: Vec<RaftNodeId>,
    quorum_lost: bool,
    stopped: bool,
}

/// Starts the task that logs `raft`'s transitions. A leader counts as having lost its quorum
/// once no quorum acknowledged it for `quorum_ack_max` (when strong requests start failing).
pub(crate) fn spawn(raft: &Raft, quorum_ack_max: Duration, instruments: RaftInstruments) {
    let mut metrics = raft.metrics();
    let quorum_ack_max = u64::try_from(quorum_ack_max.as_millis()).unwrap_or(u64::MAX);
    tokio::spawn(async move {
        let mut seen = Seen::default();
        loop {
            {
                let metrics = metrics.borrow_and_update();
                if seen.role.is_some() && seen.leader != metrics.current_leader {
                    instruments.leader_changes.inc();
                }
                publish(&instruments, &metrics);
                log_changes(&mut seen, &metrics, quorum_ack_max);
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Sets the gauges from openraft's metrics.
fn publish(instruments: &RaftInstruments, metrics: &RaftMetrics) {
    let as_gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    instruments.has_leader.set(i64::from(metrics.current_leader.is_some()));
    instruments.is_leader.set(i64::from(metrics.state == ServerState::Leader));
    instruments.term.set(as_gauge(metrics.current_term));
    instruments.last_log_index.set(as_gauge(metrics.last_log_index.unwrap_or(0)));
    instruments.applied_index.set(as_gauge(metrics.last_applied.map_or(0, |log_id| log_id.index)));
}

fn log_changes(seen: &mut Seen, metrics: &RaftMetrics, quorum_ack_max: u64) {
    if let Err(e) = &metrics.running_state {
        if !seen.stopped {
            // A requested shutdown is `Stopped`; anything else (storage, a panic) is a failure.
            if matches!(e, openraft::error::Fatal::Stopped) {
                tracing::debug!("the strong path stopped on request");
            } else {
                tracing::error!(error = %e, "the strong path stopped");
            }
            seen.stopped = true;
        }
        return;
    }
    if seen.role != Some(metrics.state) || seen.term != metrics.current_term || seen.leader != metrics.current_leader {
        tracing::info!(
            role = ?role_of(metrics.state),
            term = metrics.current_term,
            leader = ?metrics.current_leader,
            "raft role or leader changed"
        );
        seen.role = Some(metrics.state);
        seen.term = metrics.current_term;
        seen.leader = metrics.current_leader;
    }
    let membership = metrics.membership_config.membership();
    let voters: Vec<RaftNodeId> = membership.voter_ids().collect();
    let learners: Vec<RaftNodeId> = membership.learner_ids().collect();
    if voters != seen.voters || learners != seen.learners {
        tracing::info!(?voters, ?learners, joint = membership.get_joint_config().len() > 1, "raft membership changed");
        seen.voters = voters;
        seen.learners = learners;
    }
    // A leader just elected has no acknowledgement yet (`None`); that is not a loss.
    let quorum_lost =
        metrics.state == ServerState::Leader && metrics.millis_since_quorum_ack.is_some_and(|ms| ms > quorum_ack_max);
    if quorum_lost != seen.quorum_lost && metrics.state == ServerState::Leader {
        if quorum_lost {
            tracing::warn!(
                millis_since_quorum_ack = ?metrics.millis_since_quorum_ack,
                "this leader has lost its quorum: strong requests fail until a majority answers again"
            );
        } else {
            tracing::info!("this leader hears from a quorum again");
        }
    }
    seen.quorum_lost = quorum_lost;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transitions_are_logged() {
        let mut seen = Seen::default();
        let mut metrics = RaftMetrics::new_initial(1);
        log_changes(&mut seen, &metrics, 600);
        let after_first = format!("{seen:?}");
        // The same metrics again (a heartbeat's update) change nothing that is remembered.
        log_changes(&mut seen, &metrics, 600);
        assert_eq!(format!("{seen:?}"), after_first);
        metrics.state = ServerState::Leader;
        metrics.current_term = 2;
        metrics.current_leader = Some(1);
        log_changes(&mut seen, &metrics, 600);
        assert!(!seen.quorum_lost, "a leader just elected has not lost its quorum");
        metrics.millis_since_quorum_ack = Some(5_000);
        log_changes(&mut seen, &metrics, 600);
        assert_eq!(
            (seen.role, seen.term, seen.leader, seen.quorum_lost),
            (Some(ServerState::Leader), 2, Some(1), true)
        );
        metrics.millis_since_quorum_ack = Some(10);
        log_changes(&mut seen, &metrics, 600);
        assert!(!seen.quorum_lost);
    }
}
