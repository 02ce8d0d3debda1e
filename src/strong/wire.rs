//! Requests a member forwards to the leader, and the leader's answers.
//!
//! JSON bodies travel as JSON text (bincode cannot carry `serde_json::Value`'s self-describing
//! form), versions as their text form. A leader that cannot decode a request answers with a
//! failure, never by acting on a guess.

use serde::{Deserialize, Serialize};
use statemesh_protocol::limits::MESSAGE_BYTES_CEILING;
use statemesh_protocol::{ChangeId, DocKey, Version};

use super::error::StrongDocError;
use super::StrongTxn;
use crate::node::{CommitSet, Compare, CompareOp, CompareTarget, Precondition, TxnOp, TxnStep};
use crate::raft::{LogPosition, NodeInfo, RaftNodeId};
use crate::storage::codec;

/// A request forwarded to the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireRequest {
    Write(WireWrite),
    Txn(WireTxn),
    Commit(WireCommit),
    AddLearner(NodeInfo),
    Promote(RaftNodeId),
    Remove(RaftNodeId),
}

/// What the leader did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireDone {
    Written(WireWritten),
    Membership(LogPosition),
    /// The transaction's response body as JSON text, and its Raft index.
    Txn {
        body: String,
        index: Option<u64>,
    },
}

/// A forwarded interactive transaction's commit: versions read, writes buffered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCommit {
    pub reads: Vec<(DocKey, String)>,
    pub writes: Vec<(DocKey, WireOp)>,
}

impl WireCommit {
    pub fn from_set(set: &CommitSet) -> Self {
        Self {
            reads: set.reads.iter().map(|(key, version)| (key.clone(), version.to_string())).collect(),
            writes: set.writes.iter().map(|(key, op)| (key.clone(), WireOp::from_op(op))).collect(),
        }
    }

    pub fn into_set(self) -> Result<CommitSet, String> {
        let reads = self
            .reads
            .into_iter()
            .map(|(key, text)| Ok((key, text.parse::<Version>().map_err(|e| format!("forwarded version: {e}"))?)))
            .collect::<Result<_, String>>()?;
        let writes = self.writes.into_iter().map(|(key, op)| Ok((key, op.to_op()?))).collect::<Result<_, String>>()?;
        Ok(CommitSet { reads, writes })
    }
}

