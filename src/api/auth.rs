//! Who may call the API: bearer tokens with roles, checked before any route runs.
//!
//! The API can restore snapshots (deleting documents cluster-wide), roll documents back and
//! change Raft membership, so an API that anyone on the network reaches must know who asks.
//! Tokens are random secrets; the node keeps only their SHA-256 (`api.tokens`,
//! `api.tokens_file`), so a leaked configuration does not leak a credential. A presented
//! token is hashed and compared with every entry in constant time.
//!
//! Roles nest (`admin` ⊇ `write` ⊇ `read`) and the role a request needs follows from its
//! method and path alone ([`required_role`]), in one table, so a new route is classified
//! the moment it exists: reads need `read`, other methods `write`, and the operator's
//! routes (snapshots, rollback, cluster membership) `admin`. `/healthz` and `/readyz` stay
//! open for probes, and `/v1/openapi.json` for tools. With no tokens configured the API is
//! open and every request is made by `anonymous`; a node refuses to serve that on a
//! non-loopback address unless `api.insecure` says so ([`check_exposure`]).
//!
//! The caller found here goes into the request's extensions as a [`Caller`], from which
//! handlers take the author they record in the changes they make.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::config::{check_token_entry, ApiConfig, ApiRole, ApiToken};

/// The author of requests on an API without tokens.
pub const ANONYMOUS: &str = "anonymous";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("api.tokens_file: cannot read {path}: {reason}")]
    TokensFileUnreadable { path: PathBuf, reason: String },
    #[error("api.tokens_file: {path} is not a YAML list of {{name, role, sha256}}: {reason}")]
    TokensFileInvalid { path: PathBuf, reason: String },
    #[error("api.tokens_file: {path} entry {index}: {problem}")]
    TokenEntry { path: PathBuf, index: usize, problem: String },
    #[error("api.tokens_file: {path}: the token name `{name}` is used twice")]
    DuplicateName { path: PathBuf, name: String },
    #[error(
        "refusing to serve the API on {listen} without tokens: anyone who reaches it could restore \
         snapshots, roll back and change membership. Add api.tokens (see `statemesh token generate`), \
         listen on a loopback address, or set api.insecure: true"
    )]
    Unprotected { listen: String },
}

/// Who made a request, as the API knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or [`ANONYMOUS`] on an open API.
    pub name: Arc<str>,
    pub role: ApiRole,
}

impl Caller {
    pub fn anonymous() -> Self {
        Self { name: Arc::from(ANONYMOUS), role: ApiRole::Admin }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    /// The caller the auth layer found; `anonymous` where no auth layer ran (a router built
    /// without one, in tests).
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned().unwrap_or_else(Caller::anonymous))
    }
}

/// How the API admits requests, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Bearer tokens required (this many configured).
    Tokens(usize),
    /// No tokens: everyone is `anonymous` with every right.
    Open,
}

impl std::fmt::Display for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthMode::Tokens(n) => write!(f, "bearer tokens ({n} configured)"),
            AuthMode::Open => write!(f, "open (no tokens; every request is `anonymous`)"),
        }
    }
}

struct Entry {
    name: Arc<str>,
    role: ApiRole,
    digest: [u8; 32],
}

/// The configured tokens, ready to check requests against.
pub struct Access {
    entries: Vec<Entry>,
    /// Set when the configured tokens could not be loaded: every request needing a role is
    /// refused rather than served open.
    deny_all: bool,
}

impl Access {
    /// The tokens of `api.tokens` and `api.tokens_file`.
    pub fn from_config(api: &ApiConfig) -> Result<Self, AuthError> {
        let mut tokens = api.tokens.clone();
        if let Some(path) = &api.tokens_file {
            tokens.extend(read_tokens_file(path)?);
            let mut seen = std::collections::BTreeSet::new();
            if let Some(dup) = tokens.iter().find(|t| !seen.insert(t.name.as_str())) {
                return Err(AuthError::DuplicateName { path: path.clone(), name: dup.name.clone() });
            }
        }
        let entries = tokens
            .iter()
            .filter_map(|t| {
                let mut digest = [0u8; 32];
                // Entries were checked (validate.rs, read_tokens_file): 64 hex characters.
                hex::decode_to_slice(t.sha256.as_bytes(), &mut digest).ok()?;
                Some(Entry { name: Arc::from(t.name.as_str()), role: t.role, digest })
            })
            .collect();
        Ok(Self { entries, deny_all: false })
    }

    /// Refuses every request that needs a role: for a router whose tokens could not be read.
    pub fn deny_all() -> Self {
        Self { entries: Vec::new(), deny_all: true }
    }

    pub fn mode(&self) -> AuthMode {
        if self.entries.is_empty() && !self.deny_all {
            AuthMode::Open
        } else {
            AuthMode::Tokens(self.entries.len())
        }
    }

