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

/// `statemesh mesh`: one line per node this node knows, itself first.
pub fn mesh(view: &Value) -> String {
    let me = &view["node"];
    let ours = me.get("version_vector").cloned().unwrap_or(Value::Null);
    let leader = me["raft"]["leader"].as_str().unwrap_or_default().to_owned();
    let now = view["at_ms"].as_i64().unwrap_or_else(crate::clock::now_ms);
    let mut rows = vec![mesh_row(me, &leader, true, None, "-".into(), "-".into())];
    let mut listed: Vec<String> = vec![me["id"].as_str().unwrap_or_default().to_owned()];
    for peer in view["peers"].as_array().into_iter().flatten() {
        let id = peer["id"].as_str().unwrap_or_default().to_owned();
        let contact = match peer["last_contact_ms"].as_i64() {
            Some(at) => format!("{}s ago", (now - at).max(0) / 1000),
            None => "never".into(),
        };
        let summary = peer.get("summary").filter(|s| !s.is_null());
        let distance = summary.map_or_else(|| "-".into(), |s| vv_distance(&ours, &s["version_vector"]));
        let shown = summary.cloned().unwrap_or_else(|| serde_json::json!({"id": id}));
        rows.push(mesh_row(
            &shown,
            &leader,
            peer["connected"].as_bool().unwrap_or(false),
            Some(&id),
            contact,
            distance,
        ));
        listed.push(id);
    }
    for member in me["raft"]["members"].as_array().into_iter().flatten() {
        let id = member["id"].as_str().unwrap_or_default();
        if !listed.iter().any(|l| l == id) {
            let role = if member["voter"].as_bool().unwrap_or(false) { "voter" } else { "learner" };
            let shown = serde_json::json!({"id": id, "role": role});
            rows.push(mesh_row(&shown, &leader, false, Some(id), "never".into(), "-".into()));
        }
    }
    let header = [
        "NODE",
        "ROLE",
        "RAFT",
        "REACHABLE",
        "LAST CONTACT",
        "AHEAD/BEHIND",
        "WRITES/S",
        "DOCS",
        "STORAGE",
        "ADMISSION",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&header.map(String::from));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

/// One node's cells. `summary` is what the node said of itself (possibly only its id).
fn mesh_row(
    summary: &Value,
    leader: &str,
    reachable: bool,
    id: Option<&str>,
    contact: String,
    distance: String,
) -> Vec<String> {
    let id = id.or_else(|| summary["id"].as_str()).unwrap_or("?");
    let short = if id.len() > 12 { format!("{}…{}", &id[..4], &id[id.len() - 4..]) } else { id.to_owned() };
    let name = summary["name"].as_str().map_or(short.clone(), |n| format!("{n} ({short})"));
    let text =
        |v: &Value| v.as_str().map_or_else(|| if v.is_null() { "-".into() } else { v.to_string() }, str::to_owned);
    let mut role = text(&summary["role"]);
    if !leader.is_empty() && id == leader {
        role.push_str(" *leader");
    }
    let raft = match summary["raft"].as_object() {
        Some(raft) => format!("{} t{}", text(&raft["state"]), raft["term"]),
        None => "-".into(),
    };
    vec![
        name,
        role,
        raft,
        if reachable { "yes".into() } else { "NO".into() },
        contact,
        distance,
        text(&summary["writes_per_sec"]),
        text(&summary["documents"]),
        text(&summary["storage"]),
        text(&summary["admission"]),
    ]
}

/// `+a/-b`: changes `theirs` holds that `ours` lacks, and the reverse; `in sync` when none.
fn vv_distance(ours: &Value, theirs: &Value) -> String {
    let seq = |vv: &Value, origin: &str| vv.get(origin).and_then(Value::as_u64).unwrap_or(0);
    let origins: std::collections::BTreeSet<&str> =
        [ours, theirs].into_iter().filter_map(Value::as_object).flat_map(|vv| vv.keys().map(String::as_str)).collect();
    let ahead: u64 = origins.iter().map(|o| seq(theirs, o).saturating_sub(seq(ours, o))).sum();
    let behind: u64 = origins.iter().map(|o| seq(ours, o).saturating_sub(seq(theirs, o))).sum();
    if ahead == 0 && behind == 0 {
        "in sync".into()
    } else {
        format!("+{ahead}/-{behind}")
    }
}