/// A forwarded one-shot transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTxn {
    pub compares: Vec<WireCompare>,
    pub success: Vec<WireStep>,
    pub failure: Vec<WireStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCompare {
    pub doc: DocKey,
    pub op: CompareOp,
    pub target: WireTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireTarget {
    Version(String),
    Exists(bool),
    /// A JSON Pointer and the JSON value as text.
    Value {
        pointer: String,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireStep {
    Write { doc: DocKey, op: WireOp },
    Get { doc: DocKey },
}

/// A forwarded write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireWrite {
    pub doc: DocKey,
    pub op: WireOp,
    pub pre: WirePrecondition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireOp {
    Put(String),
    Patch(String),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WirePrecondition {
    None,
    IfMatch(String),
    Exists,
    Absent,
}

/// What the leader did with a forwarded write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireWritten {
    pub version: String,
    pub change: Option<ChangeId>,
    pub created: bool,
    pub index: Option<u64>,
}

/// Why the leader did not do it: the HTTP status, code and message it would have answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

pub type WireAnswer = Result<WireDone, WireFailure>;

impl WireOp {
    pub fn from_op(op: &TxnOp) -> Self {
        match op {
            TxnOp::Put(body) => WireOp::Put(body.to_string()),
            TxnOp::Patch(patch) => WireOp::Patch(patch.to_string()),
            TxnOp::Delete => WireOp::Delete,
        }
    }

    pub fn to_op(&self) -> Result<TxnOp, String> {
        let parse = |text: &str| serde_json::from_str(text).map_err(|e| format!("forwarded JSON: {e}"));
        Ok(match self {
            WireOp::Put(text) => TxnOp::Put(parse(text)?),
            WireOp::Patch(text) => TxnOp::Patch(parse(text)?),
            WireOp::Delete => TxnOp::Delete,
        })
    }
}

impl WireTxn {
    pub fn from_txn(txn: &StrongTxn) -> Self {
        let steps = |steps: &[TxnStep]| {
            steps
                .iter()
                .map(|step| match step {
                    TxnStep::Write(doc, op) => WireStep::Write { doc: doc.clone(), op: WireOp::from_op(op) },
                    TxnStep::Get(doc) => WireStep::Get { doc: doc.clone() },
                })
                .collect()
        };
        let compares = txn
            .compares
            .iter()
            .map(|c| WireCompare {
                doc: c.key.clone(),
                op: c.op,
                target: match &c.target {
                    CompareTarget::Version(version) => WireTarget::Version(version.to_string()),
                    CompareTarget::Exists(wanted) => WireTarget::Exists(*wanted),
                    CompareTarget::Value { pointer, value } => {
                        WireTarget::Value { pointer: pointer.clone(), value: value.to_string() }
                    }
                },
            })
            .collect();
        Self { compares, success: steps(&txn.success), failure: steps(&txn.failure) }
    }

    pub fn into_txn(self) -> Result<StrongTxn, String> {
        let steps = |steps: Vec<WireStep>| -> Result<Vec<TxnStep>, String> {
            steps
                .into_iter()
                .map(|step| match step {
                    WireStep::Write { doc, op } => Ok(TxnStep::Write(doc, op.to_op()?)),
                    WireStep::Get { doc } => Ok(TxnStep::Get(doc)),
                })
                .collect()
        };
        let compares = self
            .compares
            .into_iter()
            .map(|c| {
                let target = match c.target {
                    WireTarget::Version(text) => {
                        CompareTarget::Version(text.parse::<Version>().map_err(|e| format!("forwarded version: {e}"))?)
                    }
                    WireTarget::Exists(wanted) => CompareTarget::Exists(wanted),
                    WireTarget::Value { pointer, value } => CompareTarget::Value {
                        pointer,
                        value: serde_json::from_str(&value).map_err(|e| format!("forwarded JSON: {e}"))?,
                    },
                };
                Ok(Compare { key: c.doc, op: c.op, target })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(StrongTxn { compares, success: steps(self.success)?, failure: steps(self.failure)? })
    }
}

impl WirePrecondition {
    pub fn from_precondition(pre: &Precondition) -> Self {
        match pre {
            Precondition::None => WirePrecondition::None,
            Precondition::IfMatch(version) => WirePrecondition::IfMatch(version.to_string()),
            Precondition::Exists => WirePrecondition::Exists,
            Precondition::Absent => WirePrecondition::Absent,
        }
    }

    pub fn to_precondition(&self) -> Result<Precondition, String> {
        Ok(match self {
            WirePrecondition::None => Precondition::None,
            WirePrecondition::IfMatch(text) => {
                Precondition::IfMatch(text.parse::<Version>().map_err(|e| format!("forwarded version: {e}"))?)
            }
            WirePrecondition::Exists => Precondition::Exists,
            WirePrecondition::Absent => Precondition::Absent,
        })
    }
}

impl WireFailure {
    pub fn into_error(self) -> StrongDocError {
        StrongDocError::Remote { status: self.status, code: self.code, message: self.message }
    }
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    codec::encode(value)
}

/// Decodes a forwarded request or answer: a peer's bytes, so lengths are held to the input.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    codec::decode_bounded(bytes, what, MESSAGE_BYTES_CEILING).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_write_claiming_a_terabyte_body_is_refused_without_allocating_it() {
        // Format byte, `Write` (variant 0), then the namespace string of the document key
        // claiming 2^40 bytes: twelve bytes a member could send the leader.
        let mut hostile = vec![1, 0, 0xfd];
        hostile.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode::<WireRequest>(&hostile, "forwarded request").is_err());
    }

    #[test]
    fn a_forwarded_request_round_trips() {
        let request = WireRequest::Promote(3);
        assert_eq!(decode::<WireRequest>(&encode(&request), "forwarded request"), Ok(request));
    }
}
