//! Transports in Zimbra's syntax (`zimbraMailTransport`, `zimbraMtaRelayHost`):
//! `smtp:host`, `smtp:host:port`, `smtp:[host]:port`, `lmtp:host:port`, `lmtp:[host]:port`.
//!
//! As in Postfix, a bare host name under `smtp:` is looked up as a mail domain (MX records first);
//! brackets mean "this host, no MX lookup". LMTP never uses MX records. A `Transport` can only hold
//! a valid value: parsing happens once, when the setting is made, never at delivery time.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The protocol spoken to the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
        }
    }
}

/// A next-hop host: a DNS name (lowercase, checked) or an address literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Where a message goes next.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transport {
    pub protocol: Protocol,
    pub host: Host,
    pub port: u16,
    /// Look up MX records for `host` (Postfix: the host was not in brackets).
    pub mx: bool,
}

impl Transport {
    /// SMTP to the mail exchangers of `domain` on port 25: how mail to other domains leaves when
    /// no relay host is set.
    pub fn mx(domain: &str) -> Result<Transport, TransportError> {
        Ok(Transport {
            protocol: Protocol::Smtp,
            host: parse_name(domain)?,
            port: 25,
            mx: true,
        })
    }
}

/// Why a transport string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Not `smtp:` or `lmtp:`.
    UnknownProtocol(String),
    /// No host after the protocol.
    MissingHost,
    /// The host is neither a valid DNS name nor an address literal.
    BadHost(String),
    /// The port is not a number from 1 to 65535.
    BadPort(String),
    /// LMTP needs an explicit port (Zimbra's LMTP listens on 7025, not 24).
    LmtpNeedsPort,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::UnknownProtocol(p) => {
                write!(
                    f,
                    "unknown transport {p:?}: use smtp:host[:port] or lmtp:host:port"
                )
            }
            TransportError::MissingHost => f.write_str("no host in transport"),
            TransportError::BadHost(h) => write!(f, "{h:?} is not a host name or address"),
            TransportError::BadPort(p) => write!(f, "{p:?} is not a port (1-65535)"),
            TransportError::LmtpNeedsPort => {
                f.write_str("lmtp transport needs a port: lmtp:host:port")
            }
        }
    }
}

impl std::error::Error for TransportError {}

impl FromStr for Transport {
    type Err = TransportError;

    fn from_str(s: &str) -> Result<Transport, TransportError> {
        let s = s.trim();
        let (proto, rest) = match s.split_once(':') {
            Some((p, rest)) => (p, rest),
            // A relay host may be given without a protocol, as Postfix's relayhost is.
            None => ("smtp", s),
        };
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "smtp" => Protocol::Smtp,
            "lmtp" => Protocol::Lmtp,
            // `[host]:port` with no protocol: the colon we split at belongs to the port.
            _ if s.starts_with('[') => return format!("smtp:{s}").parse(),
            _ => return Err(TransportError::UnknownProtocol(proto.to_string())),
        };
        if rest.is_empty() {
            return Err(TransportError::MissingHost);
        }
        let (host, mx, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner
                .split_once(']')
                .ok_or_else(|| TransportError::BadHost(rest.to_string()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| TransportError::BadPort(p.to_string()))?,
                ),
            };
            (parse_host(host)?, false, port)
        } else {
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            // A bare IPv4 address (Zimbra's `lmtp:10.0.0.5:7025`) is an address, as Postfix
            // takes it: no MX, no DNS. Bare IPv6 cannot be told from a port: it needs brackets.
            match host.parse::<std::net::Ipv4Addr>() {
                Ok(ip) => (Host::Ip(ip.into()), false, port),
                Err(_) => (parse_name(host)?, protocol == Protocol::Smtp, port),
            }
        };
        let port = match port {
            Some(p) => parse_port(p)?,
            None if protocol == Protocol::Lmtp => return Err(TransportError::LmtpNeedsPort),
            None => 25,
        };
        Ok(Transport {
            protocol,
            host,
            port,
            mx,
        })
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.protocol.name();
        match (&self.host, self.mx) {
            (Host::Name(h), true) if self.port == 25 => write!(f, "{p}:{h}"),
            (Host::Name(h), true) => write!(f, "{p}:{h}:{}", self.port),
            (Host::Name(h), false) if self.protocol == Protocol::Lmtp => {
                write!(f, "{p}:{h}:{}", self.port)
            }
            (Host::Name(h), false) => write!(f, "{p}:[{h}]:{}", self.port),
            (Host::Ip(ip), _) => write!(f, "{p}:[{ip}]:{}", self.port),
        }
    }
}

