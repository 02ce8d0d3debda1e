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
use super::AppState;
use crate::raft::Initialized;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cluster", get(status))
        .route("/v1/cluster/init", post(init))
        .route("/v1/cluster/add-learner", post(add_learner))
        .route("/v1/cluster/promote", post(promote))
        .route("/v1/cluster/remove", post(remove))
}

async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(strong(&state)?.view()).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InitBody {
    #[serde(default)]
    voters: Vec<String>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    member: String,
}

fn member(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body: MemberBody = extract::json_request(headers, body, r#"{"member": "<peer id or multiaddr>"}"#)?;
    Ok(body.member)
}

fn changed(position: crate::raft::LogPosition) -> Response {
    Json(json!({"committed_at": position.index, "term": position.term})).into_response()
}

async fn add_learner(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    Ok(changed(strong(&state)?.add_learner(&member(&headers, body)?).await?))
}

async fn promote(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    Ok(changed(strong(&state)?.promote(&member(&headers, body)?).await?))
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    Ok(changed(strong(&state)?.remove(&member(&headers, body)?).await?))
}
