//! Transaction routes: the etcd-shaped one-shot `POST /v1/txn` and interactive transactions
//! (`begin`, reads and buffered writes under `/v1/txn/{id}/docs/...`, `commit`, `abort`).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use statemesh_protocol::{DocId, DocKey};

use super::auth::Caller;
use super::consistency::{self, ConsistencyParams};
use super::error::ApiError;
use super::openapi::params::{TxnDocPath, TxnPath};
use super::openapi::schemas::{ErrorBody, TxnAborted, TxnBuffered, TxnCommitted, TxnDocument, WriteConsistency};
use super::{extract, AppState};
use crate::node::{txn_keys, Compare, CompareOp, CompareTarget, OnceOutcome, TxnInfo, TxnOp, TxnStep};
use crate::strong::StrongTxn;

/// Most compares plus steps one request may carry.
const TXN_ITEMS_MAX: usize = 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/txn", post(once))
        .route("/v1/txn/begin", post(begin))
        .route("/v1/txn/{txn}/commit", post(commit))
        .route("/v1/txn/{txn}/abort", post(abort))
        .route("/v1/txn/{txn}/docs/{ns}/{id}", get(read).put(put).patch(patch).delete(delete))
}

// ---- one-shot ----

/// A one-shot transaction: if every `compare` holds, the `success` steps run, else the
/// `failure` steps; atomically. At most 1024 compares and steps in all.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OnceRequest {
    #[serde(default)]
    compare: Vec<CompareRequest>,
    #[serde(default)]
    success: Vec<StepRequest>,
    #[serde(default)]
    failure: Vec<StepRequest>,
}

/// One condition on a document.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CompareRequest {
    ns: String,
    id: String,
    /// `version` (a version string, `==`/`!=`), `exists` (true or false, `==`/`!=`) or `value`
    /// (the JSON at `path`: any value compares for equality, numbers and strings also order).
    target: String,
    /// Default `==`.
    #[serde(default = "default_op")]
    op: CompareOp,
    /// JSON Pointer into the document (target `value`; the whole document without it).
    path: Option<String>,
    value: Value,
}

fn default_op() -> CompareOp {
    CompareOp::Eq
}

/// One step of a branch: a write (`put`, `patch`, `delete`) or a read (`get`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum StepRequest {
    Put { ns: String, id: String, value: Value },
    Patch { ns: String, id: String, value: Value },
    Delete { ns: String, id: String },
    Get { ns: String, id: String },
}

fn key(ns: String, id: String) -> Result<DocKey, ApiError> {
    Ok(DocKey::new(
        extract::namespace(ns)?,
        DocId::new(id).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?,
    ))
}

fn bad_compare(index: usize, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("bad_compare", format!("compare[{index}]: {message}"))
}

impl CompareRequest {
    fn parse(self, index: usize) -> Result<Compare, ApiError> {
        let ordered = !matches!(self.op, CompareOp::Eq | CompareOp::Ne);
        if self.target != "value" && self.path.is_some() {
            return Err(bad_compare(index, "path applies only to target value"));
        }
        let target = match self.target.as_str() {
            "version" => {
                let text = self
                    .value
                    .as_str()
                    .ok_or_else(|| bad_compare(index, "a version compare takes a version string"))?;
                if ordered {
                    return Err(bad_compare(index, "versions compare only with == or !="));
                }
                CompareTarget::Version(extract::version(text, "compare value")?)
            }
            "exists" => {
                let wanted =
                    self.value.as_bool().ok_or_else(|| bad_compare(index, "an exists compare takes true or false"))?;
                if ordered {
                    return Err(bad_compare(index, "existence compares only with == or !="));
                }
                CompareTarget::Exists(wanted)
            }
            "value" => {
                let pointer = self.path.unwrap_or_default();
                if !pointer.is_empty() && !pointer.starts_with('/') {
                    return Err(bad_compare(index, "path must be a JSON Pointer such as /field/0"));
                }
                CompareTarget::Value { pointer, value: self.value }
            }
            other => {
                return Err(bad_compare(index, format!("unknown target `{other}` (use version, exists or value)")))
            }
        };
        Ok(Compare { key: key(self.ns, self.id)?, op: self.op, target })
    }
}

impl StepRequest {
    fn parse(self) -> Result<TxnStep, ApiError> {
        Ok(match self {
            StepRequest::Put { ns, id, value } => TxnStep::Write(key(ns, id)?, TxnOp::Put(value)),
            StepRequest::Patch { ns, id, value } => TxnStep::Write(key(ns, id)?, TxnOp::Patch(value)),
            StepRequest::Delete { ns, id } => TxnStep::Write(key(ns, id)?, TxnOp::Delete),
            StepRequest::Get { ns, id } => TxnStep::Get(key(ns, id)?),
        })
    }
}

