//! Environment overrides: `STATEMESH_<SECTION>__<KEY>[__<KEY>...]=<yaml value>`.
//!
//! Containers and service managers configure through the environment, so every key in
//! the file can also be set there. Overrides are applied to the YAML value tree before
//! typed deserialization, which lets them reach any depth (a declared namespace's
//! policy, say) and gives them exactly the parsing rules of the file.

use serde_norway::{Mapping, Value};

use super::error::ConfigProblem;

const PREFIX: &str = "STATEMESH_";
const SEPARATOR: &str = "__";

/// One `STATEMESH_..__..` variable, parsed.
#[derive(Debug, Clone)]
pub(crate) struct EnvOverride {
    pub var: String,
    /// Lower-cased key path, e.g. `["storage", "cache_docs"]`.
    pub path: Vec<String>,
    pub value: Value,
}

impl EnvOverride {
    pub fn dotted_path(&self) -> String {
        self.path.join(".")
    }
}

/// Picks the override variables out of `env`, ordered so a section set as a whole is
/// applied before deeper keys refine it. Variables with the prefix but no `__` are CLI
/// flags (such as `STATEMESH_CONFIG`) and are skipped. Malformed variables come back as
/// problems alongside the well-formed overrides so all of them can be reported at once.
pub(crate) fn collect(env: impl IntoIterator<Item = (String, String)>) -> (Vec<EnvOverride>, Vec<ConfigProblem>) {
    let mut overrides = Vec::new();
    let mut problems = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(PREFIX) else {
            continue;
        };
        if !rest.contains(SEPARATOR) {
            continue;
        }
        let path: Vec<String> = rest.split(SEPARATOR).map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push(ConfigProblem {
                source: Some(var.clone()),
                key: None,
                message: "empty key segment in variable name; use \
                          STATEMESH_<SECTION>__<KEY>, e.g. STATEMESH_API__LISTEN"
                    .to_owned(),
                location: None,
            });
            continue;
        }
        match parse_value(&raw) {
            Ok(value) => overrides.push(EnvOverride { var, path, value }),
            Err(err) => problems.push(ConfigProblem {
                source: Some(var.clone()),
                key: Some(path.join(".")),
                message: format!("value `{raw}` is not valid YAML: {err}"),
                location: None,
            }),
        }
    }
    overrides.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| a.var.cmp(&b.var)));
    (overrides, problems)
}

/// Parses a variable's text as a YAML scalar or flow value (`true`, `5`, `[a, b]`, `30s`).
///
/// A float that does not print back as the text it came from (a 64-digit hex key that
/// happens to be all digits, say) is kept as the original text: no setting here is a
/// float, and silently rounding a key would be far worse than a type error.
fn parse_value(raw: &str) -> Result<Value, serde_norway::Error> {
    let value: Value = serde_norway::from_str(raw)?;
    if let Value::Number(n) = &value {
        if n.is_f64() && n.to_string() != raw.trim() {
            return Ok(Value::String(raw.to_owned()));
        }
    }
    Ok(value)
}

/// Sets `path` in `root` to `value`, creating intermediate mappings as needed.
pub(crate) fn apply(root: &mut Mapping, over: &EnvOverride) -> Result<(), ConfigProblem> {
    let (last, parents) = match over.path.split_last() {
        Some(split) => split,
        None => return Ok(()),
    };
    let mut node = root;
    for (depth, segment) in parents.iter().enumerate() {
        let key = Value::String(segment.clone());
        let slot = node.entry(key).or_insert_with(|| Value::Mapping(Mapping::new()));
        if slot.is_null() {
            *slot = Value::Mapping(Mapping::new());
        }
        node = match slot {
            Value::Mapping(mapping) => mapping,
            _ => {
                return Err(ConfigProblem {
                    source: Some(over.var.clone()),
                    key: Some(over.path[..=depth].join(".")),
                    message: format!("is a value, not a section, so `{}` cannot be set", over.dotted_path()),
                    location: None,
                })
            }
        };
    }
    node.insert(Value::String(last.clone()), over.value.clone());
    Ok(())
}
