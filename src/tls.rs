//! TLS for the HTTP API: the server's rustls configuration from PEM files, and the one
//! crypto provider both sides use.
//!
//! rustls and reqwest are built without a default provider (the default, aws-lc-rs, costs a
//! long C build); `ring`, which libp2p already brings, is installed process-wide instead.
//! Every path that may build a TLS configuration (the typed client, the API server) calls
//! [`install_crypto_provider`] first, so the order in which they start does not matter.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain in {path}: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot read a private key in {path}: {reason}")]
    PrivateKey { path: PathBuf, reason: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Makes `ring` the process's rustls provider, unless one is installed already.
pub fn install_crypto_provider() {
    // An error only says a provider is in place already, which is all this wants.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A TLS server configuration for the certificate chain in `cert_file` and the key in
/// `key_file`, both PEM, speaking HTTP/1.1 (the only protocol the API serves).
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificates { path: cert_file.to_path_buf(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_file.to_path_buf() });
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError::PrivateKey { path: key_file.to_path_buf(), reason: e.to_string() })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a PEM file, as trust anchors for the typed client.
pub fn read_ca_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem =
        std::fs::read(path).map_err(|e| TlsError::Certificates { path: path.to_path_buf(), reason: e.to_string() })?;
    let found = CertificateDer::pem_slice_iter(&pem).next().is_some();
    if !found {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(pem)
}
