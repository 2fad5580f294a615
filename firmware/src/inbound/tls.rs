//! The box's TLS identity, and TLS for the listeners: rustls with the aws-lc-rs provider, TLS 1.2
//! and 1.3 only. This is the one place that makes, checks, stores and loads the identity:
//!
//! - [`load_or_make`]: at start, the certificate installed with `postern tls install`, or a
//!   self-signed one for the hostname ([`self_signed`]), stored on flash before it is used;
//! - [`install`]: `postern tls install`, refused unless rustls accepts the pair;
//! - [`stored`]: `postern tls show`;
//! - [`server_config`]: what the listeners present, through a [`LiveCert`] that `postern tls
//!   install` on a running box swaps for the sessions that start after it.
//!
//! On flash it lives in the box's own config slot (`config::stored::BoxConfig`), beside the
//! directory, not in it: it is this box's and no other's.

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::stored::{BoxConfig, StoredError};
use crate::smtp::TlsInfo;
use crate::spool::{Region, SpoolError, SpoolHandle};

/// A certificate chain and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("TlsIdentity")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Why TLS could not be set up.
#[derive(Debug)]
pub enum TlsError {
    /// The certificate could not be generated.
    Generate(rcgen::Error),
    /// No certificate in the PEM, or it does not parse.
    BadCertificate(String),
    /// No private key in the PEM, or it does not parse.
    BadKey(String),
    /// rustls refused the pair (e.g. the key does not match the certificate).
    Rustls(rustls::Error),
    /// The box config slot holds something this firmware cannot read.
    Stored(StoredError),
    /// The flash could not be read or written.
    Flash(SpoolError),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Generate(e) => write!(f, "cannot make a certificate: {e}"),
            TlsError::BadCertificate(e) => write!(f, "bad certificate PEM: {e}"),
            TlsError::BadKey(e) => write!(f, "bad private key PEM: {e}"),
            TlsError::Rustls(e) => write!(f, "TLS setup failed: {e}"),
            TlsError::Stored(e) => write!(f, "{e}"),
            TlsError::Flash(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// A new self-signed certificate for `hostname` (subject alternative name) with a fresh key.
pub fn self_signed(hostname: &str) -> Result<TlsIdentity, TlsError> {
    let ck = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(TlsError::Generate)?;
    Ok(TlsIdentity {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    })
}

/// The box config from its slot (an empty slot is a new box).
async fn box_config(spool: &SpoolHandle) -> Result<BoxConfig, TlsError> {
    match spool.read_slot(Region::Config).await {
        Ok(Some(bytes)) => BoxConfig::decode(&bytes).map_err(TlsError::Stored),
        Ok(None) => Ok(BoxConfig::default()),
        Err(e) => Err(TlsError::Flash(e)),
    }
}

/// The identity stored on flash, if one was made or installed.
pub async fn stored(spool: &SpoolHandle) -> Result<Option<TlsIdentity>, TlsError> {
    let config = box_config(spool).await?;
    Ok(match (config.tls_cert_pem, config.tls_key_pem) {
        (Some(cert_pem), Some(key_pem)) => Some(TlsIdentity { cert_pem, key_pem }),
        _ => None,
    })
}

/// Stores `identity` as the box's, once rustls accepts it: a pair it refuses would leave the box
/// without TLS at its next start.
pub async fn install(spool: &SpoolHandle, identity: TlsIdentity) -> Result<(), TlsError> {
    server_config(&identity)?;
    store(spool, &identity).await
}

/// Writes `identity` into the box config slot, keeping the rest of the box config.
async fn store(spool: &SpoolHandle, identity: &TlsIdentity) -> Result<(), TlsError> {
    let mut config = box_config(spool).await?;
    config.tls_cert_pem = Some(identity.cert_pem.clone());
    config.tls_key_pem = Some(identity.key_pem.clone());
    spool
        .write_slot(Region::Config, config.encode())
        .await
        .map_err(TlsError::Flash)
}

/// Whether [`load_or_make`] found the identity or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Stored,
    MadeSelfSigned,
}

/// The stored identity, or a new self-signed one for `hostname`, stored before it is used.
pub async fn load_or_make(
    spool: &SpoolHandle,
    hostname: &str,
) -> Result<(TlsIdentity, Origin), TlsError> {
    if let Some(identity) = stored(spool).await? {
        return Ok((identity, Origin::Stored));
    }
    let identity = self_signed(hostname)?;
    store(spool, &identity).await?;
    Ok((identity, Origin::MadeSelfSigned))
}

/// The certificates of a PEM chain, leaf first.
pub fn load_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::BadCertificate("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The server side TLS configuration for an identity: TLS 1.3 and 1.2, no client certificates.
pub fn server_config(identity: &TlsIdentity) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(LiveCert::new(identity)?)
}

/// [`server_config`] presenting whatever `live` holds when a client says hello.
pub fn server_config_with(live: Arc<LiveCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_cert_resolver(live);
    Ok(Arc::new(config))
}

/// The certificate and key rustls signs with, refused when the key is not the certificate's.
fn certified_key(identity: &TlsIdentity) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = load_certs(&identity.cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|e| TlsError::BadKey(e.to_string()))?;
    let provider = aws_lc_rs::default_provider();
    CertifiedKey::from_der(certs, key, &provider)
        .map(Arc::new)
        .map_err(TlsError::Rustls)
}

