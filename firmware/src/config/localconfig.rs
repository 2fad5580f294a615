//! The box's connection settings for the directory, named and shown as Zimbra's `zmlocalconfig`
//! shows them (`ldap_url`, `zimbra_ldap_userdn`, ...). They are this box's, not the directory's,
//! so they live in the config slot beside the TLS identity. Every value is checked when it is set;
//! [`LocalConfig::set`] on a bad value changes nothing.

use std::fmt;
use std::time::Duration;

use super::duration::{self, Unit};

pub const LDAP_URL: &str = "ldap_url";
pub const STARTTLS: &str = "ldap_starttls_supported";
pub const USER_DN: &str = "zimbra_ldap_userdn";
pub const PASSWORD: &str = "zimbra_ldap_password";
pub const SEARCH_BASE: &str = "ldap_search_base";
pub const SCHEMA: &str = "ldap_schema";
pub const SYNC_INTERVAL: &str = "ldap_sync_interval";
pub const FULL_SYNC_INTERVAL: &str = "ldap_full_sync_interval";
pub const CACHE_MAX_AGE: &str = "ldap_cache_max_age";
pub const CA_CERT: &str = "ldap_ca_cert";
pub const CONNECT_TIMEOUT: &str = "ldap_connect_timeout";
pub const READ_TIMEOUT: &str = "ldap_read_timeout";
pub const SERVER_HOSTNAME: &str = "zimbra_server_hostname";

/// Every key, in the order `postern localconfig` prints them.
pub const KEYS: &[&str] = &[
    LDAP_URL,
    STARTTLS,
    USER_DN,
    PASSWORD,
    SEARCH_BASE,
    SCHEMA,
    SYNC_INTERVAL,
    FULL_SYNC_INTERVAL,
    CACHE_MAX_AGE,
    CA_CERT,
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    SERVER_HOSTNAME,
];

/// Keys whose values are printed only with `-s`.
pub const SECRETS: &[&str] = &[PASSWORD];

/// One LDAP server: `ldap://host[:port]` or `ldaps://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUrl {
    /// `ldaps://`: TLS from the first byte.
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for LdapUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "ldaps" } else { "ldap" };
        let default = if self.tls { 636 } else { 389 };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]", self.host)?;
        } else {
            write!(f, "{scheme}://{}", self.host)?;
        }
        if self.port != default {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LdapUrl {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<LdapUrl, &'static str> {
        let (tls, rest) = if let Some(r) = strip_ci(s, "ldaps://") {
            (true, r)
        } else if let Some(r) = strip_ci(s, "ldap://") {
            (false, r)
        } else {
            return Err("use ldap://host[:port] or ldaps://host[:port]");
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
                (h, after.strip_prefix(':'))
            }
            None => match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        if !host_ok {
            return Err("no host, or a host with characters a host name cannot have");
        }
        let port = match port {
            None => {
                if tls {
                    636
                } else {
                    389
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err("the port is not a number from 1 to 65535"),
            },
        };
        Ok(LdapUrl {
            tls,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

fn strip_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Which attributes carry addresses: Zimbra's own schema, or a plain directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LdapSchema {
    #[default]
    Zimbra,
    InetOrgPerson,
    ActiveDirectory,
}

impl LdapSchema {
    fn name(self) -> &'static str {
        match self {
            LdapSchema::Zimbra => "zimbra",
            LdapSchema::InetOrgPerson => "inetorgperson",
            LdapSchema::ActiveDirectory => "ad",
        }
    }
}

/// A key or value `postern localconfig -e` refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalConfigError {
    UnknownKey(String),
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

impl fmt::Display for LocalConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalConfigError::UnknownKey(k) => {
                write!(
                    f,
                    "unknown localconfig key {k:?}; known: {}",
                    KEYS.join(" ")
                )
            }
            LocalConfigError::Invalid { key, value, reason } => {
                write!(f, "invalid value {value:?} for {key}: {reason}")
            }
        }
    }
}

impl std::error::Error for LocalConfigError {}

