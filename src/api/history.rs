//! History routes: list a document's changes, roll it back to an earlier state.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::Caller;
use super::docs::write_response;
use super::error::ApiError;
use super::{extract, AppState};
use crate::node::RollbackTarget;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/docs/{ns}/{id}/history", get(history)).route("/v1/docs/{ns}/{id}/rollback", post(rollback))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    limit: Option<u32>,
    /// A change hash: list changes older than it.
    before: Option<String>,
}

async fn history(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = extract::doc_key(path)?;
    let params = extract::query(params)?;
    let limit = extract::page_limit(params.limit, 100, state.list_limit_max)?;
    let before = match params.before {
        Some(text) => {
            let version = extract::version(&text, "before")?;
            match version.heads() {
                [hash] => Some(*hash),
                _ => return Err(ApiError::bad_request("bad_parameter", "before must name exactly one change hash")),
            }
        }
        None => None,
    };
    let page = state.node.history(&key, before.as_ref(), limit as usize).await?;
    Ok(Json(page).into_response())
}

/// `{"to": "<version>"}` or `{"steps": N}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to: Option<String>,
    steps: Option<usize>,
}

async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = extract::doc_key(path)?;
    let request: RollbackBody = extract::json_request(&headers, body, "{\"to\": version} or {\"steps\": n}")?;
    let target = match (request.to, request.steps) {
        (Some(to), None) => RollbackTarget::Version(extract::version(&to, "to")?),
        (None, Some(steps)) => RollbackTarget::Steps(steps),
        _ => return Err(ApiError::bad_request("bad_body", "give exactly one of `to` (a version) or `steps`")),
    };
    let pre = extract::precondition(&headers)?;
    Ok(write_response(state.node.rollback_by(&key, &target, &pre, Some(caller.name.clone())).await?, false))
}
