//! `statemesh history`, `rollback` and `txn`: history, restoring older states, transactions.

use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::output;
use crate::client::{Client, Condition};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    namespace: String,
    id: String,
    /// Page size.
    #[arg(long)]
    limit: Option<u32>,
    /// Show changes older than this change hash.
    #[arg(long)]
    before: Option<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    namespace: String,
    id: String,
    /// Restore the state at this version (or change hash).
    #[arg(long, required_unless_present = "steps", conflicts_with = "steps")]
    to: Option<String>,
    /// Restore the state before the newest N changes.
    #[arg(long)]
    steps: Option<usize>,
    /// Only if the document is at this version.
    #[arg(long)]
    if_match: Option<String>,
}

#[derive(Debug, Args)]
pub struct TxnArgs {
    /// `{"compare": [...], "success": [...], "failure": [...]}`; `-` or omitted reads stdin.
    #[arg(value_name = "JSON")]
    body: Option<String>,
    /// Read the transaction from this file.
    #[arg(long, conflicts_with = "body")]
    file: Option<PathBuf>,
}

pub async fn history(client: &Client, json: bool, args: HistoryArgs) -> anyhow::Result<()> {
    let page = client.history(&args.namespace, &args.id, args.limit, args.before.as_deref()).await?;
    if json {
        println!("{}", output::json(&page));
        return Ok(());
    }
    println!(
        "{:<14} {:<24} {:<9} {:<16} {:<14} {:>14}  MESSAGE",
        "HASH", "CHANGE", "KIND", "AUTHOR", "ACTOR", "TIME (ms)"
    );
    for entry in page["entries"].as_array().into_iter().flatten() {
        let text = |key: &str| entry[key].as_str().unwrap_or("-").to_string();
        // A statemesh commit message says no more than the kind and author columns; other
        // messages (raw Automerge changes) are shown on the entry's one line.
        let message = if entry["kind"].is_string() { String::new() } else { text("message").replace('\n', " ") };
        println!(
            "{:<14} {:<24} {:<9} {:<16} {:<14} {:>14}  {}",
            output::short_version(&text("hash")),
            text("change"),
            text("kind"),
            text("author"),
            output::short_version(&text("actor")),
            entry["time_ms"],
            message,
        );
    }
    if let Some(next) = page["next"].as_str() {
        eprintln!("older changes: --before {next}");
    }
    Ok(())
}

pub async fn rollback(client: &Client, json: bool, args: RollbackArgs) -> anyhow::Result<()> {
    let condition = args.if_match.map_or(Condition::None, Condition::IfMatch);
    let reply = client.rollback(&args.namespace, &args.id, args.to.as_deref(), args.steps, &condition).await?;
    if json {
        println!("{}", output::json(&reply));
    } else {
        println!("{}", output::write("rolled back", &args.namespace, &args.id, &reply));
    }
    Ok(())
}

pub async fn txn(client: &Client, json: bool, args: TxnArgs) -> anyhow::Result<()> {
    let request: Value = super::docs::read_json(args.body, args.file)?;
    let outcome = client.txn(&request).await?;
    if json {
        println!("{}", output::json(&outcome));
    } else {
        let branch = if outcome["succeeded"] == Value::Bool(true) { "success" } else { "failure" };
        println!("compare {}: ran the {branch} branch", if branch == "success" { "held" } else { "failed" });
        for change in outcome["changed"].as_array().into_iter().flatten() {
            println!(
                "  {}/{}: version {}",
                change["namespace"].as_str().unwrap_or("?"),
                change["id"].as_str().unwrap_or("?"),
                change["version"].as_str().unwrap_or("?")
            );
        }
        for result in outcome["results"].as_array().into_iter().flatten() {
            if let Some(document) = result.get("document") {
                println!(
                    "  get {}/{}: {}",
                    result["namespace"].as_str().unwrap_or("?"),
                    result["id"].as_str().unwrap_or("?"),
                    document
                );
            }
        }
    }
    Ok(())
}
