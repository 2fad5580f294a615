//! From a next hop to the addresses to try, in order (RFC 5321 §5.1): MX records by preference,
//! each MX host's addresses, the domain itself when it has no MX (implicit MX), none for a null
//! MX (RFC 7505). Bracketed hosts and LMTP skip MX; address literals skip DNS entirely.
//!
//! DNS sits behind [`Dns`] so the order and the error mapping are tested without a network;
//! [`HickoryDns`] is the real one (never std's resolver: the binary is static glibc).

use std::fmt;
use std::future::Future;
use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{RData, RecordType};

use crate::mail::{EnhancedStatus, Host, Protocol, Transport};
use crate::nameserver::{FollowResolvConf, Servers};

/// Postfix's smtp_mx_address_limit.
pub const MX_ADDRESS_LIMIT: usize = 5;

/// One address to connect to, with the name it came from (for logs, SNI and Remote-MTA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub ip: IpAddr,
    pub port: u16,
}

impl Target {
    /// `host[ip]:port`, as Postfix logs a relay.
    pub fn relay(&self) -> String {
        format!("{}[{}]:{}", self.name, self.ip, self.port)
    }
}

/// A DNS answer for MX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// (preference, exchange); an exchange of `.` or empty is a null MX.
    Records(Vec<(u16, String)>),
    /// The name exists without MX records.
    NoRecords,
}

/// A DNS failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// NXDOMAIN: the name does not exist (permanent).
    NotFound,
    /// SERVFAIL, timeout, no server: try again later.
    Temporary(String),
}

/// What delivery needs from DNS.
pub trait Dns: Send + Sync {
    fn mx(&self, domain: &str) -> impl Future<Output = Result<MxAnswer, DnsError>> + Send;
    /// A and AAAA records; an empty list when the name exists without addresses.
    fn ips(&self, host: &str) -> impl Future<Output = Result<Vec<IpAddr>, DnsError>> + Send;
}

/// Why a next hop has no address to try. Shown as Postfix words it; a permanent failure
/// bounces, a temporary one defers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// RFC 7505: the domain's only MX is `.`.
    NullMx { domain: String },
    /// NXDOMAIN for the name itself.
    NotFound { name: String, rtype: &'static str },
    /// An MX host that does not exist: a broken MX the domain's admin may fix, so it defers.
    MxHostNotFound { host: String },
    /// SERVFAIL, timeout, no server.
    Temporary {
        name: String,
        rtype: &'static str,
        why: String,
    },
    /// The name exists without A or AAAA records.
    NoAddress { name: String },
}

impl ResolveError {
    /// Retrying cannot help.
    pub fn permanent(&self) -> bool {
        matches!(
            self,
            ResolveError::NullMx { .. } | ResolveError::NotFound { .. }
        )
    }

    /// The enhanced status code of the bounce or deferral.
    pub fn status(&self) -> EnhancedStatus {
        match self {
            ResolveError::NullMx { .. } => EnhancedStatus::of(5, 1, 10),
            ResolveError::NotFound { .. } => EnhancedStatus::of(5, 4, 4),
            ResolveError::MxHostNotFound { .. }
            | ResolveError::Temporary { .. }
            | ResolveError::NoAddress { .. } => EnhancedStatus::of(4, 4, 3),
        }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NOT_FOUND: &str = "Host or domain name not found. Name service error for";
        match self {
            ResolveError::NullMx { domain } => {
                write!(f, "Domain {domain} does not accept mail (nullMX)")
            }
            ResolveError::NotFound { name, rtype } => {
                write!(f, "{NOT_FOUND} name={name} type={rtype}: Host not found")
            }
            ResolveError::MxHostNotFound { host } => {
                write!(f, "{NOT_FOUND} name={host} type=A: Host not found")
            }
            ResolveError::Temporary { name, rtype, why } => {
                write!(f, "{NOT_FOUND} name={name} type={rtype}: {why}")
            }
            ResolveError::NoAddress { name } => {
                write!(f, "{NOT_FOUND} name={name} type=A: no address records")
            }
        }
    }
}

impl std::error::Error for ResolveError {}

