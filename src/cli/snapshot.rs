//! `statemesh snapshot …`: snapshots of a running node through its API, and offline export
//! and import of a stopped node's data directory.
//!
//! `create`, `list`, `restore` and `delete` are API calls: the node does the work and the
//! reply carries counts and timing. `export` and `import` do the work here, on a data
//! directory no node is using (RocksDB's lock refuses a running node's directory), and show
//! progress on stderr: one line updated in place on a terminal, plain periodic lines
//! otherwise (logs, CI).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};

use super::output;

use crate::clock::now_ms;
use crate::config::{Compression, Config, SerializationFormat, StorageType};
use crate::node::{Node, OpenError};
use crate::snapshot::format::{compression_name, format_name};
use crate::snapshot::store::new_id;
use crate::snapshot::{ops, read_file, write_file, Phase, Progress, RestoreReport, SnapshotInfo};
use crate::storage::StorageError;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of every namespace on the running node.
    Create,
    /// List the running node's snapshots, newest first.
    #[command(alias = "ls")]
    List,
    /// Restore a snapshot on the running node: every document returns to its state in the
    /// snapshot as new changes (history is kept); documents absent from it are deleted.
    Restore {
        /// The snapshot id, as listed.
        id: String,
    },
    /// Delete a snapshot file from the running node.
    Delete {
        /// The snapshot id, as listed.
        id: String,
    },
    /// Export a stopped node's data to FILE (offline; the node must not be running).
    Export {
        #[command(flatten)]
        offline: OfflineArgs,
        /// Serialization format (default: storage.format from the configuration).
        #[arg(long, value_parser = ["json", "bincode", "msgpack"])]
        format: Option<String>,
        /// Compression (default: snapshots.compression from the configuration).
        #[arg(long, value_parser = ["none", "gzip", "zstd", "lz4"])]
        compression: Option<String>,
    },
    /// Import FILE into a stopped node's data directory (offline): as `restore`, verified
    /// completely before anything is written.
    Import {
        #[command(flatten)]
        offline: OfflineArgs,
    },
}

#[derive(Debug, Args)]
pub struct OfflineArgs {
    /// The node's data directory (default: node.data_dir from the configuration).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// YAML configuration file of the node (see `statemesh config default`).
    #[arg(long, short, env = "STATEMESH_CONFIG")]
    config: Option<PathBuf>,
    /// The snapshot file.
    file: PathBuf,
}

pub fn run(node: &super::NodeTarget, json: bool, command: SnapshotCommand) -> anyhow::Result<ExitCode> {
    match command {
        SnapshotCommand::Export { offline, format, compression } => export(json, &offline, format, compression),
        SnapshotCommand::Import { offline } => import(json, &offline),
        online => remote(node, json, online),
    }
}

