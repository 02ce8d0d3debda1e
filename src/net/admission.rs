//! Who may connect: the cluster key and the peer allowlist, and the penalty box for peers
//! that keep sending invalid messages.
//!
//! The cluster key (a libp2p private network's pre-shared key) wraps every TCP connection
//! before the noise handshake, so a node without it cannot even complete a handshake: it
//! cannot join, read, write or be found through mDNS (its dials fail). A node is never open
//! by accident: given no key, it creates one in its data directory on first start and keeps
//! using it, and tells the operator how to hand it to the next node; only an explicit
//! `security.insecure` runs without a key, with a warning. The allowlist is checked when a
//! connection is established: a peer not on it is disconnected before any protocol runs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use libp2p::pnet::PreSharedKey;
use libp2p::PeerId;

use crate::config::SecurityConfig;

/// File name of the cluster key a node creates for itself inside its data directory.
pub const CLUSTER_KEY_FILE: &str = "cluster.key";

/// Invalid messages tolerated from one peer within [`OFFENCE_WINDOW`] before it is
/// disconnected and refused for [`BAN_DURATION`].
const OFFENCES_MAX: u32 = 16;
const OFFENCE_WINDOW: Duration = Duration::from_secs(60);
pub const BAN_DURATION: Duration = Duration::from_secs(300);

/// How this node admits peers, resolved once at startup.
#[derive(Clone)]
pub struct Admission {
    /// The cluster key; `None` only in insecure mode.
    pub psk: Option<PreSharedKey>,
    pub allowlist: Allowlist,
    pub mode: AdmissionMode,
}

/// What the startup log reports about admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmissionMode {
    /// Peers must hold the key whose fingerprint this is.
    Key { fingerprint: String, source: KeySource },
    /// Any peer may connect (`security.insecure`).
    Insecure,
}

/// Where the cluster key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `security.psk` (the configuration, the environment or `--cluster-key`).
    Configured,
    /// `security.psk_file`.
    File(PathBuf),
    /// The key this node created in its data directory on an earlier start.
    Stored(PathBuf),
    /// The key this node has just created in its data directory.
    Created(PathBuf),
}

impl Admission {
    /// Resolves admission from `security`; without a configured key (and not insecure), the
    /// key in `<data_dir>/cluster.key` is used, created on first start.
    pub fn resolve(security: &SecurityConfig, data_dir: &Path) -> Result<Self, String> {
        let allowlist = Allowlist::from_config(security)?;
        if security.insecure {
            return Ok(Self { psk: None, allowlist, mode: AdmissionMode::Insecure });
        }
        let (psk, source) = match configured_key(security)? {
            Some(found) => found,
            None => own_key(data_dir)?,
        };
        let fingerprint = psk.fingerprint().to_string();
        Ok(Self { psk: Some(psk), allowlist, mode: AdmissionMode::Key { fingerprint, source } })
    }

    /// Says in the log which admission mode is in force, and how to let the next node in.
    pub fn log(&self, data_dir: &Path) {
        let allowlist = self.allowlist.peers().map_or(0, <[PeerId]>::len);
        match &self.mode {
            AdmissionMode::Insecure => tracing::warn!(
                allowlisted_peers = allowlist,
                "admission: INSECURE (security.insecure): any peer that reaches this node's p2p port may \
                 replicate with it; for labs only"
            ),
            AdmissionMode::Key { fingerprint, source } => {
                tracing::info!(%fingerprint, source = %source, allowlisted_peers = allowlist,
                    "admission: peers must hold the cluster key");
                if let KeySource::Created(path) = source {
                    tracing::warn!(
                        key_file = %path.display(),
                        "this node created a new cluster key: other nodes can join it only with the same key; \
                         print it with `statemesh key show --data-dir {}` and start them with `--cluster-key KEY` \
                         (or STATEMESH_SECURITY__PSK, or copy the file and set security.psk_file)",
                        data_dir.display()
                    );
                }
            }
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Configured => f.write_str("security.psk"),
            KeySource::File(path) => write!(f, "security.psk_file {}", path.display()),
            KeySource::Stored(path) => write!(f, "{}", path.display()),
            KeySource::Created(path) => write!(f, "{} (created now)", path.display()),
        }
    }
}

/// The key the configuration names: 64 hex characters inline, or a file holding either 64
/// hex characters or the libp2p `swarm.key` format.
fn configured_key(security: &SecurityConfig) -> Result<Option<(PreSharedKey, KeySource)>, String> {
    if let Some(hex_key) = &security.psk {
        let key = parse_hex(hex_key).ok_or_else(|| "security.psk: expected 64 hex characters".to_string())?;
        return Ok(Some((key, KeySource::Configured)));
    }
    let Some(path) = &security.psk_file else { return Ok(None) };
    let text = read_key_file(path)?;
    let key = match parse_hex(text.trim()) {
        Some(key) => key,
        None => PreSharedKey::from_str(&text).map_err(|e| {
            format!("security.psk_file {}: neither 64 hex characters nor a swarm.key file ({e})", path.display())
        })?,
    };
    Ok(Some((key, KeySource::File(path.clone()))))
}

