//! HTTP errors: `{"error": {"code": "...", "message": "..."}}` with the right status.
//!
//! Every failure a handler can meet is turned into an [`ApiError`] here, so the mapping from
//! cause to status and stable `code` lives in one place. Client mistakes are 4xx; only the
//! node's own trouble is 5xx.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use statemesh_protocol::DocError;

use crate::node::NodeError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable; a leader's code is relayed as it sent it.
    pub code: Cow<'static, str>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> Self {
        let message = error.to_string();
        let (status, code) = match &error {
            NodeError::InvalidId(_) => (StatusCode::BAD_REQUEST, "invalid_id"),
            NodeError::UnknownNamespace(_) => (StatusCode::NOT_FOUND, "unknown_namespace"),
            NodeError::StrongNamespace(_) => (StatusCode::CONFLICT, "strong_namespace"),
            NodeError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            NodeError::VersionMismatch { .. } | NodeError::Precondition(_) => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            NodeError::SchemaViolation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "schema_violation"),
            NodeError::DocumentTooLarge { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "document_too_large"),
            NodeError::UnknownVersion(_) => (StatusCode::NOT_FOUND, "unknown_version"),
            NodeError::RollbackTooFar { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "rollback_too_far"),
            NodeError::Document(doc) => match doc {
                DocError::RootNotObject => (StatusCode::UNPROCESSABLE_ENTITY, "root_not_object"),
                DocError::TooDeep(_) => (StatusCode::UNPROCESSABLE_ENTITY, "too_deep"),
                DocError::UnknownVersion(_) => (StatusCode::NOT_FOUND, "unknown_version"),
                DocError::InvalidAutomerge(_) => (StatusCode::BAD_REQUEST, "invalid_automerge"),
                DocError::MissingDependencies(_) => (StatusCode::CONFLICT, "missing_dependencies"),
                DocError::Automerge(_) => (StatusCode::UNPROCESSABLE_ENTITY, "automerge_refused"),
                // Only whole-document state transfer checks proofs; no request reaches it.
                DocError::Unattested(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unattested_change"),
            },
            NodeError::TxnNotFound(_) => (StatusCode::NOT_FOUND, "transaction_not_found"),
            NodeError::TxnExpired(_) => (StatusCode::GONE, "transaction_expired"),
            NodeError::TxnConflict { .. } => (StatusCode::CONFLICT, "conflict"),
            NodeError::LockTimeout(_) => (StatusCode::CONFLICT, "lock_timeout"),
            NodeError::TooManyTransactions(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_transactions"),
            NodeError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_failed"),
            NodeError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        };
        Self::new(status, code, message)
    }
}

/// Maps an axum extractor rejection (body too large, bad query, bad path) to our JSON shape.
pub fn from_rejection(status: StatusCode, text: String) -> ApiError {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "bad_request",
    };
    let status = if status.is_client_error() { status } else { StatusCode::BAD_REQUEST };
    ApiError::new(status, code, text)
}
