//! The certificate authorities the box's TLS clients check servers against: a PEM of their own
//! (an LDAP server's CA from localconfig), else the system bundle the image carries. One place
//! for the LDAP client and for update downloads.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Debian's bundle, copied into the image's initramfs.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why no client configuration could be made.
#[derive(Debug)]
pub enum TrustError {
    /// The bundle could not be read.
    Read { path: String, error: std::io::Error },
    /// It holds no certificate the store takes.
    NoCertificate,
    /// rustls refused its own defaults (a build without TLS 1.2 or 1.3).
    Config(rustls::Error),
}

impl std::fmt::Display for TrustError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustError::Read { path, error } => write!(f, "{path}: {error}"),
            TrustError::NoCertificate => f.write_str("no certificate in it"),
            TrustError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TrustError {}

/// The bytes of the CA bundle at `path`.
pub fn read_bundle(path: &str) -> Result<Vec<u8>, TrustError> {
    std::fs::read(path).map_err(|error| TrustError::Read {
        path: path.to_string(),
        error,
    })
}

/// A client configuration (aws-lc-rs, rustls' safe protocol versions) that verifies servers
/// against the certificates in `pem`.
pub fn client_config(pem: &[u8]) -> Result<Arc<ClientConfig>, TrustError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem).flatten() {
        // A certificate the store refuses is one fewer anchor, not a failure of the rest.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(TrustError::NoCertificate);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TrustError::Config)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS setup for hickory's DNS-over-TLS, which the box never uses. mail-auth turns on hickory's
/// TLS features, and without this a resolver would read the system's CA bundle when it is built
/// and fail on a box that has none.
pub fn unused_tls_config() -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_root_certificates(RootCertStore::empty())
                .with_no_client_auth()
        })
        // The provider's defaults always include a protocol version.
        .unwrap_or_else(|_| {
            ClientConfig::builder()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth()
        })
}