/// The addresses to try for `hop`, best first, at most [`MX_ADDRESS_LIMIT`].
pub async fn targets<D: Dns>(dns: &D, hop: &Transport) -> Result<Vec<Target>, ResolveError> {
    let name = match &hop.host {
        Host::Ip(ip) => {
            return Ok(vec![Target {
                name: ip.to_string(),
                ip: *ip,
                port: hop.port,
            }]);
        }
        Host::Name(n) => n.as_str(),
    };
    let use_mx = hop.mx && hop.protocol == Protocol::Smtp;
    let hosts: Vec<String> = if use_mx {
        match dns.mx(name).await {
            Ok(MxAnswer::Records(mut recs)) if !recs.is_empty() => {
                if recs.iter().any(|(_, e)| e.is_empty() || e == ".") {
                    return Err(ResolveError::NullMx {
                        domain: name.to_string(),
                    });
                }
                recs.sort_by_key(|(pref, _)| *pref);
                recs.into_iter().map(|(_, e)| e).collect()
            }
            Ok(_) => vec![name.to_string()],
            Err(e) => return Err(dns_error(name, "MX", e)),
        }
    } else {
        vec![name.to_string()]
    };
    let mut out = Vec::new();
    let mut last_err = None;
    for host in &hosts {
        match dns.ips(host).await {
            Ok(ips) => {
                for ip in ips {
                    if out.len() < MX_ADDRESS_LIMIT {
                        out.push(Target {
                            name: host.trim_end_matches('.').to_string(),
                            ip,
                            port: hop.port,
                        });
                    }
                }
            }
            Err(e) => last_err = Some((host.clone(), e)),
        }
        if out.len() >= MX_ADDRESS_LIMIT {
            break;
        }
    }
    if !out.is_empty() {
        return Ok(out);
    }
    match last_err {
        // An MX host that does not exist is a broken MX: Postfix defers, the domain's admin may fix it.
        Some((host, DnsError::NotFound)) if use_mx && host != name => {
            Err(ResolveError::MxHostNotFound { host })
        }
        Some((host, e)) => Err(dns_error(&host, "A", e)),
        None => Err(ResolveError::NoAddress {
            name: name.to_string(),
        }),
    }
}

fn dns_error(name: &str, rtype: &'static str, e: DnsError) -> ResolveError {
    let name = name.to_string();
    match e {
        DnsError::NotFound => ResolveError::NotFound { name, rtype },
        DnsError::Temporary(why) => ResolveError::Temporary { name, rtype, why },
    }
}

/// DNS through hickory-resolver: given servers, or the system's resolv.conf followed as it
/// changes.
pub struct HickoryDns(Servers);

/// The resolver could not be set up (no readable resolv.conf, bad configuration).
#[derive(Debug)]
pub struct DnsSetupError(hickory_resolver::net::NetError);

impl fmt::Display for DnsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DnsSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl HickoryDns {
    /// The servers /etc/resolv.conf names, asked anew when the file changes (a DHCP lease, the
    /// console). Fails when the first resolver cannot be made.
    pub fn from_system() -> Result<HickoryDns, DnsSetupError> {
        crate::nameserver::builder(&[])
            .build()
            .map_err(DnsSetupError)?;
        Ok(Self::following(crate::nameserver::RESOLV_CONF))
    }

    /// The servers the resolv.conf at `path` names, asked anew when the file changes.
    pub fn following(path: impl Into<std::path::PathBuf>) -> HickoryDns {
        let follow = FollowResolvConf::at(path, |servers: &[std::net::SocketAddr]| {
            crate::nameserver::builder(servers).build().ok()
        });
        HickoryDns(Servers::System(follow))
    }

    /// Asking these servers (UDP, then TCP for long answers), as the box's own network config
    /// says; no resolv.conf needed.
    pub fn with_servers(servers: &[IpAddr]) -> Result<HickoryDns, DnsSetupError> {
        let on_53: Vec<std::net::SocketAddr> = servers
            .iter()
            .map(|ip| std::net::SocketAddr::new(*ip, 53))
            .collect();
        Self::with_servers_on(&on_53)
    }

    /// Like [`with_servers`](Self::with_servers), on any port (tests run a server on 127.0.0.1).
    pub fn with_servers_on(servers: &[std::net::SocketAddr]) -> Result<HickoryDns, DnsSetupError> {
        let r = crate::nameserver::builder(servers)
            .build()
            .map_err(DnsSetupError)?;
        Ok(HickoryDns(Servers::Fixed(r)))
    }

    pub fn new(resolver: TokioResolver) -> HickoryDns {
        HickoryDns(Servers::Fixed(resolver))
    }

    fn resolver(&self) -> Result<TokioResolver, DnsError> {
        self.0.current().ok_or_else(|| {
            DnsError::Temporary("no resolver from /etc/resolv.conf's servers".into())
        })
    }
}

