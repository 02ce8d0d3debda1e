//! `statemesh key`: make a cluster key, or print the one a node created for itself.
//!
//! Every node of a cluster must hold the same key (see `security.psk`); a node started
//! without one creates it in its data directory. These commands are how an operator hands
//! that key to the next node: print it here, pass it there with `--cluster-key`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::net::{generate_key, stored_key_hex, CLUSTER_KEY_FILE};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print a fresh random cluster key (64 hex characters) for `--cluster-key`,
    /// `security.psk` or a `security.psk_file`.
    Generate,
    /// Print the cluster key a node created in its data directory, to start the next node
    /// with `statemesh start --cluster-key KEY`.
    Show {
        /// The node's data directory.
        #[arg(long, default_value = "./statemesh-data", env = "STATEMESH_NODE__DATA_DIR")]
        data_dir: PathBuf,
    },
}

pub fn run(command: KeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::Generate => println!("{}", generate_key()),
        KeyCommand::Show { data_dir } => {
            let key = stored_key_hex(&data_dir).map_err(anyhow::Error::msg)?.with_context(|| {
                format!(
                    "{} has no {CLUSTER_KEY_FILE}: the node was given its key (security.psk or psk_file) or has \
                     not started yet",
                    data_dir.display()
                )
            })?;
            println!("{key}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