/// Counts a transaction's outcome in the node's metrics: committed, conflict (it read or
/// compared state that changed before it committed) or failed (refused or not committed).
fn counted(state: &AppState, answer: Result<Response, ApiError>) -> Result<Response, ApiError> {
    let outcome = match &answer {
        Ok(_) => "committed",
        Err(e) if e.code == "conflict" => "conflict",
        Err(_) => "failed",
    };
    state.node.metrics().record_transaction(outcome);
    answer
}

#[utoipa::path(
    post,
    path = "/v1/txn",
    tag = "transactions",
    operation_id = "runTransaction",
    summary = "One-shot transaction (compare, then success or failure)",
    description = "Through Raft (linearizable) when it names a document in a strong namespace or says \
        `consistency=strong`; otherwise on this node, atomically.",
    params(
        ("consistency" = inline(Option<WriteConsistency>), Query,
            description = "`strong` commits through Raft; default: strong when any document named is in a \
                strong namespace."),
    ),
    request_body = OnceRequest,
    responses(
        (status = 200, description = "Committed (`succeeded` says which branch ran).", body = OnceOutcome,
            headers(
                ("X-Statemesh-Raft-Index" = u64, description = "Through Raft: the index it committed at."),
                ("X-Statemesh-Consistency" = String, description = "Through Raft: `strong`.")
            )),
        (status = 400, description = "`bad_parameter`, `invalid_utf8`, `invalid_json`, `bad_body` (shape, or \
            over 1024 items), `bad_compare`, `bad_version`, `invalid_id` or `invalid_request`.",
            body = ErrorBody),
        (status = 404, description = "`not_found` (a delete of a missing document) or `unknown_namespace`.",
            body = ErrorBody),
        (status = 409, description = "`strong_namespace` (`consistency=eventual` naming a strong namespace).",
            body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`.", body = ErrorBody),
        (status = 422, description = "A step was refused: `root_not_object`, `schema_violation`, \
            `document_too_large`, `too_deep` or `automerge_refused`; nothing was applied.", body = ErrorBody),
        (status = 503, description = "`storage_failed`, `shutting_down`; through Raft also \
            `strong_path_disabled`, `not_leader`, `unavailable`, `strong_path_stopped`.", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: it may or may not have committed.", body = ErrorBody),
    )
)]
async fn once(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<ConsistencyParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let answer = run_once_request(&state, caller, params, headers, body).await;
    counted(&state, answer)
}

async fn run_once_request(
    state: &AppState,
    caller: Caller,
    params: Result<Query<ConsistencyParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let params = extract::query(params)?;
    let request: OnceRequest =
        extract::json_request(&headers, body, "{\"compare\": [...], \"success\": [...], \"failure\": [...]}")?;
    let items = request.compare.len() + request.success.len() + request.failure.len();
    if items > TXN_ITEMS_MAX {
        return Err(ApiError::bad_request(
            "bad_body",
            format!("{items} items; a transaction takes at most {TXN_ITEMS_MAX}"),
        ));
    }
    let compares = request.compare.into_iter().enumerate().map(|(i, c)| c.parse(i)).collect::<Result<Vec<_>, _>>()?;
    let success = request.success.into_iter().map(StepRequest::parse).collect::<Result<Vec<_>, _>>()?;
    let failure = request.failure.into_iter().map(StepRequest::parse).collect::<Result<Vec<_>, _>>()?;
    // Through Raft when asked, or when any document it names is in a strong namespace. The
    // parameters are checked even when the transaction names no document.
    let asked = consistency::write_level(&params)?;
    let keys = txn_keys(&compares, &success, &failure);
    let mut strong = asked == Some(true);
    if asked.is_none() {
        for key in &keys {
            strong |= state.node.is_strong_namespace(&key.namespace)?;
        }
    }
    if strong {
        let done = consistency::strong(state)?.txn(StrongTxn { compares, success, failure }).await?;
        let mut response = Json(done.body).into_response();
        consistency::strong_headers(response.headers_mut(), done.index);
        return Ok(response);
    }
    let outcome = state.node.txn_once(&compares, &success, &failure, Some(caller.name.clone())).await?;
    Ok(Json(outcome).into_response())
}

// ---- interactive ----

#[utoipa::path(
    post,
    path = "/v1/txn/begin",
    tag = "transactions",
    operation_id = "beginTransaction",
    summary = "Begin an interactive transaction",
    description = "Reads and buffered writes follow under `/v1/txn/{txn}/docs/...`; nothing is applied \
        before `commit`. The transaction expires after `timeout_ms` (`concurrency.transaction_timeout`).",
    responses(
        (status = 201, description = "Begun.", body = TxnInfo),
        (status = 429, description = "`too_many_transactions` (`concurrency.max_transactions` are open).",
            body = ErrorBody),
    )
)]
async fn begin(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(state.node.txn_begin()?)).into_response())
}

fn txn_doc(path: Result<Path<(String, String, String)>, PathRejection>) -> Result<(String, DocKey), ApiError> {
    let Path((txn, ns, id)) = path.map_err(|r| ApiError::bad_request("bad_path", r.body_text()))?;
    Ok((txn, key(ns, id)?))
}

#[utoipa::path(
    get,
    path = "/v1/txn/{txn}/docs/{ns}/{id}",
    tag = "transactions",
    operation_id = "readInTransaction",
    summary = "Read a document inside a transaction",
    description = "Its own buffered writes first, then the state `concurrency.model` prescribes (under \
        mvcc, the transaction's snapshot). The read is recorded and validated at commit.",
    params(TxnDocPath),
    responses(
        (status = 200, description = "The document as the transaction sees it.", body = TxnDocument),
        (status = 400, description = "`bad_path` or `invalid_id`.", body = ErrorBody),
        (status = 404, description = "`not_found` (the document does not exist in this transaction), \
            `transaction_not_found` or `unknown_namespace`.", body = ErrorBody),
        (status = 409, description = "`conflict` (the snapshot's version is gone) or `lock_timeout` \
            (pessimistic).", body = ErrorBody),
        (status = 410, description = "`transaction_expired`.", body = ErrorBody),
        (status = 503, description = "`storage_failed`, `shutting_down` or `timeout`.", body = ErrorBody),
    )
)]
async fn read(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (txn, key) = txn_doc(path)?;
    let read = state.node.txn_read(&txn, &key).await?;
    match read.json {
        Some(json) => Ok(Json(json!({"document": json, "version": read.version.to_string()})).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("document {key} does not exist in this transaction"),
        )),
    }
}

async fn buffered(state: &AppState, txn: &str, key: &DocKey, op: TxnOp) -> Result<Response, ApiError> {
    let count = state.node.txn_write(txn, key, op).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"buffered_writes": count}))).into_response())
}

#[utoipa::path(
    put,
    path = "/v1/txn/{txn}/docs/{ns}/{id}",
    tag = "transactions",
    operation_id = "putInTransaction",
    summary = "Buffer a replace in a transaction",
    params(TxnDocPath),
    request_body(content = Object, description = "The whole document: a JSON object."),
    responses(
        (status = 202, description = "Buffered; applied at commit.", body = TxnBuffered),
        (status = 400, description = "`bad_path`, `invalid_id`, `invalid_utf8` or `invalid_json`.",
            body = ErrorBody),
        (status = 404, description = "`transaction_not_found` or `unknown_namespace`.", body = ErrorBody),
        (status = 409, description = "`conflict` or `lock_timeout`.", body = ErrorBody),
        (status = 410, description = "`transaction_expired`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`.", body = ErrorBody),
        (status = 422, description = "`root_not_object`.", body = ErrorBody),
        (status = 503, description = "`storage_failed` or `shutting_down`.", body = ErrorBody),
    )
)]
async fn put(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (txn, key) = txn_doc(path)?;
    let value: Value = extract::json_request(&headers, body, "a JSON object")?;
    extract::require_object(&value, "the document root")?;
    buffered(&state, &txn, &key, TxnOp::Put(value)).await
}