/// The settings, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// Tried in order; empty means the box does not sync from LDAP.
    pub ldap_urls: Vec<LdapUrl>,
    /// StartTLS on `ldap://` URLs before binding.
    pub starttls: bool,
    /// Empty: an anonymous bind.
    pub user_dn: String,
    pub password: String,
    /// Empty: the whole DIT, as Zimbra's Postfix maps search.
    pub search_base: String,
    pub schema: LdapSchema,
    /// Between incremental polls.
    pub sync_interval: Duration,
    /// Between full syncs, which are what find deleted entries when polling by modifyTimestamp.
    pub full_sync_interval: Duration,
    /// Past this age unknown recipients are answered 451, not 550; zero means never.
    pub cache_max_age: Duration,
    /// PEM certificates trusted for TLS to LDAP; `None`: the system's bundle.
    pub ca_cert_pem: Option<String>,
    pub connect_timeout: Duration,
    /// For the bind and each search.
    pub read_timeout: Duration,
    /// This box's server entry (`cn=NAME,cn=servers,cn=zimbra`), whose MTA settings override the
    /// global ones; empty: the box's hostname.
    pub server_hostname: String,
}

impl Default for LocalConfig {
    fn default() -> LocalConfig {
        LocalConfig {
            ldap_urls: Vec::new(),
            starttls: false,
            user_dn: String::new(),
            password: String::new(),
            search_base: String::new(),
            schema: LdapSchema::Zimbra,
            sync_interval: Duration::from_secs(120),
            full_sync_interval: Duration::from_secs(3600),
            cache_max_age: Duration::ZERO,
            ca_cert_pem: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            server_hostname: String::new(),
        }
    }
}

fn canonical(key: &str) -> Result<&'static str, LocalConfigError> {
    KEYS.iter()
        .find(|k| k.eq_ignore_ascii_case(key.trim()))
        .copied()
        .ok_or_else(|| LocalConfigError::UnknownKey(key.to_string()))
}

impl LocalConfig {
    /// Whether LDAP sync is configured at all.
    pub fn ldap_enabled(&self) -> bool {
        !self.ldap_urls.is_empty()
    }

    /// A value as `postern localconfig` prints it.
    pub fn get(&self, key: &str) -> Result<String, LocalConfigError> {
        let secs = |d: Duration| duration::show(d, Unit::Seconds);
        Ok(match canonical(key)? {
            LDAP_URL => self
                .ldap_urls
                .iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            STARTTLS => u8::from(self.starttls).to_string(),
            USER_DN => self.user_dn.clone(),
            PASSWORD => self.password.clone(),
            SEARCH_BASE => self.search_base.clone(),
            SCHEMA => self.schema.name().to_string(),
            SYNC_INTERVAL => secs(self.sync_interval),
            FULL_SYNC_INTERVAL => secs(self.full_sync_interval),
            CACHE_MAX_AGE => secs(self.cache_max_age),
            CA_CERT => self.ca_cert_pem.clone().unwrap_or_default(),
            CONNECT_TIMEOUT => secs(self.connect_timeout),
            SERVER_HOSTNAME => self.server_hostname.clone(),
            _ => secs(self.read_timeout),
        })
    }

