//! A typed HTTP client for the node's API, shared by the CLI, the tests and the benchmarks.
//!
//! One client means one place that knows the routes, headers and error shape; when the API
//! grows, the CLI and the tests cannot drift apart. Each feature area adds its calls in a
//! file of its own here (`impl Client` blocks) on top of the shared request plumbing.

mod cluster;
pub mod feed;
mod history;
mod snapshots;
mod txn;

use std::time::Duration;

use reqwest::{header, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use cluster::{ReadOptions, Stamp};

/// The address `statemesh start` listens on by default.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:7700";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{0}` is not a valid node URL (expected e.g. {DEFAULT_NODE_URL})")]
    InvalidUrl(String),
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{message} ({status} {code})")]
    Api { status: u16, code: String, message: String },
    #[error("unexpected response from the node: {0}")]
    Decode(String),
    #[error("cannot use the CA certificate: {0}")]
    CaCertificate(String),
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

impl ClientError {
    /// The API error code, when the node answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A document as read: its JSON and version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Doc {
    pub version: String,
    pub document: Value,
}

/// The node's answer to a write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteReply {
    pub version: String,
    pub change: Option<String>,
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocSummary {
    pub id: String,
    pub version: String,
    pub updated_ms: i64,
    pub changes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListReply {
    pub namespace: String,
    pub documents: Vec<DocSummary>,
    pub next: Option<String>,
}

/// Raw changes and the version they bring a reader to.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    pub bytes: Vec<u8>,
    pub version: String,
    pub count: usize,
}

/// Which writes must see which version (`If-Match` / `If-None-Match`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Condition {
    #[default]
    None,
    IfMatch(String),
    IfAbsent,
}

#[derive(Debug, Clone)]
pub struct Client {
    base: reqwest::Url,
    pub(crate) http: reqwest::Client,
}

/// How to reach a node beyond its URL: the per-request timeout, the bearer token, and a CA
/// to trust for an `https://` node whose certificate no system root signs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub timeout: Duration,
    pub token: Option<String>,
    /// PEM file of CA certificates trusted in addition to the system's roots.
    pub ca_cert: Option<std::path::PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30), token: None, ca_cert: None }
    }
}

impl Client {
    pub fn new(base: &str) -> Result<Self, ClientError> {
        Self::with_options(base, &ClientOptions::default())
    }

    pub fn with_timeout(base: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::with_options(base, &ClientOptions { timeout, ..ClientOptions::default() })
    }

