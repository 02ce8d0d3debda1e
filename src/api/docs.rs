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
use super::openapi::params::{DocPath, NamespacePath};
use super::openapi::schemas::{DocList, ErrorBody, WriteAnswer, WriteConsistency};
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Read the document as of this version (an `ETag` value, or a change hash from its
    /// history).
    #[param(pattern = "^(W/)?\"?(0|[0-9a-fA-F]{64}(\\.[0-9a-fA-F]{64})*)\"?$")]
    at: Option<String>,
    /// The read level, on a node that runs the strong path (default
    /// `distributed.consistency_level`); elsewhere only `eventual`.
    #[param(value_type = Option<crate::config::ConsistencyLevel>, inline)]
    consistency: Option<String>,
    /// With `consistency=bounded`: the most staleness to accept (default
    /// `distributed.max_staleness_ms`).
    max_staleness_ms: Option<u64>,
    /// A Raft index (`X-Statemesh-Raft-Index` of an earlier answer): wait until this node has
    /// applied it, for read-your-writes on any member.
    min_version: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/v1/docs/{ns}/{id}",
    tag = "documents",
    operation_id = "getDocument",
    summary = "Read a document",
    description = "The document's JSON, as of `at` when given. On a node that runs the strong path the read \
        is served at the requested level, and the answer (a 404 too) says what it reflects in the \
        `X-Statemesh-*` headers.",
    params(DocPath, GetParams),
    responses(
        (status = 200, description = "The document.", body = Object, headers(
            ("ETag" = String, description = "The version read, quoted."),
            ("X-Statemesh-Raft-Index" = u64, description = "Strong path only: the Raft index the read reflects; \
                pass it as `min_version` for read-your-writes."),
            ("X-Statemesh-Staleness-Ms" = u64, description = "Strong path only: how stale this node may be."),
            ("X-Statemesh-Consistency" = String, description = "Strong path only: the level the read was \
                served at (`strong`, `bounded` or `eventual`).")
        )),
        (status = 400, description = "`bad_path`, `invalid_id`, `bad_parameter` or `bad_version` (`at`).",
            body = ErrorBody),
        (status = 404, description = "`not_found` (the document does not exist), `unknown_version` (`at` is \
            not a version of it) or `unknown_namespace` (`namespaces.strict`). Carries the \
            `X-Statemesh-*` headers like a 200.", body = ErrorBody),
        (status = 503, description = "The read cannot be served here now: `strong_path_disabled` (a level \
            other than `eventual`, or `min_version`, on a node without the strong path), `not_leader`, \
            `unavailable`, `too_stale`, `strong_path_stopped`; or the node is in trouble: `storage_failed`, \
            `shutting_down`, `timeout`.", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    put,
    path = "/v1/docs/{ns}/{id}",
    tag = "documents",
    operation_id = "putDocument",
    summary = "Create or replace a document",
    description = "Replaces the document's JSON with the body (creating it if needed). Only fields that \
        differ become Automerge operations, so concurrent edits to other fields merge. Through Raft \
        with `consistency=strong` or in a strong namespace.",
    params(
        DocPath,
        ("consistency" = inline(Option<WriteConsistency>), Query,
            description = "`strong` commits through Raft; default: strong in a strong namespace, else eventual."),
        ("If-Match" = Option<String>, Header, pattern = "^(\\*|(W/)?\"?(0|[0-9a-fA-F]{64}(\\.[0-9a-fA-F]{64})*)\"?)$", description = "Write only if the document is at this version \
            (an `ETag`), or exists (`*`)."),
        ("If-None-Match" = Option<String>, Header, pattern = "^\\*$", description = "`*`: write only if the document does not exist."),
    ),
    request_body(content = Object, description = "The whole document: a JSON object."),
    responses(
        (status = 200, description = "Replaced (or unchanged: `change` is null).", body = WriteAnswer, headers(
            ("ETag" = String, description = "The version after the write, quoted."),
            ("X-Statemesh-Raft-Index" = u64, description = "Through Raft: the index the write committed at."),
            ("X-Statemesh-Consistency" = String, description = "Through Raft: `strong`.")
        )),
        (status = 201, description = "Created.", body = WriteAnswer, headers(
            ("ETag" = String, description = "The version after the write, quoted."),
            ("X-Statemesh-Raft-Index" = u64, description = "Through Raft: the index the write committed at."),
            ("X-Statemesh-Consistency" = String, description = "Through Raft: `strong`.")
        )),
        (status = 400, description = "`bad_path`, `invalid_id`, `bad_parameter`, `invalid_utf8`, `invalid_json`, \
            `bad_header`, `bad_version`, `unsupported` (`If-Match` through Raft in an eventual namespace) or \
            `invalid_request`.", body = ErrorBody),
        (status = 404, description = "`unknown_namespace` (`namespaces.strict`).", body = ErrorBody),
        (status = 409, description = "`strong_namespace`: an eventual write to a strong namespace.",
            body = ErrorBody),
        (status = 412, description = "`precondition_failed`: `If-Match` / `If-None-Match` does not hold.",
            body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over `api.max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/json`.", body = ErrorBody),
        (status = 422, description = "`root_not_object`, `schema_violation`, `document_too_large`, `too_deep` \
            or `automerge_refused`.", body = ErrorBody),
        (status = 503, description = "`storage_failed`, `shutting_down`; through Raft also \
            `strong_path_disabled`, `not_leader`, `unavailable`, `strong_path_stopped`.", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: the write may or may not have taken effect (Raft \
            could not tell, or `api.request_timeout` ran out); read the document before retrying.",
            body = ErrorBody),
    )
)]
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

#[utoipa::path(
    patch,
    path = "/v1/docs/{ns}/{id}",
    tag = "documents",
    operation_id = "patchDocument",
    summary = "Merge-patch a document",
    description = "Applies an RFC 7386 merge patch (creating the document if needed). Through Raft with \
        `consistency=strong` or in a strong namespace.",
    params(
        DocPath,
        ("consistency" = inline(Option<WriteConsistency>), Query,
            description = "`strong` commits through Raft; default: strong in a strong namespace, else eventual."),
        ("If-Match" = Option<String>, Header, pattern = "^(\\*|(W/)?\"?(0|[0-9a-fA-F]{64}(\\.[0-9a-fA-F]{64})*)\"?)$", description = "Write only if the document is at this version \
            (an `ETag`), or exists (`*`)."),
        ("If-None-Match" = Option<String>, Header, pattern = "^\\*$", description = "`*`: write only if the document does not exist."),
    ),
    request_body(description = "The merge patch: a JSON object.",
        content((Object = "application/merge-patch+json"), (Object = "application/json"))),
    responses(
        (status = 200, description = "Patched (or unchanged: `change` is null).", body = WriteAnswer, headers(
            ("ETag" = String, description = "The version after the write, quoted."),
            ("X-Statemesh-Raft-Index" = u64, description = "Through Raft: the index the write committed at."),
            ("X-Statemesh-Consistency" = String, description = "Through Raft: `strong`.")
        )),
        (status = 201, description = "Created by the patch.", body = WriteAnswer, headers(
            ("ETag" = String, description = "The version after the write, quoted."),
            ("X-Statemesh-Raft-Index" = u64, description = "Through Raft: the index the write committed at."),
            ("X-Statemesh-Consistency" = String, description = "Through Raft: `strong`.")
        )),
        (status = 400, description = "`bad_path`, `invalid_id`, `bad_parameter`, `invalid_utf8`, `invalid_json`, \
            `bad_header`, `bad_version`, `unsupported` (`If-Match` through Raft in an eventual namespace) or \
            `invalid_request`.", body = ErrorBody),
        (status = 404, description = "`unknown_namespace` (`namespaces.strict`).", body = ErrorBody),
        (status = 409, description = "`strong_namespace`: an eventual write to a strong namespace.",
            body = ErrorBody),
        (status = 412, description = "`precondition_failed`: `If-Match` / `If-None-Match` does not hold.",
            body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over `api.max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither `application/merge-patch+json` nor \
            `application/json`.", body = ErrorBody),
        (status = 422, description = "`root_not_object`, `schema_violation`, `document_too_large`, `too_deep` \
            or `automerge_refused`.", body = ErrorBody),
        (status = 503, description = "`storage_failed`, `shutting_down`; through Raft also \
            `strong_path_disabled`, `not_leader`, `unavailable`, `strong_path_stopped`.", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: the write may or may not have taken effect (Raft \
            could not tell, or `api.request_timeout` ran out); read the document before retrying.",
            body = ErrorBody),
    )
)]
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

#[utoipa::path(
    delete,
    path = "/v1/docs/{ns}/{id}",
    tag = "documents",
    operation_id = "deleteDocument",
    summary = "Delete a document",
    description = "Deletion is itself a change: history is kept, and a write concurrent with the delete \
        (on another node) keeps the document. Through Raft with `consistency=strong` or in a strong \
        namespace.",
    params(
        DocPath,
        ("consistency" = inline(Option<WriteConsistency>), Query,
            description = "`strong` commits through Raft; default: strong in a strong namespace, else eventual."),
        ("If-Match" = Option<String>, Header, pattern = "^(\\*|(W/)?\"?(0|[0-9a-fA-F]{64}(\\.[0-9a-fA-F]{64})*)\"?)$", description = "Delete only if the document is at this version \
            (an `ETag`), or exists (`*`)."),
    ),
    responses(
        (status = 200, description = "Deleted.", body = WriteAnswer, headers(
            ("ETag" = String, description = "The version after the delete, quoted."),
            ("X-Statemesh-Raft-Index" = u64, description = "Through Raft: the index the delete committed at."),
            ("X-Statemesh-Consistency" = String, description = "Through Raft: `strong`.")
        )),
        (status = 400, description = "`bad_path`, `invalid_id`, `bad_parameter`, `bad_header`, `bad_version`, \
            `unsupported` or `invalid_request`.", body = ErrorBody),
        (status = 404, description = "`not_found` (the document does not exist) or `unknown_namespace`.",
            body = ErrorBody),
        (status = 409, description = "`strong_namespace`: an eventual write to a strong namespace.",
            body = ErrorBody),
        (status = 412, description = "`precondition_failed`: `If-Match` / `If-None-Match` does not hold.",
            body = ErrorBody),
        (status = 503, description = "`storage_failed`, `shutting_down`; through Raft also \
            `strong_path_disabled`, `not_leader`, `unavailable`, `strong_path_stopped`.", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: the delete may or may not have taken effect; read \
            the document before retrying.", body = ErrorBody),
    )
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Documents per page: 1 to `api.list_limit_max` (default 100).
    #[param(minimum = 1)]
    limit: Option<u32>,
    /// List ids after this one (the previous page's `next`).
    #[param(min_length = 1)]
    after: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/docs/{ns}",
    tag = "documents",
    operation_id = "listDocuments",
    summary = "List a namespace's documents",
    description = "Live documents in id order, a page at a time.",
    params(NamespacePath, ListParams),
    responses(
        (status = 200, description = "One page.", body = DocList),
        (status = 400, description = "`bad_path`, `invalid_id` or `bad_parameter`.", body = ErrorBody),
        (status = 404, description = "`unknown_namespace` (`namespaces.strict`).", body = ErrorBody),
        (status = 503, description = "`storage_failed` or `timeout`.", body = ErrorBody),
    )
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesParams {
    /// Only the changes after this version (all without it).
    #[param(pattern = "^(W/)?\"?(0|[0-9a-fA-F]{64}(\\.[0-9a-fA-F]{64})*)\"?$")]
    since: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/docs/{ns}/{id}/changes",
    tag = "documents",
    operation_id = "getDocumentChanges",
    summary = "Raw Automerge changes",
    description = "The document's Automerge changes after `since`, concatenated, for Automerge-native \
        clients.",
    params(DocPath, ChangesParams),
    responses(
        (status = 200, description = "The changes, concatenated (empty when there are none).",
            content_type = "application/octet-stream", headers(
                ("ETag" = String, description = "The version the changes lead to, quoted."),
                ("X-Statemesh-Change-Count" = u64, description = "How many changes the body holds.")
            )),
        (status = 400, description = "`bad_path`, `invalid_id`, `bad_parameter` or `bad_version`.",
            body = ErrorBody),
        (status = 404, description = "`not_found` (no changes at all), `unknown_version` (`since`) or \
            `unknown_namespace`.", body = ErrorBody),
        (status = 503, description = "`storage_failed`, `shutting_down` or `timeout`.", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    post,
    path = "/v1/docs/{ns}/{id}/changes",
    tag = "documents",
    operation_id = "postDocumentChanges",
    summary = "Apply raw Automerge bytes",
    description = "Applies Automerge change chunks or a saved document as they are, all or nothing.",
    params(
        DocPath,
        ("If-Match" = Option<String>, Header, pattern = "^(\\*|(W/)?\"?(0|[0-9a-fA-F]{64}(\\.[0-9a-fA-F]{64})*)\"?)$", description = "Apply only if the document is at this version \
            (an `ETag`), or exists (`*`)."),
        ("If-None-Match" = Option<String>, Header, pattern = "^\\*$", description = "`*`: apply only if the \
            document does not exist."),
    ),
    request_body(content_type = "application/octet-stream",
        description = "Automerge change chunks or a saved Automerge document."),
    responses(
        (status = 200, description = "Applied (or nothing new: `change` is null).", body = WriteAnswer, headers(
            ("ETag" = String, description = "The version after the write, quoted.")
        )),
        (status = 201, description = "Applied; the document exists now.", body = WriteAnswer, headers(
            ("ETag" = String, description = "The version after the write, quoted.")
        )),
        (status = 400, description = "`bad_path`, `invalid_id`, `bad_header`, `bad_version` or \
            `invalid_automerge` (the bytes do not parse completely).", body = ErrorBody),
        (status = 404, description = "`unknown_namespace` (`namespaces.strict`).", body = ErrorBody),
        (status = 409, description = "`missing_dependencies` (the node lacks changes these depend on) or \
            `strong_namespace`.", body = ErrorBody),
        (status = 412, description = "`precondition_failed`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over `api.max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `application/octet-stream`.",
            body = ErrorBody),
        (status = 422, description = "`schema_violation`, `document_too_large`, `root_not_object`, `too_deep` \
            or `automerge_refused`.", body = ErrorBody),
        (status = 503, description = "`storage_failed` or `shutting_down`.", body = ErrorBody),
    )
)]
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
