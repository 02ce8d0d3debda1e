//! Bringing an Automerge object in line with a target JSON value, touching only what differs.
//!
//! Writing only the differences is what makes a whole-document `PUT` merge well: two nodes
//! replacing a document concurrently conflict only on the fields they both changed. Strings
//! written over Automerge text objects are spliced (so collaborative text keeps its identity),
//! and numbers written over counters become increments.

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, Prop, ReadDoc, ScalarValue, Value as AmValue};
use serde_json::{Map, Value};

use super::DocError;
use crate::limits::JSON_DEPTH_MAX;

/// Makes the map `obj` hold exactly `target`.
pub fn map(tx: &mut Transaction<'_>, obj: &ObjId, target: &Map<String, Value>, depth: usize) -> Result<(), DocError> {
    check_depth(depth)?;
    let stale: Vec<String> = tx.keys(obj).filter(|k| !target.contains_key(k)).collect();
    for key in stale {
        tx.delete(obj, key)?;
    }
    for (key, value) in target {
        prop(tx, obj, Prop::Map(key.clone()), value, depth)?;
    }
    Ok(())
}

/// Makes the list `obj` hold exactly `target`, element by element.
fn list(tx: &mut Transaction<'_>, obj: &ObjId, target: &[Value], depth: usize) -> Result<(), DocError> {
    check_depth(depth)?;
    let current_len = tx.length(obj);
    for (index, value) in target.iter().enumerate() {
        if index < current_len {
            prop(tx, obj, Prop::Seq(index), value, depth)?;
        } else {
            insert(tx, obj, index, value, depth)?;
        }
    }
    for index in (target.len()..current_len).rev() {
        tx.delete(obj, index)?;
    }
    Ok(())
}

/// Makes the value at `obj[key]` equal `target`.
pub fn prop(tx: &mut Transaction<'_>, obj: &ObjId, key: Prop, target: &Value, depth: usize) -> Result<(), DocError> {
    let current = tx.get(obj, key.clone())?.map(|(value, id)| (value.into_owned(), id));
    prop_over(tx, obj, key, target, current, depth)
}

/// [`prop`] for a caller that has already read `current`, the value at `obj[key]` (looking a
/// key up costs as much as writing it, so a merge patch reads each field once).
pub fn prop_over(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: Prop,
    target: &Value,
    current: Option<(AmValue<'static>, ObjId)>,
    depth: usize,
) -> Result<(), DocError> {
    match (target, current) {
        (Value::Object(fields), Some((AmValue::Object(ObjType::Map), id))) => map(tx, &id, fields, depth + 1),
        (Value::Array(items), Some((AmValue::Object(ObjType::List), id))) => list(tx, &id, items, depth + 1),
        (Value::String(text), Some((AmValue::Object(ObjType::Text), id))) => {
            tx.update_text(&id, text)?;
            Ok(())
        }
        (Value::Object(fields), _) => {
            let id = tx.put_object(obj, key, ObjType::Map)?;
            map(tx, &id, fields, depth + 1)
        }
        (Value::Array(items), _) => {
            let id = tx.put_object(obj, key, ObjType::List)?;
            list(tx, &id, items, depth + 1)
        }
        (scalar, Some((AmValue::Scalar(current), _))) => put_scalar_over(tx, obj, key, current.as_ref(), scalar),
        (scalar, _) => {
            tx.put(obj, key, to_scalar(scalar))?;
            Ok(())
        }
    }
}

fn insert(tx: &mut Transaction<'_>, obj: &ObjId, index: usize, value: &Value, depth: usize) -> Result<(), DocError> {
    match value {
        Value::Object(fields) => {
            let id = tx.insert_object(obj, index, ObjType::Map)?;
            map(tx, &id, fields, depth + 1)
        }
        Value::Array(items) => {
            let id = tx.insert_object(obj, index, ObjType::List)?;
            list(tx, &id, items, depth + 1)
        }
        scalar => {
            tx.insert(obj, index, to_scalar(scalar))?;
            Ok(())
        }
    }
}

fn put_scalar_over(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: Prop,
    current: &ScalarValue,
    target: &Value,
) -> Result<(), DocError> {
    let wanted = to_scalar(target);
    if current == &wanted {
        return Ok(());
    }
    if let (ScalarValue::Counter(counter), Some(value)) = (current, target.as_i64()) {
        let delta = value.wrapping_sub(i64::from(counter));
        if delta != 0 {
            tx.increment(obj, key, delta)?;
        }
        return Ok(());
    }
    // A JSON client re-sending a number it read keeps the stored numeric type when equal.
    if super::json_view::scalar_json(current) == *target {
        return Ok(());
    }
    tx.put(obj, key, wanted)?;
    Ok(())
}

fn to_scalar(value: &Value) -> ScalarValue {
    match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                ScalarValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                ScalarValue::Uint(u)
            } else {
                ScalarValue::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => ScalarValue::Str(s.as_str().into()),
        // Composite values never reach here; callers dispatch them first.
        Value::Array(_) | Value::Object(_) => ScalarValue::Null,
    }
}

fn check_depth(depth: usize) -> Result<(), DocError> {
    if depth > JSON_DEPTH_MAX {
        Err(DocError::TooDeep(JSON_DEPTH_MAX))
    } else {
        Ok(())
    }
}
