//! Readable rendering of API replies for the terminal.

use serde_json::Value;

use crate::client::{ListReply, Stamp, WriteReply};

pub fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("<unprintable: {e}>"))
}

/// A version shortened for tables: the first 12 hex digits of each head.
pub fn short_version(version: &str) -> String {
    version.split('.').map(|head| &head[..head.len().min(12)]).collect::<Vec<_>>().join(".")
}

pub fn write(action: &str, ns: &str, id: &str, reply: &WriteReply) -> String {
    match &reply.change {
        Some(change) => format!("{action} {ns}/{id}: version {} (change {change})", reply.version),
        None => format!("{ns}/{id} unchanged: version {}", reply.version),
    }
}

/// What a response says it reflects: `raft index 42, staleness 3 ms, served as bounded`.
pub fn stamp(stamp: &Stamp) -> String {
    let mut parts = Vec::new();
    if let Some(index) = stamp.raft_index {
        parts.push(format!("raft index {index}"));
    }
    if let Some(ms) = stamp.staleness_ms {
        parts.push(format!("staleness {ms} ms"));
    }
    if let Some(level) = &stamp.consistency {
        parts.push(format!("served as {level}"));
    }
    if parts.is_empty() {
        "no strong path on this node".to_owned()
    } else {
        parts.join(", ")
    }
}

pub fn listing(reply: &ListReply) -> String {
    let mut out = format!("{:<40} {:<14} {:>8}  {}\n", "ID", "VERSION", "CHANGES", "UPDATED (ms since epoch)");
    for doc in &reply.documents {
        out.push_str(&format!(
            "{:<40} {:<14} {:>8}  {}\n",
            doc.id,
            short_version(&doc.version),
            doc.changes,
            doc.updated_ms
        ));
    }
    out
}

/// `statemesh peers`: one line per connected peer.
pub fn peers(peers: &Value) -> String {
    let list = peers.get("peers").and_then(Value::as_array).cloned().unwrap_or_default();
    if list.is_empty() {
        return "no connected peers\n".to_string();
    }
    let mut out =
        format!("{:<54} {:<28} {:>10} {:>10} {:>12}\n", "PEER", "ADDRESS", "WE LACK", "THEY LACK", "LAST SYNC");
    let now = crate::clock::now_ms();
    for peer in &list {
        let text = |key: &str| peer.get(key).and_then(Value::as_str).unwrap_or("-").to_string();
        let number = |key: &str| peer.get(key).and_then(Value::as_u64).unwrap_or(0);
        let last_sync = match peer.get("last_anti_entropy_ms").and_then(Value::as_i64) {
            Some(at) => format!("{}s ago", (now - at).max(0) / 1000),
            None => "never".to_string(),
        };
        out.push_str(&format!(
            "{:<54} {:<28} {:>10} {:>10} {:>12}\n",
            text("id"),
            text("address"),
            number("changes_we_lack"),
            number("changes_they_lack"),
            last_sync
        ));
    }
    out
}

pub fn status(status: &Value) -> String {
    let mut out = String::new();
    for key in ["node_id", "name", "storage", "documents", "uptime_ms"] {
        if let Some(value) = status.get(key).filter(|v| !v.is_null()) {
            let shown = value.as_str().map_or_else(|| value.to_string(), str::to_string);
            out.push_str(&format!("{key:<16} {shown}\n"));
        }
    }
    if let Some(vv) = status.get("version_vector").and_then(Value::as_object) {
        out.push_str("version vector\n");
        for (origin, seq) in vv {
            out.push_str(&format!("  {origin}  {seq}\n"));
        }
    }
    if let Some(list) = status.get("peers").and_then(Value::as_array) {
        out.push_str(&format!("{:<16} {}\n", "peers", list.len()));
    }
    out
}
