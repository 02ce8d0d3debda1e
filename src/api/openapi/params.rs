//! The path parameters the routes share, described once: handlers take them as tuples
//! (`Path<(String, String)>`), which carry no names or rules to derive a description from.
#![allow(dead_code, reason = "documentation only: never built, only described")]

use utoipa::IntoParams;

/// `{ns}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NamespacePath {
    /// The namespace: 1 to 128 of `A-Z a-z 0-9 _ . -`.
    #[param(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    ns: String,
}

/// `{ns}/{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DocPath {
    /// The namespace: 1 to 128 of `A-Z a-z 0-9 _ . -`.
    #[param(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    ns: String,
    /// The document id: 1 to 512 bytes of UTF-8 without control characters (percent-encoded
    /// in the path).
    #[param(pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]{1,512}$")]
    id: String,
}

/// `{txn}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TxnPath {
    /// The transaction id `POST /v1/txn/begin` returned.
    txn: String,
}

/// `{txn}/docs/{ns}/{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TxnDocPath {
    /// The transaction id `POST /v1/txn/begin` returned.
    txn: String,
    /// The namespace: 1 to 128 of `A-Z a-z 0-9 _ . -`.
    #[param(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    ns: String,
    /// The document id: 1 to 512 bytes of UTF-8 without control characters.
    #[param(pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]{1,512}$")]
    id: String,
}

/// `{id}` of a snapshot.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SnapshotPath {
    /// The snapshot id, as listed: 1 to 100 of `A-Z a-z 0-9 _ -`.
    id: String,
}
