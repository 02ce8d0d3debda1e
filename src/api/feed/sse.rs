//! The feed as Server-Sent Events: message encoding and the two kinds of stream.
//!
//! A stream is produced on demand: the next chunk is built only when the connection has
//! taken the previous one, so a consumer that reads slowly holds at most one chunk (one page
//! of events) in this process and pushes back through TCP rather than through a queue.
//!
//! Messages: `id: <cursor>` + `event: change` + `data: <event JSON>` for each change;
//! `event: lagged` (`{"missed": n}`) and `event: expired` / `event: error` (the API's error
//! JSON) without an id; `: heartbeat` comments on a quiet feed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use bytes::BytesMut;
use serde::{Serialize, Serializer};
use serde_json::json;
use statemesh_protocol::{ChangeId, ChangeKind};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit};

use super::lag::CursorHandle;
use super::live::LiveItem;
use super::tail::{TailRead, TailReader};
use super::{node_unavailable, STREAMS_END};
use crate::api::ApiError;
use crate::node::{FeedError, FeedEvent, FeedFilter, FeedPage, FeedPos, Node};

/// A comment is sent when a stream has been quiet this long, so proxies keep the connection
/// open and clients can tell a quiet feed from a dead connection.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Events per chunk of a stream: the most one stream holds in memory at a time.
pub const STREAM_PAGE: usize = 256;
/// How long a stream at the head waits for the shared tail before it reads storage itself
/// (the tail's reader is only a cache; a stream never depends on it to make progress).
const TAIL_PATIENCE: Duration = Duration::from_secs(2);

/// The event JSON, written directly: the same document as [`FeedEvent::to_json`] without
/// building a `Value` for every message.
#[derive(Serialize)]
struct EventJson<'a> {
    cursor: FeedPos,
    deleted: bool,
    doc: &'a str,
    #[serde(serialize_with = "as_text")]
    id: &'a ChangeId,
    kind: ChangeKind,
    namespace: &'a str,
    time_ms: i64,
    version: &'a str,
    /// Last, so the cursor opens every message as before authorship.
    author: Option<&'a str>,
}

fn as_text<S: Serializer>(id: &&ChangeId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}

fn event_json(event: &FeedEvent) -> String {
    let json = EventJson {
        cursor: event.pos,
        deleted: !event.exists,
        doc: event.doc.doc_id.as_str(),
        id: &event.change,
        kind: event.kind,
        namespace: event.doc.namespace.as_str(),
        time_ms: event.time_ms,
        version: &event.version,
        author: event.author.as_deref(),
    };
    serde_json::to_string(&json).unwrap_or_else(|_| event.to_json().to_string())
}

/// Appends one message. `data` is compact JSON, which never contains a raw newline.
fn push_message(out: &mut String, id: Option<FeedPos>, event: &str, data: &str) {
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(event);
    out.push_str("\ndata: ");
    out.push_str(data);
    out.push_str("\n\n");
}

/// The complete message for one change.
pub fn change_message(event: &FeedEvent) -> Bytes {
    let mut out = String::with_capacity(360);
    push_message(&mut out, Some(event.pos), "change", &event_json(event));
    Bytes::from(out)
}

fn error_message(event: &str, error: ApiError) -> Bytes {
    let mut out = String::new();
    let data = json!({"error": {"code": error.code, "message": error.message}});
    push_message(&mut out, None, event, &data.to_string());
    Bytes::from(out)
}

/// `event: lagged`: the consumer fell more than `notifications.buffer_size` events behind and
/// `missed` events (counted before filtering) were dropped for it.
fn lagged_message(missed: u64) -> Bytes {
    let mut out = String::new();
    push_message(&mut out, None, "lagged", &json!({"missed": missed}).to_string());
    Bytes::from(out)
}

fn heartbeat() -> Bytes {
    Bytes::from_static(b": heartbeat\n\n")
}

