//! Change feed calls: one JSON page (long-poll), or a Server-Sent Events subscription read
//! event by event.
//!
//! The SSE reader parses the byte stream itself (`id:`, `event:`, `data:` lines, a blank line
//! ends a message) rather than pulling in an EventSource implementation: reconnecting and
//! resuming belong to the caller, which knows the last cursor it has *processed* (not merely
//! received), and that is the cursor to resume from.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::StreamExt;
use reqwest::header;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Client, ClientError};

/// How long a subscription may stay silent before the connection is taken for dead: the
/// node sends a heartbeat every 15 s on a quiet feed.
pub const FEED_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Longest SSE line accepted; change events are a few hundred bytes.
const LINE_MAX: usize = 1024 * 1024;
/// A subscription has no overall deadline; [`FEED_IDLE_TIMEOUT`] catches dead connections.
const SUBSCRIPTION_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Which changes to receive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangesFilter {
    pub namespace: Option<String>,
    /// A document id (needs `namespace`).
    pub doc: Option<String>,
}

impl ChangesFilter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(ns) = &self.namespace {
            query.push(("ns", ns.clone()));
        }
        if let Some(doc) = &self.doc {
            query.push(("doc", doc.clone()));
        }
        query
    }
}

/// One change as the feed reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// This node's position of the change: resume after it.
    pub cursor: u64,
    /// The stable change id, `origin:seq`, the same on every node.
    pub id: String,
    pub namespace: String,
    pub doc: String,
    pub kind: String,
    pub time_ms: i64,
    pub version: String,
    pub deleted: bool,
    /// Who made the change, as its origin recorded it; absent when not recorded.
    #[serde(default)]
    pub author: Option<String>,
}

/// `GET /v1/changes` as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesPage {
    pub events: Vec<ChangeEvent>,
    /// Resume after this cursor (it moves past events the filter skipped, too).
    pub cursor: u64,
    /// The node's newest durable feed position.
    pub head: u64,
    /// at_most_once only: events dropped because the consumer fell behind.
    #[serde(default)]
    pub missed: Option<u64>,
}

/// One message of a feed subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedMessage {
    Change(ChangeEvent),
    /// at_most_once: this many events were dropped because the consumer fell behind.
    Lagged {
        missed: u64,
    },
    /// The stream fell behind what retention keeps; it ends after this.
    Expired {
        message: String,
    },
    /// The node reported a failure (e.g. shutting down); the stream ends after this.
    Error {
        code: String,
        message: String,
    },
}

impl Client {
    /// One page of changes after `since` (the current head when `None`): waits up to `wait`
    /// for the first one. `delivery` overrides the node's `notifications.delivery`.
    pub async fn changes_page(
        &self,
        since: Option<u64>,
        filter: &ChangesFilter,
        wait: Option<Duration>,
        limit: Option<u32>,
    ) -> Result<ChangesPage, ClientError> {
        self.changes_page_with(since, filter, wait, limit, None).await
    }

    /// [`Client::changes_page`] with an explicit delivery mode (`at_most_once`, …).
    pub async fn changes_page_with(
        &self,
        since: Option<u64>,
        filter: &ChangesFilter,
        wait: Option<Duration>,
        limit: Option<u32>,
        delivery: Option<&str>,
    ) -> Result<ChangesPage, ClientError> {
        let mut query = filter.query();
        if let Some(since) = since {
            query.push(("since", since.to_string()));
        }
        if let Some(wait) = wait {
            query.push(("wait", format!("{:.3}", wait.as_secs_f64())));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(delivery) = delivery {
            query.push(("delivery", delivery.to_string()));
        }
        let timeout = wait.unwrap_or_default() + Duration::from_secs(30);
        self.json(self.http.get(self.url(&["v1", "changes"])).query(&query).timeout(timeout)).await
    }

    /// Opens an SSE subscription resuming after `last_event_id` (only new changes when
    /// `None`). Errors the node answers before streaming (e.g. 410 `cursor_expired`) come
    /// back here as [`ClientError::Api`].
    pub async fn subscribe(
        &self,
        last_event_id: Option<u64>,
        filter: &ChangesFilter,
        delivery: Option<&str>,
    ) -> Result<FeedStream, ClientError> {
        let mut query = filter.query();
        if let Some(delivery) = delivery {
            query.push(("delivery", delivery.to_string()));
        }
        let mut request = self
            .http
            .get(self.url(&["v1", "changes"]))
            .query(&query)
            .header(header::ACCEPT, "text/event-stream")
            .timeout(SUBSCRIPTION_TIMEOUT);
        if let Some(cursor) = last_event_id {
            request = request.header("last-event-id", cursor.to_string());
        }
        let response = self.send(request).await?;
        let url = self.base_url().to_string();
        Ok(FeedStream { body: Box::pin(response.bytes_stream()), parser: SseParser::default(), url })
    }
}

type ByteStream = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open subscription. Dropping it closes the connection.
pub struct FeedStream {
    body: ByteStream,
    parser: SseParser,
    /// The node, for error messages.
    url: String,
}

impl std::fmt::Debug for FeedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedStream").finish_non_exhaustive()
    }
}

