//! The snapshot operations a running node offers (API and scheduler): create = export +
//! write + prune; restore = read + verify + restore. The CLI's offline export and import use
//! the same pieces with a progress display instead.
//!
//! File work and the export's storage scan are blocking, so they run on the blocking pool.
//! Restores are serialised per node: two restores interleaving their writes would leave a
//! mixture of both snapshots.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Instant;

use parking_lot::Mutex;

use super::progress::{self, Progress};
use super::report::{CreatedSnapshot, RestoreReport};
use super::store::new_id;
use super::{SnapshotError, SnapshotSettings, SnapshotStore};
use crate::clock::now_ms;
use crate::node::Node;

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn join_error(error: tokio::task::JoinError) -> SnapshotError {
    SnapshotError::Io { path: "snapshot task".to_string(), message: error.to_string() }
}

/// Takes a snapshot of `node` into `settings.dir`, then prunes to `settings.max_snapshots`.
/// A pruning failure is logged, not returned: the snapshot itself was written.
pub async fn create(node: &Node, settings: &SnapshotSettings) -> Result<CreatedSnapshot, SnapshotError> {
    let node = node.clone();
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || -> Result<CreatedSnapshot, SnapshotError> {
        let started = Instant::now();
        let body = node.export_snapshot(new_id(now_ms()), &mut progress::ignore)?;
        let store = settings.store();
        let info = store.write(&body, settings.format, settings.compression)?;
        match store.prune(settings.max_snapshots) {
            Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "pruned old snapshots"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot prune old snapshots"),
        }
        node.metrics().record_snapshot("create", info.bytes, started.elapsed().as_secs_f64());
        Ok(CreatedSnapshot { info, elapsed_ms: elapsed_ms(started) })
    })
    .await
    .map_err(join_error)?
}

/// Node ids with a restore running.
fn restoring() -> &'static Mutex<HashSet<String>> {
    static RESTORING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    RESTORING.get_or_init(Mutex::default)
}

/// Marks a node as restoring until dropped.
struct RestoreGuard(String);

impl RestoreGuard {
    fn acquire(node: &Node) -> Result<Self, SnapshotError> {
        let id = node.node_id().to_string();
        if restoring().lock().insert(id.clone()) {
            Ok(Self(id))
        } else {
            Err(SnapshotError::Busy)
        }
    }
}

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        restoring().lock().remove(&self.0);
    }
}

/// Restores snapshot `id` from `store` into `node`. The file is verified and decoded
/// completely before the node is touched. `elapsed_ms` in the report covers the whole
/// operation, reading included.
pub async fn restore(node: &Node, store: &SnapshotStore, id: &str) -> Result<RestoreReport, SnapshotError> {
    let _guard = RestoreGuard::acquire(node)?;
    let started = Instant::now();
    let body = {
        let store = store.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || store.read(&id, &mut progress::ignore)).await.map_err(join_error)??
    };
    let mut report = node.restore_snapshot(&body, &mut progress::ignore).await?;
    report.elapsed_ms = elapsed_ms(started);
    let bytes = store.path_of(id).ok().and_then(|path| std::fs::metadata(path).ok()).map_or(0, |m| m.len());
    node.metrics().record_snapshot("restore", bytes, started.elapsed().as_secs_f64());
    Ok(report)
}

/// Restores an already verified body (the CLI's offline import), serialised like [`restore`].
pub async fn restore_body(
    node: &Node,
    body: &super::SnapshotBody,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<RestoreReport, SnapshotError> {
    let _guard = RestoreGuard::acquire(node)?;
    node.restore_snapshot(body, progress).await
}
