//! Client subcommands: each one API call through the typed client.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use super::{output, Command};
use crate::client::{Client, Condition};

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

pub fn run(node: &str, json: bool, command: Command) -> anyhow::Result<ExitCode> {
    let client = Client::new(node)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        match command {
            Command::Get { namespace, id, at } => {
                let doc = match at {
                    Some(at) => client.get_at(&namespace, &id, &at).await?,
                    None => client.get(&namespace, &id).await?,
                };
                if json {
                    println!("{}", output::json(&doc));
                } else {
                    println!("{}", output::json(&doc.document));
                    eprintln!("version {}", doc.version);
                }
            }
            Command::Put { namespace, id, body: inline, file, condition } => {
                let body = read_json(inline, file)?;
                let reply = client.put(&namespace, &id, &body, &condition.condition()).await?;
                let action = if reply.created { "created" } else { "updated" };
                print_reply(json, &reply, || output::write(action, &namespace, &id, &reply));
            }
            Command::Patch { namespace, id, body: inline, file, condition } => {
                let patch = read_json(inline, file)?;
                let reply = client.patch(&namespace, &id, &patch, &condition.condition()).await?;
                print_reply(json, &reply, || output::write("patched", &namespace, &id, &reply));
            }
            Command::Delete { namespace, id, if_match } => {
                let condition = if_match.map_or(Condition::None, Condition::IfMatch);
                let reply = client.delete(&namespace, &id, &condition).await?;
                print_reply(json, &reply, || output::write("deleted", &namespace, &id, &reply));
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
            Command::History(args) => super::history::history(&client, json, args).await?,
            Command::Rollback(args) => super::history::rollback(&client, json, args).await?,
            Command::Txn(args) => super::history::txn(&client, json, args).await?,
            Command::Start(_)
            | Command::Config(_)
            | Command::Snapshot(_)
            | Command::Watch(_)
            | Command::Ready(_)
            | Command::Cluster(_) => {
                unreachable!("handled before connecting")
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_reply(json: bool, reply: &crate::client::WriteReply, readable: impl FnOnce() -> String) {
    if json {
        println!("{}", output::json(reply));
    } else {
        println!("{}", readable());
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
