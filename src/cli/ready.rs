//! `statemesh ready`: exit 0 when the node answers `/readyz` with 200, 1 otherwise.
//!
//! Container health checks run it: the image holds only the binary and its libraries, so
//! there is no shell or curl to probe the node with. A node that is unreachable, stopping
//! or whose storage failed is "not ready"; the reason is one line on stderr.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::output;

#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// Give up and report "not ready" after this long (e.g. 500ms, 2s).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub fn run(node: &super::NodeTarget, json: bool, args: ReadyArgs) -> anyhow::Result<ExitCode> {
    let client = node.client_with_timeout(args.timeout)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ready = runtime.block_on(client.ready());
    if json {
        println!("{}", output::json(&json!({"node": client.base_url(), "ready": ready})));
    } else if ready {
        println!("ready");
    } else {
        eprintln!("not ready: {} did not answer /readyz with 200", client.base_url());
    }
    Ok(if ready { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
