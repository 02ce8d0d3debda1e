//! How far behind the feed's event streams are: each at-least-once stream publishes its
//! cursor here, and a scrape reads the largest distance to the durable head
//! (`statemesh_feed_lag_events`). A consumer that reads slowly holds its stream back (it is
//! produced on demand), so this is where a stuck or slow consumer shows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::node::FeedPos;

/// The cursors of the open streams. Entries go away with their streams.
#[derive(Clone, Default)]
pub struct StreamCursors {
    open: Arc<Mutex<Vec<Weak<AtomicU64>>>>,
}

/// One stream's published cursor; dropped with the stream.
pub struct CursorHandle(Arc<AtomicU64>);

impl CursorHandle {
    pub fn set(&self, cursor: FeedPos) {
        self.0.store(cursor, Ordering::Relaxed);
    }
}

impl StreamCursors {
    /// Registers a stream that has sent everything up to `cursor`.
    pub fn register(&self, cursor: FeedPos) -> CursorHandle {
        let handle = Arc::new(AtomicU64::new(cursor));
        let mut open = self.open.lock();
        open.retain(|weak| weak.strong_count() > 0);
        open.push(Arc::downgrade(&handle));
        CursorHandle(handle)
    }

    /// Events the slowest open stream has yet to send, with the feed at `head`.
    pub fn max_lag(&self, head: FeedPos) -> u64 {
        let mut open = self.open.lock();
        open.retain(|weak| weak.strong_count() > 0);
        open.iter().filter_map(Weak::upgrade).map(|c| head.saturating_sub(c.load(Ordering::Relaxed))).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_the_slowest_open_streams_and_closed_streams_leave() {
        let cursors = StreamCursors::default();
        assert_eq!(cursors.max_lag(100), 0, "no stream, no lag");
        let slow = cursors.register(10);
        let fast = cursors.register(90);
        assert_eq!(cursors.max_lag(100), 90);
        slow.set(95);
        assert_eq!(cursors.max_lag(100), 10);
        drop(fast);
        assert_eq!(cursors.max_lag(100), 5);
        drop(slow);
        assert_eq!(cursors.max_lag(100), 0);
    }
}
