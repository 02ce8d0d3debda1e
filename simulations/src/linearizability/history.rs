//! What clients saw, and the JSON-lines file that records it.
//!
//! A history lists, for every client operation, the key, the client, what it asked, when it
//! was invoked, when (if ever) its answer came, and the outcome. The file holds one JSON object
//! per line so that a recorder can append as it goes and a person can grep it; a line that does
//! not describe a valid operation is reported with its line number, never half-accepted.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

/// Identifies the client that issued an operation; only used in reports.
pub type ClientId = u64;

/// What a client asked of one key, and for a read, what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `result` is `None` when the key was absent. Only meaningful when the outcome is `Ok`.
    Read {
        result: Option<String>,
    },
    /// A put of a value no other write uses.
    Write {
        value: String,
    },
    Delete,
    /// Replace `expected` (`None`: the key is absent) with `new`.
    Cas {
        expected: Option<String>,
        new: String,
    },
}

/// How an operation ended, as far as its client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect (a read: it saw `result`).
    Ok,
    /// It definitely did not take effect. For a cas: the register did not hold `expected`; for a
    /// delete: the key was absent (not found).
    Fail,
    /// No answer (timeout, connection error, 503 after sending): it may take effect at any time
    /// after its invocation, or never.
    Unknown,
}

/// One client operation on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub key: String,
    pub client: ClientId,
    pub op: Op,
    pub invoke_ns: u64,
    /// When the answer came; `None` is only allowed for an unknown outcome, whose completion
    /// the checker treats as never, whatever this says.
    pub complete_ns: Option<u64>,
    pub outcome: Outcome,
}

impl Operation {
    /// What the types cannot say: a definite outcome has a completion time, which is not before
    /// the invocation.
    pub fn validate(&self) -> Result<(), String> {
        match (self.complete_ns, self.outcome) {
            (None, Outcome::Ok | Outcome::Fail) => {
                Err(format!("outcome {} needs complete_ns", outcome_name(self.outcome)))
            }
            (Some(complete), _) if complete < self.invoke_ns => {
                Err(format!("complete_ns {complete} is before invoke_ns {}", self.invoke_ns))
            }
            _ => Ok(()),
        }
    }

    /// The operation as one line of a history file (without the newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(&Line::from(self)).expect("a line of strings and integers always serializes")
    }
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot read the history")]
    Io(#[from] std::io::Error),
    /// `line` counts from 1, blank lines included.
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    /// An operation handed to the checker directly; `number` counts from 1.
    #[error("operation {number}: {message}")]
    Operation { number: usize, message: String },
}

/// Reads a JSON-lines history file (see [`parse_history`]).
pub fn read_history_file(path: &Path) -> Result<Vec<Operation>, HistoryError> {
    parse_history(&std::fs::read_to_string(path)?)
}

/// Parses a JSON-lines history: one operation per line, blank lines skipped. Fields that the
/// format does not know are ignored, so recorders may add their own (a node id, a version);
/// those of another kind of operation must be absent or null.
pub fn parse_history(text: &str) -> Result<Vec<Operation>, HistoryError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| parse_line(line).map_err(|message| HistoryError::Line { line: index + 1, message }))
        .collect()
}

fn parse_line(line: &str) -> Result<Operation, String> {
    let line: Line = serde_json::from_str(line).map_err(|error| json_message(&error))?;
    let operation = line.into_operation()?;
    operation.validate()?;
    Ok(operation)
}

/// serde_json's message without its "at line 1 column N" suffix, which would name the wrong line.
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) => format!("{message} (column {})", error.column()),
        None => text,
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Unknown => "unknown",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OpName {
    Read,
    Write,
    Delete,
    Cas,
}

impl OpName {
    fn as_str(self) -> &'static str {
        match self {
            OpName::Read => "read",
            OpName::Write => "write",
            OpName::Delete => "delete",
            OpName::Cas => "cas",
        }
    }
}