/// The key this node keeps in its data directory, created (mode 0600) when absent.
fn own_key(data_dir: &Path) -> Result<(PreSharedKey, KeySource), String> {
    let path = data_dir.join(CLUSTER_KEY_FILE);
    let (text, source) = match stored_key_hex(data_dir)? {
        Some(text) => (text, KeySource::Stored(path)),
        None => {
            let text = generate_key();
            crate::identity::write_private(&path, format!("{text}\n").as_bytes())
                .map_err(|e| format!("cannot write the cluster key {}: {e}", path.display()))?;
            (text, KeySource::Created(path))
        }
    };
    let key = parse_hex(&text).ok_or_else(|| format!("{source}: expected 64 hex characters"))?;
    Ok((key, source))
}

/// The cluster key this node created in `data_dir` (64 hex characters), if there is one.
pub fn stored_key_hex(data_dir: &Path) -> Result<Option<String>, String> {
    let path = data_dir.join(CLUSTER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if parse_hex(text.trim()).is_some() => Ok(Some(text.trim().to_string())),
        Ok(_) => Err(format!("{}: expected 64 hex characters", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the cluster key {}: {e}", path.display())),
    }
}

/// A fresh cluster key: 32 random bytes as 64 hex characters.
pub fn generate_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn read_key_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("security.psk_file {}: {e}", path.display()))
}

fn parse_hex(text: &str) -> Option<PreSharedKey> {
    let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
    Some(PreSharedKey::new(bytes))
}

/// The allowlist (`security.allowed_peers`; empty admits any peer that has the key).
#[derive(Debug, Clone, Default)]
pub struct Allowlist(Option<Vec<PeerId>>);

impl Allowlist {
    pub fn from_config(security: &SecurityConfig) -> Result<Self, String> {
        if security.allowed_peers.is_empty() {
            return Ok(Self(None));
        }
        let peers = security
            .allowed_peers
            .iter()
            .map(|p| PeerId::from_str(p).map_err(|e| format!("security.allowed_peers: `{p}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(Some(peers)))
    }

    /// The listed peers, or `None` when any peer is admitted.
    pub fn peers(&self) -> Option<&[PeerId]> {
        self.0.as_deref()
    }
}

/// Counts invalid messages per peer and decides when a peer has earned a ban.
#[derive(Debug, Default)]
pub struct Offenders {
    counts: BTreeMap<PeerId, (Instant, u32)>,
    banned: BTreeMap<PeerId, Instant>,
}

impl Offenders {
    /// Records one offence; returns true when the peer must now be disconnected and banned.
    pub fn offend(&mut self, peer: PeerId, now: Instant) -> bool {
        let entry = self.counts.entry(peer).or_insert((now, 0));
        if now.duration_since(entry.0) > OFFENCE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > OFFENCES_MAX {
            self.counts.remove(&peer);
            self.banned.insert(peer, now + BAN_DURATION);
            return true;
        }
        false
    }

    /// Peers banned now.
    pub fn banned_count(&self, now: Instant) -> usize {
        self.banned.values().filter(|until| **until > now).count()
    }

    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.banned.get(peer).is_some_and(|until| *until > now)
    }

    /// Forgets expired bans and stale counts; returns the peers whose ban just ended.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        self.counts.retain(|_, (since, _)| now.duration_since(*since) <= OFFENCE_WINDOW);
        let ended: Vec<PeerId> = self.banned.iter().filter(|(_, until)| **until <= now).map(|(p, _)| *p).collect();
        for peer in &ended {
            self.banned.remove(peer);
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_psk(security: &SecurityConfig) -> Result<Option<PreSharedKey>, String> {
        Ok(configured_key(security)?.map(|(key, _)| key))
    }

    #[test]
    fn psk_parses_from_hex_and_refuses_garbage() {
        let security = SecurityConfig { psk: Some("ab".repeat(32)), ..SecurityConfig::default() };
        assert!(load_psk(&security).expect("valid").is_some());
        let bad = SecurityConfig { psk: Some("zz".repeat(32)), ..SecurityConfig::default() };
        assert!(load_psk(&bad).is_err());
        assert!(load_psk(&SecurityConfig::default()).expect("none").is_none());
    }

    #[test]
    fn a_node_given_no_key_creates_one_keeps_it_and_never_runs_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        // First start: a key is created, private to the node's user.
        let first = Admission::resolve(&SecurityConfig::default(), dir.path()).expect("resolve");
        let AdmissionMode::Key { fingerprint, source } = &first.mode else { panic!("no key: {:?}", first.mode) };
        assert_eq!(source, &KeySource::Created(dir.path().join(CLUSTER_KEY_FILE)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CLUSTER_KEY_FILE)).expect("key file").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key file is readable by others: {mode:o}");
        }
        // Restart: the same key, now read back.
        let again = Admission::resolve(&SecurityConfig::default(), dir.path()).expect("resolve again");
        let AdmissionMode::Key { fingerprint: same, source } = &again.mode else { panic!("no key") };
        assert_eq!(same, fingerprint);
        assert_eq!(source, &KeySource::Stored(dir.path().join(CLUSTER_KEY_FILE)));
        // What `statemesh key show` prints is that key, in the form `--cluster-key` takes.
        let shown = stored_key_hex(dir.path()).expect("read").expect("stored");
        let configured = SecurityConfig { psk: Some(shown), ..SecurityConfig::default() };
        let joined = Admission::resolve(&configured, tempfile::tempdir().expect("tempdir").path()).expect("join");
        assert!(
            matches!(&joined.mode, AdmissionMode::Key { fingerprint: f, source: KeySource::Configured } if f == fingerprint)
        );
    }

    #[test]
    fn only_an_explicit_setting_runs_without_a_key_and_a_damaged_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let insecure = SecurityConfig { insecure: true, ..SecurityConfig::default() };
        let open = Admission::resolve(&insecure, dir.path()).expect("resolve");
        assert_eq!(open.mode, AdmissionMode::Insecure);
        assert!(open.psk.is_none());
        assert!(!dir.path().join(CLUSTER_KEY_FILE).exists(), "no key is created in insecure mode");
        std::fs::write(dir.path().join(CLUSTER_KEY_FILE), "not a key\n").expect("write");
        let error = Admission::resolve(&SecurityConfig::default(), dir.path()).err().expect("refused");
        assert!(error.contains("64 hex characters"), "{error}");
    }

