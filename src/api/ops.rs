//! Operational routes: liveness, readiness, metrics and node status.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness: the node accepts work (storage healthy, not shutting down).
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.node.is_ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready"}))).into_response()
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let subscriptions = i64::try_from(state.feed.open_subscriptions()).unwrap_or(i64::MAX);
    state.node.metrics().feed_subscribers.set(subscriptions);
    let node = state.node.clone();
    let text = tokio::task::spawn_blocking(move || node.render_metrics()).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

pub async fn status(State(state): State<AppState>) -> Response {
    Json(state.node.status()).into_response()
}

/// `GET /v1/peers`: the connected replication peers.
pub async fn peers(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({ "peers": state.node.peers() })).into_response()
}