fn remote(node: &super::NodeTarget, json: bool, command: SnapshotCommand) -> anyhow::Result<ExitCode> {
    let client = node.client()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        match command {
            SnapshotCommand::Create => {
                let created = client.create_snapshot().await?;
                if json {
                    println!("{}", output::json(&created));
                } else {
                    let info = &created.info;
                    println!(
                        "created snapshot {} in {} ms: {} documents, {} ({}, {})\n  {}",
                        info.id,
                        created.elapsed_ms,
                        info.documents,
                        bytes(info.bytes),
                        info.format,
                        info.compression,
                        info.file
                    );
                }
            }
            SnapshotCommand::List => {
                let snapshots = client.list_snapshots().await?;
                if json {
                    println!("{}", output::json(&snapshots));
                } else {
                    print!("{}", listing(&snapshots));
                }
            }
            SnapshotCommand::Restore { id } => {
                let report = client.restore_snapshot(&id).await?;
                return Ok(print_report(json, &report));
            }
            SnapshotCommand::Delete { id } => {
                client.delete_snapshot(&id).await?;
                if json {
                    println!("{}", output::json(&serde_json::json!({"id": id, "deleted": true})));
                } else {
                    println!("deleted snapshot {id}");
                }
            }
            SnapshotCommand::Export { .. } | SnapshotCommand::Import { .. } => unreachable!("handled offline"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn listing(snapshots: &[SnapshotInfo]) -> String {
    let mut out = format!("{:<34} {:>10} {:>11}  {}\n", "ID", "DOCUMENTS", "SIZE", "FORMAT");
    for s in snapshots {
        out.push_str(&format!(
            "{:<34} {:>10} {:>11}  {}/{}\n",
            s.id,
            s.documents,
            bytes(s.bytes),
            s.format,
            s.compression
        ));
    }
    out
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Prints a restore report; a restore with failed documents exits non-zero.
fn print_report(json: bool, report: &RestoreReport) -> ExitCode {
    if json {
        println!("{}", output::json(report));
    } else {
        println!(
            "restored snapshot {} in {} ms: {} documents ({} restored, {} already equal, {} failed); \
             {} documents absent from the snapshot deleted",
            report.id,
            report.elapsed_ms,
            report.documents,
            report.restored,
            report.unchanged,
            report.failed,
            report.deleted
        );
        for failure in &report.failures {
            eprintln!("  failed {}/{}: {}", failure.namespace, failure.id, failure.error);
        }
        if report.failed as usize > report.failures.len() {
            eprintln!("  … and {} more", report.failed as usize - report.failures.len());
        }
    }
    if report.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

// ---- offline ----

/// The node's configuration with `--data-dir` applied; offline work needs persistent storage.
fn offline_config(args: &OfflineArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = &args.data_dir {
        config.node.data_dir = dir.clone();
    }
    config.validate()?;
    if config.storage.kind == StorageType::Memory {
        bail!("offline export and import need persistent storage (the configuration says storage.type: memory)");
    }
    Ok(config)
}

fn open_node(config: &Config) -> anyhow::Result<Node> {
    Node::open(config).map_err(|error| match error {
        OpenError::Storage(StorageError::Locked { .. }) => anyhow!(
            "the data directory {} is in use by a running node; stop it first, or use \
             `statemesh snapshot create` / `statemesh snapshot restore` against the running node",
            config.node.data_dir.display()
        ),
        other => anyhow!(other).context(format!("cannot open the node in {}", config.node.data_dir.display())),
    })
}

fn offline_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn parse_format(name: &str) -> anyhow::Result<SerializationFormat> {
    match name {
        "json" => Ok(SerializationFormat::Json),
        "bincode" => Ok(SerializationFormat::Bincode),
        "msgpack" => Ok(SerializationFormat::Msgpack),
        other => bail!("unknown format `{other}`"),
    }
}

fn parse_compression(name: &str) -> anyhow::Result<Compression> {
    match name {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        "lz4" => Ok(Compression::Lz4),
        other => bail!("unknown compression `{other}`"),
    }
}

fn export(
    json: bool,
    args: &OfflineArgs,
    format: Option<String>,
    compression: Option<String>,
) -> anyhow::Result<ExitCode> {
    let config = offline_config(args)?;
    let format = format.as_deref().map(parse_format).transpose()?.unwrap_or(config.storage.format);
    let compression =
        compression.as_deref().map(parse_compression).transpose()?.unwrap_or(config.snapshots.compression);
    if !config.db_path().exists() {
        bail!("there is no node data in {} (no {})", config.node.data_dir.display(), config.db_path().display());
    }
    let runtime = offline_runtime()?;
    let _context = runtime.enter();
    let node = open_node(&config)?;
    let started = Instant::now();
    let mut display = ProgressDisplay::new();
    let exported = node.export_snapshot(new_id(now_ms()), &mut |p| display.show(p));
    let result = exported.map_err(anyhow::Error::from).and_then(|body| {
        let total = body.documents.len() as u64;
        display.show(Progress::new(Phase::Writing, 0, total));
        let written = write_file(&args.file, &body, format, compression)?;
        display.show(Progress::new(Phase::Writing, total, total));
        Ok((body, written))
    });
    display.finish();
    let shutdown = runtime.block_on(node.shutdown());
    let (body, written) = result?;
    shutdown.context("the node did not shut down cleanly")?;
    let elapsed_ms = started.elapsed().as_millis();
    if json {
        let reply = serde_json::json!({
            "id": body.id,
            "created_ms": body.created_ms,
            "documents": body.documents.len(),
            "bytes": written.bytes,
            "format": format_name(format),
            "compression": compression_name(compression),
            "file": written.path.display().to_string(),
            "elapsed_ms": elapsed_ms,
        });
        println!("{}", output::json(&reply));
    } else {
        println!(
            "exported {} documents ({} live) to {} in {elapsed_ms} ms: {} ({}, {})",
            body.documents.len(),
            body.live_documents(),
            written.path.display(),
            bytes(written.bytes),
            format_name(format),
            compression_name(compression)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn import(json: bool, args: &OfflineArgs) -> anyhow::Result<ExitCode> {
    let config = offline_config(args)?;
    let started = Instant::now();
    let mut display = ProgressDisplay::new();
    // The file is verified and decoded completely before the node is even opened.
    let read = read_file(&args.file, &mut |p| display.show(p));
    let (_, body) = match read {
        Ok(read) => read,
        Err(error) => {
            display.finish();
            return Err(anyhow!(error).context(format!("{} was not imported; nothing changed", args.file.display())));
        }
    };
    let runtime = offline_runtime()?;
    let node = {
        let _context = runtime.enter();
        open_node(&config)?
    };
    let result = runtime.block_on(ops::restore_body(&node, &body, &mut |p| display.show(p)));
    display.finish();
    let shutdown = runtime.block_on(node.shutdown());
    let mut report = result.with_context(|| format!("cannot import {}", args.file.display()))?;
    shutdown.context("the node did not shut down cleanly")?;
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(print_report(json, &report))
}

/// Progress on stderr: an in-place line on a terminal, a plain line every few seconds
/// otherwise. Each phase's first and last report is always shown.
struct ProgressDisplay {
    terminal: bool,
    phase: Option<Phase>,
    last: Option<Progress>,
    shown_at: Instant,
    line_open: bool,
    started: Instant,
}

impl ProgressDisplay {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            terminal: std::io::stderr().is_terminal(),
            phase: None,
            last: None,
            shown_at: now,
            line_open: false,
            started: now,
        }
    }

    fn show(&mut self, progress: Progress) {
        let now = Instant::now();
        let new_phase = self.phase != Some(progress.phase);
        let complete = progress.done >= progress.total;
        let every = if self.terminal { Duration::from_millis(100) } else { Duration::from_secs(2) };
        if !new_phase && !complete && now.duration_since(self.shown_at) < every {
            return;
        }
        if self.last == Some(progress) {
            return;
        }
        let text = describe(progress, self.started.elapsed());
        if self.terminal {
            if new_phase && self.line_open {
                eprintln!();
            }
            eprint!("\r\x1b[2K{text}");
            self.line_open = true;
        } else {
            eprintln!("{text}");
        }
        self.phase = Some(progress.phase);
        self.last = Some(progress);
        self.shown_at = now;
    }

    fn finish(&mut self) {
        if self.line_open {
            eprintln!();
            self.line_open = false;
        }
    }
}

fn describe(progress: Progress, elapsed: Duration) -> String {
    let Progress { phase, done, total } = progress;
    let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    let counts = if phase.unit() == "bytes" {
        format!("{} of {}", bytes(done), bytes(total))
    } else {
        format!("{done} of {total} {}", phase.unit())
    };
    format!("{phase}: {counts} ({percent}%) [{:.1} s]", elapsed.as_secs_f64())
}
