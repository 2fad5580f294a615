//! What the box keeps in its own config slot on flash, beside the directory: settings that are
//! this box's and not the directory's: its TLS certificate and key, where it answers Prometheus
//! scrapes, the console's password, its host name and network, and its localconfig (the LDAP
//! connection settings).

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::box_settings::{Fqdn, NetworkSettings, NetworkSettingsV1, NetworkSettingsV5};

/// Bumped when the layout below changes incompatibly; every older version stays readable.
/// 2 added `metrics`, the console password, the host name, the network and `localconfig`;
/// 3 the DKIM signing keys; 4 the NTP servers; 5 the network's IPv6; 6 IPv6 DNS servers.
pub const STORED_VERSION: u32 = 6;

/// The box's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxConfig {
    /// The certificate chain (PEM) STARTTLS and port 465 present.
    pub tls_cert_pem: Option<String>,
    /// Its private key (PEM).
    pub tls_key_pem: Option<String>,
    /// The Prometheus endpoint; `None` (the default) serves none.
    pub metrics: Option<MetricsSetting>,
    /// The hash of the serial console's admin password; `None` on a box never set up, which is
    /// what starts the first-boot wizard.
    pub console_password: Option<String>,
    /// The host name set at setup; `None`: the boot parameters' (or the default).
    pub hostname: Option<Fqdn>,
    /// eth0's network; `None`: not set up yet (the boot parameters' defaults apply).
    pub network: Option<NetworkSettings>,
    /// `postern localconfig` keys that differ from their defaults, as `(key, value)` strings so a
    /// key added later does not change the layout.
    pub localconfig: Vec<(String, String)>,
    /// The DKIM signing keys (`postern dkim keygen`): this box's secrets, like its TLS key.
    pub dkim_keys: Vec<DkimKeyRecord>,
    /// The SNTP servers the appliance sets its clock from (names or addresses, checked when
    /// set); empty: the clock is left alone.
    pub ntp_servers: Vec<String>,
}

/// One domain's DKIM signing key as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimKeyRecord {
    /// The signing domain (`d=`), lower case.
    pub domain: String,
    /// The selector (`s=`): the key's DNS name is `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// `rsa` or `ed25519`.
    pub algorithm: String,
    /// The private key, PKCS#8 DER.
    pub pkcs8: Vec<u8>,
    /// When it was made (seconds since the Unix epoch).
    pub created: u64,
}

impl fmt::Debug for DkimKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("DkimKeyRecord")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Version 5: the network's DNS servers were IPv4 only.
#[derive(Deserialize)]
struct BoxConfigV5 {
    tls_cert_pem: Option<String>,
    tls_key_pem: Option<String>,
    metrics: Option<MetricsSetting>,
    console_password: Option<String>,
    hostname: Option<Fqdn>,
    network: Option<NetworkSettingsV5>,
    localconfig: Vec<(String, String)>,
    dkim_keys: Vec<DkimKeyRecord>,
    ntp_servers: Vec<String>,
}

/// Version 4: everything of version 5 but the network's IPv6.
#[derive(Deserialize)]
struct BoxConfigV4 {
    tls_cert_pem: Option<String>,
    tls_key_pem: Option<String>,
    metrics: Option<MetricsSetting>,
    console_password: Option<String>,
    hostname: Option<Fqdn>,
    network: Option<NetworkSettingsV1>,
    localconfig: Vec<(String, String)>,
    dkim_keys: Vec<DkimKeyRecord>,
    ntp_servers: Vec<String>,
}

/// Version 3: everything of version 4 but the NTP servers.
#[derive(Deserialize)]
struct BoxConfigV3 {
    tls_cert_pem: Option<String>,
    tls_key_pem: Option<String>,
    metrics: Option<MetricsSetting>,
    console_password: Option<String>,
    hostname: Option<Fqdn>,
    network: Option<NetworkSettingsV1>,
    localconfig: Vec<(String, String)>,
    dkim_keys: Vec<DkimKeyRecord>,
}

/// Version 2 (before the DKIM keys), read so an updated box keeps its settings.
#[derive(Deserialize)]
struct BoxConfigV2 {
    tls_cert_pem: Option<String>,
    tls_key_pem: Option<String>,
    metrics: Option<MetricsSetting>,
    console_password: Option<String>,
    hostname: Option<Fqdn>,
    network: Option<NetworkSettingsV1>,
    localconfig: Vec<(String, String)>,
}

