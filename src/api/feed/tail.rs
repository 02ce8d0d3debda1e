//! The feed's tail, read once and encoded once for every stream that follows the head.
//!
//! Without it, each at-least-once stream would read every new event from storage and encode
//! it to JSON itself: with 100 subscribers that is 100 reads and 100 encodings per write, all
//! competing with the writers for the same cores. Instead one follower task per API reads the
//! durable feed as it grows and keeps the newest [`TAIL_EVENTS`] events here as ready SSE
//! messages; a stream at the head only filters and copies bytes. It is a cache of the durable
//! feed, nothing more: a stream whose cursor is older than the tail reads storage as before
//! (and gets the same "expired" answer), so delivery guarantees do not depend on it.
//!
//! The follower starts with the first stream and stops after [`IDLE_STOP`] without one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use bytes::BytesMut;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::sse::change_message;
use crate::node::{FeedError, FeedEvent, FeedFilter, FeedPos, Node};

/// Events kept (about 330 bytes each as SSE).
const TAIL_EVENTS: usize = 8192;
/// Events the follower reads per storage scan.
const FOLLOW_PAGE: usize = 1024;
/// The follower stops after this long without streams.
const IDLE_STOP: Duration = Duration::from_secs(10);
/// How long the follower waits for the feed before re-checking whether it is still needed.
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// Shared by every stream of one API router.
#[derive(Clone, Default)]
pub struct Tail {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    ring: RwLock<Ring>,
    /// The ring's `last`, for streams waiting for more.
    last: watch::Sender<FeedPos>,
    readers: AtomicUsize,
    /// Whether a follower task is running (changed only under this lock).
    running: Mutex<bool>,
}

/// Encoded events covering the positions `(base, last]`.
#[derive(Default)]
struct Ring {
    base: FeedPos,
    last: FeedPos,
    frames: VecDeque<Frame>,
}

struct Frame {
    event: FeedEvent,
    message: Bytes,
}

impl Ring {
    fn reset(&mut self, at: FeedPos) {
        self.base = at;
        self.last = at;
        self.frames.clear();
    }
}

/// What the tail holds after a cursor.
pub enum TailRead {
    /// Messages for the matching events after the cursor (possibly none), and the cursor
    /// to continue from.
    Messages { messages: Bytes, cursor: FeedPos },
    /// The cursor is older than the tail: read storage.
    Behind,
    /// Nothing after the cursor yet.
    UpToDate,
}

/// One stream's handle on the tail; keeps the follower running while it exists.
pub struct TailReader {
    inner: Arc<Inner>,
    last: watch::Receiver<FeedPos>,
}

impl Tail {
    /// A reader for a new stream; starts the follower if it is not running.
    pub fn reader(&self, node: &Node) -> TailReader {
        let inner = &self.inner;
        inner.readers.fetch_add(1, Ordering::SeqCst);
        let mut running = inner.running.lock();
        if !*running {
            *running = true;
            let head = node.feed_head();
            inner.ring.write().reset(head);
            inner.last.send_replace(head);
            tokio::spawn(follow(Arc::downgrade(inner), node.clone()));
        }
        drop(running);
        TailReader { inner: inner.clone(), last: inner.last.subscribe() }
    }
}

impl TailReader {
    /// At most `max` matching events after `cursor`.
    pub fn read(&self, cursor: FeedPos, filter: &FeedFilter, max: usize) -> TailRead {
        let ring = self.inner.ring.read();
        if cursor < ring.base {
            return TailRead::Behind;
        }
        if cursor >= ring.last {
            return TailRead::UpToDate;
        }
        let start = ring.frames.partition_point(|frame| frame.event.pos <= cursor);
        let mut messages = BytesMut::new();
        let mut taken = 0;
        let mut next = ring.last;
        for frame in ring.frames.range(start..) {
            if taken == max {
                next = frame.event.pos - 1;
                break;
            }
            if filter.matches(&frame.event) {
                messages.extend_from_slice(&frame.message);
                taken += 1;
            }
        }
        TailRead::Messages { messages: messages.freeze(), cursor: next }
    }

    /// Waits until the tail moves past `cursor`, at most `timeout`; whether it did.
    pub async fn wait_past(&mut self, cursor: FeedPos, timeout: Duration) -> bool {
        matches!(tokio::time::timeout(timeout, self.last.wait_for(|last| *last > cursor)).await, Ok(Ok(_)))
    }
}

#[cfg(test)]
impl TailReader {
    /// A reader of a tail whose follower never runs, as if it had died.
    pub fn detached(at: FeedPos) -> Self {
        let tail = Tail::default();
        tail.inner.ring.write().reset(at);
        tail.inner.readers.fetch_add(1, Ordering::SeqCst);
        TailReader { inner: tail.inner.clone(), last: tail.inner.last.subscribe() }
    }
}

