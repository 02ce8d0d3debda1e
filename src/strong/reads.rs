//! Read levels: what a read must wait for before it is served from this node's state.
//!
//! - `strong`: a read barrier (Raft read index, confirmed with a quorum through the leader),
//!   then the read: it reflects every write acknowledged before it began (linearizable).
//! - `bounded`: served at once if this node's *measured staleness* is within the bound,
//!   otherwise served as `strong` or refused (`distributed.bounded_fallback`).
//! - `eventual`: served at once.
//!
//! Staleness is measured, not guessed from clocks: every member runs a read barrier each
//! heartbeat interval, and a barrier that began at `t` and completed shows this node holds
//! every write acknowledged before `t`. So `now - t` of the latest completed barrier bounds
//! how old the local state can be. A node cut off from the leader stops completing barriers
//! and its measured staleness grows, which is exactly what a bounded read must notice.
//!
//! The clock is tokio's `Instant`: the monotonic clock in production, and the virtual clock
//! when tokio's time is paused (the simulator), so staleness is measured in the time the
//! rest of the strong path runs in. Both ends of a measurement are read on this node's own
//! monotonic clock, so clock skew or drift between nodes cannot shorten it.

use std::sync::Weak;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::error::{StrongDocError, StrongResult};
use super::{Inner, StrongDocs};
use crate::config::BoundedFallback;

/// A read's consistency level, as requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLevel {
    Strong,
    Bounded { max_staleness: Duration, fallback: BoundedFallback },
    Eventual,
}

/// What a read reflects, for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadStamp {
    /// The Raft index the read reflects at least (`None`: nothing applied yet).
    pub index: Option<u64>,
    /// This node's measured staleness (`None`: never confirmed); 0 for a strong read.
    pub staleness_ms: Option<u64>,
    /// The level the read was served at (a bounded read may be served as strong).
    pub served_as: &'static str,
}

/// The latest completed read barrier.
#[derive(Debug, Default)]
pub(super) struct Freshness {
    last: Mutex<Option<(Instant, u64)>>,
}

impl Freshness {
    /// A barrier that began at `started` completed with this node at `index` or later.
    pub(super) fn confirmed(&self, started: Instant, index: u64) {
        let mut last = self.last.lock();
        if last.is_none_or(|(at, _)| at < started) {
            *last = Some((started, index));
        }
    }

    /// How stale this node's state may be now.
    pub(super) fn staleness(&self) -> Option<Duration> {
        self.last.lock().map(|(started, _)| started.elapsed())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(super) async fn prepare(docs: &StrongDocs, level: ReadLevel) -> StrongResult<ReadStamp> {
    let measured = docs.inner.freshness.staleness();
    match level {
        ReadLevel::Strong => strong(docs).await,
        ReadLevel::Bounded { max_staleness, fallback } => match measured {
            Some(staleness) if staleness <= max_staleness => Ok(ReadStamp {
                index: docs.applied_index(),
                staleness_ms: Some(millis(staleness)),
                served_as: "bounded",
            }),
            _ => match fallback {
                BoundedFallback::Strong => strong(docs).await,
                BoundedFallback::Refuse => {
                    Err(StrongDocError::TooStale { measured_ms: measured.map(millis), max_ms: millis(max_staleness) })
                }
            },
        },
        ReadLevel::Eventual => {
            Ok(ReadStamp { index: docs.applied_index(), staleness_ms: measured.map(millis), served_as: "eventual" })
        }
    }
}

async fn strong(docs: &StrongDocs) -> StrongResult<ReadStamp> {
    let index = docs.barrier().await?;
    Ok(ReadStamp { index: Some(index), staleness_ms: Some(0), served_as: "strong" })
}

/// Runs a read barrier every `interval` for as long as the strong path lives, so bounded
/// reads have a current measurement. Failures (no leader, no quorum) just leave the last
/// measurement to age.
pub(super) fn spawn_refresher(docs: Weak<Inner>, interval: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(inner) = docs.upgrade() else { return };
            let docs = StrongDocs { inner };
            if docs.inner.path.status().role == crate::raft::Role::Stopped {
                return;
            }
            let _ = docs.barrier().await;
        }
    });
}