impl FeedStream {
    /// The next message; `None` when the node closed the stream. A connection silent for
    /// longer than [`FEED_IDLE_TIMEOUT`] is reported as an error.
    pub async fn next(&mut self) -> Option<Result<FeedMessage, ClientError>> {
        loop {
            match self.parser.next_message() {
                Ok(Some(message)) => match decode(message) {
                    Ok(Some(message)) => return Some(Ok(message)),
                    Ok(None) => continue,
                    Err(error) => return Some(Err(error)),
                },
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
            match tokio::time::timeout(FEED_IDLE_TIMEOUT, self.body.next()).await {
                Ok(Some(Ok(bytes))) => self.parser.feed(&bytes),
                Ok(Some(Err(error))) => {
                    return Some(Err(ClientError::Unreachable {
                        url: self.url.clone(),
                        reason: format!("the change feed broke off: {error}"),
                    }))
                }
                Ok(None) => return None,
                Err(_) => {
                    return Some(Err(ClientError::Unreachable {
                        url: self.url.clone(),
                        reason: format!("nothing received for {} s, not even a heartbeat", FEED_IDLE_TIMEOUT.as_secs()),
                    }))
                }
            }
        }
    }
}

/// A raw SSE message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct SseMessage {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// Incremental SSE parsing: bytes in, complete messages out.
#[derive(Debug, Default)]
struct SseParser {
    buffer: BytesMut,
    current: SseMessage,
    has_data: bool,
}

impl SseParser {
    fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message in the buffer, if one is there.
    fn next_message(&mut self) -> Result<Option<SseMessage>, ClientError> {
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line = self.buffer.split_to(end + 1);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = std::str::from_utf8(line)
                .map_err(|_| ClientError::Decode("the change feed sent a line that is not UTF-8".to_string()))?;
            if line.is_empty() {
                let message = std::mem::take(&mut self.current);
                if std::mem::take(&mut self.has_data) || message.event.is_some() {
                    return Ok(Some(message));
                }
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment (heartbeat)
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.current.id = Some(value.to_string()),
                "event" => self.current.event = Some(value.to_string()),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {} // `retry` and unknown fields
            }
        }
        if self.buffer.len() > LINE_MAX {
            self.buffer.advance(self.buffer.len());
            return Err(ClientError::Decode(format!("the change feed sent a line longer than {LINE_MAX} bytes")));
        }
        Ok(None)
    }
}

/// A typed message; `None` for message types this client does not know (skipped).
fn decode(message: SseMessage) -> Result<Option<FeedMessage>, ClientError> {
    let data = || -> Result<Value, ClientError> {
        serde_json::from_str(&message.data)
            .map_err(|e| ClientError::Decode(format!("the change feed sent invalid JSON: {e}")))
    };
    let error_text = |value: &Value, key: &str| value["error"][key].as_str().unwrap_or_default().to_string();
    Ok(Some(match message.event.as_deref().unwrap_or("message") {
        "change" => FeedMessage::Change(
            serde_json::from_value(data()?)
                .map_err(|e| ClientError::Decode(format!("the change feed sent an unexpected event: {e}")))?,
        ),
        "lagged" => FeedMessage::Lagged { missed: data()?["missed"].as_u64().unwrap_or(0) },
        "expired" => FeedMessage::Expired { message: error_text(&data()?, "message") },
        "error" => {
            let value = data()?;
            FeedMessage::Error { code: error_text(&value, "code"), message: error_text(&value, "message") }
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&str]) -> Vec<SseMessage> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk.as_bytes());
            while let Some(message) = parser.next_message().expect("parses") {
                out.push(message);
            }
        }
        out
    }

    #[test]
    fn messages_split_across_chunks_are_reassembled() {
        let messages =
            parse_all(&["retry: 1000\n: hello\n\nid: 7\nevent: cha", "nge\ndata: {\"a\"", ":1}\n\n: heartbeat\n\n"]);
        assert_eq!(
            messages,
            vec![SseMessage { id: Some("7".into()), event: Some("change".into()), data: "{\"a\":1}".into() }]
        );
    }

    #[test]
    fn crlf_line_ends_and_multi_line_data_follow_the_sse_rules() {
        let messages = parse_all(&["event: x\r\ndata: one\r\ndata: two\r\n\r\n"]);
        assert_eq!(messages, vec![SseMessage { id: None, event: Some("x".into()), data: "one\ntwo".into() }]);
    }

    #[test]
    fn an_endless_line_is_refused_instead_of_buffered() {
        let mut parser = SseParser::default();
        parser.feed(&vec![b'a'; LINE_MAX + 1]);
        assert!(parser.next_message().is_err());
    }

    #[test]
    fn lagged_and_expired_messages_decode_to_their_variants() {
        let lagged = SseMessage { id: None, event: Some("lagged".into()), data: r#"{"missed":12}"#.into() };
        assert_eq!(decode(lagged).expect("decodes"), Some(FeedMessage::Lagged { missed: 12 }));
        let expired = SseMessage {
            id: None,
            event: Some("expired".into()),
            data: r#"{"error":{"code":"cursor_expired","message":"gone"}}"#.into(),
        };
        assert_eq!(decode(expired).expect("decodes"), Some(FeedMessage::Expired { message: "gone".into() }));
        let garbage = SseMessage { id: None, event: Some("change".into()), data: "{not json".into() };
        assert!(decode(garbage).is_err());
    }
}
