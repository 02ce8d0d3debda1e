//! RFC 7386 JSON merge patch, on plain JSON and directly on an Automerge map.
//!
//! Applying the patch to the Automerge tree (rather than computing the merged JSON and
//! replacing the document) keeps the change down to the fields the patch names.

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, Prop, ReadDoc, Value as AmValue};
use serde_json::{Map, Value};

use super::{reconcile, DocError};
use crate::limits::JSON_DEPTH_MAX;

/// Applies `patch` to `target` per RFC 7386.
pub fn merge_patch_json(target: &mut Value, patch: &Value) {
    let Value::Object(patch_fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_fields) = target {
        for (key, value) in patch_fields {
            if value.is_null() {
                target_fields.remove(key);
            } else {
                merge_patch_json(target_fields.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Applies the object patch `patch` to the Automerge map `obj`.
pub fn apply(tx: &mut Transaction<'_>, obj: &ObjId, patch: &Map<String, Value>, depth: usize) -> Result<(), DocError> {
    if depth > JSON_DEPTH_MAX {
        return Err(DocError::TooDeep(JSON_DEPTH_MAX));
    }
    for (key, value) in patch {
        let current = tx.get(obj, key.as_str())?.map(|(value, id)| (value.into_owned(), id));
        match (value, current) {
            (Value::Null, Some(_)) => tx.delete(obj, key.as_str())?,
            (Value::Null, None) => {}
            (Value::Object(fields), Some((AmValue::Object(ObjType::Map), id))) => apply(tx, &id, fields, depth + 1)?,
            (Value::Object(fields), _) => {
                let id = tx.put_object(obj, key.as_str(), ObjType::Map)?;
                apply(tx, &id, fields, depth + 1)?;
            }
            (other, current) => reconcile::prop_over(tx, obj, Prop::Map(key.clone()), other, current, depth)?,
        }
    }
    Ok(())
}
