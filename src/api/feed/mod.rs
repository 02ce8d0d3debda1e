//! `GET /v1/changes`: the change feed over HTTP, as Server-Sent Events or as JSON long-polls.
//!
//! One route, two forms. `Accept: text/event-stream` gets an SSE stream (`id:` is the
//! event's cursor, `event: change`, `data:` the event JSON); anything else gets one JSON page
//! (`{"events", "cursor", "head"}`), optionally waiting up to `?wait=` seconds for the first
//! event. Query: `since`, `ns`, `doc` (needs `ns`), `limit` and `wait` (JSON form only), and
//! `delivery` to override `notifications.delivery` for this request.
//!
//! Delivery modes:
//! - `at_least_once` / `exactly_once`: replay from the durable feed after the cursor, then
//!   follow the durable head. These never touch the live broadcast, so a slow consumer only
//!   reads behind from storage: it never loses events and never holds writers back. A cursor
//!   that retention has already passed is answered with 410 `cursor_expired` (or, when a
//!   stream falls that far behind, a final `event: expired`). On the wire `exactly_once` is
//!   `at_least_once`; the consumer de-duplicates as `docs/FEED.md` describes.
//! - `at_most_once`: the live broadcast from the moment of the request, bounded by
//!   `notifications.buffer_size`. A consumer that falls behind gets `event: lagged` with how
//!   many events it missed and carries on; writers never wait for it.
//!
//! Streams are produced on demand (at most one page of events is held per stream) and their
//! number is bounded; beyond it the answer is 503 `too_many_subscribers`. Each new event is
//! read and encoded once for all streams: at-least-once streams at the head share `tail`,
//! live streams share `live`. `docs/FEED.md` is the user's guide.

mod lag;
mod live;
mod sse;
mod tail;

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use statemesh_protocol::DocId;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use super::extract;
use super::openapi::schemas::{ErrorBody, FeedEvent as FeedEventSchema};
use super::AppState;
use crate::config::{Config, Delivery};
use crate::node::{FeedError, FeedEvent, FeedFilter, FeedPos, Node, NodeError};
use live::LiveRelay;
use tail::Tail;

/// Most feed streams and long-polls served at once.
const MAX_SUBSCRIBERS: usize = 1024;
const LIMIT_DEFAULT: u32 = 100;
const LIMIT_MAX: u32 = 1000;
const DELIVERY_HEADER: HeaderName = HeaderName::from_static("x-statemesh-delivery");

/// Ends the feed streams that are open when an HTTP server of this process begins its
/// graceful shutdown. A stream is endless by design, and the server waits for every open
/// response before it returns, so without this a node with a subscriber would never stop.
/// Streams opened later are unaffected; a consumer that was cut off resumes from its cursor.
static STREAMS_END: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::Sender::new(0));

/// Called by [`super::serve`] once its shutdown signal has fired.
pub fn end_streams() {
    STREAMS_END.send_modify(|generation| *generation += 1);
}

/// Changes when the streams open now are to end (for the API's other endless streams).
pub(super) fn streams_end() -> watch::Receiver<u64> {
    STREAMS_END.subscribe()
}

/// The feed's share of the API state.
#[derive(Clone)]
pub struct FeedSettings {
    delivery: Delivery,
    history_enabled: bool,
    /// The longest `?wait=`: the request deadline minus a margin to answer in.
    max_wait: Duration,
    subscribers: Arc<Semaphore>,
    tail: Tail,
    live: LiveRelay,
    cursors: lag::StreamCursors,
}

impl FeedSettings {
    pub fn from_config(config: &Config) -> Self {
        let timeout = config.api.request_timeout;
        Self {
            delivery: config.notifications.delivery,
            history_enabled: config.history.enabled,
            max_wait: timeout.saturating_sub(Duration::from_secs(1)).max(timeout / 2),
            subscribers: Arc::new(Semaphore::new(MAX_SUBSCRIBERS)),
            tail: Tail::default(),
            live: LiveRelay::new(config.notifications.buffer_size),
            cursors: lag::StreamCursors::default(),
        }
    }

    /// Feed subscriptions open now (event streams and waiting long polls).
    pub fn open_subscriptions(&self) -> usize {
        MAX_SUBSCRIBERS.saturating_sub(self.subscribers.available_permits())
    }

