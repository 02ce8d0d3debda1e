//! Reading the change feed: durable replay from a cursor, and the live stream.
//!
//! Replay reads the `feed` family, so a slow or reconnecting consumer costs only its own
//! reads and never holds writers back. The live stream is a bounded broadcast of events as
//! their batch becomes durable; a subscriber that falls more than `notifications.buffer_size`
//! events behind is told how many it missed instead of stalling anyone.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use statemesh_protocol::{DocId, Namespace};
use tokio::sync::broadcast;

use super::feed_event::{feed_key, FeedEvent, FeedPos};
use super::{Node, NodeError};
use crate::storage::{Family, StorageError};

/// Most events examined by one replay call, matching or not, so a narrow filter over a long
/// feed answers in bounded time (the returned cursor still advances).
const SCAN_EVENTS_MAX: usize = 10_000;

/// Which events a consumer wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    pub namespace: Option<Namespace>,
    pub doc: Option<DocId>,
}

impl FeedFilter {
    pub fn matches(&self, event: &FeedEvent) -> bool {
        self.namespace.as_ref().is_none_or(|ns| &event.doc.namespace == ns)
            && self.doc.as_ref().is_none_or(|id| &event.doc.doc_id == id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(
        "cursor {cursor} has expired: events before {oldest} are no longer kept (history.max_size / \
         history.retention); resume from {oldest_cursor} or re-read current state",
        oldest_cursor = oldest.saturating_sub(1)
    )]
    Expired { cursor: FeedPos, oldest: FeedPos },
    #[error(transparent)]
    Node(#[from] NodeError),
}

impl From<StorageError> for FeedError {
    fn from(error: StorageError) -> Self {
        FeedError::Node(error.into())
    }
}

/// A page of replayed events and the cursor to continue from.
#[derive(Debug, Clone)]
pub struct FeedPage {
    pub events: Vec<FeedEvent>,
    /// Resume after this position (the last event examined, matching or not).
    pub cursor: FeedPos,
}

impl Node {
    /// The newest durable feed position.
    pub fn feed_head(&self) -> FeedPos {
        self.inner.sequencer.durable().pos
    }

    /// The oldest position replay can still serve.
    pub fn feed_oldest(&self) -> FeedPos {
        if self.inner.history_enabled {
            self.inner.feed_floor.load(Ordering::Acquire).max(1)
        } else {
            self.feed_head() + 1
        }
    }

    /// Durable events after `cursor` matching `filter`, at most `limit` of them.
    pub fn feed_after(&self, cursor: FeedPos, filter: &FeedFilter, limit: usize) -> Result<FeedPage, FeedError> {
        let head = self.feed_head();
        self.check_cursor(cursor, head)?;
        let mut events = Vec::new();
        let mut examined = cursor;
        let mut scanned = 0;
        while examined < head && events.len() < limit && scanned < SCAN_EVENTS_MAX {
            let page = (SCAN_EVENTS_MAX - scanned).min(1024);
            let entries = self.inner.storage.scan(Family::Feed, &[], &feed_key(examined + 1), page)?;
            if entries.is_empty() {
                break;
            }
            for (_, value) in &entries {
                let event = FeedEvent::decode(value)?;
                if event.pos > head {
                    break;
                }
                scanned += 1;
                examined = event.pos;
                if filter.matches(&event) {
                    events.push(event);
                    if events.len() == limit {
                        break;
                    }
                }
            }
            if entries.len() < page {
                break;
            }
        }
        // Pruning may have raced the scan; a gap must not pass for "no events".
        self.check_cursor(cursor, head)?;
        Ok(FeedPage { events, cursor: examined })
    }

    fn check_cursor(&self, cursor: FeedPos, head: FeedPos) -> Result<(), FeedError> {
        let oldest = self.feed_oldest();
        if cursor + 1 < oldest && cursor < head {
            Err(FeedError::Expired { cursor, oldest })
        } else {
            Ok(())
        }
    }

    /// Waits until the feed moves past `cursor`, at most `timeout`. Returns the new head.
    pub async fn feed_wait(&self, cursor: FeedPos, timeout: Duration) -> FeedPos {
        let mut durable = self.inner.sequencer.subscribe();
        let _ = tokio::time::timeout(timeout, durable.wait_for(|d| d.pos > cursor || d.failed.is_some())).await;
        self.feed_head()
    }

    /// The live stream of events, from now on.
    pub fn feed_live(&self) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.inner.sequencer.subscribe_live()
    }
}
