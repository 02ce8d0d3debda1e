//! Request parsing that answers bad input with our JSON errors instead of axum's plain text.
//!
//! Bodies are taken as bytes and checked in a fixed order (content type, size, UTF-8, JSON),
//! so each mistake gets its own code. Path segments become validated ids; preconditions come
//! from `If-Match` / `If-None-Match`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use statemesh_protocol::{DocId, DocKey, Namespace, Version};

use super::error::{from_rejection, ApiError};
use crate::node::Precondition;

pub fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| from_rejection(r.status(), r.body_text()))
}

pub fn query<T: DeserializeOwned>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|r| ApiError::bad_request("bad_parameter", r.body_text()))
}

pub fn doc_key(path: Result<Path<(String, String)>, PathRejection>) -> Result<DocKey, ApiError> {
    let Path((ns, id)) = path.map_err(|r| ApiError::bad_request("bad_path", r.body_text()))?;
    Ok(DocKey::new(namespace(ns)?, DocId::new(id).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?))
}

pub fn namespace(ns: String) -> Result<Namespace, ApiError> {
    Namespace::new(ns).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))
}

/// Checks the content type against `accepted` (exact media types, parameters ignored).
pub fn require_content_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    let given = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = given.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if accepted.contains(&media.as_str()) {
        Ok(())
    } else {
        let shown = if given.is_empty() { "no content type".to_string() } else { format!("content type `{given}`") };
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{shown}; expected {}", accepted.join(" or ")),
        ))
    }
}

/// Parses a JSON body: invalid UTF-8 and malformed JSON get distinct errors.
pub fn json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::bad_request("invalid_utf8", format!("the body is not valid UTF-8 (byte {})", e.valid_up_to()))
    })?;
    serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}")))
}

/// Parses a version given in a header or query parameter.
pub fn version(text: &str, what: &str) -> Result<Version, ApiError> {
    Version::from_etag(text).map_err(|e| ApiError::bad_request("bad_version", format!("{what}: {e}")))
}

/// The write precondition from `If-Match` / `If-None-Match`.
pub fn precondition(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let text = |name: header::HeaderName| -> Result<Option<String>, ApiError> {
        headers
            .get(&name)
            .map(|v| {
                v.to_str()
                    .map(|s| s.trim().to_string())
                    .map_err(|_| ApiError::bad_request("bad_header", format!("{name} is not valid text")))
            })
            .transpose()
    };
    match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("bad_header", "send If-Match or If-None-Match, not both")),
        (Some(m), None) if m == "*" => Ok(Precondition::Exists),
        (Some(m), None) => Ok(Precondition::IfMatch(version(&m, "If-Match")?)),
        (None, Some(n)) if n == "*" => Ok(Precondition::Absent),
        (None, Some(_)) => Err(ApiError::bad_request("bad_header", "If-None-Match supports only `*` on writes")),
        (None, None) => Ok(Precondition::None),
    }
}

/// A page size: `requested`, or `default` (capped at `max`) when absent; 1..=`max`.
pub fn page_limit(requested: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = requested.unwrap_or(default.min(max));
    if limit == 0 || limit > max {
        return Err(ApiError::bad_request("bad_parameter", format!("limit must be between 1 and {max}")));
    }
    Ok(limit)
}

/// An `application/json` body decoded into `T`; `shape` describes the expected body in the
/// error.
pub fn json_request<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<T, ApiError> {
    let body = self::body(body)?;
    require_content_type(headers, &["application/json"])?;
    let json = json_body(&body)?;
    serde_json::from_value(json).map_err(|e| ApiError::bad_request("bad_body", format!("expected {shape}: {e}")))
}

/// Refuses a non-object document or patch before it is queued anywhere.
pub fn require_object(value: &Value, what: &str) -> Result<(), ApiError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "root_not_object", format!("{what} must be a JSON object")))
    }
}
