//! `ConfigError`: every problem found while loading, one line each.
//!
//! Operators fix configuration by reading these messages, so each line says where the
//! value came from (file or environment variable), which key, what is wrong and, when
//! known, the line and column. Problems are collected rather than stopping at the
//! first, so one edit-and-retry cycle can fix them all.

use std::fmt;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// File name or environment variable the offending value came from, if known.
    pub source: Option<String>,
    /// Dotted key path such as `storage.cache_docs` or `p2p.listen[0]`.
    pub key: Option<String>,
    pub message: String,
    /// 1-based line and column in `source`, if known.
    pub location: Option<(usize, usize)>,
}

impl ConfigProblem {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { source: None, key: Some(key.into()), message: message.into(), location: None }
    }

    pub(crate) fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(source) = &self.source {
            write!(f, "{source}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some((line, column)) = self.location {
            write!(f, " at line {line} column {column}")?;
        }
        Ok(())
    }
}

/// The configuration could not be loaded; `Display` prints one line per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

fn render(problems: &[ConfigProblem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

impl ConfigError {
    pub(crate) fn new(problems: Vec<ConfigProblem>) -> Self {
        Self { problems }
    }

    /// Every problem found, in the order they were detected.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }
}

impl From<ConfigProblem> for ConfigError {
    fn from(problem: ConfigProblem) -> Self {
        Self::new(vec![problem])
    }
}

/// Splits a serde_norway error into key path, message and location.
///
/// serde_norway renders errors as "`path`: `message` at line L column C" and offers the
/// location but not the path separately, so the path is recovered from the text. For an
/// unknown field it names the enclosing mapping; the field itself is appended so the key
/// reads `storage.compresion` rather than `storage`. `keep_location` is false when the
/// YAML was generated internally and its line numbers would mean nothing to a reader.
pub(crate) fn from_yaml_error(err: &serde_norway::Error, keep_location: bool) -> ConfigProblem {
    let mut message = err.to_string();
    let mut location = None;
    if let Some(loc) = err.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
            location = keep_location.then_some((loc.line(), loc.column()));
        } else if (loc.line(), loc.column()) == (1, 1) && !message.contains(" at line ") {
            // serde_norway leaves the position out of the text when it is the very start.
            location = keep_location.then_some((1, 1));
        }
    }
    let mut key = None;
    if let Some((prefix, rest)) = message.split_once(": ") {
        let is_path = !prefix.is_empty() && !prefix.contains(|c: char| c.is_whitespace() || c == '`' || c == '"');
        if is_path {
            key = Some(prefix.to_owned());
            message = rest.to_owned();
        }
    }
    if let Some(field) = message.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next()) {
        key = Some(match key {
            Some(parent) => format!("{parent}.{field}"),
            None => field.to_owned(),
        });
    }
    ConfigProblem { source: None, key, message, location }
}
