//! `statemesh cluster …`: the strong path's membership, through a node's admin API.
//!
//! Any member takes these commands; membership changes run on the leader (a follower passes
//! them on). Members are named like `distributed.voters` entries.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::output;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the Raft cluster as this node sees it: role, term, leader, members and their
    /// replication progress, applied index, measured staleness.
    Status,
    /// Form a cluster now (for setups without distributed.voters): of the members given, of
    /// the configured voters when none are given, or of this node alone.
    Init {
        /// Voters: peer ids, multiaddrs, or <multiaddr>/p2p/<peer id>.
        #[arg(value_name = "MEMBER")]
        voters: Vec<String>,
    },
    /// Add a node as a learner: it receives the log but does not vote (yet).
    AddLearner {
        /// <multiaddr>/p2p/<peer id>, or a multiaddr this node has already dialed.
        member: String,
    },
    /// Make a learner a voter.
    Promote {
        /// The learner's peer id (or its address).
        member: String,
    },
    /// Remove a voter from the cluster.
    Remove {
        /// The voter's peer id (or its address).
        member: String,
    },
}

pub fn run(node: &super::NodeTarget, json: bool, command: ClusterCommand) -> anyhow::Result<ExitCode> {
    let client = node.client()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let reply = runtime.block_on(async {
        match &command {
            ClusterCommand::Status => client.cluster_status().await,
            ClusterCommand::Init { voters } => client.cluster_init(voters).await,
            ClusterCommand::AddLearner { member } => client.cluster_change("add-learner", member).await,
            ClusterCommand::Promote { member } => client.cluster_change("promote", member).await,
            ClusterCommand::Remove { member } => client.cluster_change("remove", member).await,
        }
    })?;
    if json {
        println!("{}", output::json(&reply));
    } else {
        match command {
            ClusterCommand::Status => print!("{}", status(&reply)),
            ClusterCommand::Init { .. } => {
                let formed = reply["formed"].as_bool().unwrap_or(false);
                println!("{}", if formed { "cluster formed" } else { "this node already belongs to a cluster" });
            }
            _ => println!("membership change committed at index {}", reply["committed_at"]),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `statemesh cluster status` as text.
fn status(view: &Value) -> String {
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = format!(
        "role {}  term {}  leader {}  applied {}  staleness {} ms\n",
        text(&view["role"]),
        text(&view["term"]),
        text(&view["leader"]),
        text(&view["last_applied"]["index"]),
        text(&view["staleness_ms"]),
    );
    out.push_str(&format!("{:<22} {:<8} {:<54} {}\n", "RAFT ID", "ROLE", "PEER", "ADDRESS"));
    for member in view["members"].as_array().cloned().unwrap_or_default() {
        let role = if member["voter"].as_bool().unwrap_or(false) { "voter" } else { "learner" };
        out.push_str(&format!(
            "{:<22} {:<8} {:<54} {}\n",
            text(&member["id"]),
            role,
            text(&member["info"]["peer_id"]),
            text(&member["info"]["addr"])
        ));
    }
    out
}
