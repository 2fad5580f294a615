//! The certificate authorities the box's TLS clients check servers against: a PEM of their own
//! (an LDAP server's CA from localconfig), else the system bundle the image carries. One place
//! for the LDAP client and for update downloads.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

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
    /// No certificate verifier could be made from the anchors.
    Verifier(String),
}

impl std::fmt::Display for TrustError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustError::Read { path, error } => write!(f, "{path}: {error}"),
            TrustError::NoCertificate => f.write_str("no certificate in it"),
            TrustError::Config(e) => write!(f, "{e}"),
            TrustError::Verifier(e) => write!(f, "{e}"),
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
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TrustError::Config)?
        .with_root_certificates(roots(pem)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The same, for a server known by its IP address where the caller cannot name it so (ldap3
/// takes the TLS name from the URL's host, and an IPv6 one is bracketed there): the certificate
/// is checked against `ip` whatever name the handshake is given, and no SNI is sent (RFC 6066
/// §3 has none for addresses).
pub fn client_config_for_address(pem: &[u8], ip: IpAddr) -> Result<Arc<ClientConfig>, TrustError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots(pem)?), provider.clone())
            .build()
            .map_err(|e| TrustError::Verifier(e.to_string()))?;
    let verifier = CheckedAs {
        inner,
        name: ServerName::IpAddress(ip.into()),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TrustError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.enable_sni = false;
    Ok(Arc::new(config))
}

fn roots(pem: &[u8]) -> Result<RootCertStore, TrustError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem).flatten() {
        // A certificate the store refuses is one fewer anchor, not a failure of the rest.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(TrustError::NoCertificate);
    }
    Ok(roots)
}

/// The usual verification, of the certificate against a name fixed beforehand.
#[derive(Debug)]
struct CheckedAs {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for CheckedAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _given: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
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
