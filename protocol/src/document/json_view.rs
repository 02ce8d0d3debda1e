//! The JSON view of an Automerge document.
//!
//! Automerge has more types than JSON; the mapping is lossy in one direction only, and chosen
//! so a JSON client round-trips what it wrote: text objects and strings read as strings,
//! counters and timestamps as numbers, bytes as arrays of numbers, non-finite floats as null.

use automerge::hydrate;
use automerge::{Automerge, ChangeHash, ScalarValue};
use serde_json::{Map, Number, Value};

/// The whole document (at `heads`, or now) as a JSON object.
pub fn document_json(doc: &Automerge, heads: Option<&[ChangeHash]>) -> Value {
    match to_json(&doc.hydrate(heads)) {
        object @ Value::Object(_) => object,
        _ => Value::Object(Map::new()),
    }
}

fn to_json(value: &hydrate::Value) -> Value {
    match value {
        hydrate::Value::Scalar(scalar) => scalar_json(scalar),
        hydrate::Value::Map(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(&v.value))).collect()),
        hydrate::Value::List(list) => Value::Array(list.iter().map(|v| to_json(&v.value)).collect()),
        hydrate::Value::Text(text) => Value::String(text.to_string()),
    }
}

pub(crate) fn scalar_json(scalar: &ScalarValue) -> Value {
    match scalar {
        ScalarValue::Null | ScalarValue::Unknown { .. } => Value::Null,
        ScalarValue::Boolean(b) => Value::Bool(*b),
        ScalarValue::Str(s) => Value::String(s.to_string()),
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Value::Number((*i).into()),
        ScalarValue::Uint(u) => Value::Number((*u).into()),
        ScalarValue::Counter(c) => Value::Number(i64::from(c).into()),
        ScalarValue::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        ScalarValue::Bytes(bytes) => Value::Array(bytes.iter().map(|b| Value::from(*b)).collect()),
    }
}
