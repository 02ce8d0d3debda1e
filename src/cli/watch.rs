//! `statemesh watch`: follow the change feed, one line per change, across reconnects.
//!
//! The command keeps the cursor of the last change it printed and, when the connection
//! drops (node restart, network), reconnects with backoff and resumes right after it
//! (`Last-Event-ID`), so no change is skipped or printed twice. Without `--since` it first
//! asks the node for its current head and follows from there, which makes even the very
//! first reconnect lossless. A cursor the node no longer keeps ends the command with a clear
//! message and exit code 1: silently skipping ahead would hide lost changes.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::output;
use crate::client::feed::{ChangeEvent, ChangesFilter, FeedMessage};
use crate::client::{Client, ClientError};

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only changes in this namespace.
    #[arg(long)]
    ns: Option<String>,
    /// Only changes to this document (needs --ns).
    #[arg(long, requires = "ns")]
    doc: Option<String>,
    /// Start after this cursor (0: everything the node still keeps). Default: only changes
    /// made from now on.
    #[arg(long)]
    since: Option<u64>,
}

/// Why following stopped for good.
enum Stop {
    /// stdout was closed (e.g. piped into `head`).
    OutputClosed,
    Expired(String),
}

pub fn run(node: &super::NodeTarget, json: bool, args: WatchArgs) -> anyhow::Result<ExitCode> {
    let client = node.client()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let stop = tokio::select! {
            stop = follow(&client, json, args) => stop?,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        };
        match stop {
            Stop::OutputClosed => Ok(ExitCode::SUCCESS),
            Stop::Expired(message) => {
                eprintln!("error: cursor expired: {message}");
                eprintln!("hint: restart with --since <cursor> as the message suggests, or without --since for new changes only");
                Ok(ExitCode::FAILURE)
            }
        }
    })
}

/// Follows the feed until the cursor expires, stdout closes, or the node refuses the request.
async fn follow(client: &Client, json: bool, args: WatchArgs) -> anyhow::Result<Stop> {
    let filter = ChangesFilter { namespace: args.ns, doc: args.doc };
    let mut cursor = args.since;
    let mut backoff = BACKOFF_MIN;
    let mut reconnecting = false;
    loop {
        let reason = match connect(client, &filter, &mut cursor).await {
            Ok(mut stream) => {
                if reconnecting {
                    eprintln!("note: reconnected; resuming after cursor {}", cursor.unwrap_or(0));
                }
                backoff = BACKOFF_MIN;
                loop {
                    match stream.next().await {
                        Some(Ok(FeedMessage::Change(event))) => {
                            if !print(json, &event) {
                                return Ok(Stop::OutputClosed);
                            }
                            cursor = Some(event.cursor);
                        }
                        Some(Ok(FeedMessage::Lagged { missed })) => {
                            eprintln!("note: fell behind the live feed; {missed} changes were dropped");
                        }
                        Some(Ok(FeedMessage::Expired { message })) => return Ok(Stop::Expired(message)),
                        Some(Ok(FeedMessage::Error { code, message })) => break format!("{message} ({code})"),
                        Some(Err(error)) => break error.to_string(),
                        None => break "the node closed the stream".to_string(),
                    }
                }
            }
            Err(ClientError::Api { code, message, .. }) if code == "cursor_expired" => {
                return Ok(Stop::Expired(message));
            }
            // Any other refusal (bad filter, unknown cursor) will not change by retrying.
            Err(error @ ClientError::Api { status: 400..=499, .. }) => return Err(error.into()),
            Err(error) => error.to_string(),
        };
        let from = cursor.map_or_else(|| "from the current head".to_string(), |c| format!("after cursor {c}"));
        eprintln!("note: disconnected: {reason}; reconnecting in {backoff:?}, resuming {from}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        reconnecting = true;
    }
}

/// Subscribes after `cursor`; without one, pins the node's current head first so that later
/// reconnects resume from where this watch began.
async fn connect(
    client: &Client,
    filter: &ChangesFilter,
    cursor: &mut Option<u64>,
) -> Result<crate::client::feed::FeedStream, ClientError> {
    if cursor.is_none() {
        *cursor = Some(client.changes_page(None, filter, None, Some(1)).await?.cursor);
    }
    client.subscribe(*cursor, filter, None).await
}

/// Prints one change; false once stdout is gone.
fn print(json: bool, event: &ChangeEvent) -> bool {
    let line = if json {
        serde_json::to_string(event).unwrap_or_default()
    } else {
        let deleted = if event.deleted && event.kind != "delete" { " (deleted)" } else { "" };
        format!(
            "{:>8}  {}  {}/{}  {}  {}{deleted}",
            event.cursor,
            event.id,
            event.namespace,
            event.doc,
            event.kind,
            output::short_version(&event.version)
        )
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").and_then(|()| stdout.flush()).is_ok()
}
