//! Outbound TLS policy, named as Postfix's `smtp_tls_security_level`.
//!
//! `may` is opportunistic: STARTTLS when offered, certificate not checked (an MX's certificate
//! rarely matches anything a sender can verify, and refusing it would only send mail in clear).
//! `encrypt` insists on TLS without checking the certificate; `verify` insists on TLS with a
//! certificate valid for the next-hop name under the configured roots.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

/// Postfix's `smtp_tls_security_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered, no certificate check.
    #[default]
    May,
    /// TLS required, no certificate check.
    Encrypt,
    /// TLS required and the certificate must verify for the host name.
    Verify,
}

impl TlsPolicy {
    pub fn required(self) -> bool {
        matches!(self, TlsPolicy::Encrypt | TlsPolicy::Verify)
    }
}

/// The connector for a policy. `roots` is needed for `Verify` (the CA bundle); without it
/// nothing verifies and `Verify` defers all mail, which is the safe way to be misconfigured.
pub fn connector(policy: TlsPolicy, roots: Option<Arc<RootCertStore>>) -> Option<TlsConnector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .ok()?;
    let config = match policy {
        TlsPolicy::None => return None,
        TlsPolicy::May | TlsPolicy::Encrypt => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        TlsPolicy::Verify => builder
            .with_root_certificates(roots.unwrap_or_else(|| Arc::new(RootCertStore::empty())))
            .with_no_client_auth(),
    };
    Some(TlsConnector::from(Arc::new(config)))
}

/// Accepts any certificate but still checks the handshake signatures, so the session is
/// encrypted to whoever holds the key the server presented. Also the relay bench's STARTTLS
/// client's (examples/smtp-load.rs).
#[derive(Debug)]
pub struct AnyCertificate(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
