//! The `statemesh` command line: run a node, check configuration, and drive a node's API.
//!
//! Client subcommands go through the same typed [`crate::client::Client`] as the tests, so the
//! CLI is the API with readable output (or `--json` for scripts). Failures print one clear
//! line and exit non-zero; nothing prints a backtrace.

mod cluster;
mod config_cmd;
mod docs;
mod history;
mod key;
mod output;
mod ready;
mod snapshot;
mod start;
mod token;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::client::{Client, ClientError, ClientOptions, DEFAULT_NODE_URL};

#[derive(Debug, Parser)]
#[command(
    name = "statemesh",
    version,
    about = "A peer-to-peer CRDT replication node: Automerge documents, version vectors, RocksDB",
    long_about = "statemesh keeps JSON documents as Automerge CRDTs in namespaces, stores them \
                  durably in RocksDB (or memory), and serves them over an HTTP/JSON API.\n\n\
                  Start a node with `statemesh start`; then use `put`, `get`, `patch`, `delete`, \
                  `ls`, `history`, `rollback`, `txn`, `watch`, `snapshot` and `status` against it \
                  (or curl, see README.md).",
    after_help = "Examples:\n  statemesh start\n  statemesh start --data-dir b --api-addr 127.0.0.1:7702 \\\n    \
                  --p2p-addr /ip4/0.0.0.0/tcp/7702 --bootstrap /ip4/127.0.0.1/tcp/7701 \\\n    \
                  --cluster-key $(statemesh key show)\n  statemesh put users ada '{\"name\":\"Ada\"}'\n  \
                  statemesh get users ada\n  statemesh config default > statemesh.yaml"
)]
pub struct Cli {
    /// The node's HTTP address (client subcommands).
    #[arg(long, global = true, env = "STATEMESH_NODE", default_value = DEFAULT_NODE_URL)]
    node: String,
    /// Bearer token for the node's API (see `statemesh token generate`).
    #[arg(long, global = true, env = "STATEMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM file of a CA to trust for an https:// node (besides the system's roots).
    #[arg(long, global = true, env = "STATEMESH_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// How to print replies: `table` (readable text and tables) or `json` (for scripts).
    #[arg(short = 'w', long, global = true, value_enum, default_value_t = WriteOut::Table)]
    write_out: WriteOut,
    /// Short for `--write-out json`.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The output formats of `--write-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WriteOut {
    Table,
    Json,
}

/// The node a client subcommand talks to, and how.
#[derive(Debug, Clone)]
pub(crate) struct NodeTarget {
    url: String,
    token: Option<String>,
    ca_cert: Option<PathBuf>,
}

impl NodeTarget {
    pub(crate) fn client(&self) -> Result<Client, ClientError> {
        self.client_with_timeout(ClientOptions::default().timeout)
    }

    pub(crate) fn client_with_timeout(&self, timeout: std::time::Duration) -> Result<Client, ClientError> {
        let options = ClientOptions { timeout, token: self.token.clone(), ca_cert: self.ca_cert.clone() };
        Client::with_options(&self.url, &options)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node (defaults: data in ./statemesh-data, API on 127.0.0.1:7700).
    Start(start::StartArgs),
    /// Print, check or show configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Cluster keys: generate one, or show the one a node created (peers must share it).
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Print a document's JSON (its version goes to stderr).
    Get {
        namespace: String,
        id: String,
        /// Read the document as it was at this version.
        #[arg(long, conflicts_with_all = ["consistency", "max_staleness_ms", "min_version"])]
        at: Option<String>,
        #[command(flatten)]
        level: docs::ReadLevelArgs,
    },
    /// Create or replace a document with JSON (an argument, `-` for stdin, or --file).
    Put {
        namespace: String,
        id: String,
        /// The JSON document; `-` or omitted reads stdin.
        #[arg(value_name = "JSON")]
        body: Option<String>,
        /// Read the JSON from this file.
        #[arg(long, conflicts_with = "body")]
        file: Option<PathBuf>,
        #[command(flatten)]
        condition: docs::ConditionArgs,
        #[command(flatten)]
        level: docs::WriteLevelArgs,
    },
    /// Merge a JSON merge patch (RFC 7386) into a document.
    Patch {
        namespace: String,
        id: String,
        /// The patch; `-` or omitted reads stdin.
        #[arg(value_name = "JSON")]
        body: Option<String>,
        /// Read the patch from this file.
        #[arg(long, conflicts_with = "body")]
        file: Option<PathBuf>,
        #[command(flatten)]
        condition: docs::ConditionArgs,
        #[command(flatten)]
        level: docs::WriteLevelArgs,
    },
    /// Delete a document (its history is kept).
    Delete {
        namespace: String,
        id: String,
        /// Only if the document is at this version.
        #[arg(long)]
        if_match: Option<String>,
        #[command(flatten)]
        level: docs::WriteLevelArgs,
    },
    /// List the documents of a namespace.
    Ls {
        namespace: String,
        /// Page size.
        #[arg(long)]
        limit: Option<u32>,
        /// Start after this document id.
        #[arg(long)]
        after: Option<String>,
        /// Follow pages to the end.
        #[arg(long)]
        all: bool,
    },
    /// Show the node's status: id, storage, document count, version vector.
    Status,
    /// List the connected replication peers: id, address, since when, last anti-entropy,
    /// and how many changes each side lacks.
    Peers,
    /// Show the mesh as this node sees it: every node it knows with role, Raft state,
    /// reachability, last contact, how far behind or ahead it is, write rate, documents,
    /// storage and admission (the status page at /ui shows the same, live).
    Mesh,
    /// Exit 0 if the node is ready (`/readyz` answers 200), 1 if not: for health checks.
    Ready(ready::ReadyArgs),
    /// List a document's changes, newest first.
    History(history::HistoryArgs),
    /// Restore an earlier state of a document as a new change (history is kept).
    Rollback(history::RollbackArgs),
    /// Run a transaction: compare, then the success or failure steps, atomically.
    Txn(history::TxnArgs),
    /// Snapshots: create, list, restore or delete them on a running node; export or import
    /// a stopped node's data offline.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// The strong path's Raft cluster: status, init, add-learner, promote, remove.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Follow the change feed: one line per change (--json: the event JSON); reconnects and
    /// resumes after the last change printed.
    Watch(watch::WatchArgs),
    /// API tokens: generate one and the `api.tokens` entry that admits it.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Print a shell completion script, e.g. `statemesh completions bash >
    /// /etc/bash_completion.d/statemesh` or `statemesh completions zsh > ~/.zfunc/_statemesh`.
    Completions {
        /// bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
}

/// Parses arguments, runs the command, and turns any failure into a message and exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let node = NodeTarget { url: cli.node, token: cli.token, ca_cert: cli.ca_cert };
    let json = cli.json || cli.write_out == WriteOut::Json;
    let result = match cli.command {
        Command::Start(args) => start::run(args),
        Command::Config(command) => config_cmd::run(command),
        Command::Key(command) => key::run(command),
        Command::Token(command) => token::run(json, command),
        Command::Snapshot(command) => snapshot::run(&node, json, command),
        Command::Watch(args) => watch::run(&node, json, args),
        Command::Ready(args) => ready::run(&node, json, args),
        Command::Cluster(command) => cluster::run(&node, json, command),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "statemesh", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        command => docs::run(&node, json, command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
