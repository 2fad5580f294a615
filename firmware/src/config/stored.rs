//! What the box keeps in its own config slot on flash, beside the directory: settings that are
//! this box's and not the directory's, such as its TLS certificate and key and its localconfig
//! (the LDAP connection settings).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Bumped when the layout below changes incompatibly. Version 1 had no localconfig; it is still
/// read.
pub const STORED_VERSION: u32 = 2;

/// The box's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxConfig {
    /// The certificate chain (PEM) STARTTLS and port 465 present.
    pub tls_cert_pem: Option<String>,
    /// Its private key (PEM).
    pub tls_key_pem: Option<String>,
    /// `postern localconfig` keys that differ from their defaults, as `(key, value)` strings so a
    /// key added later does not change the layout.
    pub localconfig: Vec<(String, String)>,
}

/// The layout of version 1.
#[derive(Deserialize)]
struct BoxConfigV1 {
    tls_cert_pem: Option<String>,
    tls_key_pem: Option<String>,
}

/// The config slot holds something this firmware cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredError {
    Version(u32),
    Corrupt(String),
}

impl fmt::Display for StoredError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredError::Version(v) => write!(
                f,
                "box config of version {v}; this firmware reads {STORED_VERSION}"
            ),
            StoredError::Corrupt(why) => write!(f, "box config unreadable: {why}"),
        }
    }
}

impl std::error::Error for StoredError {}

impl BoxConfig {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = STORED_VERSION.to_le_bytes().to_vec();
        // Strings and options only: postcard cannot fail on them.
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<BoxConfig, StoredError> {
        let (version, body) = bytes
            .split_at_checked(4)
            .ok_or_else(|| StoredError::Corrupt("too short".into()))?;
        let version = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
        let corrupt = |e: postcard::Error| StoredError::Corrupt(e.to_string());
        match version {
            1 => {
                let v1: BoxConfigV1 = postcard::from_bytes(body).map_err(corrupt)?;
                Ok(BoxConfig {
                    tls_cert_pem: v1.tls_cert_pem,
                    tls_key_pem: v1.tls_key_pem,
                    localconfig: Vec::new(),
                })
            }
            STORED_VERSION => postcard::from_bytes(body).map_err(corrupt),
            v => Err(StoredError::Version(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let c = BoxConfig {
            tls_cert_pem: Some("CERT".into()),
            tls_key_pem: Some("KEY".into()),
            localconfig: vec![("ldap_url".into(), "ldap://127.0.0.1".into())],
        };
        assert_eq!(BoxConfig::decode(&c.encode()), Ok(c));
        assert!(matches!(
            BoxConfig::decode(&[1, 0]),
            Err(StoredError::Corrupt(_))
        ));
        assert_eq!(
            BoxConfig::decode(&[9, 0, 0, 0]),
            Err(StoredError::Version(9))
        );
        assert!(BoxConfig::decode(&[1, 0, 0, 0, 1, 200]).is_err());
    }

    #[test]
    fn version_1_slots_still_read() {
        // What firmware with STORED_VERSION 1 wrote: the version, then two optional strings.
        let mut v1 = 1u32.to_le_bytes().to_vec();
        v1.extend(postcard::to_allocvec(&(Some("CERT"), Some("KEY"))).unwrap());
        let c = BoxConfig::decode(&v1).unwrap();
        assert_eq!(c.tls_cert_pem.as_deref(), Some("CERT"));
        assert_eq!(c.tls_key_pem.as_deref(), Some("KEY"));
        assert!(c.localconfig.is_empty());
        assert_eq!(BoxConfig::decode(&c.encode()), Ok(c));
    }
}
