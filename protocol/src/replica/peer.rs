//! What a replica tracks about each connected peer.

/// Where an anti-entropy exchange with a peer stands. At most one is in flight per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncState {
    #[default]
    Idle,
    /// A `SyncRequest` was sent at `since_ms`.
    Awaiting { since_ms: i64 },
    /// Two response pages are being stored; ask for the next one once one is durable, if
    /// `more`.
    Persisting { more: bool },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerState {
    pub sync: SyncState,
}

impl PeerState {
    /// Forgets a request that can no longer be answered. A page already being stored keeps
    /// its state: the next request waits for it.
    pub fn request_failed(&mut self) {
        if matches!(self.sync, SyncState::Awaiting { .. }) {
            self.sync = SyncState::Idle;
        }
    }

    /// Forgets a request that went unanswered for `timeout_ms`.
    pub fn expire_sync(&mut self, now_ms: i64, timeout_ms: i64) {
        if let SyncState::Awaiting { since_ms } = self.sync {
            if now_ms - since_ms >= timeout_ms {
                self.sync = SyncState::Idle;
            }
        }
    }
}