/// The first chunk: tells the client the stream is open and how it is served.
fn opening(delivery: &str, cursor: Option<FeedPos>) -> Result<Bytes, Infallible> {
    let from = cursor.map_or_else(|| "live events from now".to_string(), |c| format!("events after cursor {c}"));
    Ok(Bytes::from(format!("retry: 1000\n: statemesh change feed, delivery {delivery}, {from}\n\n")))
}

/// An endless body: the opening chunk, then whatever `next` produces until it says `None`.
fn body<S, F, Fut>(delivery: &str, cursor: Option<FeedPos>, state: S, next: F) -> Body
where
    S: Send + 'static,
    F: FnMut(S) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<(Result<Bytes, Infallible>, S)>> + Send + 'static,
{
    let opening = futures::stream::once(std::future::ready(opening(delivery, cursor)));
    Body::from_stream(futures::StreamExt::chain(opening, futures::stream::unfold(state, next)))
}

/// at_least_once / exactly_once: everything after `cursor` from the durable feed, then the
/// feed as it grows. `first` is the page already read (so an expired cursor got its 410).
pub fn replay_stream(
    node: &Node,
    filter: FeedFilter,
    cursor: FeedPos,
    first: FeedPage,
    tail: TailReader,
    delivery: &str,
    (permit, published): (OwnedSemaphorePermit, CursorHandle),
) -> Body {
    let replay = Replay::new(node, filter, cursor, Some(first), tail, permit, published);
    body(delivery, Some(cursor), replay, |mut replay| async move {
        replay.next_chunk().await.map(|chunk| (Ok(chunk), replay))
    })
}

struct Replay {
    node: Node,
    filter: FeedFilter,
    /// Everything up to here has been sent (or skipped by the filter).
    cursor: FeedPos,
    pending: Option<FeedPage>,
    tail: TailReader,
    /// The last wait for the tail ran out without it moving: until it moves again, read
    /// storage whenever the durable head is ahead.
    tail_stalled: bool,
    ended: watch::Receiver<u64>,
    last_sent: Instant,
    finished: bool,
    _permit: OwnedSemaphorePermit,
    /// Where `cursor` is published for the lag metric.
    published: CursorHandle,
}

impl Replay {
    fn new(
        node: &Node,
        filter: FeedFilter,
        cursor: FeedPos,
        pending: Option<FeedPage>,
        tail: TailReader,
        permit: OwnedSemaphorePermit,
        published: CursorHandle,
    ) -> Self {
        Self {
            node: node.clone(),
            filter,
            cursor,
            pending,
            tail,
            tail_stalled: false,
            ended: STREAMS_END.subscribe(),
            last_sent: Instant::now(),
            finished: false,
            _permit: permit,
            published,
        }
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        let chunk = self.produce().await?;
        self.published.set(self.cursor);
        self.last_sent = Instant::now();
        Some(chunk)
    }

    /// One chunk of messages: from the shared tail when the cursor is within it, from
    /// storage when it is older.
    async fn produce(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        loop {
            let advanced = match self.pending.take() {
                Some(page) => self.take_stored(Ok(page)),
                None => match self.tail.read(self.cursor, &self.filter, STREAM_PAGE) {
                    TailRead::Messages { messages, cursor } => {
                        let advanced = cursor > self.cursor;
                        self.cursor = self.cursor.max(cursor);
                        if !messages.is_empty() {
                            return Some(messages);
                        }
                        Ok(advanced)
                    }
                    TailRead::Behind => {
                        let page = self.node.feed_after(self.cursor, &self.filter, STREAM_PAGE);
                        self.take_stored(page)
                    }
                    TailRead::UpToDate if self.tail_stalled && self.node.feed_head() > self.cursor => {
                        let page = self.node.feed_after(self.cursor, &self.filter, STREAM_PAGE);
                        self.take_stored(page)
                    }
                    TailRead::UpToDate => Ok(false),
                },
            };
            let advanced = match advanced {
                Ok(advanced) => advanced,
                Err(chunk) => return Some(chunk),
            };
            if self.last_sent.elapsed() >= HEARTBEAT {
                return Some(heartbeat());
            }
            if advanced {
                // The filter skipped a stretch of events; keep going.
                continue;
            }
            if let Some(error) = node_unavailable(&self.node) {
                self.finished = true;
                return Some(error_message("error", error.into()));
            }
            let patience = HEARTBEAT.saturating_sub(self.last_sent.elapsed()).min(TAIL_PATIENCE);
            tokio::select! {
                _ = self.ended.changed() => return None,
                moved = self.tail.wait_past(self.cursor, patience) => self.tail_stalled = !moved,
            }
        }
    }

