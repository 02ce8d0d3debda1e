//! Namespace rules: which namespaces exist and what a write to each must satisfy.
//!
//! JSON schemas are compiled once at start-up; a schema that does not compile stops the node
//! (and fails `statemesh config check`) instead of failing every write later.

use std::collections::BTreeMap;

use serde_json::Value;
use statemesh_protocol::Namespace;

use super::NodeError;
use crate::config::{NamespaceConsistency, NamespacePolicy, NamespacesConfig};

/// A namespace policy with its schema compiled.
pub struct NamespaceRules {
    pub policy: NamespacePolicy,
    schema: Option<jsonschema::Validator>,
}

impl std::fmt::Debug for NamespaceRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceRules").field("policy", &self.policy).finish()
    }
}

impl NamespaceRules {
    fn compile(name: &str, policy: &NamespacePolicy) -> Result<Self, String> {
        let schema = match &policy.schema {
            Some(schema) => Some(
                jsonschema::validator_for(schema)
                    .map_err(|e| format!("namespaces.{name}.schema is not a valid JSON Schema: {e}"))?,
            ),
            None => None,
        };
        Ok(Self { policy: policy.clone(), schema })
    }

    pub fn has_schema(&self) -> bool {
        self.schema.is_some()
    }

    /// Refuses a document (as JSON) that breaks the size limit or the schema; returns its
    /// size as JSON.
    pub fn check(&self, namespace: &Namespace, json: &Value) -> Result<usize, NodeError> {
        let size = json_bytes(json);
        if size as u64 > self.policy.max_doc_bytes {
            return Err(NodeError::DocumentTooLarge {
                namespace: namespace.to_string(),
                size,
                max: self.policy.max_doc_bytes,
            });
        }
        if let Some(schema) = &self.schema {
            let problems: Vec<String> = schema
                .iter_errors(json)
                .take(5)
                .map(|e| {
                    let at = e.instance_path().to_string();
                    if at.is_empty() {
                        e.to_string()
                    } else {
                        format!("{at}: {e}")
                    }
                })
                .collect();
            if !problems.is_empty() {
                return Err(NodeError::SchemaViolation {
                    namespace: namespace.to_string(),
                    message: problems.join("; "),
                });
            }
        }
        Ok(size)
    }

    /// Checks a merge patch before it is applied. The merged document's size is at most the
    /// current size plus the patch's, so when that bound fits and no schema applies the
    /// merged JSON need not be built. `bound` carries the running upper bound of the
    /// document's JSON size between writes (`None`: unknown).
    pub fn check_patch(
        &self,
        namespace: &Namespace,
        doc: &statemesh_protocol::Document,
        patch: &Value,
        bound: &mut Option<usize>,
    ) -> Result<(), NodeError> {
        let patch_size = json_bytes(patch);
        if let Some(current) = *bound {
            let fits = (current + patch_size) as u64 <= self.policy.max_doc_bytes;
            if fits && self.schema.is_none() {
                *bound = Some(current + patch_size);
                return Ok(());
            }
        }
        *bound = Some(self.check(namespace, &doc.preview_merge_patch(patch))?);
        Ok(())
    }
}

fn json_bytes(json: &Value) -> usize {
    serde_json::to_vec(json).map_or(usize::MAX, |bytes| bytes.len())
}

/// Every namespace's rules.
#[derive(Debug)]
pub struct Namespaces {
    strict: bool,
    defaults: NamespaceRules,
    declared: BTreeMap<String, NamespaceRules>,
}

impl Namespaces {
    pub fn compile(config: &NamespacesConfig) -> Result<Self, String> {
        let declared = config
            .declared
            .iter()
            .map(|(name, policy)| Ok((name.clone(), NamespaceRules::compile(name, policy)?)))
            .collect::<Result<_, String>>()?;
        Ok(Self { strict: config.strict, defaults: NamespaceRules::compile("defaults", &config.defaults)?, declared })
    }

    /// The rules for `namespace`, or an error when strict mode does not know it.
    pub fn rules(&self, namespace: &Namespace) -> Result<&NamespaceRules, NodeError> {
        match self.declared.get(namespace.as_str()) {
            Some(rules) => Ok(rules),
            None if self.strict => Err(NodeError::UnknownNamespace(namespace.to_string())),
            None => Ok(&self.defaults),
        }
    }

    /// The rules for a local (eventual) write to `namespace`: refused in a strong namespace,
    /// which takes only writes committed through Raft.
    pub fn writable(&self, namespace: &Namespace) -> Result<&NamespaceRules, NodeError> {
        let rules = self.rules(namespace)?;
        if rules.policy.consistency == NamespaceConsistency::Strong {
            return Err(NodeError::StrongNamespace(namespace.to_string()));
        }
        Ok(rules)
    }

    /// Whether `namespace` is a strong namespace.
    pub fn is_strong(&self, namespace: &Namespace) -> Result<bool, NodeError> {
        Ok(self.rules(namespace)?.policy.consistency == NamespaceConsistency::Strong)
    }

    /// Declared namespace names.
    pub fn declared(&self) -> impl Iterator<Item = &str> {
        self.declared.keys().map(String::as_str)
    }
}