    /// Sets one key; an empty value restores its default.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), LocalConfigError> {
        let key = canonical(key)?;
        let value = value.trim();
        let bad = |reason: &dyn fmt::Display| LocalConfigError::Invalid {
            key,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if value.is_empty() {
            let default = LocalConfig::default();
            let fresh = default.get(key)?;
            if !fresh.is_empty() {
                return self.set(key, &fresh);
            }
        }
        let time = |min: Duration| -> Result<Duration, LocalConfigError> {
            let d = duration::parse(value, Unit::Seconds).map_err(|e| bad(&e))?;
            if d < min {
                return Err(bad(&format_args!("at least {}s", min.as_secs())));
            }
            Ok(d)
        };
        match key {
            LDAP_URL => {
                self.ldap_urls = value
                    .split_whitespace()
                    .map(|u| u.parse().map_err(|e: &str| bad(&e)))
                    .collect::<Result<_, _>>()?
            }
            STARTTLS => {
                self.starttls = match value {
                    "1" | "true" | "TRUE" => true,
                    "0" | "false" | "FALSE" | "" => false,
                    _ => return Err(bad(&"use 1 or 0")),
                }
            }
            USER_DN => self.user_dn = value.to_string(),
            PASSWORD => self.password = value.to_string(),
            SEARCH_BASE => self.search_base = value.to_string(),
            SCHEMA => {
                self.schema = match value.to_ascii_lowercase().as_str() {
                    "zimbra" => LdapSchema::Zimbra,
                    "inetorgperson" => LdapSchema::InetOrgPerson,
                    "ad" => LdapSchema::ActiveDirectory,
                    _ => return Err(bad(&"use zimbra, inetorgperson or ad")),
                }
            }
            SYNC_INTERVAL => self.sync_interval = time(Duration::from_secs(1))?,
            FULL_SYNC_INTERVAL => self.full_sync_interval = time(Duration::from_secs(1))?,
            CACHE_MAX_AGE => self.cache_max_age = time(Duration::ZERO)?,
            CA_CERT => {
                self.ca_cert_pem = match value {
                    "" => None,
                    pem if pem.contains("-----BEGIN CERTIFICATE-----") => Some(pem.to_string()),
                    _ => return Err(bad(&"not a PEM certificate")),
                }
            }
            CONNECT_TIMEOUT => self.connect_timeout = time(Duration::from_secs(1))?,
            SERVER_HOSTNAME => {
                let ok = value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
                if !ok {
                    return Err(bad(&"not a host name"));
                }
                self.server_hostname = value.to_ascii_lowercase()
            }
            _ => self.read_timeout = time(Duration::from_secs(1))?,
        }
        Ok(())
    }

    /// Applies `KEY=VALUE` settings all or nothing.
    pub fn set_all(&mut self, pairs: &[(String, String)]) -> Result<(), LocalConfigError> {
        let mut next = self.clone();
        for (k, v) in pairs {
            next.set(k, v)?;
        }
        *self = next;
        Ok(())
    }

    /// The keys whose values differ from the defaults, as stored on flash.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let default = LocalConfig::default();
        KEYS.iter()
            .filter_map(|k| {
                let v = self.get(k).ok()?;
                (default.get(k).ok()? != v).then(|| (k.to_string(), v))
            })
            .collect()
    }

    /// Reads stored pairs back. A key this firmware does not know (written by a newer one) is
    /// skipped, so a downgrade still boots; a bad value is an error.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<LocalConfig, LocalConfigError> {
        let mut c = LocalConfig::default();
        for (k, v) in pairs {
            match c.set(k, v) {
                Err(LocalConfigError::UnknownKey(_)) => {}
                other => other?,
            }
        }
        Ok(c)
    }

    /// `key = value` lines, as `zmlocalconfig` prints them; secrets masked unless `secrets`.
    pub fn show(&self, keys: &[String], secrets: bool) -> Result<String, LocalConfigError> {
        let keys: Vec<&'static str> = if keys.is_empty() {
            KEYS.to_vec()
        } else {
            keys.iter()
                .map(|k| canonical(k))
                .collect::<Result<_, _>>()?
        };
        let mut out = String::new();
        for k in keys {
            let v = self.get(k)?;
            let v = if SECRETS.contains(&k) && !secrets && !v.is_empty() {
                "********".to_string()
            } else if k == CA_CERT && !v.is_empty() {
                // A PEM on one line would be unreadable; say what is there.
                let n = v.matches("-----BEGIN CERTIFICATE-----").count();
                format!("({n} PEM certificate{})", if n == 1 { "" } else { "s" })
            } else {
                v
            };
            out.push_str(&format!("{k} = {v}\n"));
        }
        Ok(out)
    }
}

