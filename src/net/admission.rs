//! Who may connect: the cluster pre-shared key and the peer allowlist, and the penalty box
//! for peers that keep sending invalid messages.
//!
//! The pre-shared key (libp2p private network) wraps every TCP connection before the noise
//! handshake, so a node without the key cannot even complete a handshake. The allowlist is
//! checked when a connection is established: a peer not on it is disconnected before any
//! protocol runs. Either way a stranger can neither read nor write.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use libp2p::pnet::PreSharedKey;
use libp2p::PeerId;

use crate::config::SecurityConfig;

/// Invalid messages tolerated from one peer within [`OFFENCE_WINDOW`] before it is
/// disconnected and refused for [`BAN_DURATION`].
const OFFENCES_MAX: u32 = 16;
const OFFENCE_WINDOW: Duration = Duration::from_secs(60);
pub const BAN_DURATION: Duration = Duration::from_secs(300);

/// Reads the configured pre-shared key: 64 hex characters inline, or a file holding either
/// 64 hex characters or the libp2p `swarm.key` format.
pub fn load_psk(security: &SecurityConfig) -> Result<Option<PreSharedKey>, String> {
    if let Some(hex_key) = &security.psk {
        return parse_hex(hex_key).map(Some).ok_or_else(|| "security.psk: expected 64 hex characters".to_string());
    }
    let Some(path) = &security.psk_file else { return Ok(None) };
    let text = read_key_file(path)?;
    if let Some(key) = parse_hex(text.trim()) {
        return Ok(Some(key));
    }
    PreSharedKey::from_str(&text).map(Some).map_err(|e| {
        format!("security.psk_file {}: neither 64 hex characters nor a swarm.key file ({e})", path.display())
    })
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

    #[test]
    fn psk_parses_from_hex_and_refuses_garbage() {
        let security = SecurityConfig { psk: Some("ab".repeat(32)), ..SecurityConfig::default() };
        assert!(load_psk(&security).expect("valid").is_some());
        let bad = SecurityConfig { psk: Some("zz".repeat(32)), ..SecurityConfig::default() };
        assert!(load_psk(&bad).is_err());
        assert!(load_psk(&SecurityConfig::default()).expect("none").is_none());
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
