//! The node's identity: an ed25519 keypair persisted in the data directory.
//!
//! The node id is the keypair's libp2p PeerId, so the same name identifies the node on the
//! network, in version vectors and in change ids. The Automerge actor id is derived from it,
//! which makes every change a node writes attributable and keeps the actor stable across
//! restarts (a fresh random actor per start would grow every document's actor table).

use std::path::{Path, PathBuf};

use automerge::ActorId;
use libp2p_identity::{Keypair, PeerId};
use statemesh_protocol::NodeId;

/// File name of the keypair inside the data directory.
pub const KEY_FILE: &str = "node.key";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the node key {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the node key {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the node key {path} is not a valid ed25519 key: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Clone)]
pub struct Identity {
    keypair: Keypair,
    peer_id: PeerId,
    node_id: NodeId,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("node_id", &self.node_id).finish()
    }
}

impl Identity {
    /// A fresh identity that lives only as long as the process (memory storage).
    pub fn ephemeral() -> Self {
        Self::from_keypair(Keypair::generate_ed25519())
    }

    /// Loads `<dir>/node.key`, creating it (mode 0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let keypair = Keypair::from_protobuf_encoding(&bytes)
                    .map_err(|e| IdentityError::Invalid { path: path.clone(), reason: e.to_string() })?;
                if keypair.clone().try_into_ed25519().is_err() {
                    return Err(IdentityError::Invalid { path, reason: "not an ed25519 key".to_string() });
                }
                Ok(Self::from_keypair(keypair))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keypair = Keypair::generate_ed25519();
                let encoded = keypair
                    .to_protobuf_encoding()
                    .map_err(|e| IdentityError::Invalid { path: path.clone(), reason: e.to_string() })?;
                write_private(&path, &encoded).map_err(|source| IdentityError::Write { path, source })?;
                Ok(Self::from_keypair(keypair))
            }
            Err(source) => Err(IdentityError::Read { path, source }),
        }
    }

    fn from_keypair(keypair: Keypair) -> Self {
        let peer_id = keypair.public().to_peer_id();
        Self { keypair, node_id: node_id_of(&peer_id), peer_id }
    }

    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The ed25519 key this node seals its change records with (the same key as its PeerId).
    pub fn signing_key(&self) -> libp2p_identity::ed25519::Keypair {
        self.keypair.clone().try_into_ed25519().expect("node identities are ed25519 (checked when loaded)")
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The Automerge actor this node writes as: the PeerId's bytes.
    pub fn actor_id(&self) -> ActorId {
        ActorId::from(self.peer_id.to_bytes())
    }
}

/// The node id of a peer: its PeerId in base58.
pub fn node_id_of(peer: &PeerId) -> NodeId {
    // A base58 PeerId (about 52 characters) is always a valid node id.
    NodeId::new(peer.to_base58()).expect("a PeerId is valid base58")
}

/// Writes `bytes` to `path` atomically, readable by this user only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("key.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_reloaded_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Identity::load_or_create(dir.path()).expect("create");
        let again = Identity::load_or_create(dir.path()).expect("load");
        assert_eq!(first.node_id(), again.node_id());
        assert_eq!(first.actor_id(), again.actor_id());
    }

    #[test]
    fn a_corrupt_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(KEY_FILE), b"garbage").expect("write");
        assert!(matches!(Identity::load_or_create(dir.path()), Err(IdentityError::Invalid { .. })));
    }
}
