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
use super::openapi::params::DocPath;
use super::openapi::schemas::{ErrorBody, WriteAnswer};
use super::{extract, AppState};
use crate::node::{HistoryPage, RollbackTarget};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/docs/{ns}/{id}/history", get(history)).route("/v1/docs/{ns}/{id}/rollback", post(rollback))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    /// Changes per page: 1 to `api.list_limit_max` (default 100).
    #[param(minimum = 1)]
    limit: Option<u32>,
    /// A change hash: list changes older than it (the previous page's `next`).
    #[param(pattern = "^[0-9a-fA-F]{64}$")]
    before: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/docs/{ns}/{id}/history",
    tag = "history",
    operation_id = "getDocumentHistory",
    summary = "A document's changes, newest first",
    params(DocPath, HistoryParams),
    responses(
        (status = 200, description = "One page of history.", body = HistoryPage),
        (status = 400, description = "`bad_path`, `invalid_id`, `bad_parameter` or `bad_version` (`before`).",
            body = ErrorBody),
        (status = 404, description = "`not_found` (no changes at all), `unknown_version` (`before` is not a \
            change of this document) or `unknown_namespace`.", body = ErrorBody),
        (status = 503, description = "`storage_failed`, `shutting_down` or `timeout`.", body = ErrorBody),
    )
)]
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

/// `{"to": "<version>"}` or `{"steps": N}`: exactly one of them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    /// Restore the document's state as of this version.
    to: Option<String>,
    /// Undo the newest `steps` changes (1 to the change count minus one).
    steps: Option<usize>,
}

#[utoipa::path(
    post,
    path = "/v1/docs/{ns}/{id}/rollback",
    tag = "history",
    operation_id = "rollbackDocument",
    summary = "Restore an earlier state as a new change",
    description = "History is kept; the rollback replicates like any write.",
    params(
        DocPath,
        ("If-Match" = Option<String>, Header, pattern = "^(\\*|(W/)?\"?(0|[0-9a-fA-F]{64}(\\.[0-9a-fA-F]{64})*)\"?)$", description = "Roll back only if the document is at this \
            version (an `ETag`), or exists (`*`)."),
        ("If-None-Match" = Option<String>, Header, pattern = "^\\*$", description = "`*`: only if the document does not exist."),
    ),
    request_body = RollbackBody,
    responses(
        (status = 200, description = "Rolled back (or already in that state: `change` is null).",
            body = WriteAnswer, headers(("ETag" = String, description = "The version after the rollback, quoted."))),
        (status = 400, description = "`bad_path`, `invalid_id`, `invalid_utf8`, `invalid_json`, `bad_body` \
            (not exactly one of `to` and `steps`), `bad_version` or `bad_header`.", body = ErrorBody),
        (status = 404, description = "`not_found`, `unknown_version` (`to`) or `unknown_namespace`.",
            body = ErrorBody),
        (status = 409, description = "`strong_namespace`.", body = ErrorBody),
        (status = 412, description = "`precondition_failed`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`.", body = ErrorBody),
        (status = 422, description = "`rollback_too_far`, `schema_violation` or `document_too_large`.",
            body = ErrorBody),
        (status = 503, description = "`storage_failed` or `shutting_down`.", body = ErrorBody),
    )
)]
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