    #[test]
    fn psk_file_accepts_hex_and_swarm_key_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hex_path = dir.path().join("hex.key");
        std::fs::write(&hex_path, format!("{}\n", "01".repeat(32))).expect("write");
        let swarm_path = dir.path().join("swarm.key");
        std::fs::write(&swarm_path, format!("/key/swarm/psk/1.0.0/\n/base16/\n{}", "01".repeat(32))).expect("write");
        let from_hex = load_psk(&SecurityConfig { psk_file: Some(hex_path), ..SecurityConfig::default() })
            .expect("hex file")
            .expect("key");
        let from_swarm = load_psk(&SecurityConfig { psk_file: Some(swarm_path), ..SecurityConfig::default() })
            .expect("swarm file")
            .expect("key");
        assert_eq!(from_hex.fingerprint().to_string(), from_swarm.fingerprint().to_string());
        let missing = SecurityConfig { psk_file: Some(dir.path().join("absent")), ..SecurityConfig::default() };
        assert!(load_psk(&missing).is_err());
    }

    #[test]
    fn a_repeat_offender_is_banned_and_the_ban_expires() {
        let mut offenders = Offenders::default();
        let peer = PeerId::random();
        let start = Instant::now();
        let banned = (0..=OFFENCES_MAX).map(|_| offenders.offend(peer, start)).collect::<Vec<_>>();
        assert_eq!(banned.iter().filter(|b| **b).count(), 1, "banned exactly once, at the last offence");
        assert!(offenders.is_banned(&peer, start));
        assert_eq!(offenders.expire(start + BAN_DURATION + Duration::from_secs(1)), vec![peer]);
        assert!(!offenders.is_banned(&peer, start + BAN_DURATION + Duration::from_secs(1)));
    }

    #[test]
    fn offences_spread_over_time_do_not_ban() {
        let mut offenders = Offenders::default();
        let peer = PeerId::random();
        let start = Instant::now();
        for i in 0..100u64 {
            let at = start + OFFENCE_WINDOW.mul_f64(0.5) * i as u32;
            assert!(!offenders.offend(peer, at), "offence {i} banned the peer");
        }
    }

    #[test]
    fn allowlist_lists_configured_peers_and_refuses_invalid_ids() {
        let listed = PeerId::random();
        let security = SecurityConfig { allowed_peers: vec![listed.to_string()], ..SecurityConfig::default() };
        let allowlist = Allowlist::from_config(&security).expect("valid");
        assert_eq!(allowlist.peers(), Some(&[listed][..]));
        assert_eq!(Allowlist::from_config(&SecurityConfig::default()).expect("empty").peers(), None);
        let bad = SecurityConfig { allowed_peers: vec!["not-a-peer".to_string()], ..SecurityConfig::default() };
        assert!(Allowlist::from_config(&bad).is_err());
    }
}
