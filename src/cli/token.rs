//! `statemesh token generate`: a fresh API token and the configuration entry that admits it.
//!
//! The node stores only a token's SHA-256, so the token is shown once, here, and the
//! operator hands it to the client; the printed entry goes into `api.tokens` (or the
//! `api.tokens_file` list). Generating needs no running node.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::output;
use crate::config::{check_token_entry, ApiRole, ApiToken};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random token (stdout, first line) and its `api.tokens` entry.
    Generate {
        /// Who holds the token; recorded as the author of the changes it makes.
        #[arg(long)]
        name: String,
        /// What the token may do: read, write (includes read) or admin (includes write).
        #[arg(long, value_parser = ["read", "write", "admin"])]
        role: String,
    },
}

pub fn run(json: bool, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Generate { name, role } = command;
    let role = match role.as_str() {
        "read" => ApiRole::Read,
        "write" => ApiRole::Write,
        _ => ApiRole::Admin,
    };
    let (token, sha256) = crate::api::generate_token();
    let entry = ApiToken { name, role, sha256 };
    check_token_entry(&entry).map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", output::json(&json!({"token": token, "entry": entry})));
    } else {
        let role =
            serde_json::to_value(entry.role).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        println!("{token}");
        eprintln!("# Give the token above to the client (--token or STATEMESH_TOKEN); it is not stored.");
        eprintln!("# Add this entry under api.tokens (or to the api.tokens_file list):");
        println!("- {{name: {}, role: {role}, sha256: {}}}", entry.name, entry.sha256);
    }
    Ok(ExitCode::SUCCESS)
}