    /// Takes a page read from storage: `Err` carries the chunk to send now (events, or the
    /// final message when the cursor expired or storage failed); `Ok` says whether the
    /// cursor moved past events the filter skipped.
    fn take_stored(&mut self, page: Result<FeedPage, FeedError>) -> Result<bool, Bytes> {
        match page {
            Ok(page) => {
                let advanced = page.cursor > self.cursor;
                self.cursor = self.cursor.max(page.cursor);
                if page.events.is_empty() {
                    return Ok(advanced);
                }
                let mut out = Vec::with_capacity(page.events.len() * 360);
                for event in &page.events {
                    out.extend_from_slice(&change_message(event));
                }
                Err(Bytes::from(out))
            }
            Err(error) => {
                // Fell behind retention mid-stream, or storage failed: say so, then end.
                self.finished = true;
                let event = if matches!(error, FeedError::Expired { .. }) { "expired" } else { "error" };
                Err(error_message(event, error.into()))
            }
        }
    }
}

/// at_most_once: the live events, from `receiver` (subscribed when the request arrived).
pub fn live_stream(
    receiver: broadcast::Receiver<Arc<LiveItem>>,
    filter: FeedFilter,
    delivery: &str,
    permit: OwnedSemaphorePermit,
) -> Body {
    let live = Live {
        receiver,
        filter,
        ended: STREAMS_END.subscribe(),
        last_sent: Instant::now(),
        finished: false,
        _permit: permit,
    };
    body(delivery, None, live, |mut live| async move { live.next_chunk().await.map(|chunk| (Ok(chunk), live)) })
}

struct Live {
    receiver: broadcast::Receiver<Arc<LiveItem>>,
    filter: FeedFilter,
    ended: watch::Receiver<u64>,
    last_sent: Instant,
    finished: bool,
    _permit: OwnedSemaphorePermit,
}