    /// Events the slowest at-least-once stream has yet to send, with the feed at `head`.
    pub fn max_stream_lag(&self, head: FeedPos) -> u64 {
        self.cursors.max_lag(head)
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesParams {
    /// Resume after this cursor (an event stream prefers `Last-Event-ID`). Without it a replay
    /// starts at the head: only new events.
    since: Option<u64>,
    /// Only events of this namespace.
    #[param(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    ns: Option<String>,
    /// Only events of this document (needs `ns`).
    #[param(min_length = 1)]
    doc: Option<String>,
    /// JSON form: most events in the page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// JSON form: seconds to wait for a first event (long poll), at most about
    /// `api.request_timeout`.
    #[param(minimum = 0)]
    wait: Option<f64>,
    /// Overrides `notifications.delivery` for this request.
    #[param(inline)]
    delivery: Option<Delivery>,
}

impl From<FeedError> for ApiError {
    fn from(error: FeedError) -> Self {
        match error {
            FeedError::Expired { .. } => ApiError::new(StatusCode::GONE, "cursor_expired", error.to_string()),
            FeedError::Node(error) => error.into(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/changes",
    tag = "feed",
    operation_id = "getChanges",
    summary = "The change feed",
    description = "Every write, patch and delete applied at this node, each with a `cursor` and a stable \
        change `id`. With `Accept: text/event-stream` a stream of Server-Sent Events: `id:` the cursor, \
        `event: change`, `data:` the event JSON; also `event: lagged` (`{\"missed\": n}`, at_most_once), \
        `event: expired` (the stream fell behind retention), `event: error`, and `: heartbeat` comments. \
        Otherwise one JSON page. Browsers' EventSource may pass the token as `?access_token=`.",
    params(
        ChangesParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "Event streams: resume after this cursor (what \
            EventSource sends on reconnect); wins over `since`."),
    ),
    security(("bearer" = []), ("access_token" = [])),
    responses(
        (status = 200, description = "One JSON page, or the event stream (`Accept: text/event-stream`).",
            content((Page = "application/json"), (String = "text/event-stream")),
            headers(("X-Statemesh-Delivery" = String, description = "The delivery mode served: `at_most_once`, \
                `at_least_once` or `exactly_once`."))),
        (status = 400, description = "`bad_parameter` (`limit`/`wait` on a stream, `doc` without `ns`, out of \
            range), `invalid_id`, `bad_header` (`Last-Event-ID`) or `cursor_ahead` (a cursor this node's feed \
            never issued).", body = ErrorBody),
        (status = 409, description = "`history_disabled`: replay needs `history.enabled`; only \
            `delivery=at_most_once` is served without it.", body = ErrorBody),
        (status = 410, description = "`cursor_expired`: retention has passed the cursor.", body = ErrorBody),
        (status = 503, description = "`too_many_subscribers` (1024 streams and long polls are open), \
            `shutting_down`, `storage_failed` or `timeout`.", body = ErrorBody),
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ChangesParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = extract::query(params)?;
    let filter = filter(&params)?;
    let delivery = params.delivery.unwrap_or(state.feed.delivery);
    let settings = &state.feed;
    if delivery != Delivery::AtMostOnce && !settings.history_enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "history_disabled",
            "replaying the feed needs history.enabled; with it off only delivery=at_most_once (live) is served",
        ));
    }
    let node = &state.node;
    if wants_event_stream(&headers) {
        if params.limit.is_some() || params.wait.is_some() {
            return Err(ApiError::bad_request(
                "bad_parameter",
                "limit and wait apply to the JSON form only; an event stream sends events as they come",
            ));
        }
        let since = last_event_id(&headers)?.or(params.since);
        let permit = subscriber_permit(settings)?;
        let name = delivery_name(delivery);
        let body = match delivery {
            Delivery::AtMostOnce => sse::live_stream(settings.live.subscribe(node), filter, name, permit),
            Delivery::AtLeastOnce | Delivery::ExactlyOnce => {
                let cursor = replay_start(node, since)?;
                // Read the first page now, so an expired cursor is a 410, not an empty stream.
                let first = node.feed_after(cursor, &filter, sse::STREAM_PAGE)?;
                let tail = settings.tail.reader(node);
                let published = settings.cursors.register(cursor);
                sse::replay_stream(node, filter, cursor, first, tail, name, (permit, published))
            }
        };
        let headers = [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
            (DELIVERY_HEADER, delivery_value(delivery)),
        ];
        return Ok((headers, body).into_response());
    }
    let limit = params.limit.unwrap_or(LIMIT_DEFAULT);
    if limit == 0 || limit > LIMIT_MAX {
        return Err(ApiError::bad_request("bad_parameter", format!("limit must be between 1 and {LIMIT_MAX}")));
    }
    let wait = match params.wait {
        None => Duration::ZERO,
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            Duration::try_from_secs_f64(seconds).unwrap_or(settings.max_wait).min(settings.max_wait)
        }
        Some(_) => return Err(ApiError::bad_request("bad_parameter", "wait must be a number of seconds >= 0")),
    };
    let _permit = subscriber_permit(settings)?;
    let page = match delivery {
        Delivery::AtMostOnce => live_page(node, &filter, limit as usize, wait).await?,
        Delivery::AtLeastOnce | Delivery::ExactlyOnce => {
            replay_page(node, &filter, params.since, limit as usize, wait).await?
        }
    };
    Ok(([(DELIVERY_HEADER, delivery_value(delivery))], Json(page)).into_response())
}

fn filter(params: &ChangesParams) -> Result<FeedFilter, ApiError> {
    let namespace = params.ns.clone().map(extract::namespace).transpose()?;
    let doc = match (&params.doc, &namespace) {
        (Some(_), None) => {
            return Err(ApiError::bad_request(
                "bad_parameter",
                "doc needs ns: a document id is unique within a namespace",
            ))
        }
        (Some(doc), Some(_)) => {
            Some(DocId::new(doc.clone()).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?)
        }
        (None, _) => None,
    };
    Ok(FeedFilter { namespace, doc })
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// The cursor an SSE client resumes from after a reconnect (an empty id means none).
fn last_event_id(headers: &HeaderMap) -> Result<Option<FeedPos>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = value.to_str().map(str::trim).unwrap_or("?");
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ApiError::bad_request(
            "bad_header",
            format!("Last-Event-ID `{text}` is not a feed cursor (an unsigned integer)"),
        )
    })
}

