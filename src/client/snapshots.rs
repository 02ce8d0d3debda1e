//! Snapshot calls: create, list, restore and delete a node's snapshots.
//!
//! Creating and restoring a whole store can take minutes, so these calls allow a longer
//! reply time than document calls (see [`SNAPSHOT_TIMEOUT`]).

use std::time::Duration;

use serde::Deserialize;

use super::{Client, ClientError};
use crate::snapshot::{CreatedSnapshot, RestoreReport, SnapshotInfo};

/// How long a create or restore may take before the client gives up waiting (the node
/// finishes the work regardless).
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize)]
struct SnapshotList {
    snapshots: Vec<SnapshotInfo>,
}

impl Client {
    /// `POST /v1/snapshots`: a consistent snapshot of every namespace.
    pub async fn create_snapshot(&self) -> Result<CreatedSnapshot, ClientError> {
        self.json(self.http.post(self.url(&["v1", "snapshots"])).timeout(SNAPSHOT_TIMEOUT)).await
    }

    /// `GET /v1/snapshots`: the node's snapshots, newest first.
    pub async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, ClientError> {
        let list: SnapshotList = self.json(self.http.get(self.url(&["v1", "snapshots"]))).await?;
        Ok(list.snapshots)
    }

    /// `POST /v1/snapshots/{id}/restore`.
    pub async fn restore_snapshot(&self, id: &str) -> Result<RestoreReport, ClientError> {
        let request = self.http.post(self.url(&["v1", "snapshots", id, "restore"])).timeout(SNAPSHOT_TIMEOUT);
        self.json(request).await
    }

    /// `DELETE /v1/snapshots/{id}`.
    pub async fn delete_snapshot(&self, id: &str) -> Result<(), ClientError> {
        self.send(self.http.delete(self.url(&["v1", "snapshots", id]))).await.map(|_| ())
    }
}