impl Drop for TailReader {
    fn drop(&mut self) {
        self.inner.readers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads the durable feed into the ring until no stream has needed it for [`IDLE_STOP`] (or
/// the API is gone).
async fn follow(tail: Weak<Inner>, node: Node) {
    let mut idle_since: Option<Instant> = None;
    let everything = FeedFilter::default();
    loop {
        let Some(inner) = tail.upgrade() else { return };
        if inner.readers.load(Ordering::SeqCst) == 0 {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= IDLE_STOP {
                let mut running = inner.running.lock();
                if inner.readers.load(Ordering::SeqCst) == 0 {
                    *running = false;
                    inner.ring.write().frames.clear();
                    return;
                }
            }
        } else {
            idle_since = None;
        }
        let last = inner.ring.read().last;
        match node.feed_after(last, &everything, FOLLOW_PAGE) {
            Ok(page) if page.cursor > last => {
                let full = page.events.len() == FOLLOW_PAGE;
                let frames: Vec<Frame> =
                    page.events.into_iter().map(|event| Frame { message: change_message(&event), event }).collect();
                {
                    let mut ring = inner.ring.write();
                    ring.frames.extend(frames);
                    while ring.frames.len() > TAIL_EVENTS {
                        if let Some(dropped) = ring.frames.pop_front() {
                            ring.base = dropped.event.pos;
                        }
                    }
                    ring.last = page.cursor;
                }
                inner.last.send_replace(page.cursor);
                if full {
                    continue;
                }
                // Caught up with the head as of this read: wait rather than scan again
                // (`feed_wait` returns at once if the head has moved since).
                drop(inner);
                follow_wait(&node, page.cursor).await;
                continue;
            }
            Ok(_) => {}
            Err(FeedError::Expired { oldest, .. }) => {
                // Fell behind retention itself: start over at what is kept. Streams older
                // than that read storage and get their own "expired".
                let at = oldest.saturating_sub(1);
                inner.ring.write().reset(at);
                inner.last.send_replace(at);
                continue;
            }
            Err(FeedError::Node(error)) => {
                tracing::warn!(%error, "change feed tail: reading the feed failed; retrying");
                drop(inner);
                tokio::time::sleep(FOLLOW_POLL).await;
                continue;
            }
        }
        drop(inner);
        follow_wait(&node, last).await;
    }
}

/// Waits for the feed to pass `cursor` (without keeping the API's state alive: the caller
/// has let go of it).
async fn follow_wait(node: &Node, cursor: FeedPos) {
    if node.is_ready() {
        node.feed_wait(cursor, FOLLOW_POLL).await;
    } else {
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(pos: FeedPos, ns: &str) -> Frame {
        use statemesh_protocol::{ChangeId, ChangeKind, DocId, DocKey, Namespace, NodeId};
        let origin = NodeId::new("12D3KooWQ6abDAdYjVPZ8YG33yENyaqiQo4TSnceUyeL1EAGqffB").expect("node id");
        let event = FeedEvent {
            pos,
            change: ChangeId { origin, seq: pos },
            doc: DocKey::new(Namespace::new(ns).expect("ns"), DocId::new("d").expect("id")),
            kind: ChangeKind::Put,
            time_ms: 0,
            version: "0".to_string(),
            exists: true,
            author: None,
        };
        Frame { message: Bytes::from(format!("<{pos}>")), event }
    }

    fn reader_over(base: FeedPos, frames: Vec<Frame>, last: FeedPos) -> TailReader {
        let tail = Tail::default();
        *tail.inner.ring.write() = Ring { base, last, frames: frames.into() };
        tail.inner.readers.fetch_add(1, Ordering::SeqCst);
        TailReader { inner: tail.inner.clone(), last: tail.inner.last.subscribe() }
    }

    fn messages(read: TailRead) -> (String, FeedPos) {
        match read {
            TailRead::Messages { messages, cursor } => (String::from_utf8_lossy(&messages).into_owned(), cursor),
            TailRead::Behind => ("behind".to_string(), 0),
            TailRead::UpToDate => ("up to date".to_string(), 0),
        }
    }

    #[test]
    fn reads_resume_after_the_cursor_page_by_page_and_skip_filtered_events() {
        let reader = reader_over(10, (11..=15).map(|p| event(p, if p == 13 { "b" } else { "a" })).collect(), 16);
        let all = FeedFilter::default();
        assert_eq!(messages(reader.read(10, &all, 2)), ("<11><12>".to_string(), 12));
        assert_eq!(messages(reader.read(12, &all, 100)), ("<13><14><15>".to_string(), 16));
        let only_a = FeedFilter { namespace: Some(statemesh_protocol::Namespace::new("a").expect("ns")), doc: None };
        assert_eq!(messages(reader.read(12, &only_a, 100)), ("<14><15>".to_string(), 16));
        assert_eq!(messages(reader.read(9, &all, 100)).0, "behind", "older than the tail: read storage");
        assert_eq!(messages(reader.read(16, &all, 100)).0, "up to date");
    }
}