#[utoipa::path(
    patch,
    path = "/v1/txn/{txn}/docs/{ns}/{id}",
    tag = "transactions",
    operation_id = "patchInTransaction",
    summary = "Buffer a merge patch in a transaction",
    params(TxnDocPath),
    request_body(description = "The merge patch: a JSON object.",
        content((Object = "application/merge-patch+json"), (Object = "application/json"))),
    responses(
        (status = 202, description = "Buffered; applied at commit.", body = TxnBuffered),
        (status = 400, description = "`bad_path`, `invalid_id`, `invalid_utf8` or `invalid_json`.",
            body = ErrorBody),
        (status = 404, description = "`transaction_not_found` or `unknown_namespace`.", body = ErrorBody),
        (status = 409, description = "`conflict` or `lock_timeout`.", body = ErrorBody),
        (status = 410, description = "`transaction_expired`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`.", body = ErrorBody),
        (status = 422, description = "`root_not_object`.", body = ErrorBody),
        (status = 503, description = "`storage_failed` or `shutting_down`.", body = ErrorBody),
    )
)]
async fn patch(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (txn, key) = txn_doc(path)?;
    let body = extract::body(body)?;
    extract::require_content_type(&headers, &["application/merge-patch+json", "application/json"])?;
    let value = extract::json_body(&body)?;
    extract::require_object(&value, "a merge patch")?;
    buffered(&state, &txn, &key, TxnOp::Patch(value)).await
}

