//! Snapshot routes: create, list, restore and delete the node's snapshots.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/snapshots` | 201, the snapshot written (id, documents, bytes, format, …) |
//! | `GET /v1/snapshots` | 200, `{"snapshots": [...]}`, newest first |
//! | `POST /v1/snapshots/{id}/restore` | 200, what the restore did |
//! | `DELETE /v1/snapshots/{id}` | 200, `{"id": ..., "deleted": true}` |
//!
//! Creating or restoring a whole store can take longer than `api.request_timeout`, which is
//! meant for document requests, so these routes join the router outside that deadline (they
//! record the same request metrics). The work itself runs in a task of its own: a client
//! that disconnects does not cut a restore off halfway.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde_json::json;

use super::error::ApiError;
use super::openapi::params::SnapshotPath;
use super::openapi::schemas::{ErrorBody, SnapshotDeleted, SnapshotList};
use super::AppState;
use crate::config::Config;
use crate::snapshot::{ops, CreatedSnapshot, RestoreReport, SnapshotError, SnapshotSettings};

impl From<SnapshotError> for ApiError {
    fn from(error: SnapshotError) -> Self {
        let message = error.to_string();
        let (status, code) = match error {
            SnapshotError::NotFound(_) | SnapshotError::FileNotFound(_) => {
                (StatusCode::NOT_FOUND, "snapshot_not_found")
            }
            SnapshotError::InvalidId(_) => (StatusCode::BAD_REQUEST, "invalid_snapshot_id"),
            SnapshotError::Foreign(_) => (StatusCode::UNPROCESSABLE_ENTITY, "snapshot_foreign"),
            SnapshotError::UnsupportedVersion { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "snapshot_unsupported"),
            SnapshotError::Truncated { .. } | SnapshotError::Corrupt { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "snapshot_corrupt")
            }
            SnapshotError::TooLarge { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "snapshot_too_large"),
            SnapshotError::Busy => (StatusCode::CONFLICT, "snapshot_busy"),
            SnapshotError::Io { .. } | SnapshotError::Encode(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "snapshot_io_failed")
            }
            SnapshotError::Node(node) => return ApiError::from(node),
        };
        ApiError::new(status, code, message)
    }
}

/// The snapshot routes, sharing the node's state; `state` is needed up front for metrics.
pub fn routes(state: AppState, config: &Config) -> Router<AppState> {
    let settings = Arc::new(SnapshotSettings::from_config(config));
    Router::new()
        .route("/v1/snapshots", get(list).post(create).fallback(super::method_not_allowed))
        .route("/v1/snapshots/{id}", delete(remove).fallback(super::method_not_allowed))
        .route("/v1/snapshots/{id}/restore", post(restore).fallback(super::method_not_allowed))
        .route_layer(middleware::from_fn_with_state(state, super::observe_without_deadline))
        .layer(Extension(settings))
}

fn snapshot_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|r| ApiError::bad_request("bad_path", r.body_text()))?;
    if crate::snapshot::store::valid_id(&id) {
        Ok(id)
    } else {
        Err(SnapshotError::InvalidId(id.chars().take(120).collect()).into())
    }
}

fn task_failed(error: tokio::task::JoinError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "snapshot_io_failed", format!("the snapshot task failed: {error}"))
}

#[utoipa::path(
    post,
    path = "/v1/snapshots",
    tag = "snapshots",
    operation_id = "createSnapshot",
    summary = "Take a snapshot of every namespace",
    description = "A consistent snapshot into the snapshot directory; files beyond \
        `snapshots.max_snapshots` are deleted, oldest first. Not bound by `api.request_timeout`.",
    responses(
        (status = 201, description = "Written.", body = CreatedSnapshot),
        (status = 500, description = "`snapshot_io_failed`.", body = ErrorBody),
        (status = 503, description = "`storage_failed` or `shutting_down`.", body = ErrorBody),
    )
)]
async fn create(State(state): State<AppState>, Extension(settings): Extension<Arc<SnapshotSettings>>) -> Response {
    let node = state.node.clone();
    let task = tokio::spawn(async move { ops::create(&node, &settings).await });
    match task.await {
        Ok(Ok(created)) => (StatusCode::CREATED, Json(created)).into_response(),
        Ok(Err(error)) => ApiError::from(error).into_response(),
        Err(error) => task_failed(error).into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/v1/snapshots",
    tag = "snapshots",
    operation_id = "listSnapshots",
    summary = "The node's snapshots",
    responses(
        (status = 200, description = "Newest first.", body = SnapshotList),
        (status = 500, description = "`snapshot_io_failed`: the snapshot directory cannot be read.",
            body = ErrorBody),
    )
)]
async fn list(Extension(settings): Extension<Arc<SnapshotSettings>>) -> Result<Response, ApiError> {
    let store = settings.store();
    let snapshots = tokio::task::spawn_blocking(move || store.list()).await.map_err(task_failed)??;
    Ok(Json(json!({ "snapshots": snapshots })).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/snapshots/{id}/restore",
    tag = "snapshots",
    operation_id = "restoreSnapshot",
    summary = "Restore every document to its state in a snapshot",
    description = "As new changes; documents absent from the snapshot are deleted. The file is verified \
        completely first: a corrupt, truncated or foreign file changes nothing. Not bound by \
        `api.request_timeout`, and a client that disconnects does not cut it off.",
    params(SnapshotPath),
    responses(
        (status = 200, description = "What the restore did.", body = RestoreReport),
        (status = 400, description = "`bad_path` or `invalid_snapshot_id`.", body = ErrorBody),
        (status = 404, description = "`snapshot_not_found`.", body = ErrorBody),
        (status = 409, description = "`snapshot_busy`: a restore is already running.", body = ErrorBody),
        (status = 422, description = "`snapshot_foreign`, `snapshot_unsupported`, `snapshot_corrupt` or \
            `snapshot_too_large`; nothing changed.", body = ErrorBody),
        (status = 500, description = "`snapshot_io_failed`.", body = ErrorBody),
        (status = 503, description = "`storage_failed` or `shutting_down`.", body = ErrorBody),
    )
)]
async fn restore(
    State(state): State<AppState>,
    Extension(settings): Extension<Arc<SnapshotSettings>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = snapshot_id(path)?;
    let node = state.node.clone();
    let store = settings.store();
    let report = tokio::spawn(async move { ops::restore(&node, &store, &id).await }).await.map_err(task_failed)??;
    Ok(Json(report).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/snapshots/{id}",
    tag = "snapshots",
    operation_id = "deleteSnapshot",
    summary = "Delete a snapshot file",
    params(SnapshotPath),
    responses(
        (status = 200, description = "Deleted.", body = SnapshotDeleted),
        (status = 400, description = "`bad_path` or `invalid_snapshot_id`.", body = ErrorBody),
        (status = 404, description = "`snapshot_not_found`.", body = ErrorBody),
        (status = 500, description = "`snapshot_io_failed`.", body = ErrorBody),
    )
)]
async fn remove(
    Extension(settings): Extension<Arc<SnapshotSettings>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = snapshot_id(path)?;
    let store = settings.store();
    let deleted = id.clone();
    tokio::task::spawn_blocking(move || store.delete(&deleted)).await.map_err(task_failed)??;
    Ok(Json(json!({ "id": id, "deleted": true })).into_response())
}
