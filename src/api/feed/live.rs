//! The live feed (at_most_once), encoded once for every subscriber.
//!
//! One relay task per API takes the node's live broadcast and re-publishes each event with
//! its SSE message already encoded, on a broadcast of the same capacity
//! (`notifications.buffer_size`). A subscriber then only filters and copies bytes, instead of
//! every subscriber encoding every event. Lag keeps its meaning: a subscriber more than the
//! capacity behind is told how many it missed, and if the relay itself falls behind the node,
//! every subscriber is told. The relay starts with the first subscriber and stops after
//! [`IDLE_STOP`] without one.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::sse::change_message;
use crate::node::{FeedEvent, Node};

/// The relay stops after this long without subscribers.
const IDLE_STOP: Duration = Duration::from_secs(10);
/// How often an idle relay checks whether it is still needed.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What a live subscriber receives.
pub enum LiveItem {
    Change {
        event: Arc<FeedEvent>,
        message: Bytes,
    },
    /// The relay fell behind the node and these events were dropped for everyone.
    Lagged(u64),
}

/// Shared by every live stream of one API router.
#[derive(Clone)]
pub struct LiveRelay {
    inner: Arc<Inner>,
}

struct Inner {
    sender: broadcast::Sender<Arc<LiveItem>>,
    /// Whether a relay task is running (changed only under this lock).
    running: Mutex<bool>,
}

impl LiveRelay {
    pub fn new(capacity: usize) -> Self {
        Self { inner: Arc::new(Inner { sender: broadcast::Sender::new(capacity.max(1)), running: Mutex::new(false) }) }
    }

    /// Live events from now on; starts the relay if it is not running.
    pub fn subscribe(&self, node: &Node) -> broadcast::Receiver<Arc<LiveItem>> {
        let mut running = self.inner.running.lock();
        if !*running {
            *running = true;
            tokio::spawn(relay(Arc::downgrade(&self.inner), node.feed_live()));
        }
        // Subscribing under the lock: the relay cannot decide it is idle in between.
        self.inner.sender.subscribe()
    }
}

async fn relay(relay: Weak<Inner>, mut live: broadcast::Receiver<Arc<FeedEvent>>) {
    let mut idle_since: Option<Instant> = None;
    loop {
        let received = tokio::time::timeout(IDLE_POLL, live.recv()).await;
        let Some(inner) = relay.upgrade() else { return };
        if inner.sender.receiver_count() == 0 {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= IDLE_STOP {
                let mut running = inner.running.lock();
                if inner.sender.receiver_count() == 0 {
                    *running = false;
                    return;
                }
            }
        } else {
            idle_since = None;
        }
        let item = match received {
            Err(_quiet) => continue,
            Ok(Ok(event)) => LiveItem::Change { message: change_message(&event), event },
            Ok(Err(RecvError::Lagged(missed))) => LiveItem::Lagged(missed),
            Ok(Err(RecvError::Closed)) => {
                // The node is gone; subscribers see their streams end.
                *inner.running.lock() = false;
                return;
            }
        };
        // No subscriber right now is fine: live events are for whoever is listening.
        let _ = inner.sender.send(Arc::new(item));
    }
}