/// The identity the listeners present now. `postern tls install` on a running box replaces it:
/// sessions that start after that get the new certificate, those under way keep theirs, as
/// smtpd processes started after a `postfix reload` read the new file.
#[derive(Debug)]
pub struct LiveCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl LiveCert {
    pub fn new(identity: &TlsIdentity) -> Result<Arc<LiveCert>, TlsError> {
        Ok(Arc::new(LiveCert {
            current: RwLock::new(certified_key(identity)?),
        }))
    }

    /// Presents `identity` from the next handshake on; nothing changes when rustls refuses it.
    pub fn replace(&self, identity: &TlsIdentity) -> Result<(), TlsError> {
        let key = certified_key(identity)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// What was negotiated, named as Postfix logs it (`TLSv1.3`, `TLS_AES_256_GCM_SHA384`).
pub fn tls_info(conn: &rustls::ServerConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "TLS".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let suite = s.suite();
            let name = suite
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{suite:?}"));
            // rustls names TLS 1.3 suites TLS13_*; IANA and OpenSSL say TLS_*.
            match name.strip_prefix("TLS13_") {
                Some(rest) => format!("TLS_{rest}"),
                None => name,
            }
        })
        .unwrap_or_default();
    let bits = if cipher.contains("AES_128") { 128 } else { 256 };
    TlsInfo {
        version,
        cipher,
        bits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_identity_loads_into_rustls() {
        let id = self_signed("mx.example.com").unwrap();
        assert!(id.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(id.key_pem.contains("PRIVATE KEY"));
        assert!(server_config(&id).is_ok());
        assert!(!format!("{id:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn broken_pem_is_refused_with_a_reason() {
        let id = self_signed("mx.example.com").unwrap();
        let other = self_signed("mx.example.com").unwrap();
        let bad = TlsIdentity {
            cert_pem: "garbage".into(),
            key_pem: id.key_pem.clone(),
        };
        assert!(matches!(
            server_config(&bad),
            Err(TlsError::BadCertificate(_))
        ));
        let mismatched = TlsIdentity {
            cert_pem: id.cert_pem.clone(),
            key_pem: other.key_pem,
        };
        assert!(server_config(&mismatched).is_err());
    }

    fn spool() -> SpoolHandle {
        use crate::spool::{Spool, SpoolGeometry, SpoolSettings, service};
        use hal::flash::{FlashGeometry, RamFlash};
        let mut flash = RamFlash::new(FlashGeometry::new(4096, 4096 * 64).unwrap());
        let geometry = SpoolGeometry {
            config_slot_blocks: 4,
            directory_slot_blocks: 1,
            segment_blocks: 8,
            log_blocks: 0,
        };
        Spool::format(&mut flash, geometry).unwrap();
        let (spool, _) = Spool::open(flash, SpoolSettings::default()).unwrap();
        service::spawn(spool).unwrap().0
    }

    #[tokio::test]
    async fn made_once_then_kept_and_only_a_usable_pair_is_installed() {
        let spool = spool();
        assert_eq!(stored(&spool).await.unwrap(), None);
        let (made, origin) = load_or_make(&spool, "mx.example.com").await.unwrap();
        assert_eq!(origin, Origin::MadeSelfSigned);
        let (again, origin) = load_or_make(&spool, "mx.example.com").await.unwrap();
        assert_eq!((again, origin), (made.clone(), Origin::Stored));
        let other = self_signed("mx.example.com").unwrap();
        let mismatched = TlsIdentity {
            cert_pem: other.cert_pem.clone(),
            key_pem: made.key_pem.clone(),
        };
        assert!(matches!(
            install(&spool, mismatched).await,
            Err(TlsError::Rustls(_))
        ));
        assert_eq!(stored(&spool).await.unwrap(), Some(made));
        install(&spool, other.clone()).await.unwrap();
        assert_eq!(stored(&spool).await.unwrap(), Some(other));
    }
}