/// Splits `KEY=VALUE` arguments.
pub fn parse_assignments(args: &[String]) -> Result<Vec<(String, String)>, LocalConfigError> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => Ok((canonical(k)?.to_string(), v.to_string())),
            None => Err(LocalConfigError::Invalid {
                key: "localconfig -e",
                value: a.clone(),
                reason: "use KEY=VALUE".into(),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(c: &mut LocalConfig, k: &str, v: &str) -> Result<(), LocalConfigError> {
        c.set(k, v)
    }

    #[test]
    fn urls_are_typed_and_shown_back() {
        let mut c = LocalConfig::default();
        assert!(!c.ldap_enabled());
        set(
            &mut c,
            "ldap_url",
            "ldap://LDAP1.example.com:389 ldaps://ldap2.example.com/ ldap://[::1]:3890",
        )
        .unwrap();
        assert_eq!(c.ldap_urls.len(), 3);
        assert_eq!(c.ldap_urls[1].port, 636);
        assert!(c.ldap_urls[1].tls);
        assert_eq!(
            c.get("LDAP_URL").unwrap(),
            "ldap://ldap1.example.com ldaps://ldap2.example.com ldap://[::1]:3890"
        );
        for bad in [
            "http://x",
            "ldap://",
            "ldap://h:0",
            "ldap://h:99999",
            "ldap://a b",
        ] {
            let before = c.clone();
            assert!(set(&mut c, "ldap_url", bad).is_err(), "{bad}");
            assert_eq!(c, before);
        }
    }

    #[test]
    fn values_are_checked_and_defaults_restored() {
        let mut c = LocalConfig::default();
        assert_eq!(c.get("ldap_sync_interval").unwrap(), "120s");
        set(&mut c, "ldap_sync_interval", "30s").unwrap();
        assert_eq!(c.sync_interval, Duration::from_secs(30));
        set(&mut c, "ldap_sync_interval", "").unwrap();
        assert_eq!(c.sync_interval, Duration::from_secs(120));
        assert!(set(&mut c, "ldap_sync_interval", "0").is_err());
        assert!(set(&mut c, "ldap_schema", "novell").is_err());
        set(&mut c, "ldap_schema", "AD").unwrap();
        assert_eq!(c.schema, LdapSchema::ActiveDirectory);
        assert!(set(&mut c, "ldap_starttls_supported", "yes").is_err());
        assert!(set(&mut c, "ldap_ca_cert", "not pem").is_err());
        assert!(matches!(
            set(&mut c, "ldap_nonsense", "1"),
            Err(LocalConfigError::UnknownKey(_))
        ));
    }

    #[test]
    fn secrets_are_hidden_unless_asked() {
        let mut c = LocalConfig::default();
        c.set_all(&parse_assignments(&["zimbra_ldap_password=s3cret".into()]).unwrap())
            .unwrap();
        assert!(!c.show(&[], false).unwrap().contains("s3cret"));
        assert!(
            c.show(&[], false)
                .unwrap()
                .contains("zimbra_ldap_password = ********")
        );
        assert!(c.show(&[], true).unwrap().contains("s3cret"));
    }

    #[test]
    fn set_all_is_all_or_nothing_and_pairs_round_trip() {
        let mut c = LocalConfig::default();
        let bad = parse_assignments(&[
            "ldap_url=ldap://127.0.0.1:3890".into(),
            "ldap_cache_max_age=soon".into(),
        ])
        .unwrap();
        assert!(c.set_all(&bad).is_err());
        assert_eq!(c, LocalConfig::default());
        c.set_all(&bad[..1]).unwrap();
        c.set(CACHE_MAX_AGE, "1h").unwrap();
        let pairs = c.to_pairs();
        assert_eq!(pairs.len(), 2);
        assert_eq!(LocalConfig::from_pairs(&pairs).unwrap(), c);
        let mut newer = pairs.clone();
        newer.push(("ldap_from_the_future".into(), "x".into()));
        assert_eq!(LocalConfig::from_pairs(&newer).unwrap(), c);
        assert!(parse_assignments(&["ldap_url".into()]).is_err());
    }
}
