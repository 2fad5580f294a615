//! The box's TLS identity: the certificate installed with `postern tls install`, or a
//! self-signed one for the hostname made at first start and kept on flash.

use std::path::Path;

use super::DaemonError;
use crate::config::stored::BoxConfig;
use crate::inbound::tls::{self, TlsIdentity};
use crate::spool::{Region, SpoolHandle};

/// Reads the box config from its slot (an empty slot is a new box).
pub async fn box_config(spool: &SpoolHandle, flash: &Path) -> Result<BoxConfig, DaemonError> {
    match spool.read_slot(Region::Config).await {
        Ok(Some(bytes)) => {
            BoxConfig::decode(&bytes).map_err(|e| DaemonError::Config(flash.to_path_buf(), e))
        }
        Ok(None) => Ok(BoxConfig::default()),
        Err(e) => Err(DaemonError::Spool(flash.to_path_buf(), e)),
    }
}

/// The stored identity, or a new self-signed one, stored before it is used.
pub async fn identity(
    spool: &SpoolHandle,
    hostname: &str,
    flash: &Path,
) -> Result<TlsIdentity, DaemonError> {
    let mut config = box_config(spool, flash).await?;
    if let (Some(cert_pem), Some(key_pem)) = (&config.tls_cert_pem, &config.tls_key_pem) {
        return Ok(TlsIdentity {
            cert_pem: cert_pem.clone(),
            key_pem: key_pem.clone(),
        });
    }
    let identity = tls::self_signed(hostname).map_err(|e| DaemonError::Tls(e.to_string()))?;
    config.tls_cert_pem = Some(identity.cert_pem.clone());
    config.tls_key_pem = Some(identity.key_pem.clone());
    spool
        .write_slot(Region::Config, config.encode())
        .await
        .map_err(|e| DaemonError::Spool(flash.to_path_buf(), e))?;
    eprintln!("postern: made a self-signed TLS certificate for {hostname}");
    Ok(identity)
}
