//! Range and semantic checks that the type system cannot express.
//!
//! Everything here would otherwise surface later as a confusing runtime failure (a
//! zero-sized cache, a listen address that cannot bind, a consensus protocol that does
//! not exist), so it is refused at startup. All problems are collected so a single run
//! lists everything to fix.

use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use libp2p_identity::PeerId;

use super::duration;
use super::error::{ConfigError, ConfigProblem};
use super::schema::{ApiConfig, ApiToken, Config, Consensus, NamespacePolicy, GIB, KIB, MIB};

pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    let mut c = Checks::default();
    node_and_api(&mut c, config);
    p2p(&mut c, config);
    storage(&mut c, config);
    concurrency_history_snapshots(&mut c, config);
    distributed(&mut c, config);
    namespaces(&mut c, config);
    security(&mut c, config);
    log(&mut c, config);
    if c.problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::new(c.problems))
    }
}

#[derive(Default)]
struct Checks {
    problems: Vec<ConfigProblem>,
}

impl Checks {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(key, message));
    }

    fn range<T: PartialOrd + Display>(&mut self, key: &str, value: T, range: RangeInclusive<T>) {
        if !range.contains(&value) {
            let message = format!("{value} is out of range {}..={}", range.start(), range.end());
            self.fail(key, message);
        }
    }

    fn duration(&mut self, key: &str, value: Duration, range: RangeInclusive<Duration>) {
        if !range.contains(&value) {
            let message = format!(
                "{} is out of range {}..={}",
                duration::format(value),
                duration::format(*range.start()),
                duration::format(*range.end())
            );
            self.fail(key, message);
        }
    }

    fn positive(&mut self, key: &str, value: Duration) {
        if value.is_zero() {
            self.fail(key, "must be greater than 0s");
        }
    }

    fn multiaddrs(&mut self, key: &str, addrs: &[String]) {
        for (i, addr) in addrs.iter().enumerate() {
            if !addr.starts_with('/') {
                self.fail(
                    format!("{key}[{i}]"),
                    format!("`{addr}` is not a multiaddr; expected e.g. /ip4/0.0.0.0/tcp/7701"),
                );
            }
        }
    }
}

fn node_and_api(c: &mut Checks, config: &Config) {
    if config.node.data_dir.as_os_str().is_empty() {
        c.fail("node.data_dir", "must not be empty");
    }
    let api = &config.api;
    if SocketAddr::from_str(&api.listen).is_err() {
        c.fail("api.listen", format!("`{}` is not a socket address; expected e.g. 127.0.0.1:7700", api.listen));
    }
    c.range("api.max_body_bytes", api.max_body_bytes, KIB..=256 * MIB);
    c.positive("api.request_timeout", api.request_timeout);
    c.range("api.list_limit_max", api.list_limit_max, 1..=100_000);
    api_access(c, api);
}

/// Token entries, TLS files, CORS origins and connection limits. Whether a non-loopback
/// `listen` is protected is decided at startup, once `tokens_file` has been read.
fn api_access(c: &mut Checks, api: &ApiConfig) {
    let mut names = std::collections::BTreeSet::new();
    for (i, token) in api.tokens.iter().enumerate() {
        let key = format!("api.tokens[{i}]");
        if let Err(problem) = check_token_entry(token) {
            c.fail(key.clone(), problem);
        }
        if !names.insert(token.name.as_str()) {
            c.fail(format!("{key}.name"), format!("`{}` is used by an earlier token", token.name));
        }
    }
    if api.tokens_file.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
        c.fail("api.tokens_file", "must not be empty; use null for no file");
    }
    if let Some(tls) = &api.tls {
        if tls.cert_file.as_os_str().is_empty() {
            c.fail("api.tls.cert_file", "must name a PEM certificate file");
        }
        if tls.key_file.as_os_str().is_empty() {
            c.fail("api.tls.key_file", "must name a PEM private key file");
        }
    }
    for (i, origin) in api.cors_origins.iter().enumerate() {
        let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        let valid = host.is_some_and(|host| {
            !host.is_empty() && !host.contains(|ch: char| ch == '/' || ch.is_whitespace() || ch.is_control())
        });
        if !valid {
            c.fail(
                format!("api.cors_origins[{i}]"),
                format!("`{origin}` is not an origin; expected scheme://host[:port] without a path, e.g. https://app.example"),
            );
        }
    }
    c.duration(
        "api.header_read_timeout",
        api.header_read_timeout,
        Duration::from_millis(100)..=Duration::from_secs(300),
    );
    c.duration(
        "api.tls_handshake_timeout",
        api.tls_handshake_timeout,
        Duration::from_millis(100)..=Duration::from_secs(300),
    );
    c.range("api.max_connections", api.max_connections, 1..=1_000_000);
}

/// One token entry's problem, if any: a usable name and a SHA-256 in hex. Shared with the
/// tokens file, whose entries are checked when it is read.
pub(crate) fn check_token_entry(token: &ApiToken) -> Result<(), String> {
    let name_ok = (1..=64).contains(&token.name.len())
        && token.name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-' | '@'));
    if !name_ok {
        return Err(format!("name `{}` must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.`, `-` or `@`", token.name));
    }
    if token.name == "anonymous" {
        return Err("`anonymous` names requests on an open API; pick another name".to_string());
    }
    if token.sha256.len() != 64 || !token.sha256.chars().all(|ch| ch.is_ascii_hexdigit()) {
        // Perhaps the token itself was pasted here: do not echo it.
        return Err(format!(
            "sha256 must be 64 hex characters (the token's SHA-256, not the token); got {} characters",
            token.sha256.chars().count()
        ));
    }
    Ok(())
}

