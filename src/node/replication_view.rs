//! What the replication layer reports back into the node: the version vector it has made
//! durable for other origins, and the peers it is connected to. The node only shows these
//! (status, metrics); it does not depend on how replication is carried out.

use std::sync::Arc;

use serde::Serialize;
use statemesh_protocol::{ChangeId, ChangeRecord, VersionVector};
use tokio::sync::broadcast;

use super::Node;

/// One connected peer, as `GET /v1/peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PeerInfo {
    pub id: String,
    /// The remote address of the connection, as a multiaddr.
    pub address: String,
    pub connected_since_ms: i64,
    /// When the last anti-entropy exchange with this peer completed (`None`: not yet).
    pub last_anti_entropy_ms: Option<i64>,
    /// Changes the peer was last seen to hold that this node lacks (from its version vector).
    pub changes_we_lack: u64,
    /// Changes this node holds that the peer lacked when it last asked.
    pub changes_they_lack: u64,
}

impl Node {
    /// This node's own change records, in seq order, as they become durable.
    pub fn subscribe_local_records(&self) -> broadcast::Receiver<Arc<ChangeRecord>> {
        self.inner.sequencer.subscribe_local_records()
    }

    /// Records of other origins that this node stored outside replication (the strong path's
    /// committed changes), as they become durable.
    pub fn subscribe_stored_records(&self) -> broadcast::Receiver<Arc<Vec<ChangeId>>> {
        self.inner.sequencer.subscribe_stored_records()
    }

    /// Records what replication has made durable from other origins.
    pub fn set_replicated_vv(&self, vv: &VersionVector) {
        let me = self.node_id();
        let mut remote = self.inner.remote_vv.lock();
        for (origin, seq) in vv.iter().filter(|(origin, _)| *origin != me) {
            remote.advance(origin, seq);
        }
    }

    /// The connected peers (the replication layer reports them with [`Node::set_mesh_peers`]).
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.mesh_peers().into_iter().filter(|p| p.connected).map(|p| p.info).collect()
    }
}
