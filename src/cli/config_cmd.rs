//! `statemesh config`: print the commented default, check a file, show the effective config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::node::Namespaces;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the full default configuration, every key commented.
    Default,
    /// Validate a configuration file (with STATEMESH_* environment overrides applied).
    Check { file: PathBuf },
    /// Print the effective configuration: defaults, file and environment combined.
    Show {
        #[arg(long, short, env = "STATEMESH_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Default => print!("{}", Config::default_yaml()),
        ConfigCommand::Check { file } => {
            let config = Config::load(Some(&file), std::env::vars())?;
            Namespaces::compile(&config.namespaces).map_err(anyhow::Error::msg)?;
            println!("{}: ok", file.display());
        }
        ConfigCommand::Show { config } => print!("{}", Config::load(config.as_deref(), std::env::vars())?.to_yaml()),
    }
    Ok(ExitCode::SUCCESS)
}