#[utoipa::path(
    delete,
    path = "/v1/txn/{txn}/docs/{ns}/{id}",
    tag = "transactions",
    operation_id = "deleteInTransaction",
    summary = "Buffer a delete in a transaction",
    params(TxnDocPath),
    responses(
        (status = 202, description = "Buffered; applied at commit.", body = TxnBuffered),
        (status = 400, description = "`bad_path` or `invalid_id`.", body = ErrorBody),
        (status = 404, description = "`transaction_not_found` or `unknown_namespace`.", body = ErrorBody),
        (status = 409, description = "`conflict` or `lock_timeout`.", body = ErrorBody),
        (status = 410, description = "`transaction_expired`.", body = ErrorBody),
        (status = 503, description = "`storage_failed` or `shutting_down`.", body = ErrorBody),
    )
)]
async fn delete(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (txn, key) = txn_doc(path)?;
    buffered(&state, &txn, &key, TxnOp::Delete).await
}

#[utoipa::path(
    post,
    path = "/v1/txn/{txn}/commit",
    tag = "transactions",
    operation_id = "commitTransaction",
    summary = "Commit an interactive transaction",
    description = "Validates what it read and applies its writes all or nothing; through Raft when it \
        touched a strong namespace. The transaction is closed either way.",
    params(TxnPath),
    responses(
        (status = 200, description = "Committed.", body = TxnCommitted, headers(
            ("X-Statemesh-Raft-Index" = u64, description = "Through Raft: the index it committed at.")
        )),
        (status = 400, description = "`bad_path` or `invalid_request`.", body = ErrorBody),
        (status = 404, description = "`transaction_not_found`, `not_found` or `unknown_namespace`.",
            body = ErrorBody),
        (status = 409, description = "`conflict`: what it read or compared changed before it committed; \
            nothing was applied.", body = ErrorBody),
        (status = 410, description = "`transaction_expired`.", body = ErrorBody),
        (status = 422, description = "A buffered write was refused: `root_not_object`, `schema_violation`, \
            `document_too_large`, `too_deep` or `automerge_refused`; nothing was applied.", body = ErrorBody),
        (status = 503, description = "`storage_failed`, `shutting_down`; through Raft also \
            `strong_path_disabled`, `not_leader`, `unavailable`, `strong_path_stopped`.", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: it may or may not have committed.", body = ErrorBody),
    )
)]
async fn commit(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let answer = commit_interactive(&state, caller, path).await;
    counted(&state, answer)
}

async fn commit_interactive(
    state: &AppState,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(txn) = path.map_err(|r| ApiError::bad_request("bad_path", r.body_text()))?;
    // Through Raft when the transaction touched a strong namespace.
    let set = state.node.txn_take(&txn)?;
    let mut strong = false;
    for key in set.keys() {
        strong |= state.node.is_strong_namespace(&key.namespace)?;
    }
    if strong {
        let done = consistency::strong(state)?.commit(set).await?;
        let mut response = Json(done.body).into_response();
        if let Some(index) = done.index {
            response.headers_mut().insert(consistency::RAFT_INDEX, HeaderValue::from(index));
        }
        return Ok(response);
    }
    let results = state.node.txn_commit_set(set, Some(caller.name.clone())).await?;
    let changed: Vec<Value> = results
        .into_iter()
        .map(|(key, result)| {
            json!({
                "namespace": key.namespace.as_str(),
                "id": key.doc_id.as_str(),
                "version": result.version.to_string(),
                "change": result.change.map(|c| c.to_string()),
            })
        })
        .collect();
    Ok(Json(json!({"committed": true, "changed": changed})).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/txn/{txn}/abort",
    tag = "transactions",
    operation_id = "abortTransaction",
    summary = "Abort an interactive transaction",
    params(TxnPath),
    responses(
        (status = 200, description = "Aborted; its buffered writes are dropped.", body = TxnAborted),
        (status = 400, description = "`bad_path`.", body = ErrorBody),
        (status = 404, description = "`transaction_not_found`.", body = ErrorBody),
    )
)]
async fn abort(State(state): State<AppState>, path: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let Path(txn) = path.map_err(|r| ApiError::bad_request("bad_path", r.body_text()))?;
    state.node.txn_abort(&txn)?;
    Ok(Json(json!({"aborted": true})).into_response())
}
