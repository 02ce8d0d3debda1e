//! The mesh as an operator sees it: `GET /v1/mesh` (this node's summary, every peer it has
//! met with that peer's own summary, and the feed's cursors), `GET /v1/mesh/events` (the same
//! view as Server-Sent Events, `event: mesh` once a second) and the status page at `/ui`,
//! whose assets are compiled into the binary.
//!
//! The page reads only these routes and the change feed, with the caller's token (browsers'
//! EventSource passes it as `?access_token=`); the assets themselves hold no data and are
//! served to anyone.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use super::openapi::schemas::ErrorBody;
use super::AppState;
use crate::clock::now_ms;
use crate::node::{MeshPeer, Node, NodeSummary};

/// How often a mesh stream sends the view.
const MESH_EVERY: Duration = Duration::from_secs(1);
/// Mesh streams served at once.
pub const MESH_STREAMS_MAX: usize = 64;

/// The status page's files: (name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("ui/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("ui/app.js")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("ui/style.css")),
    ("d3.min.js", "text/javascript; charset=utf-8", include_bytes!("ui/d3.min.js")),
    ("LICENSE-d3", "text/plain; charset=utf-8", include_bytes!("ui/LICENSE-d3")),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/mesh", get(view))
        .route("/v1/mesh/events", get(events))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{asset}", get(asset))
}

/// `GET /v1/mesh`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeshView {
    /// When the view was taken, ms since the epoch.
    pub at_ms: i64,
    pub node: NodeSummary,
    pub peers: Vec<MeshPeer>,
    pub feed: FeedCursors,
}

/// Where the change feed stands, so a reader can fetch the latest events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedCursors {
    /// The newest durable event.
    pub head: u64,
    /// The oldest event still kept (`head + 1` when history is off).
    pub oldest: u64,
}

fn mesh_view(node: &Node) -> MeshView {
    MeshView {
        at_ms: now_ms(),
        node: node.summary(),
        peers: node.mesh_peers(),
        feed: FeedCursors { head: node.feed_head(), oldest: node.feed_oldest() },
    }
}

#[utoipa::path(
    get,
    path = "/v1/mesh",
    tag = "operations",
    operation_id = "getMesh",
    summary = "The mesh as this node sees it",
    description = "This node's summary, every peer it has met (connected or not) with that peer's own \
        summary, and the feed's cursors.",
    responses((status = 200, description = "The view.", body = MeshView))
)]
async fn view(State(state): State<AppState>) -> Response {
    Json(mesh_view(&state.node)).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/mesh/events",
    tag = "operations",
    operation_id = "streamMesh",
    summary = "The mesh view as Server-Sent Events",
    description = "`event: mesh` with the `GET /v1/mesh` view as `data:`, now and then once a second, \
        until the client goes away or the node begins to stop. Browsers' EventSource may pass the token \
        as `?access_token=`.",
    security(("bearer" = []), ("access_token" = [])),
    responses(
        (status = 200, description = "The stream.", body = String, content_type = "text/event-stream"),
        (status = 503, description = "`too_many_subscribers`: 64 mesh streams are open; retry later. Or \
            `timeout`.", body = ErrorBody),
    )
)]
async fn events(State(state): State<AppState>) -> Result<Response, ApiError> {
    let permit = state.mesh_streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_subscribers",
            format!("this node already serves {MESH_STREAMS_MAX} mesh streams; retry later"),
        )
    })?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
    ];
    Ok((headers, Body::from_stream(mesh_stream(state.node.clone(), permit))).into_response())
}

/// The view now, then once every [`MESH_EVERY`], until the client goes away or the server
/// begins its shutdown.
fn mesh_stream(
    node: Node,
    permit: OwnedSemaphorePermit,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let mut ticks = tokio::time::interval(MESH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = super::feed::streams_end();
    // Browsers reconnect after a second rather than their default three.
    let opening = futures::stream::once(std::future::ready(Ok(Bytes::from_static(b"retry: 1000\n\n"))));
    let views = futures::stream::unfold((node, ticks, end, permit), |(node, mut ticks, mut end, permit)| async move {
        tokio::select! {
            _ = end.changed() => None,
            _ = ticks.tick() => {
                let data = serde_json::to_string(&mesh_view(&node)).unwrap_or_default();
                let message = Bytes::from(format!("event: mesh\ndata: {data}\n\n"));
                Some((Ok(message), (node, ticks, end, permit)))
            }
        }
    });
    futures::StreamExt::chain(opening, views)
}

#[utoipa::path(
    get,
    path = "/ui",
    tag = "ui",
    operation_id = "getStatusPage",
    summary = "The status page",
    description = "Its files hold no data; what it shows comes from routes that need a token. `/ui/` \
        serves the same page.",
    security(()),
    responses((status = 200, description = "The page.", body = String, content_type = "text/html"))
)]
async fn index() -> Response {
    serve_asset("index.html")
}

#[utoipa::path(
    get,
    path = "/ui/{asset}",
    tag = "ui",
    operation_id = "getStatusPageFile",
    summary = "A file of the status page",
    params(("asset" = String, Path, description = "`index.html`, `app.js`, `style.css`, `d3.min.js` or \
        `LICENSE-d3`.")),
    security(()),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/html"), (String = "text/javascript"), (String = "text/css"), (String = "text/plain")
        )),
        (status = 404, description = "`no_route`: the page has no such file.", body = ErrorBody),
    )
)]
async fn asset(Path(name): Path<String>) -> Response {
    serve_asset(&name)
}

fn serve_asset(name: &str) -> Response {
    match ASSETS.iter().find(|(asset, _, _)| *asset == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff")),
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
                    ),
                ),
            ],
            Bytes::from_static(bytes),
        )
            .into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "no_route", format!("the status page has no file `{name}`"))
            .into_response(),
    }
}

/// The shared semaphore bounding mesh streams.
pub fn stream_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MESH_STREAMS_MAX))
}