fn p2p(c: &mut Checks, config: &Config) {
    let p2p = &config.p2p;
    c.multiaddrs("p2p.listen", &p2p.listen);
    c.multiaddrs("p2p.bootstrap", &p2p.bootstrap);
    c.range("p2p.max_message_bytes", p2p.max_message_bytes, KIB..=64 * MIB);
    c.range("p2p.max_connections", p2p.max_connections, 1..=10_000);
    c.duration(
        "p2p.anti_entropy_interval",
        p2p.anti_entropy_interval,
        Duration::from_millis(100)..=Duration::from_secs(3600),
    );
    c.duration("p2p.gossip_batch_window", p2p.gossip_batch_window, Duration::ZERO..=Duration::from_secs(10));
}

fn storage(c: &mut Checks, config: &Config) {
    let s = &config.storage;
    c.range("storage.cache_docs", s.cache_docs, 16..=10_000_000);
    c.range("storage.group_commit_max_batch", s.group_commit_max_batch, 1..=65_536);
    c.range("storage.max_inflight_writes", s.max_inflight_writes, 1..=1_000_000);
    c.range("storage.write_buffer_bytes", s.write_buffer_bytes, MIB..=4 * GIB);
}

fn concurrency_history_snapshots(c: &mut Checks, config: &Config) {
    let cc = &config.concurrency;
    c.range("concurrency.max_transactions", cc.max_transactions, 1..=1_000_000);
    c.duration(
        "concurrency.transaction_timeout",
        cc.transaction_timeout,
        Duration::from_millis(1)..=Duration::from_secs(3600),
    );
    c.range("history.max_size", config.history.max_size, 1..=100_000_000);
    let snap = &config.snapshots;
    if snap.interval < Duration::from_secs(1) {
        c.fail("snapshots.interval", format!("{} is below the minimum of 1s", duration::format(snap.interval)));
    }
    c.range("snapshots.max_snapshots", snap.max_snapshots, 1..=10_000);
    c.range("notifications.buffer_size", config.notifications.buffer_size, 1..=1_000_000);
}

fn distributed(c: &mut Checks, config: &Config) {
    let d = &config.distributed;
    if d.consensus == Consensus::Paxos {
        c.fail(
            "distributed.consensus",
            "`paxos` is not supported; use `raft` (strong writes through Raft) \
             or `crdt` (eventual-only cluster)",
        );
    }
    c.range("distributed.replication_factor", d.replication_factor, 1..=15);
    for (i, voter) in d.voters.iter().enumerate() {
        if voter.parse::<libp2p::Multiaddr>().is_err() && PeerId::from_str(voter).is_err() {
            c.fail(format!("distributed.voters[{i}]"), format!("`{voter}` is neither a peer id nor a multiaddr"));
        }
    }
    c.duration("distributed.request_timeout", d.request_timeout, Duration::from_millis(10)..=Duration::from_secs(60));
    if d.max_lag.is_some() {
        c.fail(
            "distributed.max_lag",
            "a bound in log entries is not supported; bound bounded reads in time with max_staleness_ms",
        );
    }
}

fn namespaces(c: &mut Checks, config: &Config) {
    let ns = &config.namespaces;
    policy(c, "namespaces.defaults", &ns.defaults);
    for (name, declared) in &ns.declared {
        let valid_name = (1..=128).contains(&name.len())
            && name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'));
        if !valid_name {
            c.fail(
                format!("namespaces.declared.{name}"),
                "namespace names are 1 to 128 characters of A-Z, a-z, 0-9, `_`, `.` or `-`",
            );
        }
        policy(c, &format!("namespaces.declared.{name}"), declared);
    }
}

fn policy(c: &mut Checks, key: &str, policy: &NamespacePolicy) {
    c.range(&format!("{key}.max_doc_bytes"), policy.max_doc_bytes, 16..=256 * MIB);
    if let Some(schema) = &policy.schema {
        if !(schema.is_object() || schema.is_boolean()) {
            c.fail(format!("{key}.schema"), "a JSON Schema must be a mapping (object) or a boolean");
        }
    }
}

fn security(c: &mut Checks, config: &Config) {
    let sec = &config.security;
    if let Some(psk) = &sec.psk {
        if psk.len() != 64 || !psk.chars().all(|ch| ch.is_ascii_hexdigit()) {
            // The key itself is a secret: describe it without echoing it.
            c.fail(
                "security.psk",
                format!("must be exactly 64 hex characters (32 bytes); got {} characters", psk.chars().count()),
            );
        }
        if sec.psk_file.is_some() {
            c.fail("security.psk", "set either `psk` or `psk_file`, not both");
        }
    }
    if sec.insecure && (sec.psk.is_some() || sec.psk_file.is_some()) {
        c.fail("security.insecure", "is true but a cluster key is set (psk or psk_file): choose one");
    }
    for (i, peer) in sec.allowed_peers.iter().enumerate() {
        if PeerId::from_str(peer).is_err() {
            c.fail(format!("security.allowed_peers[{i}]"), format!("`{peer}` is not a valid peer id"));
        }
    }
}

fn log(c: &mut Checks, config: &Config) {
    let level = config.log.level.trim();
    if level.is_empty() {
        c.fail("log.level", "must not be empty; e.g. `info` or `info,statemesh=debug`");
    } else if let Err(err) = tracing_subscriber::EnvFilter::try_new(level) {
        c.fail("log.level", format!("`{level}` is not a valid filter: {err}"));
    }
}
