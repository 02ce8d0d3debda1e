//! The HTTP/JSON API (axum): routes, shared state, and the request middleware.
//!
//! Handlers are thin: they parse and validate the request (`extract`), call the [`Node`], and
//! shape the response; every failure becomes a JSON error (`error`). The middleware bounds
//! each request by `api.request_timeout` and records per-route metrics.

mod cluster;
mod consistency;
mod docs;
mod error;
mod extract;
mod feed;
mod history;
mod ops;
mod snapshots;
mod txn;

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use error::ApiError;

use crate::config::Config;
use crate::node::Node;
use crate::strong::StrongNode;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub node: Node,
    pub list_limit_max: u32,
    pub request_timeout: Duration,
    /// The change feed's delivery default, subscriber bound and long-poll limit.
    pub feed: feed::FeedSettings,
    /// The strong path, on a node that runs it.
    pub strong: Option<StrongNode>,
    pub read_defaults: consistency::ReadDefaults,
}

/// The complete router for `node` configured by `config`, without a strong path.
pub fn router(node: Node, config: &Config) -> Router {
    router_with(node, config, None)
}

/// The complete router for `node` configured by `config`, serving strong requests through
/// `strong` when given.
pub fn router_with(node: Node, config: &Config, strong: Option<StrongNode>) -> Router {
    let state = AppState {
        node,
        list_limit_max: config.api.list_limit_max,
        request_timeout: config.api.request_timeout,
        feed: feed::FeedSettings::from_config(config),
        strong,
        read_defaults: consistency::ReadDefaults::from_config(config),
    };
    let body_limit = usize::try_from(config.api.max_body_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/v1/docs/{ns}", get(docs::list_docs))
        .route(
            "/v1/docs/{ns}/{id}",
            get(docs::get_doc).put(docs::put_doc).patch(docs::patch_doc).delete(docs::delete_doc),
        )
        .route("/v1/docs/{ns}/{id}/changes", get(docs::get_changes).post(docs::post_changes))
        .merge(history::routes())
        .merge(txn::routes())
        .merge(cluster::routes())
        .route("/v1/changes", get(feed::changes))
        .route("/v1/status", get(ops::status))
        .route("/v1/peers", get(ops::peers))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        // Snapshot work may outlast api.request_timeout, so these join after the deadline layer.
        .merge(snapshots::routes(state.clone(), config))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route; see the API reference in README.md")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not support that method")
}

/// Deadline and metrics for every request.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let deadline = state.request_timeout;
    observe_within(&state, request, next, Some(deadline)).await
}

/// Metrics only, for long-running routes (snapshots) that must not be cut by the deadline.
pub(super) async fn observe_without_deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    observe_within(&state, request, next, None).await
}

async fn observe_within(state: &AppState, request: Request, next: Next, deadline: Option<Duration>) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = match deadline {
        None => next.run(request).await,
        Some(deadline) => match tokio::time::timeout(deadline, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("the request did not complete within {deadline:?}"),
            )
            .into_response(),
        },
    };
    state.node.metrics().record_request(&route, &method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Feed streams never end by themselves; end them once shutdown begins so it can finish.
    let shutdown = async move {
        shutdown.await;
        feed::end_streams();
    };
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
