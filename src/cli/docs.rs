//! Client subcommands: each one API call through the typed client.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use super::{output, Command};
use crate::client::{Condition, Doc, ReadOptions, Stamp, WriteReply};

/// The consistency a write asks for (the namespace's default when absent).
#[derive(Debug, Args)]
pub struct WriteLevelArgs {
    /// `strong`: committed through Raft (linearizable; needs the strong path);
    /// `eventual`: durable on this node, then replicated.
    #[arg(long, value_parser = ["strong", "eventual"])]
    consistency: Option<String>,
}

/// The consistency a read asks for (`distributed.consistency_level` when absent).
#[derive(Debug, Args)]
pub struct ReadLevelArgs {
    /// `strong` (linearizable), `bounded` (local if this node is fresh enough, see
    /// --max-staleness-ms) or `eventual` (local).
    #[arg(long, value_parser = ["strong", "bounded", "eventual"])]
    consistency: Option<String>,
    /// For a bounded read: how stale this node may be, in milliseconds.
    #[arg(long)]
    max_staleness_ms: Option<u64>,
    /// Read only once the node has applied this Raft index (the `raft index` an earlier
    /// answer printed): read-your-writes on any member.
    #[arg(long)]
    min_version: Option<u64>,
}

impl ReadLevelArgs {
    fn options(self) -> Option<ReadOptions> {
        let options = ReadOptions {
            consistency: self.consistency,
            max_staleness_ms: self.max_staleness_ms,
            min_version: self.min_version,
        };
        (options != ReadOptions::default()).then_some(options)
    }
}

#[derive(Debug, Args)]
pub struct ConditionArgs {
    /// Only write if the document is at this version (compare-and-swap).
    #[arg(long, conflicts_with = "if_absent")]
    if_match: Option<String>,
    /// Only write if the document does not exist yet.
    #[arg(long)]
    if_absent: bool,
}

impl ConditionArgs {
    fn condition(&self) -> Condition {
        match (&self.if_match, self.if_absent) {
            (Some(version), _) => Condition::IfMatch(version.clone()),
            (None, true) => Condition::IfAbsent,
            (None, false) => Condition::None,
        }
    }
}

pub(super) fn read_json(inline: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Value> {
    let text = match (inline, file) {
        (Some(text), _) if text != "-" => text,
        (_, Some(path)) => std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?,
        _ => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read JSON from stdin")?;
            text
        }
    };
    serde_json::from_str(&text).context("the input is not valid JSON")
}

pub fn run(node: &super::NodeTarget, json: bool, command: Command) -> anyhow::Result<ExitCode> {
    let client = node.client()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        match command {
            Command::Get { namespace, id, at, level } => {
                let (doc, stamp) = match (at, level.options()) {
                    (Some(at), _) => (client.get_at(&namespace, &id, &at).await?, None),
                    (None, Some(options)) => {
                        let (doc, stamp) = client.get_with(&namespace, &id, &options).await?;
                        (doc, Some(stamp))
                    }
                    (None, None) => (client.get(&namespace, &id).await?, None),
                };
                print_doc(json, &doc, stamp.as_ref());
            }
            Command::Put { namespace, id, body: inline, file, condition, level } => {
                let body = read_json(inline, file)?;
                let condition = condition.condition();
                let (reply, stamp) = match level.consistency {
                    Some(level) => stamped(client.put_with(&namespace, &id, &body, &condition, &level).await?),
                    None => (client.put(&namespace, &id, &body, &condition).await?, None),
                };
                let action = if reply.created { "created" } else { "updated" };
                print_reply(json, &reply, stamp.as_ref(), || output::write(action, &namespace, &id, &reply));
            }
            Command::Patch { namespace, id, body: inline, file, condition, level } => {
                let patch = read_json(inline, file)?;
                let condition = condition.condition();
                let (reply, stamp) = match level.consistency {
                    Some(level) => stamped(client.patch_with(&namespace, &id, &patch, &condition, &level).await?),
                    None => (client.patch(&namespace, &id, &patch, &condition).await?, None),
                };
                print_reply(json, &reply, stamp.as_ref(), || output::write("patched", &namespace, &id, &reply));
            }
            Command::Delete { namespace, id, if_match, level } => {
                let condition = if_match.map_or(Condition::None, Condition::IfMatch);
                let (reply, stamp) = match level.consistency {
                    Some(level) => stamped(client.delete_with(&namespace, &id, &condition, &level).await?),
                    None => (client.delete(&namespace, &id, &condition).await?, None),
                };
                print_reply(json, &reply, stamp.as_ref(), || output::write("deleted", &namespace, &id, &reply));
            }
            Command::Ls { namespace, limit, after, all } => {
                let mut after = after;
                loop {
                    let page = client.list(&namespace, limit, after.as_deref()).await?;
                    if json {
                        println!("{}", output::json(&page));
                    } else {
                        print!("{}", output::listing(&page));
                    }
                    match page.next {
                        Some(next) if all => after = Some(next),
                        _ => break,
                    }
                }
            }
            Command::Status => show(json, &client.status().await?, output::status),
            Command::Peers => show(json, &client.peers().await?, output::peers),
            Command::Mesh => show(json, &client.mesh().await?, output::mesh),
            Command::History(args) => super::history::history(&client, json, args).await?,
            Command::Rollback(args) => super::history::rollback(&client, json, args).await?,
            Command::Txn(args) => super::history::txn(&client, json, args).await?,
            Command::Start(_)
            | Command::Config(_)
            | Command::Key(_)
            | Command::Snapshot(_)
            | Command::Watch(_)
            | Command::Token(_)
            | Command::Ready(_)
            | Command::Cluster(_)
            | Command::Completions { .. } => {
                unreachable!("handled before connecting")
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn stamped((reply, stamp): (WriteReply, Stamp)) -> (WriteReply, Option<Stamp>) {
    (reply, Some(stamp))
}

/// `value` as JSON, with the response's stamp (Raft index, staleness, level) as `stamp`.
fn with_stamp(value: &impl serde::Serialize, stamp: Option<&Stamp>) -> Value {
    let mut out = serde_json::to_value(value).unwrap_or(Value::Null);
    if let (Some(stamp), Value::Object(fields)) = (stamp, &mut out) {
        fields.insert("stamp".to_owned(), serde_json::to_value(stamp).unwrap_or(Value::Null));
    }
    out
}

fn print_doc(json: bool, doc: &Doc, stamp: Option<&Stamp>) {
    if json {
        println!("{}", output::json(&with_stamp(doc, stamp)));
    } else {
        println!("{}", output::json(&doc.document));
        eprintln!("version {}", doc.version);
        if let Some(stamp) = stamp {
            eprintln!("{}", output::stamp(stamp));
        }
    }
}

fn print_reply(json: bool, reply: &WriteReply, stamp: Option<&Stamp>, readable: impl FnOnce() -> String) {
    if json {
        println!("{}", output::json(&with_stamp(reply, stamp)));
    } else {
        println!("{}", readable());
        if let Some(stamp) = stamp {
            eprintln!("{}", output::stamp(stamp));
        }
    }
}

/// Prints `value` as JSON, or rendered for reading.
fn show(json: bool, value: &Value, render: fn(&Value) -> String) {
    if json {
        println!("{}", output::json(value));
    } else {
        print!("{}", render(value));
    }
}
