//! The loading pipeline: defaults < file < environment, then validation.
//!
//! Layers are merged as a YAML value tree and only then deserialized, so the seed
//! design's `state_management:` wrapper and environment overrides at any depth need no
//! per-key code. A value tree has no positions, though, so the file is first
//! deserialized straight from its text into a shadow of the schema: type errors and
//! unknown keys in the file are reported with line and column from that pass, and
//! later passes only attribute problems to environment variables.

use serde::Deserialize;
use serde_norway::{Mapping, Value};

use super::env::{self, EnvOverride};
use super::error::{from_yaml_error, ConfigError, ConfigProblem};
use super::locate::locate;
use super::schema::*;

const WRAPPER: &str = "state_management";

/// The configuration text and the name to blame in messages.
pub(crate) struct Document<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

pub(crate) fn load(
    file: Option<Document<'_>>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut root = match &file {
        Some(doc) => parse_document(doc)?,
        None => Mapping::new(),
    };

    let (overrides, mut problems) = env::collect(env);
    let mut applied = Vec::new();
    for over in overrides {
        match apply_checked(&mut root, &over) {
            Ok(()) => applied.push(over),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::new(problems));
    }

    inherit_namespace_defaults(&mut root);
    let source = file.as_ref().map(|doc| doc.name);
    let config = deserialize(&root).map_err(|err| {
        let mut problem = from_yaml_error(&err, false);
        problem.source = source.map(str::to_owned);
        ConfigError::from(problem)
    })?;

    config.validate().map_err(|err| {
        let problems =
            err.problems().iter().cloned().map(|problem| attribute(problem, file.as_ref(), &applied)).collect();
        ConfigError::new(problems)
    })?;
    Ok(config)
}

/// Parses the file into a mapping with the wrapper lifted, reporting positioned errors.
fn parse_document(doc: &Document<'_>) -> Result<Mapping, ConfigError> {
    if doc.text.len() > super::CONFIG_FILE_BYTES_MAX {
        return Err(ConfigError::from(ConfigProblem {
            source: Some(doc.name.to_owned()),
            location: None,
            key: None,
            message: format!("is {} bytes, more than the {}-byte limit", doc.text.len(), super::CONFIG_FILE_BYTES_MAX),
        }));
    }
    let located = |err: serde_norway::Error| ConfigError::from(from_yaml_error(&err, true).with_source(doc.name));
    let value: Value = serde_norway::from_str(doc.text).map_err(located)?;
    let not_a_mapping = |key: Option<&str>| {
        ConfigError::from(ConfigProblem {
            source: Some(doc.name.to_owned()),
            location: key.and_then(|key| locate(doc.text, key)),
            key: key.map(str::to_owned),
            message: "must be a mapping of sections (`section:` lines with indented keys)".to_owned(),
        })
    };
    let mut root = match value {
        Value::Mapping(mapping) => mapping,
        Value::Null => Mapping::new(),
        _ => return Err(not_a_mapping(None)),
    };
    if !matches!(root.get(WRAPPER), None | Some(Value::Null | Value::Mapping(_))) {
        return Err(not_a_mapping(Some(WRAPPER)));
    }
    serde_norway::from_str::<FileShape>(doc.text).map_err(located)?;
    lift_wrapper(&mut root, doc)?;
    fill_empty_sections(&mut root);
    Ok(root)
}

/// Merges the keys of a root-level `state_management:` mapping into the root.
fn lift_wrapper(root: &mut Mapping, doc: &Document<'_>) -> Result<(), ConfigError> {
    let Some(Value::Mapping(wrapped)) = root.remove(WRAPPER) else {
        return Ok(());
    };
    let mut problems = Vec::new();
    for (key, value) in wrapped {
        if root.contains_key(&key) {
            let name = key.as_str().unwrap_or("?");
            let path = format!("{WRAPPER}.{name}");
            problems.push(ConfigProblem {
                source: Some(doc.name.to_owned()),
                location: locate(doc.text, &path),
                key: Some(path),
                message: format!("`{name}` is also given at the top level; keep only one"),
            });
        } else {
            root.insert(key, value);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::new(problems))
    }
}

