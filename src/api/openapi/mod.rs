//! The API description: an OpenAPI 3.1 document generated from the handlers' own
//! `#[utoipa::path]` annotations and the schemas of the types they answer with, served at
//! `GET /v1/openapi.json` so that clients, generators and API fuzzers can use the API without
//! reading this code. `tests/openapi.rs` keeps it honest: the router's routes and the
//! document's operations must be the same set, and real answers must match its schemas.
//!
//! What no handler can say about itself is added here, once, as the code adds it once: the
//! token schemes and the 401/403 that `auth` answers before any handler runs, the deadline's
//! 503 `timeout` / 504 `outcome_unknown` from `observe`, and `/ui/`, which shares the `/ui`
//! handler (one function, one annotation).

pub(super) mod params;
pub(crate) mod schemas;

use std::sync::LazyLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Components, Content, Header, HeaderBuilder, PathItem, Ref, RefOr, ResponseBuilder, SecurityRequirement,
};
use utoipa::{Modify, OpenApi, ToSchema};

use super::AppState;
use schemas::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "statemesh",
        version = env!("CARGO_PKG_VERSION"),
        description = "A peer-to-peer CRDT replication node: JSON documents (Automerge underneath) in \
            namespaces, replicated between nodes, with history, transactions, a change feed, an optional \
            Raft path for strong consistency, and snapshots.\n\n\
            Every error is `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`: clients act on the \
            stable `code`. Client mistakes are 4xx and change nothing; 5xx means the node is in trouble, \
            except 504 `outcome_unknown`, which says a write may or may not have taken effect.\n\n\
            With `api.tokens` configured, requests need `Authorization: Bearer <token>`; a token's role \
            (`read` ⊂ `write` ⊂ `admin`) decides what it may do. Without tokens the API is open."
    ),
    paths(
        super::docs::list_docs,
        super::docs::get_doc,
        super::docs::put_doc,
        super::docs::patch_doc,
        super::docs::delete_doc,
        super::docs::get_changes,
        super::docs::post_changes,
        super::history::history,
        super::history::rollback,
        super::txn::once,
        super::txn::begin,
        super::txn::commit,
        super::txn::abort,
        super::txn::read,
        super::txn::put,
        super::txn::patch,
        super::txn::delete,
        super::feed::changes,
        super::cluster::status,
        super::cluster::init,
        super::cluster::add_learner,
        super::cluster::promote,
        super::cluster::remove,
        super::snapshots::list,
        super::snapshots::create,
        super::snapshots::remove,
        super::snapshots::restore,
        super::mesh::view,
        super::mesh::events,
        super::mesh::index,
        super::mesh::asset,
        super::ops::status,
        super::ops::peers,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        serve,
    ),
    // Every other schema is collected from the operations that use it; this one is also named
    // by the modifiers below.
    components(schemas(ErrorBody)),
    modifiers(&UiAlias, &Auth, &Deadline),
    security(("bearer" = [])),
    tags(
        (name = "documents", description = "JSON documents: read, write, merge-patch, delete, list, and \
            raw Automerge changes."),
        (name = "history", description = "A document's changes, and rollback to an earlier state."),
        (name = "transactions", description = "One-shot (compare, then success or failure) and interactive \
            transactions."),
        (name = "feed", description = "The change feed, as JSON pages or Server-Sent Events."),
        (name = "cluster", description = "The Raft cluster of the strong path and its membership."),
        (name = "snapshots", description = "Snapshots of every namespace: create, list, restore, delete."),
        (name = "operations", description = "Probes, metrics, status, peers, the mesh view and this \
            description."),
        (name = "ui", description = "The status page's files."),
    )
)]
struct ApiDoc;

