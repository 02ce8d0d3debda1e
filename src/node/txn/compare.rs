//! The etcd-shaped one-shot transaction: `compare`, then `success` or `failure`.
//!
//! All compares are evaluated and the chosen branch applied inside one atomic section, so
//! the decision and the writes see the same state and nothing else interleaves.

use std::sync::Arc;

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use statemesh_protocol::{DocKey, Version};

use super::super::{Node, NodeError};
use super::atomic::{AtomicView, TxnOp};

/// What a compare looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum CompareTarget {
    /// The document's version (`==` / `!=`).
    Version(Version),
    /// Whether the document exists (`==` / `!=`).
    Exists(bool),
    /// The JSON value at a JSON Pointer (absent reads as null).
    Value { pointer: String, value: Value },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CompareOp {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    pub key: DocKey,
    pub op: CompareOp,
    pub target: CompareTarget,
}

/// One step of a branch.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnStep {
    Write(DocKey, TxnOp),
    Get(DocKey),
}

impl TxnStep {
    fn key(&self) -> &DocKey {
        match self {
            TxnStep::Write(key, _) | TxnStep::Get(key) => key,
        }
    }
}

/// What one step produced.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepResult {
    /// `put`, `patch`, `delete` or `get`.
    #[schema(value_type = String)]
    pub op: &'static str,
    pub namespace: String,
    pub id: String,
    /// The document after the step (for `get`; null if it does not exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Value>,
}

/// What `POST /v1/txn` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OnceOutcome {
    /// Whether every compare held (so `success` ran, else `failure`).
    pub succeeded: bool,
    /// One per step of the branch that ran.
    pub results: Vec<StepResult>,
    /// Version and change id of every document the transaction changed.
    #[schema(value_type = Vec<crate::api::schemas::ChangedDoc>)]
    pub changed: Vec<serde_json::Value>,
}

fn holds(view: &AtomicView<'_>, compare: &Compare) -> Result<bool, NodeError> {
    let doc = view.doc(&compare.key)?;
    let ordering = match &compare.target {
        CompareTarget::Version(version) => {
            Some(if doc.exists() && &doc.version() == version { Ordering::Equal } else { Ordering::Less })
        }
        CompareTarget::Exists(wanted) => Some(if doc.exists() == *wanted { Ordering::Equal } else { Ordering::Less }),
        CompareTarget::Value { pointer, value } => {
            let json = if doc.exists() { doc.to_json() } else { Value::Null };
            let actual = json.pointer(pointer).cloned().unwrap_or(Value::Null);
            compare_json(&actual, value)
        }
    };
    Ok(match (compare.op, ordering) {
        (CompareOp::Eq, Some(o)) => o == Ordering::Equal,
        (CompareOp::Ne, o) => o != Some(Ordering::Equal),
        (CompareOp::Lt, Some(o)) => o == Ordering::Less,
        (CompareOp::Le, Some(o)) => o != Ordering::Greater,
        (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
        (CompareOp::Ge, Some(o)) => o != Ordering::Less,
        (_, None) => false,
    })
}

/// Numbers compare numerically, strings lexically, equal JSON is equal; anything else is
/// unordered (only `!=` holds).
fn compare_json(actual: &Value, expected: &Value) -> Option<Ordering> {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) if a == b => Some(Ordering::Equal),
        _ => None,
    }
}

/// Every document a one-shot transaction names.
pub fn txn_keys(compares: &[Compare], success: &[TxnStep], failure: &[TxnStep]) -> BTreeSet<DocKey> {
    compares.iter().map(|c| c.key.clone()).chain(success.iter().chain(failure).map(|s| s.key().clone())).collect()
}

/// Evaluates `compares` in `view` and runs the chosen branch there. Returns whether the
/// compares held and each step's result.
pub fn run_once(
    view: &mut AtomicView<'_>,
    compares: &[Compare],
    success: &[TxnStep],
    failure: &[TxnStep],
) -> Result<(bool, Vec<StepResult>), NodeError> {
    let mut all = true;
    for compare in compares {
        all &= holds(view, compare)?;
    }
    let branch = if all { success } else { failure };
    let mut results = Vec::with_capacity(branch.len());
    for step in branch {
        let (op, document) = match step {
            TxnStep::Write(key, write) => {
                view.apply(key, write)?;
                let name = match write {
                    TxnOp::Put(_) => "put",
                    TxnOp::Patch(_) => "patch",
                    TxnOp::Delete => "delete",
                };
                (name, None)
            }
            TxnStep::Get(key) => {
                let doc = view.doc(key)?;
                ("get", Some(if doc.exists() { doc.to_json() } else { Value::Null }))
            }
        };
        let key = step.key();
        results.push(StepResult { op, namespace: key.namespace.to_string(), id: key.doc_id.to_string(), document });
    }
    Ok((all, results))
}

/// One entry of [`OnceOutcome::changed`].
pub fn changed_entry(key: &DocKey, version: &str, change: Option<String>) -> Value {
    serde_json::json!({
        "namespace": key.namespace.as_str(),
        "id": key.doc_id.as_str(),
        "version": version,
        "change": change,
    })
}

impl Node {
    /// Evaluates `compares`; applies `success` if all hold, else `failure`; atomically.
    pub async fn txn_once(
        &self,
        compares: &[Compare],
        success: &[TxnStep],
        failure: &[TxnStep],
        author: Option<Arc<str>>,
    ) -> Result<OnceOutcome, NodeError> {
        let keys = txn_keys(compares, success, failure);
        let ((succeeded, results), changed) =
            self.atomic(&keys, author, |view| run_once(view, compares, success, failure)).await?;
        let changed = changed
            .into_iter()
            .map(|(key, result)| changed_entry(&key, &result.version.to_string(), result.change.map(|c| c.to_string())))
            .collect();
        Ok(OnceOutcome { succeeded, results, changed })
    }
}