/// Applies one override, keeping the tree unchanged and naming the variable if the
/// result no longer deserializes.
fn apply_checked(root: &mut Mapping, over: &EnvOverride) -> Result<(), ConfigProblem> {
    let mut candidate = root.clone();
    env::apply(&mut candidate, over)?;
    fill_empty_sections(&mut candidate);
    if let Err(err) = deserialize(&candidate) {
        let mut problem = from_yaml_error(&err, false).with_source(over.var.clone());
        problem.key.get_or_insert_with(|| over.dotted_path());
        return Err(problem);
    }
    *root = candidate;
    Ok(())
}

/// A section left empty (`storage:` with every key commented out) parses as null, which
/// the positioned pass reads as "absent" but a re-serialized tree would not. Structs and
/// maps never take null, so null there is made an empty mapping: all defaults.
fn fill_empty_sections(root: &mut Mapping) {
    fn fill(value: &mut Value) {
        if value.is_null() {
            *value = Value::Mapping(Mapping::new());
        }
    }
    root.values_mut().for_each(fill);
    let Some(Value::Mapping(namespaces)) = root.get_mut("namespaces") else {
        return;
    };
    for key in ["defaults", "declared"] {
        if let Some(value) = namespaces.get_mut(key) {
            fill(value);
        }
    }
    if let Some(Value::Mapping(declared)) = namespaces.get_mut("declared") {
        declared.values_mut().for_each(fill);
    }
}

/// Declared namespace policies start from `namespaces.defaults`, so a declaration only
/// states what differs. Without this, a key left out of a declaration would silently
/// fall back to the built-in default instead of the operator's own.
fn inherit_namespace_defaults(root: &mut Mapping) {
    let Some(Value::Mapping(namespaces)) = root.get_mut("namespaces") else {
        return;
    };
    let Some(Value::Mapping(defaults)) = namespaces.get("defaults").cloned() else {
        return;
    };
    let Some(Value::Mapping(declared)) = namespaces.get_mut("declared") else {
        return;
    };
    for policy in declared.values_mut() {
        if let Value::Mapping(policy) = policy {
            for (key, value) in &defaults {
                if !policy.contains_key(key) {
                    policy.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

/// Deserializes through YAML text rather than `from_value`: text deserialization
/// accepts `name: 123` for a string key, as the file pass does, and reports key paths.
fn deserialize(root: &Mapping) -> Result<Config, serde_norway::Error> {
    let text = serde_norway::to_string(root)?;
    serde_norway::from_str(&text)
}

/// Names where a validation problem's value came from: the last environment override
/// covering its key, else the file (with the key's line when it can be found).
fn attribute(mut problem: ConfigProblem, file: Option<&Document<'_>>, applied: &[EnvOverride]) -> ConfigProblem {
    let key = problem.key.clone().unwrap_or_default();
    let from_env = applied.iter().rev().find(|over| {
        let path = over.dotted_path();
        key == path || key.strip_prefix(&path).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    });
    if let Some(over) = from_env {
        problem.source = Some(over.var.clone());
    } else if let Some(doc) = file {
        problem.source = Some(doc.name.to_owned());
        problem.location = locate(doc.text, &key);
    }
    problem
}

/// Generates a struct with every section as an optional field plus `$extra` fields.
/// These shadow `Config` for the positioned file pass; their values are never read.
macro_rules! file_shape {
    ($name:ident { $($extra:ident: $extra_ty:ty,)* }) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct $name {
            $($extra: $extra_ty,)*
            node: Option<NodeConfig>,
            api: Option<ApiConfig>,
            p2p: Option<P2pConfig>,
            storage: Option<StorageConfig>,
            concurrency: Option<ConcurrencyConfig>,
            history: Option<HistoryConfig>,
            snapshots: Option<SnapshotsConfig>,
            distributed: Option<DistributedConfig>,
            notifications: Option<NotificationsConfig>,
            namespaces: Option<NamespacesConfig>,
            security: Option<SecurityConfig>,
            log: Option<LogConfig>,
        }
    };
}

file_shape!(Sections {});
file_shape!(FileShape {
    state_management: Option<Sections>,
});