/// Where the box answers `GET /metrics`, and to whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSetting {
    pub listen: SocketAddr,
    /// Client networks, as `zimbraMtaMyNetworks` writes them (`10.0.0.0/8 192.0.2.7/32`);
    /// checked when set.
    pub allow: String,
}

/// Version 1 (TLS only), read so a box updated from it keeps its certificate.
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
                "box config of version {v}; this firmware reads versions 1 to {STORED_VERSION}"
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
                    ..BoxConfig::default()
                })
            }
            2 => {
                let v2: BoxConfigV2 = postcard::from_bytes(body).map_err(corrupt)?;
                Ok(BoxConfig {
                    tls_cert_pem: v2.tls_cert_pem,
                    tls_key_pem: v2.tls_key_pem,
                    metrics: v2.metrics,
                    console_password: v2.console_password,
                    hostname: v2.hostname,
                    network: v2.network.map(NetworkSettings::from),
                    localconfig: v2.localconfig,
                    dkim_keys: Vec::new(),
                    ntp_servers: Vec::new(),
                })
            }
            3 => {
                let v3: BoxConfigV3 = postcard::from_bytes(body).map_err(corrupt)?;
                Ok(BoxConfig {
                    tls_cert_pem: v3.tls_cert_pem,
                    tls_key_pem: v3.tls_key_pem,
                    metrics: v3.metrics,
                    console_password: v3.console_password,
                    hostname: v3.hostname,
                    network: v3.network.map(NetworkSettings::from),
                    localconfig: v3.localconfig,
                    dkim_keys: v3.dkim_keys,
                    ntp_servers: Vec::new(),
                })
            }
            4 => {
                let v4: BoxConfigV4 = postcard::from_bytes(body).map_err(corrupt)?;
                Ok(BoxConfig {
                    tls_cert_pem: v4.tls_cert_pem,
                    tls_key_pem: v4.tls_key_pem,
                    metrics: v4.metrics,
                    console_password: v4.console_password,
                    hostname: v4.hostname,
                    network: v4.network.map(NetworkSettings::from),
                    localconfig: v4.localconfig,
                    dkim_keys: v4.dkim_keys,
                    ntp_servers: v4.ntp_servers,
                })
            }
            5 => {
                let v5: BoxConfigV5 = postcard::from_bytes(body).map_err(corrupt)?;
                Ok(BoxConfig {
                    tls_cert_pem: v5.tls_cert_pem,
                    tls_key_pem: v5.tls_key_pem,
                    metrics: v5.metrics,
                    console_password: v5.console_password,
                    hostname: v5.hostname,
                    network: v5.network.map(NetworkSettings::from),
                    localconfig: v5.localconfig,
                    dkim_keys: v5.dkim_keys,
                    ntp_servers: v5.ntp_servers,
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
            metrics: Some(MetricsSetting {
                listen: "0.0.0.0:9154".parse().unwrap(),
                allow: "10.0.0.0/8".into(),
            }),
            console_password: Some("{SSHA512}x".into()),
            hostname: Some("mx1.example.com".parse().unwrap()),
            network: Some(
                NetworkSettings::new(
                    super::super::box_settings::Ipv4Method::Dhcp,
                    vec![[192, 0, 2, 53].into()],
                )
                .unwrap(),
            ),
            localconfig: vec![("ldap_url".into(), "ldap://127.0.0.1".into())],
            dkim_keys: vec![DkimKeyRecord {
                domain: "example.com".into(),
                selector: "s1".into(),
                algorithm: "ed25519".into(),
                pkcs8: vec![1, 2, 3],
                created: 1,
            }],
            ntp_servers: vec!["pool.ntp.org".into()],
        };
        assert_eq!(BoxConfig::decode(&c.encode()), Ok(c.clone()));
        // The same settings as versions 4 (no IPv6), 3 (no NTP servers) and 2 (no DKIM keys
        // either) wrote them still load, with IPv6 as the kernel did it then: SLAAC.
        #[derive(Serialize)]
        struct OldNetwork {
            ipv4: super::super::box_settings::Ipv4Method,
            dns: Vec<std::net::Ipv4Addr>,
        }
        let v4_dns = |n: &NetworkSettings| -> Vec<std::net::Ipv4Addr> {
            n.dns
                .iter()
                .filter_map(|d| match d {
                    std::net::IpAddr::V4(v4) => Some(*v4),
                    std::net::IpAddr::V6(_) => None,
                })
                .collect()
        };
        let old_network = c.network.as_ref().map(|n| OldNetwork {
            ipv4: n.ipv4,
            dns: v4_dns(n),
        });
        let head = (
            &c.tls_cert_pem,
            &c.tls_key_pem,
            &c.metrics,
            &c.console_password,
            &c.hostname,
            &old_network,
            &c.localconfig,
        );
        let old = |version: u32, rest: Vec<u8>| {
            let mut bytes = version.to_le_bytes().to_vec();
            bytes.extend(postcard::to_allocvec(&head).unwrap());
            bytes.extend(rest);
            bytes
        };
        let v4 = old(
            4,
            postcard::to_allocvec(&(&c.dkim_keys, &c.ntp_servers)).unwrap(),
        );
        assert_eq!(BoxConfig::decode(&v4), Ok(c.clone()));
        let mut v3 = c.clone();
        v3.ntp_servers.clear();
        let bytes = old(3, postcard::to_allocvec(&c.dkim_keys).unwrap());
        assert_eq!(BoxConfig::decode(&bytes), Ok(v3.clone()));
        let mut v2 = v3;
        v2.dkim_keys.clear();
        assert_eq!(BoxConfig::decode(&old(2, Vec::new())), Ok(v2));
        // A version-5 network (IPv4 DNS servers only) keeps its IPv6.
        let mut v5 = c.clone();
        v5.network = v5
            .network
            .map(|n| n.with_ipv6(super::super::box_ipv6::Ipv6Method::Off));
        #[derive(Serialize)]
        struct NetworkV5 {
            ipv4: super::super::box_settings::Ipv4Method,
            dns: Vec<std::net::Ipv4Addr>,
            ipv6: super::super::box_ipv6::Ipv6Method,
        }
        let network_v5 = v5.network.as_ref().map(|n| NetworkV5 {
            ipv4: n.ipv4,
            dns: v4_dns(n),
            ipv6: n.ipv6,
        });
        let mut bytes = 5u32.to_le_bytes().to_vec();
        let fields = (
            &v5.tls_cert_pem,
            &v5.tls_key_pem,
            &v5.metrics,
            &v5.console_password,
            &v5.hostname,
            &network_v5,
            &v5.localconfig,
            &v5.dkim_keys,
            &v5.ntp_servers,
        );
        bytes.extend(postcard::to_allocvec(&fields).unwrap());
        assert_eq!(BoxConfig::decode(&bytes), Ok(v5.clone()));
        // Version 6: IPv6 DNS servers too.
        let mut v6 = v5;
        if let Some(n) = v6.network.as_mut() {
            n.dns.push("2001:db8::53".parse().unwrap());
        }
        assert_eq!(BoxConfig::decode(&v6.encode()), Ok(v6));
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
    fn layout_1_still_loads() {
        // A version-1 slot as the firmware before the metrics setting wrote it.
        let mut v1 = 1u32.to_le_bytes().to_vec();
        v1.extend(postcard::to_allocvec(&(Some("CERT"), Some("KEY"))).unwrap());
        assert_eq!(
            BoxConfig::decode(&v1),
            Ok(BoxConfig {
                tls_cert_pem: Some("CERT".into()),
                tls_key_pem: Some("KEY".into()),
                ..BoxConfig::default()
            })
        );
    }

    #[test]
    fn a_version_1_slot_keeps_its_certificate_and_is_not_set_up() {
        // Version 1 as the previous firmware wrote it: version, then two optional strings.
        let mut v1 = 1u32.to_le_bytes().to_vec();
        v1.extend([1, 4]);
        v1.extend(b"CERT");
        v1.extend([1, 3]);
        v1.extend(b"KEY");
        let c = BoxConfig::decode(&v1).unwrap();
        assert_eq!(c.tls_cert_pem.as_deref(), Some("CERT"));
        assert_eq!(c.tls_key_pem.as_deref(), Some("KEY"));
        assert_eq!(c.console_password, None);
        assert_eq!(c.network, None);
        // Written back, it is the current version.
        assert_eq!(c.encode()[..4], STORED_VERSION.to_le_bytes());
    }
}
