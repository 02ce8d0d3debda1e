//! The HTTP/JSON API (axum): routes, shared state, and the request middleware.
//!
//! Handlers are thin: they parse and validate the request (`extract`), call the [`Node`], and
//! shape the response; every failure becomes a JSON error (`error`). The middleware bounds
//! each request by `api.request_timeout` and records per-route metrics; outside it, `auth`
//! admits requests by bearer token and role, and CORS answers browsers when configured.
//! `serve` runs the accept loop with its connection limits and optional TLS. `openapi`
//! describes every route, from the handlers' annotations, at `GET /v1/openapi.json`.

mod auth;
mod cluster;
mod consistency;
mod docs;
mod error;
mod extract;
mod feed;
mod history;
mod mesh;
mod openapi;
mod ops;
mod serve;
mod snapshots;
mod txn;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use auth::{check_exposure, generate_token, Access, AuthError, AuthMode, Caller, ANONYMOUS};
pub use error::ApiError;
pub use serve::{serve_connections, ServeOptions};
// The documentation-only schemas: some of the node's types name them for JSON they build.
pub(crate) use openapi::schemas;

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
    /// Bounds the open mesh streams (`/v1/mesh/events`).
    pub mesh_streams: Arc<tokio::sync::Semaphore>,
}

/// The complete router for `node` configured by `config`, without a strong path.
pub fn router(node: Node, config: &Config) -> Router {
    router_with(node, config, None)
}

/// The complete router for `node` configured by `config`, serving strong requests through
/// `strong` when given.
///
/// Tokens come from `config` (and its tokens file); a tokens file that cannot be read
/// leaves every route but the probes refused. `statemesh start` reads the tokens first
/// with [`Access::from_config`] and stops with the reason instead.
pub fn router_with(node: Node, config: &Config, strong: Option<StrongNode>) -> Router {
    let access = Access::from_config(&config.api).unwrap_or_else(|error| {
        tracing::error!(%error, "API tokens unavailable: refusing every request that needs one");
        Access::deny_all()
    });
    router_with_access(node, config, strong, access)
}

/// [`router_with`] admitting requests by `access`.
pub fn router_with_access(node: Node, config: &Config, strong: Option<StrongNode>, access: Access) -> Router {
    crate::tls::install_crypto_provider();
    let state = app_state(node, config, strong);
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
        .merge(mesh::routes())
        .merge(openapi::routes())
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
        .layer(middleware::from_fn_with_state(Arc::new(access), auth::authorize))
        .layer(tower::util::option_layer(cors(&config.api.cors_origins)))
        .with_state(state)
}

/// Answers browsers from `origins` (preflights included), letting them send the bearer
/// token and read our headers; `None` (no CORS headers at all) when none are listed.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    let ours = |name: &'static str| HeaderName::from_static(name);
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::HEAD, Method::PUT, Method::PATCH, Method::DELETE, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                ours("last-event-id"),
            ])
            .expose_headers([
                header::ETAG,
                header::WWW_AUTHENTICATE,
                ours("x-statemesh-change-count"),
                ours("x-statemesh-raft-index"),
                ours("x-statemesh-staleness-ms"),
                ours("x-statemesh-consistency"),
            ])
            .allow_credentials(true)
            .max_age(Duration::from_secs(600)),
    )
}

fn app_state(node: Node, config: &Config, strong: Option<StrongNode>) -> AppState {
    AppState {
        node,
        list_limit_max: config.api.list_limit_max,
        request_timeout: config.api.request_timeout,
        feed: feed::FeedSettings::from_config(config),
        strong,
        read_defaults: consistency::ReadDefaults::from_config(config),
        mesh_streams: mesh::stream_slots(),
    }
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
    let mutating = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let method = request.method().to_string();
    let started = Instant::now();
    let response = match deadline {
        None => next.run(request).await,
        Some(deadline) => match tokio::time::timeout(deadline, next.run(request)).await {
            Ok(response) => response,
            Err(_) => deadline_response(mutating, deadline),
        },
    };
    state.node.metrics().record_request(&route, &method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// What a request cut by its deadline answers.
///
/// A read that ran out of time changed nothing: 503 `timeout`, try again. A write may
/// already be past the point of no return when the deadline fires: once applied in memory
/// and queued for group commit it becomes durable whether or not anyone waits
/// (`Node::write`), and a strong write forwarded to the leader may commit in Raft after its
/// caller gave up. The handler cannot tell from outside which side of that point it was
/// cut on, so every mutating request answers 504 `outcome_unknown`: read the document (or
/// its history) to learn whether it took effect before retrying.
fn deadline_response(mutating: bool, deadline: Duration) -> Response {
    if mutating {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "outcome_unknown",
            format!("the write did not finish within {deadline:?}; it may or may not have taken effect"),
        )
        .into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request did not complete within {deadline:?}"),
        )
        .into_response()
    }
}

/// Serves `router` on `listener` with the default connection limits (plain HTTP) until
/// `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, ServeOptions::default(), shutdown).await
}

/// [`serve`] under `options`: `api.header_read_timeout`, `api.max_connections`, TLS.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Feed streams never end by themselves; end them once shutdown begins so it can finish.
    let shutdown = async move {
        shutdown.await;
        feed::end_streams();
    };
    serve_connections(listener, router, options, shutdown).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;
    use crate::config::StorageType;

    /// A route that outlives any deadline, behind the same deadline middleware as the API.
    async fn cut_by_deadline(method: Method) -> (StatusCode, serde_json::Value) {
        let mut config = Config::default();
        config.storage.kind = StorageType::Memory;
        config.api.request_timeout = Duration::from_millis(50);
        let state = app_state(Node::open(&config).expect("node"), &config, None);
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "too late"
        };
        let app = Router::new()
            .route("/slow", get(slow).put(slow).post(slow))
            .layer(middleware::from_fn_with_state(state.clone(), observe))
            .with_state(state);
        let request = Request::builder().method(method).uri("/slow").body(Body::empty()).expect("request");
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, serde_json::from_slice(&body).expect("a JSON error"))
    }

    #[tokio::test]
    async fn a_write_cut_by_its_deadline_has_an_unknown_outcome_and_a_read_times_out() {
        // The write may have been queued when the deadline fired: the client must not assume
        // it failed.
        for method in [Method::PUT, Method::POST] {
            let (status, body) = cut_by_deadline(method.clone()).await;
            assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{method}");
            assert_eq!(body["error"]["code"], "outcome_unknown", "{method}");
        }
        // A read changed nothing: an ordinary timeout, safe to retry.
        let (status, body) = cut_by_deadline(Method::GET).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "timeout");
    }
}
