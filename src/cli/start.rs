//! `statemesh start`: load configuration, open the node, serve the API until a signal.
//!
//! Shutdown is graceful on SIGINT/SIGTERM: stop accepting, finish in-flight requests, make
//! every queued write durable, flush storage, exit 0. A storage failure while running also
//! stops the node, with a non-zero exit, rather than serving from a half-written store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tracing_subscriber::EnvFilter;

use std::sync::Arc;

use crate::config::{Config, Consensus, LogFormat, StorageType};
use crate::net::{without_peer_id, Network};
use crate::node::Node;
use crate::raft::NodeInfo;
use crate::strong::{form_cluster, parse_voters, StrongDocs, StrongNode};

#[derive(Debug, Args)]
pub struct StartArgs {
    /// YAML configuration file (see `statemesh config default`).
    #[arg(long, short, env = "STATEMESH_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides node.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP API address (overrides api.listen).
    #[arg(long)]
    api_addr: Option<SocketAddr>,
    /// Keep everything in memory (overrides storage.type).
    #[arg(long)]
    memory: bool,
    /// Peer-to-peer listen multiaddr, e.g. /ip4/0.0.0.0/tcp/7701 (repeatable; overrides
    /// p2p.listen).
    #[arg(long = "p2p-addr", value_name = "MULTIADDR")]
    p2p_addrs: Vec<String>,
    /// A peer to connect to at startup, e.g. /ip4/10.0.0.2/tcp/7701 (repeatable; added to
    /// p2p.bootstrap).
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// Do not discover peers on the local network (overrides p2p.mdns).
    #[arg(long)]
    no_mdns: bool,
    /// The cluster key every peer must hold, 64 hex characters (overrides security.psk;
    /// `statemesh key show` prints the key a first node created, `statemesh key generate`
    /// makes a new one). Without any key, the node creates one in its data directory.
    #[arg(long, env = "STATEMESH_CLUSTER_KEY", value_name = "KEY", hide_env_values = true)]
    cluster_key: Option<String>,
}

pub fn run(args: StartArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = args.data_dir {
        config.node.data_dir = dir;
    }
    if let Some(addr) = args.api_addr {
        config.api.listen = addr.to_string();
    }
    if args.memory {
        config.storage.kind = StorageType::Memory;
    }
    if !args.p2p_addrs.is_empty() {
        config.p2p.listen = args.p2p_addrs;
    }
    config.p2p.bootstrap.extend(args.bootstrap);
    if args.no_mdns {
        config.p2p.mdns = false;
    }
    if let Some(key) = args.cluster_key {
        config.security.psk = Some(key);
        config.security.psk_file = None;
    }
    config.validate()?;
    // Held until the node has stopped: dropping it writes out the log lines still queued.
    let _log = init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("statemesh").build()?;
    runtime.block_on(serve(config))
}

/// Logs go to stderr through a queue and a writer thread: a node never waits for its log
/// reader (a full pipe, a stalled logging driver). When the queue is full, lines are dropped
/// rather than the node slowed; a peer that goes silent can make the Raft layer log many
/// warnings a second if `log.level` lets them through.
fn init_logging(config: &Config) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    guard
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    // Refuse an unprotected or misconfigured API before anything is opened or listens.
    let access = crate::api::Access::from_config(&config.api)?;
    let auth_mode = crate::api::check_exposure(&config.api, &access)?;
    let serve_options = crate::api::ServeOptions::from_config(&config.api).context("api.tls")?;
    let opened = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Node::open(&config)).await?
    };
    let node = opened.context("cannot open the node")?;
    let listener = tokio::net::TcpListener::bind(&config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.api.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(node_id = %node.node_id(), %address, data_dir = %config.node.data_dir.display(), "statemesh node ready");
    let scheme = if serve_options.tls.is_some() { "https" } else { "http" };
    tracing::info!(%address, scheme, auth = %auth_mode, cors_origins = config.api.cors_origins.len(), "API access");
    if auth_mode == crate::api::AuthMode::Open && !address.ip().is_loopback() {
        tracing::warn!(
            %address,
            "api.insecure: the API is open to everyone who can reach {address}; anyone may write, \
             restore snapshots, roll back and change membership"
        );
    }
    let network = Network::start(node.clone(), &config).await.context("cannot start replication")?;
    let strong = start_strong(&node, &config, &network).await?;
    let router = crate::api::router_with_access(node.clone(), &config, strong.clone(), access);
    let snapshots = crate::snapshot::SnapshotSettings::from_config(&config);
    let scheduler = crate::snapshot::Scheduler::spawn(node.clone(), snapshots);
    let stop = stop_signal(node.clone());
    crate::api::serve_with(listener, router, serve_options, stop).await.context("HTTP server failed")?;
    if let Some(scheduler) = scheduler {
        // A snapshot in progress finishes before storage is flushed and closed.
        scheduler.stop().await;
    }
    if let Some(strong) = strong {
        if let Err(error) = strong.docs.shutdown().await {
            tracing::warn!(%error, "the strong path did not stop cleanly");
        }
    }
    network.shutdown().await;
    match node.shutdown().await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            tracing::error!(%error, "stopped because storage failed");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Starts the strong path when `distributed.enabled` (with `consensus: raft`) and, if voters
/// are configured, forms the cluster in the background.
async fn start_strong(node: &Node, config: &Config, network: &Network) -> anyhow::Result<Option<StrongNode>> {
    let distributed = &config.distributed;
    if !distributed.enabled {
        return Ok(None);
    }
    if distributed.consensus == Consensus::Crdt {
        tracing::info!("distributed.consensus is crdt: an eventual-only cluster, no strong path");
        return Ok(None);
    }
    let voters = parse_voters(&distributed.voters).map_err(anyhow::Error::msg).context("distributed.voters")?;
    if !voters.is_empty() && voters.len() != distributed.replication_factor as usize {
        tracing::warn!(
            voters = voters.len(),
            replication_factor = distributed.replication_factor,
            "distributed.voters lists another number of voters than distributed.replication_factor"
        );
    }
    let me = NodeInfo::new(node.node_id().to_string(), advertised(network.listen_addrs()));
    let docs = StrongDocs::start(node.clone(), config, me.clone(), network.raft_transport())
        .await
        .context("cannot start the strong path")?;
    network.serve_raft(Arc::new(docs.path().clone()));
    if voters.is_empty() {
        tracing::info!("no distributed.voters: waiting for `statemesh cluster init` or to be added as a learner");
    } else {
        tokio::spawn(form_cluster(docs.clone(), voters.clone(), me.clone(), network.address_book()));
    }
    Ok(Some(StrongNode { docs, me, book: network.address_book(), voters }))
}

/// The address other members are told to reach this node at: the first bound address,
/// without its `/p2p/` suffix.
fn advertised(listen: &[libp2p::Multiaddr]) -> String {
    listen.first().map(|addr| without_peer_id(addr).to_string()).unwrap_or_default()
}

/// Resolves on SIGINT, SIGTERM, or a storage failure.
async fn stop_signal(node: Node) {
    let mut durable = node.watch_durable();
    let storage_failed = async move {
        let _ = durable.wait_for(|d| d.failed.is_some()).await;
    };
    let terminate = async {
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        () = terminate => tracing::info!("terminated; shutting down"),
        () = storage_failed => tracing::error!("storage failed; shutting down"),
    }
}