fn subscriber_permit(settings: &FeedSettings) -> Result<OwnedSemaphorePermit, ApiError> {
    settings.subscribers.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_subscribers",
            format!("this node already serves {MAX_SUBSCRIBERS} feed subscribers; retry later"),
        )
    })
}

fn delivery_name(delivery: Delivery) -> &'static str {
    match delivery {
        Delivery::AtMostOnce => "at_most_once",
        Delivery::AtLeastOnce => "at_least_once",
        Delivery::ExactlyOnce => "exactly_once",
    }
}

fn delivery_value(delivery: Delivery) -> HeaderValue {
    HeaderValue::from_static(delivery_name(delivery))
}

/// Where a replay starts: after `since`, or at the current head (only new events) without
/// one. A cursor beyond the head was not issued by this node's feed as it stands.
fn replay_start(node: &Node, since: Option<FeedPos>) -> Result<FeedPos, ApiError> {
    let head = node.feed_head();
    match since {
        None => Ok(head),
        Some(cursor) if cursor > head => Err(ApiError::bad_request(
            "cursor_ahead",
            format!(
                "cursor {cursor} is ahead of this node's feed (head {head}); cursors are per node: was it issued by \
                 another node, or was this node's data reset?"
            ),
        )),
        Some(cursor) => Ok(cursor),
    }
}

/// The error a node in trouble gives a waiting feed consumer.
fn node_unavailable(node: &Node) -> Option<NodeError> {
    (!node.is_ready()).then_some(NodeError::ShuttingDown)
}

// ---- JSON form ----

/// One page of the change feed (the JSON form of `GET /v1/changes`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = FeedPage)]
struct Page {
    #[schema(value_type = Vec<FeedEventSchema>)]
    events: Vec<serde_json::Value>,
    /// Resume after this cursor.
    #[schema(value_type = u64)]
    cursor: FeedPos,
    /// The newest durable position.
    #[schema(value_type = u64)]
    head: FeedPos,
    /// at_most_once: events dropped because this consumer fell behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    missed: Option<u64>,
}

/// Durable events after `since`; waits up to `wait` for the first matching one.
async fn replay_page(
    node: &Node,
    filter: &FeedFilter,
    since: Option<FeedPos>,
    limit: usize,
    wait: Duration,
) -> Result<Page, ApiError> {
    let deadline = Instant::now() + wait;
    let mut cursor = replay_start(node, since)?;
    loop {
        let page = node.feed_after(cursor, filter, limit)?;
        let now = Instant::now();
        if !page.events.is_empty() || now >= deadline {
            let events = page.events.iter().map(FeedEvent::to_json).collect();
            return Ok(Page { events, cursor: page.cursor, head: node.feed_head(), missed: None });
        }
        if let Some(error) = node_unavailable(node) {
            return Err(error.into());
        }
        cursor = page.cursor;
        node.feed_wait(cursor, deadline - now).await;
    }
}

/// Live events arriving while the request waits: returns with the first matching ones (and
/// whatever else is already queued), or empty after `wait`.
async fn live_page(node: &Node, filter: &FeedFilter, limit: usize, wait: Duration) -> Result<Page, ApiError> {
    let mut live = node.feed_live();
    let mut cursor = node.feed_head();
    let deadline = Instant::now() + wait;
    let mut events = Vec::new();
    let mut missed = 0;
    let mut take = |event: Arc<FeedEvent>, events: &mut Vec<serde_json::Value>| {
        cursor = cursor.max(event.pos);
        if filter.matches(&event) {
            events.push(event.to_json());
        }
    };
    while events.is_empty() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, live.recv()).await {
            Ok(Ok(event)) => take(event, &mut events),
            Ok(Err(RecvError::Lagged(n))) => missed += n,
            Ok(Err(RecvError::Closed)) | Err(_) => break,
        }
    }
    while events.len() < limit {
        match live.try_recv() {
            Ok(event) => take(event, &mut events),
            Err(TryRecvError::Lagged(n)) => missed += n,
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    Ok(Page { events, cursor, head: node.feed_head(), missed: Some(missed) })
}
