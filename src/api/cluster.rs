//! Cluster administration routes (`statemesh cluster …`): the strong path's status and its
//! membership changes. Members are named like `distributed.voters` entries: a peer id, a
//! multiaddr, or `<multiaddr>/p2p/<peer id>`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::consistency::strong_node as strong;
use super::error::ApiError;
use super::extract;
use super::openapi::schemas::{ClusterFormed, ErrorBody, MembershipChanged};
use super::AppState;
use crate::raft::Initialized;
use crate::strong::ClusterView;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cluster", get(status))
        .route("/v1/cluster/init", post(init))
        .route("/v1/cluster/add-learner", post(add_learner))
        .route("/v1/cluster/promote", post(promote))
        .route("/v1/cluster/remove", post(remove))
}

#[utoipa::path(
    get,
    path = "/v1/cluster",
    tag = "cluster",
    operation_id = "getCluster",
    summary = "The Raft cluster as this member sees it",
    responses(
        (status = 200, description = "Role, term, leader, members, replication progress, applied index and \
            measured staleness.", body = ClusterView),
        (status = 503, description = "`strong_path_disabled`: this node does not run the strong path.",
            body = ErrorBody),
    )
)]
async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(strong(&state)?.view()).into_response())
}

/// The voters to form the cluster of; an empty body (or list) means `distributed.voters`, or
/// this node alone when there are none.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct InitBody {
    /// Members by peer id, multiaddr, or `<multiaddr>/p2p/<peer id>`.
    #[serde(default)]
    voters: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/v1/cluster/init",
    tag = "cluster",
    operation_id = "initCluster",
    summary = "Form the Raft cluster",
    request_body(content = InitBody, description = "May be empty: then `distributed.voters` are the voters."),
    responses(
        (status = 200, description = "Formed now, or already formed (`formed` says which).", body = ClusterFormed),
        (status = 400, description = "`invalid_utf8`, `invalid_json`, `bad_body` or `invalid_request` (a voter \
            this node cannot name or reach).", body = ErrorBody),
        (status = 409, description = "`membership_refused`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a body that is not `application/json`.",
            body = ErrorBody),
        (status = 503, description = "`strong_path_disabled`, `not_leader`, `unavailable` or \
            `strong_path_stopped`.", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: forming may or may not have committed.",
            body = ErrorBody),
    )
)]
async fn init(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let strong = strong(&state)?;
    let empty = body.as_ref().is_ok_and(|b| b.is_empty());
    let body: InitBody = if empty {
        InitBody::default()
    } else {
        extract::json_request(&headers, body, r#"{"voters": [member, …]}"#)?
    };
    let outcome = strong.init(&body.voters).await?;
    let formed = outcome == Initialized::Formed;
    Ok(Json(json!({"formed": formed, "cluster": strong.view()})).into_response())
}

/// The member a membership change is about.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    /// A peer id, a multiaddr, or `<multiaddr>/p2p/<peer id>`.
    member: String,
}

fn member(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body: MemberBody = extract::json_request(headers, body, r#"{"member": "<peer id or multiaddr>"}"#)?;
    Ok(body.member)
}

fn changed(position: crate::raft::LogPosition) -> Response {
    Json(json!({"committed_at": position.index, "term": position.term})).into_response()
}

#[utoipa::path(
    post,
    path = "/v1/cluster/add-learner",
    tag = "cluster",
    operation_id = "addLearner",
    summary = "Add a non-voting member",
    description = "Runs on the leader wherever this member stands; the learner then catches up in the \
        background (see `replication` in `GET /v1/cluster`).",
    request_body = MemberBody,
    responses(
        (status = 200, description = "Committed through Raft.", body = MembershipChanged),
        (status = 400, description = "`invalid_utf8`, `invalid_json`, `bad_body` or `invalid_request` (a \
            member this node cannot name or reach).", body = ErrorBody),
        (status = 409, description = "`membership_refused`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`.", body = ErrorBody),
        (status = 503, description = "`strong_path_disabled`, `not_leader`, `unavailable` or \
            `strong_path_stopped`.", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: the change may or may not have committed.",
            body = ErrorBody),
    )
)]
async fn add_learner(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    Ok(changed(strong(&state)?.add_learner(&member(&headers, body)?).await?))
}

#[utoipa::path(
    post,
    path = "/v1/cluster/promote",
    tag = "cluster",
    operation_id = "promoteMember",
    summary = "Make a learner a voter",
    request_body = MemberBody,
    responses(
        (status = 200, description = "Committed through Raft.", body = MembershipChanged),
        (status = 400, description = "`invalid_utf8`, `invalid_json`, `bad_body` or `invalid_request` (a \
            member this node cannot name or reach).", body = ErrorBody),
        (status = 409, description = "`membership_refused`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`.", body = ErrorBody),
        (status = 503, description = "`strong_path_disabled`, `not_leader`, `unavailable` or \
            `strong_path_stopped`.", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: the change may or may not have committed.",
            body = ErrorBody),
    )
)]
async fn promote(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    Ok(changed(strong(&state)?.promote(&member(&headers, body)?).await?))
}

#[utoipa::path(
    post,
    path = "/v1/cluster/remove",
    tag = "cluster",
    operation_id = "removeMember",
    summary = "Remove a member from the Raft membership",
    request_body = MemberBody,
    responses(
        (status = 200, description = "Committed through Raft.", body = MembershipChanged),
        (status = 400, description = "`invalid_utf8`, `invalid_json`, `bad_body` or `invalid_request` (a \
            member this node cannot name or reach).", body = ErrorBody),
        (status = 409, description = "`membership_refused`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`.", body = ErrorBody),
        (status = 503, description = "`strong_path_disabled`, `not_leader`, `unavailable` or \
            `strong_path_stopped`.", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: the change may or may not have committed.",
            body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    Ok(changed(strong(&state)?.remove(&member(&headers, body)?).await?))
}