    pub fn with_options(base: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let base = reqwest::Url::parse(base).map_err(|_| ClientError::InvalidUrl(base.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::InvalidUrl(base.to_string()));
        }
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(256)
            // A node closes connections idle for api.header_read_timeout (10 s by default);
            // dropping ours sooner keeps a request off a connection the node is closing.
            .pool_idle_timeout(Duration::from_secs(5));
        if let Some(token) = &options.token {
            // Sent on every request, the feed included; marked sensitive so it is never logged.
            let mut value = header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| ClientError::Decode("the token is not valid header text".to_string()))?;
            value.set_sensitive(true);
            builder = builder.default_headers(header::HeaderMap::from_iter([(header::AUTHORIZATION, value)]));
        }
        if base.scheme() == "http" {
            // Plain HTTP never verifies a certificate, so the system's roots are not loaded:
            // where there are none (a container built FROM scratch), loading them fails.
            builder = builder.tls_certs_only(Vec::new());
        } else if let Some(path) = &options.ca_cert {
            let pem = crate::tls::read_ca_pem(path).map_err(|e| ClientError::CaCertificate(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ClientError::CaCertificate(format!("{}: {e}", path.display())))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Self { base, http })
    }

    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `base/seg1/seg2/…`, each segment percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Unreachable { url: self.base.to_string(), reason: describe(&e) })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error = &body["error"];
        Err(ClientError::Api {
            status: status.as_u16(),
            code: error["code"].as_str().unwrap_or("unknown").to_string(),
            message: error["message"].as_str().map_or_else(|| status.to_string(), str::to_string),
        })
    }

    pub(crate) fn conditioned(request: reqwest::RequestBuilder, condition: &Condition) -> reqwest::RequestBuilder {
        match condition {
            Condition::None => request,
            Condition::IfMatch(version) => request.header(header::IF_MATCH, quote(version)),
            Condition::IfAbsent => request.header(header::IF_NONE_MATCH, "*"),
        }
    }

    pub(crate) async fn write_reply(&self, request: reqwest::RequestBuilder) -> Result<WriteReply, ClientError> {
        self.json(request).await
    }

    /// Sends `request` and decodes a successful JSON reply.
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        self.send(request).await?.json().await.map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn get(&self, ns: &str, id: &str) -> Result<Doc, ClientError> {
        self.get_doc(self.http.get(self.url(&["v1", "docs", ns, id]))).await
    }

    /// The document as of `version`.
    pub async fn get_at(&self, ns: &str, id: &str, version: &str) -> Result<Doc, ClientError> {
        self.get_doc(self.http.get(self.url(&["v1", "docs", ns, id])).query(&[("at", version)])).await
    }

    async fn get_doc(&self, request: reqwest::RequestBuilder) -> Result<Doc, ClientError> {
        let response = self.send(request).await?;
        let version = etag(&response)?;
        let document = response.json().await.map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(Doc { version, document })
    }

    pub async fn put(
        &self,
        ns: &str,
        id: &str,
        body: &Value,
        condition: &Condition,
    ) -> Result<WriteReply, ClientError> {
        let request = self.http.put(self.url(&["v1", "docs", ns, id])).json(body);
        self.write_reply(Self::conditioned(request, condition)).await
    }

    pub async fn patch(
        &self,
        ns: &str,
        id: &str,
        patch: &Value,
        condition: &Condition,
    ) -> Result<WriteReply, ClientError> {
        let request = self.patch_request(ns, id, patch)?;
        self.write_reply(Self::conditioned(request, condition)).await
    }

    /// `PATCH` of a document with `patch` as a JSON merge patch.
    fn patch_request(&self, ns: &str, id: &str, patch: &Value) -> Result<reqwest::RequestBuilder, ClientError> {
        let body = serde_json::to_vec(patch).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(self
            .http
            .patch(self.url(&["v1", "docs", ns, id]))
            .header(header::CONTENT_TYPE, "application/merge-patch+json")
            .body(body))
    }

    pub async fn delete(&self, ns: &str, id: &str, condition: &Condition) -> Result<WriteReply, ClientError> {
        let request = self.http.delete(self.url(&["v1", "docs", ns, id]));
        self.write_reply(Self::conditioned(request, condition)).await
    }

    pub async fn list(&self, ns: &str, limit: Option<u32>, after: Option<&str>) -> Result<ListReply, ClientError> {
        let mut request = self.http.get(self.url(&["v1", "docs", ns]));
        if let Some(limit) = limit {
            request = request.query(&[("limit", limit.to_string())]);
        }
        if let Some(after) = after {
            request = request.query(&[("after", after)]);
        }
        self.send(request).await?.json().await.map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Raw Automerge changes after `since` (all when `None`).
    pub async fn changes(&self, ns: &str, id: &str, since: Option<&str>) -> Result<Changes, ClientError> {
        let mut request = self.http.get(self.url(&["v1", "docs", ns, id, "changes"]));
        if let Some(since) = since {
            request = request.query(&[("since", since)]);
        }
        let response = self.send(request).await?;
        let version = etag(&response)?;
        let count = response
            .headers()
            .get("x-statemesh-change-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bytes = response.bytes().await.map_err(|e| ClientError::Decode(e.to_string()))?.to_vec();
        Ok(Changes { bytes, version, count })
    }

    pub async fn post_changes(&self, ns: &str, id: &str, bytes: Vec<u8>) -> Result<WriteReply, ClientError> {
        let request = self
            .http
            .post(self.url(&["v1", "docs", ns, id, "changes"]))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        self.write_reply(request).await
    }

    pub async fn status(&self) -> Result<Value, ClientError> {
        let response = self.send(self.http.get(self.url(&["v1", "status"]))).await?;
        response.json().await.map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET /v1/peers`: `{"peers": [...]}`.
    pub async fn peers(&self) -> Result<Value, ClientError> {
        let response = self.send(self.http.get(self.url(&["v1", "peers"]))).await?;
        response.json().await.map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET /v1/mesh`: this node's summary and every peer it has met.
    pub async fn mesh(&self) -> Result<Value, ClientError> {
        let response = self.send(self.http.get(self.url(&["v1", "mesh"]))).await?;
        response.json().await.map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Whether `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        matches!(self.http.get(self.url(&["readyz"])).send().await, Ok(r) if r.status() == StatusCode::OK)
    }

    pub async fn metrics(&self) -> Result<String, ClientError> {
        let response = self.send(self.http.get(self.url(&["metrics"]))).await?;
        response.text().await.map_err(|e| ClientError::Decode(e.to_string()))
    }
}

fn quote(version: &str) -> String {
    if version.starts_with('"') || version == "*" {
        version.to_string()
    } else {
        format!("\"{version}\"")
    }
}

pub(crate) fn etag(response: &reqwest::Response) -> Result<String, ClientError> {
    response
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_string())
        .ok_or_else(|| ClientError::Decode("the response has no ETag".to_string()))
}

/// A one-line reason for a transport failure, without reqwest's nested debug output.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "the request timed out".to_string();
    }
    if error.is_connect() {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
        let mut innermost = None;
        while let Some(s) = source {
            innermost = Some(s.to_string());
            source = s.source();
        }
        return innermost.unwrap_or_else(|| "connection failed".to_string());
    }
    error.to_string()
}
