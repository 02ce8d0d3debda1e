//! Consistency levels on the document routes: `?consistency=strong|bounded|eventual`, the
//! strong path's errors as HTTP, and the headers saying what a response reflects.
//!
//! Writes: `strong` (or a strong namespace) goes through Raft; otherwise the local eventual
//! path. Reads: the level asked for, else `distributed.consistency_level` on a node that runs
//! the strong path, else `eventual`. Every document response from such a node carries
//! `X-Statemesh-Raft-Index` (a token: pass it back as `min_version` for read-your-writes on
//! any member), `X-Statemesh-Staleness-Ms` and `X-Statemesh-Consistency`.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use statemesh_protocol::DocKey;

use super::error::ApiError;
use super::AppState;
use crate::config::{BoundedFallback, Config, ConsistencyLevel};
use crate::raft::StrongError;
use crate::strong::{ReadLevel, ReadStamp, StrongDocError, StrongDocs, StrongNode};

pub const RAFT_INDEX: HeaderName = HeaderName::from_static("x-statemesh-raft-index");
pub const STALENESS: HeaderName = HeaderName::from_static("x-statemesh-staleness-ms");
pub const CONSISTENCY: HeaderName = HeaderName::from_static("x-statemesh-consistency");

/// Read defaults from `distributed`.
#[derive(Debug, Clone, Copy)]
pub struct ReadDefaults {
    level: ConsistencyLevel,
    max_staleness: Duration,
    fallback: BoundedFallback,
}

impl ReadDefaults {
    pub fn from_config(config: &Config) -> Self {
        let d = &config.distributed;
        Self {
            level: d.consistency_level,
            max_staleness: Duration::from_millis(d.max_staleness_ms),
            fallback: d.bounded_fallback,
        }
    }
}

/// The consistency parameters a document route accepts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    pub consistency: Option<String>,
    pub max_staleness_ms: Option<u64>,
    pub min_version: Option<u64>,
}

fn level_name(text: &str) -> Result<ConsistencyLevel, ApiError> {
    match text {
        "strong" => Ok(ConsistencyLevel::Strong),
        "bounded" => Ok(ConsistencyLevel::Bounded),
        "eventual" => Ok(ConsistencyLevel::Eventual),
        other => Err(ApiError::bad_request(
            "bad_parameter",
            format!("consistency `{other}` is not one of strong, bounded, eventual"),
        )),
    }
}

/// The node's strong path, or why a request that needs it cannot have it here.
pub fn strong_node(state: &AppState) -> Result<&StrongNode, ApiError> {
    state.strong.as_ref().ok_or_else(|| StrongDocError::Disabled.into())
}

/// The documents' strong path, or why a request that needs it cannot have it here.
pub fn strong(state: &AppState) -> Result<&StrongDocs, ApiError> {
    strong_node(state).map(|s| &s.docs)
}

/// Marks a response as served through Raft, at `index` when known.
pub fn strong_headers(headers: &mut HeaderMap, index: Option<u64>) {
    if let Some(index) = index {
        headers.insert(RAFT_INDEX, HeaderValue::from(index));
    }
    headers.insert(CONSISTENCY, HeaderValue::from_static("strong"));
}

/// Whether a write to `key` goes through Raft.
pub fn write_is_strong(state: &AppState, key: &DocKey, params: &ConsistencyParams) -> Result<bool, ApiError> {
    match write_level(params)? {
        Some(strong) => Ok(strong),
        None => Ok(state.node.is_strong_namespace(&key.namespace)?),
    }
}

/// The write level the request asks for (`Some(true)`: strong, `Some(false)`: eventual;
/// `None`: each namespace's own), or why the parameters are not valid for a write.
pub fn write_level(params: &ConsistencyParams) -> Result<Option<bool>, ApiError> {
    if params.max_staleness_ms.is_some() || params.min_version.is_some() {
        return Err(ApiError::bad_request("bad_parameter", "max_staleness_ms and min_version apply to reads"));
    }
    match params.consistency.as_deref().map(level_name).transpose()? {
        Some(ConsistencyLevel::Strong) => Ok(Some(true)),
        Some(ConsistencyLevel::Bounded) => Err(ApiError::bad_request(
            "bad_parameter",
            "bounded consistency applies to reads; write with strong or eventual",
        )),
        Some(ConsistencyLevel::Eventual) => Ok(Some(false)),
        None => Ok(None),
    }
}

/// Waits until a read at the requested level may be served here; `None` on a node without
/// the strong path reading at `eventual`.
pub async fn prepare_read(state: &AppState, params: &ConsistencyParams) -> Result<Option<ReadStamp>, ApiError> {
    let defaults = state.read_defaults;
    let asked = params.consistency.as_deref().map(level_name).transpose()?;
    if params.max_staleness_ms.is_some() && asked.is_some_and(|l| l != ConsistencyLevel::Bounded) {
        return Err(ApiError::bad_request("bad_parameter", "max_staleness_ms goes with consistency=bounded"));
    }
    let Some(strong_node) = &state.strong else {
        return match asked {
            None | Some(ConsistencyLevel::Eventual) if params.min_version.is_none() => Ok(None),
            _ => Err(StrongDocError::Disabled.into()),
        };
    };
    let level = match asked.unwrap_or(defaults.level) {
        ConsistencyLevel::Strong => ReadLevel::Strong,
        ConsistencyLevel::Bounded => ReadLevel::Bounded {
            max_staleness: params.max_staleness_ms.map(Duration::from_millis).unwrap_or(defaults.max_staleness),
            fallback: defaults.fallback,
        },
        ConsistencyLevel::Eventual => ReadLevel::Eventual,
    };
    Ok(Some(strong_node.docs.prepare_read(level, params.min_version).await?))
}

/// Adds the read stamp's headers.
pub fn stamp_headers(headers: &mut HeaderMap, stamp: Option<&ReadStamp>) {
    let Some(stamp) = stamp else { return };
    if let Some(index) = stamp.index {
        headers.insert(RAFT_INDEX, HeaderValue::from(index));
    }
    if let Some(ms) = stamp.staleness_ms {
        headers.insert(STALENESS, HeaderValue::from(ms));
    }
    headers.insert(CONSISTENCY, HeaderValue::from_static(stamp.served_as));
}

impl From<StrongDocError> for ApiError {
    fn from(error: StrongDocError) -> Self {
        let message = error.to_string();
        match error {
            StrongDocError::Node(e) => e.into(),
            StrongDocError::Strong(e) => {
                let (status, code) = match e {
                    StrongError::NotLeader { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_leader"),
                    StrongError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                    StrongError::Indeterminate { .. } => (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown"),
                    StrongError::Membership(_) => (StatusCode::CONFLICT, "membership_refused"),
                    StrongError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
                    StrongError::Stopped(_) | StrongError::Storage(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "strong_path_stopped")
                    }
                };
                ApiError::new(status, code, message)
            }
            StrongDocError::Disabled => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "strong_path_disabled", message),
            StrongDocError::Unsupported(_) => ApiError::new(StatusCode::BAD_REQUEST, "unsupported", message),
            StrongDocError::TooStale { .. } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_stale", message),
            StrongDocError::Remote { status, code, message } => {
                ApiError::new(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), code, message)
            }
        }
    }
}