impl Live {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let chunk = self.produce().await?;
        self.last_sent = Instant::now();
        Some(chunk)
    }

    fn take(&self, out: &mut BytesMut, item: &LiveItem) {
        match item {
            LiveItem::Change { event, message } if self.filter.matches(event) => out.extend_from_slice(message),
            LiveItem::Change { .. } => {}
            LiveItem::Lagged(missed) => out.extend_from_slice(&lagged_message(*missed)),
        }
    }

    async fn produce(&mut self) -> Option<Bytes> {
        while !self.finished {
            let quiet_for = HEARTBEAT.saturating_sub(self.last_sent.elapsed());
            let received = tokio::select! {
                _ = self.ended.changed() => return None,
                received = tokio::time::timeout(quiet_for, self.receiver.recv()) => received,
            };
            let mut out = BytesMut::new();
            match received {
                Err(_quiet) => return Some(heartbeat()),
                Ok(Err(RecvError::Closed)) => return None,
                Ok(Err(RecvError::Lagged(missed))) => out.extend_from_slice(&lagged_message(missed)),
                Ok(Ok(item)) => self.take(&mut out, &item),
            }
            // Send what is already queued along with it, one bounded chunk at a time.
            for _ in 1..STREAM_PAGE {
                match self.receiver.try_recv() {
                    Ok(item) => self.take(&mut out, &item),
                    Err(TryRecvError::Lagged(missed)) => out.extend_from_slice(&lagged_message(missed)),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => {
                        self.finished = true;
                        break;
                    }
                }
            }
            if !out.is_empty() {
                return Some(out.freeze());
            }
            if self.last_sent.elapsed() >= HEARTBEAT {
                return Some(heartbeat());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use statemesh_protocol::{DocId, DocKey, Namespace, NodeId};

    use super::*;

    #[test]
    fn the_direct_encoding_is_the_event_json() {
        let origin = NodeId::new("12D3KooWQ6abDAdYjVPZ8YG33yENyaqiQo4TSnceUyeL1EAGqffB").expect("node id");
        let event = FeedEvent {
            pos: 42,
            change: ChangeId { origin, seq: 7 },
            doc: DocKey::new(Namespace::new("users").expect("ns"), DocId::new("a \"quoted\" id/é").expect("id")),
            kind: ChangeKind::Delete,
            time_ms: 1_700_000_000_000,
            version: "ab.cd".to_string(),
            exists: false,
            author: Some("ops".into()),
        };
        let encoded: serde_json::Value = serde_json::from_str(&event_json(&event)).expect("valid JSON");
        assert_eq!(encoded, event.to_json());
        let message = String::from_utf8(change_message(&event).to_vec()).expect("UTF-8");
        assert!(message.starts_with("id: 42\nevent: change\ndata: {\"cursor\":42,"), "{message}");
        assert_eq!(message.matches('\n').count(), 4, "one line per field, then a blank line: {message}");
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_retention_ends_with_an_expired_event() {
        use std::sync::Arc;

        use tokio::sync::Semaphore;

        use crate::config::{Config, StorageType};
        use crate::node::Precondition;

        let mut config = Config::default();
        config.storage.kind = StorageType::Memory;
        config.history.max_size = 5;
        let node = Node::open(&config).expect("node");
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().expect("permit");
        let namespace = Namespace::new("ns").expect("namespace");
        for i in 0..20 {
            let key = DocKey::new(namespace.clone(), DocId::new(format!("d{i}")).expect("id"));
            node.put(&key, &json!({}), &Precondition::None).await.expect("put");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while node.feed_oldest() <= 1 {
            assert!(Instant::now() < deadline, "retention did not prune");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A stream still at the start once the feed has moved on and been pruned (the tail
        // starts at the head, so the stream has to read storage).
        let tail = super::super::tail::Tail::default().reader(&node);
        let mut replay = Replay::new(
            &node,
            FeedFilter::default(),
            0,
            None,
            tail,
            permit,
            super::super::lag::StreamCursors::default().register(0),
        );
        let chunk = replay.next_chunk().await.expect("a final message");
        let text = String::from_utf8_lossy(&chunk);
        assert!(text.starts_with("event: expired\ndata: {\"error\":{\"code\":\"cursor_expired\""), "{text}");
        assert!(replay.next_chunk().await.is_none(), "the stream ends after saying so");
        node.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn a_stream_at_the_head_still_gets_new_events_when_the_shared_tail_stops() {
        use std::sync::Arc;

        use tokio::sync::Semaphore;

        use crate::config::{Config, StorageType};
        use crate::node::Precondition;

        let mut config = Config::default();
        config.storage.kind = StorageType::Memory;
        let node = Node::open(&config).expect("node");
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().expect("permit");
        let tail = super::super::tail::TailReader::detached(0);
        let mut replay = Replay::new(
            &node,
            FeedFilter::default(),
            0,
            None,
            tail,
            permit,
            super::super::lag::StreamCursors::default().register(0),
        );
        let writer = {
            let node = node.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let key = DocKey::new(Namespace::new("ns").expect("namespace"), DocId::new("d").expect("id"));
                node.put(&key, &json!({}), &Precondition::None).await.expect("put");
            })
        };
        let chunk = tokio::time::timeout(Duration::from_secs(10), replay.next_chunk()).await;
        let chunk = chunk.expect("the event arrives without the tail").expect("a chunk");
        assert!(String::from_utf8_lossy(&chunk).starts_with("id: 1\nevent: change\n"));
        writer.await.expect("writer");
        node.shutdown().await.expect("shutdown");
    }
}
