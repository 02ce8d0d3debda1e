//! Operational routes: liveness, readiness, metrics and node status.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::openapi::schemas::{PeerList, Probe};
use super::AppState;
use crate::node::NodeStatus;

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    security(()),
    responses((status = 200, description = "`{\"status\": \"ok\"}`.", body = Probe))
)]
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness: the node accepts work (storage healthy, not shutting down).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    security(()),
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`.", body = Probe),
        (status = 503, description = "`{\"status\": \"not_ready\"}`: stopping, or storage failed.", body = Probe),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.node.is_ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready"}))).into_response()
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "getMetrics",
    summary = "Prometheus metrics",
    description = "The Prometheus text exposition format, version 0.0.4.",
    responses((status = 200, description = "Every series (see the README's Metrics).", body = String,
        content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let subscriptions = i64::try_from(state.feed.open_subscriptions()).unwrap_or(i64::MAX);
    state.node.metrics().feed_subscribers.set(subscriptions);
    let lag = state.feed.max_stream_lag(state.node.feed_head());
    state.node.metrics().feed_lag_events.set(i64::try_from(lag).unwrap_or(i64::MAX));
    let node = state.node.clone();
    let text = tokio::task::spawn_blocking(move || node.render_metrics()).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "operations",
    operation_id = "getStatus",
    summary = "This node's status",
    responses((status = 200, description = "Node id, name, storage, documents, version vector, uptime, \
        namespaces, open transactions and connected peers.", body = NodeStatus))
)]
pub async fn status(State(state): State<AppState>) -> Response {
    Json(state.node.status()).into_response()
}

/// `GET /v1/peers`: the connected replication peers.
#[utoipa::path(
    get,
    path = "/v1/peers",
    tag = "operations",
    operation_id = "getPeers",
    summary = "The connected replication peers",
    responses((status = 200, description = "Id, address, connected since, last anti-entropy exchange and \
        the changes each side lacks.", body = PeerList))
)]
pub async fn peers(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({ "peers": state.node.peers() })).into_response()
}
