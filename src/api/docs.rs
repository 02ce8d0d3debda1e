//! Document routes: JSON reads and writes, listings, and raw Automerge changes.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use statemesh_protocol::{DocId, Version};

use super::auth::Caller;
use super::consistency::{self, ConsistencyParams};
use super::error::ApiError;
use super::extract;
use super::AppState;
use crate::node::{DocSummary, Precondition, TxnOp, WriteResult};
use crate::strong::StrongWritten;

const JSON_TYPES: &[&str] = &["application/json"];
const PATCH_TYPES: &[&str] = &["application/merge-patch+json", "application/json"];
const AUTOMERGE_TYPES: &[&str] = &["application/octet-stream"];

fn etag(version: &Version) -> HeaderValue {
    // A version's text form is hex and dots: always a valid header value.
    HeaderValue::from_str(&version.to_etag()).unwrap_or_else(|_| HeaderValue::from_static("\"invalid\""))
}

pub(super) fn write_response(result: WriteResult, created_status: bool) -> Response {
    let status = if created_status && result.created { StatusCode::CREATED } else { StatusCode::OK };
    let body = json!({
        "version": result.version.to_string(),
        "change": result.change.map(|c| c.to_string()),
        "created": result.created,
    });
    (status, [(header::ETAG, etag(&result.version))], Json(body)).into_response()
}

fn strong_write_response(written: StrongWritten, created_status: bool) -> Response {
    let index = written.index;
    let result = WriteResult { version: written.version, change: written.change, created: written.created };
    let mut response = write_response(result, created_status);
    consistency::strong_headers(response.headers_mut(), index);
    response
}

/// A document write, through Raft or the local eventual path as the request and namespace say.
async fn write(
    state: &AppState,
    key: &statemesh_protocol::DocKey,
    params: Result<Query<ConsistencyParams>, QueryRejection>,
    op: TxnOp,
    pre: Precondition,
    created_status: bool,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let params = extract::query(params)?;
    if consistency::write_is_strong(state, key, &params)? {
        let written = consistency::strong(state)?.write(key, &op, &pre).await?;
        return Ok(strong_write_response(written, created_status));
    }
    let author = Some(caller.name.clone());
    let result = match op {
        TxnOp::Put(json) => state.node.put_by(key, &json, &pre, author).await?,
        TxnOp::Patch(patch) => state.node.patch_by(key, &patch, &pre, author).await?,
        TxnOp::Delete => state.node.delete_by(key, &pre, author).await?,
    };
    Ok(write_response(result, created_status))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Read the document as of this version.
    at: Option<String>,
    consistency: Option<String>,
    max_staleness_ms: Option<u64>,
    min_version: Option<u64>,
}

pub async fn get_doc(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = extract::doc_key(path)?;
    let params = extract::query(params)?;
    let level = ConsistencyParams {
        consistency: params.consistency,
        max_staleness_ms: params.max_staleness_ms,
        min_version: params.min_version,
    };
    let at = params.at.as_deref().map(|at| extract::version(at, "at")).transpose()?;
    let stamp = consistency::prepare_read(&state, &level).await?;
    let read = match at {
        Some(at) => state.node.get_at(&key, &at).await,
        None => state.node.get(&key).await,
    };
    // An absent document is a read result too: its 404 says what it reflects, like a 200.
    let mut response = match read {
        Ok(view) => ([(header::ETAG, etag(&view.version))], Json(view.json)).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    consistency::stamp_headers(response.headers_mut(), stamp.as_ref());
    Ok(response)
}

pub async fn put_doc(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<ConsistencyParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = extract::doc_key(path)?;
    let body = extract::body(body)?;
    extract::require_content_type(&headers, JSON_TYPES)?;
    let json = extract::json_body(&body)?;
    let pre = extract::precondition(&headers)?;
    write(&state, &key, params, TxnOp::Put(json), pre, true, &caller).await
}

pub async fn patch_doc(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<ConsistencyParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = extract::doc_key(path)?;
    let body = extract::body(body)?;
    extract::require_content_type(&headers, PATCH_TYPES)?;
    let patch = extract::json_body(&body)?;
    let pre = extract::precondition(&headers)?;
    write(&state, &key, params, TxnOp::Patch(patch), pre, true, &caller).await
}

pub async fn delete_doc(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<ConsistencyParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = extract::doc_key(path)?;
    let pre = extract::precondition(&headers)?;
    write(&state, &key, params, TxnOp::Delete, pre, false, &caller).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<u32>,
    after: Option<String>,
}

pub async fn list_docs(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(ns) = path.map_err(|r| ApiError::bad_request("bad_path", r.body_text()))?;
    let namespace = extract::namespace(ns)?;
    let params = extract::query(params)?;
    let limit = extract::page_limit(params.limit, 100, state.list_limit_max)?;
    let after = params
        .after
        .map(DocId::new)
        .transpose()
        .map_err(|e| ApiError::bad_request("bad_parameter", format!("after: {e}")))?;
    let documents: Vec<DocSummary> = state.node.list(&namespace, after.as_ref(), limit as usize)?;
    let next = (documents.len() == limit as usize).then(|| documents.last().map(|d| d.id.clone())).flatten();
    Ok(Json(json!({"namespace": namespace.to_string(), "documents": documents, "next": next})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesParams {
    since: Option<String>,
}

pub async fn get_changes(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<ChangesParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = extract::doc_key(path)?;
    let since = extract::query(params)?.since.map(|s| extract::version(&s, "since")).transpose()?;
    let (changes, version) = state.node.changes_since(&key, since.as_ref()).await?;
    let count = changes.len().to_string();
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
        (header::ETAG, etag(&version)),
        (
            header::HeaderName::from_static("x-statemesh-change-count"),
            HeaderValue::from_str(&count).unwrap_or(HeaderValue::from_static("0")),
        ),
    ];
    Ok((headers, changes.concat()).into_response())
}

pub async fn post_changes(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = extract::doc_key(path)?;
    let body = extract::body(body)?;
    extract::require_content_type(&headers, AUTOMERGE_TYPES)?;
    let pre = extract::precondition(&headers)?;
    Ok(write_response(state.node.apply_automerge(&key, &body, &pre).await?, true))
}