/// The API description.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as JSON, built on first request.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    document().to_json().unwrap_or_else(|error| {
        // Strings, numbers and maps only: this cannot fail, and must not take the node down if
        // it ever does.
        tracing::error!(%error, "cannot serialize the API description");
        String::from("{}")
    })
});

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    operation_id = "getOpenApi",
    summary = "This API description",
    description = "OpenAPI 3.1, generated from the code: every route, its parameters, bodies and answers.",
    security(()),
    responses((status = 200, description = "The OpenAPI document.", body = Object))
)]
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], DOCUMENT.as_str()).into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(serve))
}

/// `/ui/` serves the page `/ui` serves, through the same handler.
struct UiAlias;

impl Modify for UiAlias {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let Some(mut item) = api.paths.paths.get("/ui").cloned() else { return };
        if let Some(operation) = item.get.as_mut() {
            operation.operation_id = Some("getStatusPageSlash".to_owned());
        }
        api.paths.paths.insert("/ui/".to_owned(), item);
    }
}

/// The token schemes, and what `auth` answers on every operation that needs a token.
struct Auth;

impl Modify for Auth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Components::new);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("token")
            .description(Some("An API token (`statemesh token generate`); its role decides what it may do."))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let in_query = ApiKeyValue::with_description(
            "access_token",
            "The same token in the query, for browsers' EventSource: the event streams only.",
        );
        components.add_security_scheme("access_token", SecurityScheme::ApiKey(ApiKey::Query(in_query)));

        let challenge = HeaderBuilder::from(Header::default())
            .description(Some(
                "`Bearer realm=\"statemesh\"`, with `error=\"invalid_token\"` when a token was sent but refused.",
            ))
            .build();
        let unauthorized = ResponseBuilder::new()
            .description("`unauthorized`: no token, a malformed `Authorization` header, or an unknown token.")
            .content("application/json", error_content())
            .header("WWW-Authenticate", challenge)
            .build();
        let forbidden = ResponseBuilder::new()
            .description("`forbidden`: the token's role is below the one this request needs.")
            .content("application/json", error_content())
            .build();
        let open = SecurityRequirement::default();
        for_each_operation(api, |_, _, operation| {
            if operation.security.as_ref().is_some_and(|requirements| requirements.contains(&open)) {
                return;
            }
            let responses = &mut operation.responses.responses;
            responses.entry("401".to_owned()).or_insert_with(|| RefOr::T(unauthorized.clone()));
            responses.entry("403".to_owned()).or_insert_with(|| RefOr::T(forbidden.clone()));
        });
    }
}

/// What `observe` answers when a request outlives `api.request_timeout`: on every operation
/// under that deadline, which is all but the snapshot routes (they join the router outside it).
/// An operation that documents the status already says so itself.
struct Deadline;

impl Modify for Deadline {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for_each_operation(api, |path, read, operation| {
            if path.starts_with("/v1/snapshots") {
                return;
            }
            let (status, description) = if read {
                ("503", "`timeout`: the request did not finish within `api.request_timeout`; it changed nothing.")
            } else {
                (
                    "504",
                    "`outcome_unknown`: the request did not finish within `api.request_timeout`; it may or may \
                     not have taken effect, so read before retrying.",
                )
            };
            operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content("application/json", error_content())
                        .build(),
                )
            });
        });
    }
}

/// The error body, as answer content.
fn error_content() -> Content {
    Content::new(Some(Ref::from_schema_name(ErrorBody::name())))
}

/// Calls `visit` with every operation, its path, and whether it is a read (GET, HEAD, OPTIONS:
/// the methods the deadline answers with 503 rather than 504).
fn for_each_operation(api: &mut utoipa::openapi::OpenApi, mut visit: impl FnMut(&str, bool, &mut Operation)) {
    for (path, item) in api.paths.paths.iter_mut() {
        let PathItem { get, put, post, delete, options, head, patch, trace, .. } = item;
        let operations = [
            (true, get),
            (false, put),
            (false, post),
            (false, delete),
            (true, options),
            (true, head),
            (false, patch),
            (false, trace),
        ];
        for (read, operation) in operations {
            if let Some(operation) = operation.as_mut() {
                visit(path, read, operation);
            }
        }
    }
}