    /// The caller holding `token`, if it is one of ours. Every entry is compared, each in
    /// constant time, so timing tells nothing about which bytes matched.
    fn caller(&self, token: &str) -> Option<Caller> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for entry in &self.entries {
            let difference = entry.digest.iter().zip(presented.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if difference == 0 {
                found = Some(Caller { name: entry.name.clone(), role: entry.role });
            }
        }
        found
    }
}

/// Reads a tokens file: a YAML list of `{name, role, sha256}`, each entry checked like
/// `api.tokens`.
fn read_tokens_file(path: &Path) -> Result<Vec<ApiToken>, AuthError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AuthError::TokensFileUnreadable { path: path.to_path_buf(), reason: e.to_string() })?;
    // An empty file is an empty list (all tokens revoked), not a parse error.
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let tokens: Vec<ApiToken> = serde_norway::from_str(&text)
        .map_err(|e| AuthError::TokensFileInvalid { path: path.to_path_buf(), reason: e.to_string() })?;
    for (index, token) in tokens.iter().enumerate() {
        check_token_entry(token).map_err(|problem| AuthError::TokenEntry {
            path: path.to_path_buf(),
            index,
            problem,
        })?;
    }
    Ok(tokens)
}

/// Refuses an open API on an address other machines can reach, unless `api.insecure`.
/// An unparsable `listen` is left to the bind, which reports it.
pub fn check_exposure(api: &ApiConfig, access: &Access) -> Result<AuthMode, AuthError> {
    let mode = access.mode();
    let loopback = api.listen.parse::<SocketAddr>().is_ok_and(|addr| addr.ip().is_loopback());
    if mode == AuthMode::Open && !loopback && !api.insecure {
        return Err(AuthError::Unprotected { listen: api.listen.clone() });
    }
    Ok(mode)
}

/// The role a request needs, from its method and path; `None` for the open probes.
///
/// Matched on the raw path exactly as the router matches it (percent-encoded, no
/// normalisation), so a path reaching an admin route is classified as one.
pub fn required_role(method: &Method, path: &str) -> Option<ApiRole> {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    match segments.as_slice() {
        // The status page's files hold no data; what it shows comes from routes that need a token.
        // The API description describes routes, not data: tools may fetch it before having a token.
        ["healthz"] | ["readyz"] | ["ui"] | ["ui", _] | ["v1", "openapi.json"] => None,
        _ if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) => Some(ApiRole::Read),
        ["v1", "snapshots", ..] | ["v1", "cluster", ..] | ["v1", "docs", _, _, "rollback"] => Some(ApiRole::Admin),
        _ => Some(ApiRole::Write),
    }
}

/// The middleware: finds the caller, checks its role, and records it for the handlers.
pub async fn authorize(State(access): State<Arc<Access>>, mut request: Request, next: Next) -> Response {
    let Some(required) = required_role(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let caller = if access.mode() == AuthMode::Open {
        Caller::anonymous()
    } else {
        let token = match bearer_token(&request) {
            Ok(Some(token)) => token,
            Ok(None) => return unauthorized("this API needs a bearer token (Authorization: Bearer <token>)", false),
            Err(message) => return unauthorized(message, true),
        };
        let Some(caller) = access.caller(&token) else {
            return unauthorized("the bearer token is not valid here", true);
        };
        caller
    };
    if caller.role < required {
        let message = format!(
            "the token `{}` has the {} role; this request needs {}",
            caller.name,
            role_name(caller.role),
            role_name(required)
        );
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response();
    }
    strip_access_token(&mut request);
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn role_name(role: ApiRole) -> &'static str {
    match role {
        ApiRole::Read => "read",
        ApiRole::Write => "write",
        ApiRole::Admin => "admin",
    }
}

/// The token from `Authorization: Bearer`, or, for the event streams only (the change feed
/// and the mesh view), `?access_token=` (browsers' EventSource cannot set headers). `Err`
/// for a malformed header.
fn bearer_token(request: &Request) -> Result<Option<String>, &'static str> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let text = value.to_str().map_err(|_| "the Authorization header is not valid text")?;
        let (scheme, token) = text.trim().split_once(' ').ok_or("expected `Authorization: Bearer <token>`")?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err("expected `Authorization: Bearer <token>`");
        }
        return Ok(Some(token.trim().to_string()));
    }
    if request.method() == Method::GET && matches!(request.uri().path(), "/v1/changes" | "/v1/mesh/events") {
        return Ok(query_access_token(request.uri()));
    }
    Ok(None)
}

fn query_access_token(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "access_token").then(|| percent_decode(value))
    })
}