fn fqdn(name: &str) -> String {
    // A trailing dot stops search-domain expansion: mail domains are always absolute.
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

fn map_err(e: hickory_resolver::net::NetError) -> Result<(), DnsError> {
    if e.is_nx_domain() {
        Err(DnsError::NotFound)
    } else if e.is_no_records_found() {
        Ok(())
    } else {
        Err(DnsError::Temporary(e.to_string()))
    }
}

impl Dns for HickoryDns {
    async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsError> {
        match self.resolver()?.lookup(fqdn(domain), RecordType::MX).await {
            Ok(l) => {
                let recs: Vec<(u16, String)> = l
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect();
                Ok(if recs.is_empty() {
                    MxAnswer::NoRecords
                } else {
                    MxAnswer::Records(recs)
                })
            }
            Err(e) => map_err(e).map(|()| MxAnswer::NoRecords),
        }
    }

    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        match self.resolver()?.lookup_ip(fqdn(host)).await {
            Ok(l) => Ok(l.iter().collect()),
            Err(e) => map_err(e).map(|()| Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct FakeDns {
        mx: HashMap<String, Result<MxAnswer, DnsError>>,
        a: HashMap<String, Result<Vec<IpAddr>, DnsError>>,
    }

    impl Dns for FakeDns {
        async fn mx(&self, d: &str) -> Result<MxAnswer, DnsError> {
            self.mx.get(d).cloned().unwrap_or(Err(DnsError::NotFound))
        }
        async fn ips(&self, h: &str) -> Result<Vec<IpAddr>, DnsError> {
            self.a.get(h).cloned().unwrap_or(Err(DnsError::NotFound))
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn mx_hosts_in_preference_order_then_fallback() {
        let mut dns = FakeDns::default();
        dns.mx.insert(
            "example.com".into(),
            Ok(MxAnswer::Records(vec![
                (20, "backup.example.com.".into()),
                (10, "mx1.example.com.".into()),
                (15, "gone.example.com.".into()),
            ])),
        );
        dns.a
            .insert("mx1.example.com.".into(), Ok(vec![ip("192.0.2.1")]));
        dns.a.insert(
            "backup.example.com.".into(),
            Ok(vec![ip("192.0.2.3"), ip("2001:db8::3")]),
        );
        let t = run(targets(&dns, &"smtp:example.com".parse().unwrap())).unwrap();
        let relays: Vec<String> = t.iter().map(Target::relay).collect();
        assert_eq!(
            relays,
            [
                "mx1.example.com[192.0.2.1]:25",
                "backup.example.com[192.0.2.3]:25",
                "backup.example.com[2001:db8::3]:25"
            ]
        );
    }

    #[test]
    fn no_mx_means_the_domain_itself_and_null_mx_bounces() {
        let mut dns = FakeDns::default();
        dns.mx
            .insert("plain.example".into(), Ok(MxAnswer::NoRecords));
        dns.a
            .insert("plain.example".into(), Ok(vec![ip("192.0.2.7")]));
        dns.mx.insert(
            "nomail.example".into(),
            Ok(MxAnswer::Records(vec![(0, ".".into())])),
        );
        let t = run(targets(&dns, &"smtp:plain.example".parse().unwrap())).unwrap();
        assert_eq!(t[0].relay(), "plain.example[192.0.2.7]:25");
        let e = run(targets(&dns, &"smtp:nomail.example".parse().unwrap())).unwrap_err();
        assert!(e.permanent());
        assert_eq!(e.status().to_string(), "5.1.10");
    }

    #[test]
    fn nxdomain_bounces_servfail_defers_literals_need_no_dns() {
        let mut dns = FakeDns::default();
        dns.mx.insert(
            "flaky.example".into(),
            Err(DnsError::Temporary("SERVFAIL".into())),
        );
        let e = run(targets(&dns, &"smtp:nosuch.example".parse().unwrap())).unwrap_err();
        assert!(e.permanent(), "{e:?}");
        let e = run(targets(&dns, &"smtp:flaky.example".parse().unwrap())).unwrap_err();
        assert!(!e.permanent());
        assert_eq!(e.status().to_string(), "4.4.3");
        // No DNS entry at all, yet a literal resolves: no lookup is made.
        let t = run(targets(&dns, &"smtp:[127.0.0.1]:2525".parse().unwrap())).unwrap();
        assert_eq!(t[0].relay(), "127.0.0.1[127.0.0.1]:2525");
        // LMTP and bracketed names skip MX.
        dns.a
            .insert("store.example".into(), Ok(vec![ip("192.0.2.9")]));
        let t = run(targets(&dns, &"lmtp:store.example:7025".parse().unwrap())).unwrap();
        assert_eq!(t[0].relay(), "store.example[192.0.2.9]:7025");
    }
}