fn parse_port(p: &str) -> Result<u16, TransportError> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(TransportError::BadPort(p.to_string())),
        Ok(n) => Ok(n),
    }
}

fn parse_host(h: &str) -> Result<Host, TransportError> {
    let literal = h
        .strip_prefix("IPv6:")
        .or_else(|| h.strip_prefix("ipv6:"))
        .unwrap_or(h);
    match literal.parse::<IpAddr>() {
        Ok(ip) => Ok(Host::Ip(ip)),
        Err(_) => parse_name(h),
    }
}

/// A DNS host name: LDH labels of 1 to 63 characters, 253 at most in all, stored lowercase.
fn parse_name(h: &str) -> Result<Host, TransportError> {
    let bad = || TransportError::BadHost(h.to_string());
    let name = h.strip_suffix('.').unwrap_or(h);
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(bad());
        }
    }
    Ok(Host::Name(name.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Transport {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn zimbra_transport_strings() {
        let a = t("smtp:mail.example.com:25");
        assert_eq!((a.protocol, a.port, a.mx), (Protocol::Smtp, 25, true));
        assert_eq!(a.host, Host::Name("mail.example.com".into()));
        let b = t("smtp:[mail.example.com]:2525");
        assert_eq!((b.port, b.mx), (2525, false));
        let c = t("lmtp:zimbra.example.com:7025");
        assert_eq!((c.protocol, c.port, c.mx), (Protocol::Lmtp, 7025, false));
        let d = t("smtp:[127.0.0.1]:10025");
        assert_eq!(d.host, Host::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(
            t("smtp:[IPv6:::1]:25").host,
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(t("smtp:Example.COM").host, Host::Name("example.com".into()));
        // Bare IPv4 addresses are addresses, never names to look up.
        let e = t("lmtp:127.0.0.1:7025");
        assert_eq!(
            (e.host, e.mx),
            (Host::Ip("127.0.0.1".parse().unwrap()), false)
        );
        assert_eq!(
            t("smtp:192.0.2.7").host,
            Host::Ip("192.0.2.7".parse().unwrap())
        );
        // Postfix relayhost forms without a protocol.
        assert_eq!(
            t("[relay.example.net]:587"),
            t("smtp:[relay.example.net]:587")
        );
        assert_eq!(t("relay.example.net"), t("smtp:relay.example.net"));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "smtp:example.com",
            "smtp:mx.example.com:2525",
            "smtp:[mail.example.com]:25",
            "lmtp:store.example.com:7025",
            "smtp:[127.0.0.1]:10025",
            "smtp:[::1]:25",
        ] {
            assert_eq!(t(s).to_string(), s);
            assert_eq!(t(&t(s).to_string()), t(s));
        }
    }

    #[test]
    fn invalid_transports_are_refused() {
        for s in [
            "",
            "smtp:",
            "uucp:host",
            "smtp:host:0",
            "smtp:host:70000",
            "smtp:host:port",
            "smtp:[host",
            "smtp:[host]x",
            "lmtp:store.example.com",
            "smtp:bad host",
            "smtp:-bad.example",
            "smtp:a..b",
        ] {
            assert!(s.parse::<Transport>().is_err(), "{s} was accepted");
        }
    }
}