/// Decodes `%XX` escapes and `+`; tokens made by `statemesh token generate` need neither,
/// but a client may escape anyway.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes `access_token` from the query, so the feed's strict parameter parsing does not
/// refuse it and the secret does not travel further (logs, metrics).
fn strip_access_token(request: &mut Request) {
    let Some(query) = request.uri().query() else {
        return;
    };
    if !query.split('&').any(|pair| pair.split('=').next() == Some("access_token")) {
        return;
    }
    let kept: Vec<&str> = query.split('&').filter(|pair| pair.split('=').next() != Some("access_token")).collect();
    let path = request.uri().path();
    let path_and_query = if kept.is_empty() { path.to_string() } else { format!("{path}?{}", kept.join("&")) };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
}

/// 401 with the challenge RFC 6750 asks for; `invalid` says a token was sent but refused.
fn unauthorized(message: &str, invalid: bool) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    let challenge =
        if invalid { r#"Bearer realm="statemesh", error="invalid_token""# } else { r#"Bearer realm="statemesh""# };
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

/// A fresh random token and its SHA-256 hex: 32 random bytes from the OS, in hex, after a
/// `smt_` prefix that makes a leaked one easy to recognise in logs and scanners.
pub fn generate_token() -> (String, String) {
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!("smt_{}", hex::encode(secret));
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    (token, digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_needs_the_role_its_power_calls_for() {
        let cases = [
            (Method::GET, "/healthz", None),
            (Method::GET, "/readyz", None),
            (Method::GET, "/metrics", Some(ApiRole::Read)),
            (Method::GET, "/v1/docs/users/ada", Some(ApiRole::Read)),
            (Method::GET, "/v1/changes", Some(ApiRole::Read)),
            (Method::GET, "/v1/cluster", Some(ApiRole::Read)),
            (Method::GET, "/v1/snapshots", Some(ApiRole::Read)),
            (Method::GET, "/v1/mesh", Some(ApiRole::Read)),
            (Method::GET, "/v1/mesh/events", Some(ApiRole::Read)),
            (Method::GET, "/ui", None),
            (Method::GET, "/ui/app.js", None),
            (Method::GET, "/v1/openapi.json", None),
            (Method::PUT, "/v1/docs/users/ada", Some(ApiRole::Write)),
            (Method::POST, "/v1/docs/users/ada/changes", Some(ApiRole::Write)),
            (Method::POST, "/v1/txn", Some(ApiRole::Write)),
            (Method::DELETE, "/v1/docs/users/rollback", Some(ApiRole::Write)),
            (Method::POST, "/v1/docs/users/ada/rollback", Some(ApiRole::Admin)),
            (Method::POST, "/v1/snapshots", Some(ApiRole::Admin)),
            (Method::POST, "/v1/snapshots/abc/restore", Some(ApiRole::Admin)),
            (Method::DELETE, "/v1/snapshots/abc", Some(ApiRole::Admin)),
            (Method::POST, "/v1/cluster/init", Some(ApiRole::Admin)),
            (Method::POST, "/v1/cluster/remove", Some(ApiRole::Admin)),
            // Unknown routes still need a token: a 404 must not be a way to probe an API.
            (Method::POST, "/nowhere", Some(ApiRole::Write)),
        ];
        for (method, path, role) in cases {
            assert_eq!(required_role(&method, path), role, "{method} {path}");
        }
    }

    #[test]
    fn a_token_is_found_by_its_hash_and_nothing_else() {
        let (token, sha256) = generate_token();
        let api = ApiConfig {
            tokens: vec![ApiToken { name: "ci".into(), role: ApiRole::Write, sha256: sha256.clone() }],
            ..ApiConfig::default()
        };
        let access = Access::from_config(&api).expect("tokens");
        assert_eq!(access.caller(&token).map(|c| c.role), Some(ApiRole::Write));
        assert_eq!(access.caller(&sha256), None, "the stored hash is not itself a credential");
        assert_eq!(access.caller(""), None);
    }

    #[test]
    fn an_open_api_is_refused_on_a_reachable_address_unless_insecure() {
        let open = Access::from_config(&ApiConfig::default()).expect("no tokens");
        let mut api = ApiConfig { listen: "0.0.0.0:7700".into(), ..ApiConfig::default() };
        assert!(matches!(check_exposure(&api, &open), Err(AuthError::Unprotected { .. })));
        api.insecure = true;
        assert_eq!(check_exposure(&api, &open).expect("insecure allows it"), AuthMode::Open);
        api.insecure = false;
        api.listen = "[::1]:7700".into();
        assert_eq!(check_exposure(&api, &open).expect("loopback is fine"), AuthMode::Open);
    }

    #[test]
    fn the_feed_token_in_the_query_is_decoded_and_then_removed() {
        assert_eq!(query_access_token(&Uri::from_static("/v1/changes?since=1&access_token=a%2Bb")), Some("a+b".into()));
        let mut request = Request::new(axum::body::Body::empty());
        *request.uri_mut() = Uri::from_static("/v1/changes?since=1&access_token=x&ns=u");
        strip_access_token(&mut request);
        assert_eq!(request.uri().to_string(), "/v1/changes?since=1&ns=u");
    }
}
