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
use super::{extract, AppState};
use crate::node::{txn_keys, Compare, CompareOp, CompareTarget, TxnOp, TxnStep};
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnceRequest {
    #[serde(default)]
    compare: Vec<CompareRequest>,
    #[serde(default)]
    success: Vec<StepRequest>,
    #[serde(default)]
    failure: Vec<StepRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareRequest {
    ns: String,
    id: String,
    /// `version`, `exists` or `value`.
    target: String,
    #[serde(default = "default_op")]
    op: CompareOp,
    /// JSON Pointer into the document (target `value`).
    path: Option<String>,
    value: Value,
}

fn default_op() -> CompareOp {
    CompareOp::Eq
}

#[derive(Debug, Deserialize)]
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
    // Through Raft when asked, or when any document it names is in a strong namespace.
    let keys = txn_keys(&compares, &success, &failure);
    let mut strong = false;
    for key in &keys {
        strong |= consistency::write_is_strong(state, key, &params)?;
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

async fn begin(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(state.node.txn_begin()?)).into_response())
}

fn txn_doc(path: Result<Path<(String, String, String)>, PathRejection>) -> Result<(String, DocKey), ApiError> {
    let Path((txn, ns, id)) = path.map_err(|r| ApiError::bad_request("bad_path", r.body_text()))?;
    Ok((txn, key(ns, id)?))
}

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

async fn delete(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (txn, key) = txn_doc(path)?;
    buffered(&state, &txn, &key, TxnOp::Delete).await
}

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

async fn abort(State(state): State<AppState>, path: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let Path(txn) = path.map_err(|r| ApiError::bad_request("bad_path", r.body_text()))?;
    state.node.txn_abort(&txn)?;
    Ok(Json(json!({"aborted": true})).into_response())
}