/// One line of the file, as written. `result` and `expected` distinguish "absent from the line"
/// (outer `None`) from `null` (the key was absent).
#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    client: ClientId,
    op: OpName,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    expected: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    result: Option<Option<String>>,
    invoke_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    complete_ns: Option<u64>,
    outcome: Outcome,
}

/// A field that is on the line, possibly as `null`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl Line {
    fn into_operation(self) -> Result<Operation, String> {
        let name = self.op;
        // A field of another kind of operation may be there, as long as it is null.
        let misplaced = |field: &str, set: bool| match set {
            true => Err(format!("{field} does not belong to a {} operation", name.as_str())),
            false => Ok(()),
        };
        let op = match name {
            OpName::Read => {
                misplaced("value", self.value.is_some())?;
                misplaced("expected", self.expected.as_ref().is_some_and(Option::is_some))?;
                match (self.result, self.outcome) {
                    (Some(result), _) => Op::Read { result },
                    (None, Outcome::Ok) => return Err("an ok read needs result (null when absent)".into()),
                    (None, _) => Op::Read { result: None },
                }
            }
            OpName::Write => {
                misplaced("result", self.result.as_ref().is_some_and(Option::is_some))?;
                misplaced("expected", self.expected.as_ref().is_some_and(Option::is_some))?;
                Op::Write { value: self.value.ok_or("a write needs a string value")? }
            }
            OpName::Delete => {
                misplaced("value", self.value.is_some())?;
                misplaced("result", self.result.as_ref().is_some_and(Option::is_some))?;
                misplaced("expected", self.expected.as_ref().is_some_and(Option::is_some))?;
                Op::Delete
            }
            OpName::Cas => {
                misplaced("result", self.result.as_ref().is_some_and(Option::is_some))?;
                Op::Cas {
                    expected: self.expected.ok_or("a cas needs expected (null: the key must be absent)")?,
                    new: self.value.ok_or("a cas needs a string value")?,
                }
            }
        };
        Ok(Operation {
            key: self.key,
            client: self.client,
            op,
            invoke_ns: self.invoke_ns,
            complete_ns: self.complete_ns,
            outcome: self.outcome,
        })
    }
}

impl From<&Operation> for Line {
    fn from(operation: &Operation) -> Self {
        let (op, expected, value, result) = match &operation.op {
            Op::Read { result } => {
                let result = (operation.outcome == Outcome::Ok).then(|| result.clone());
                (OpName::Read, None, None, result)
            }
            Op::Write { value } => (OpName::Write, None, Some(value.clone()), None),
            Op::Delete => (OpName::Delete, None, None, None),
            Op::Cas { expected, new } => (OpName::Cas, Some(expected.clone()), Some(new.clone()), None),
        };
        Line {
            key: operation.key.clone(),
            client: operation.client,
            op,
            expected,
            value,
            result,
            invoke_ns: operation.invoke_ns,
            complete_ns: operation.complete_ns,
            outcome: operation.outcome,
        }
    }
}

/// A register value for people: quoted, or `absent`.
pub(crate) struct ShowValue<'a>(pub Option<&'a str>);

impl fmt::Display for ShowValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value:?}"),
            None => f.write_str("absent"),
        }
    }
}

/// `client 3 cas "c1-4" -> "c3-9" fail [120 .. 480 ns]`, without the key.
impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} ", self.client)?;
        match &self.op {
            Op::Read { result } if self.outcome == Outcome::Ok => write!(f, "read = {}", ShowValue(result.as_deref())),
            Op::Read { .. } => f.write_str("read"),
            Op::Write { value } => write!(f, "write {value:?}"),
            Op::Delete => f.write_str("delete"),
            Op::Cas { expected, new } => write!(f, "cas {} -> {new:?}", ShowValue(expected.as_deref())),
        }?;
        write!(f, " {} [{} .. ", outcome_name(self.outcome), self.invoke_ns)?;
        match self.complete_ns {
            Some(complete) => write!(f, "{complete} ns]"),
            None => f.write_str("? ns]"),
        }
    }
}
