//! Periodic snapshots: when `snapshots.enabled`, one every `snapshots.interval`, each
//! followed by pruning to `snapshots.max_snapshots`.
//!
//! A failed snapshot is logged and retried at the next tick; it never stops the node. The
//! first snapshot is taken one interval after start (a node that just started has nothing
//! new to protect). Stopping waits for a snapshot in progress, so shutdown never leaves a
//! half-written temporary file behind.

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{ops, SnapshotSettings};
use crate::node::Node;

/// A running scheduler; [`Scheduler::stop`] ends it.
#[derive(Debug)]
pub struct Scheduler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Starts periodic snapshots of `node`, or returns `None` when they are disabled.
    pub fn spawn(node: Node, settings: SnapshotSettings) -> Option<Self> {
        if !settings.enabled {
            return None;
        }
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + settings.interval, settings.interval);
            // After a long snapshot, wait a whole interval again rather than firing at once.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tracing::info!(
                interval = ?settings.interval,
                keep = settings.max_snapshots,
                dir = %settings.dir.display(),
                "periodic snapshots enabled"
            );
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopped.changed() => break,
                }
                match ops::create(&node, &settings).await {
                    Ok(created) => tracing::info!(
                        id = %created.info.id,
                        documents = created.info.documents,
                        bytes = created.info.bytes,
                        elapsed_ms = created.elapsed_ms,
                        "periodic snapshot written"
                    ),
                    Err(error) => tracing::warn!(%error, "periodic snapshot failed; retrying at the next interval"),
                }
                if *stopped.borrow() {
                    break;
                }
            }
        });
        Some(Self { stop, task })
    }

    /// Stops the schedule, waiting for a snapshot in progress to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
