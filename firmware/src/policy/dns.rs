//! DNS for the restrictions: client names, HELO and sender domains, blocklists. Every lookup has a
//! deadline and comes back as an answer, "not found", or a temporary failure; none can hold a
//! session longer than [`Dns::deadline`]. Answers are cached for their TTL by hickory's resolver,
//! so a blocklist is asked once per client address, not once per recipient.
//!
//! [`Resolve`] is the seam: [`HickoryResolve`] in the daemon, a table in unit tests.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ResolveHosts, ResolverOpts};
use hickory_resolver::proto::rr::{RData, RecordType};

use crate::nameserver::{FollowResolvConf, Servers};

/// The record types the restrictions ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rtype {
    A,
    Aaaa,
    Mx,
    Txt,
    Ptr,
}

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    Ip(IpAddr),
    /// Preference and exchange (`.` for a null MX).
    Mx(u16, String),
    Txt(String),
    /// A PTR target.
    Name(String),
}

/// Why a lookup gave no records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsFailure {
    /// NXDOMAIN, or the name has no records of that type: a permanent answer.
    NotFound,
    /// No answer within the deadline.
    Timeout,
    /// SERVFAIL, a refused or malformed answer, no server reachable.
    ServerFailure,
}

impl std::fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DnsFailure::NotFound => "Host or domain name not found",
            DnsFailure::Timeout => "no answer within the deadline",
            DnsFailure::ServerFailure => "server failure, try again",
        })
    }
}

impl DnsFailure {
    pub fn is_temporary(self) -> bool {
        self != DnsFailure::NotFound
    }
}

pub type Lookup<'a> = Pin<Box<dyn Future<Output = Result<Vec<Rdata>, DnsFailure>> + Send + 'a>>;

/// Something that answers DNS questions.
pub trait Resolve: Send + Sync {
    /// The records of type `rtype` at the absolute name `name` (no trailing dot needed).
    fn query<'a>(&'a self, name: &'a str, rtype: Rtype) -> Lookup<'a>;
}

/// DNS with a deadline on every lookup.
#[derive(Clone)]
pub struct Dns {
    resolver: Arc<dyn Resolve>,
    deadline: Duration,
    /// The same hickory resolver (servers, cache, options) for mail-auth's SPF, DKIM and DMARC
    /// lookups; `None` when DNS is a table (unit tests) or absent.
    authenticator: Option<Arc<HickoryResolve>>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Postfix's resolver gives up after about this long (RES_TIMEOUT 5 s, two tries); one lookup
/// here waits no longer.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

impl Dns {
    pub fn new(resolver: Arc<dyn Resolve>, deadline: Duration) -> Dns {
        Dns {
            resolver,
            deadline,
            authenticator: None,
        }
    }

    /// DNS through hickory, shared with sender authentication.
    pub fn hickory(resolver: HickoryResolve, deadline: Duration) -> Dns {
        let resolver = Arc::new(resolver);
        Dns {
            resolver: resolver.clone(),
            deadline,
            authenticator: Some(resolver),
        }
    }

    /// The resolver sender authentication asks now, when there is a real one.
    pub fn authenticator(&self) -> Option<mail_auth::MessageAuthenticator> {
        let resolver = self.authenticator.as_ref()?.0.current()?;
        Some(mail_auth::MessageAuthenticator(resolver))
    }

    /// No resolver at all: every lookup fails temporarily, so DNS restrictions defer, never pass.
    pub fn none() -> Dns {
        Dns::new(Arc::new(NoResolver), DEFAULT_DEADLINE)
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub async fn query(&self, name: &str, rtype: Rtype) -> Result<Vec<Rdata>, DnsFailure> {
        if !is_queryable(name) {
            // Longer than DNS allows, or empty labels: no server can hold such a name.
            return Err(DnsFailure::NotFound);
        }
        match tokio::time::timeout(self.deadline, self.resolver.query(name, rtype)).await {
            Ok(Ok(records)) if records.is_empty() => Err(DnsFailure::NotFound),
            Ok(result) => result,
            Err(_) => Err(DnsFailure::Timeout),
        }
    }

    /// IPv4 addresses of `name` (blocklist answers are A records).
    pub async fn ipv4(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsFailure> {
        let records = self.query(name, Rtype::A).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                Rdata::Ip(IpAddr::V4(ip)) => Some(ip),
                _ => None,
            })
            .collect())
    }

    /// A and AAAA records together; "not found" only when neither exists.
    pub async fn ips(&self, name: &str) -> Result<Vec<IpAddr>, DnsFailure> {
        let (a, aaaa) = tokio::join!(self.query(name, Rtype::A), self.query(name, Rtype::Aaaa));
        let mut out = Vec::new();
        let mut failure = DnsFailure::NotFound;
        for result in [a, aaaa] {
            match result {
                Ok(records) => out.extend(records.into_iter().filter_map(|r| match r {
                    Rdata::Ip(ip) => Some(ip),
                    _ => None,
                })),
                Err(e) if e.is_temporary() => failure = e,
                Err(_) => {}
            }
        }
        if out.is_empty() {
            Err(failure)
        } else {
            Ok(out)
        }
    }

    /// The TXT strings at `name`, joined per record.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsFailure> {
        let records = self.query(name, Rtype::Txt).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                Rdata::Txt(t) => Some(t),
                _ => None,
            })
            .collect())
    }

    pub async fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, DnsFailure> {
        let records = self.query(name, Rtype::Mx).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                Rdata::Mx(p, e) => Some((p, e)),
                _ => None,
            })
            .collect())
    }

    /// The PTR names of `ip`.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsFailure> {
        let name = reverse_name(ip, "in-addr.arpa", "ip6.arpa");
        Ok(self
            .query(&name, Rtype::Ptr)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                Rdata::Name(n) => Some(n.trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .collect())
    }
}

/// `2.0.0.127.in-addr.arpa` for 127.0.0.2, the nibbles of an IPv6 address under `ip6.arpa`;
/// blocklists take the same reversed form under their own domain.
pub fn reverse_name(ip: IpAddr, v4_zone: &str, v6_zone: &str) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{v4_zone}")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(64 + v6_zone.len());
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str(v6_zone);
            out
        }
    }
}

/// Whether DNS can carry `name`: at most 253 characters, labels of 1 to 63.
fn is_queryable(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| (1..=63).contains(&l.len()))
}

struct NoResolver;

impl Resolve for NoResolver {
    fn query<'a>(&'a self, _name: &'a str, _rtype: Rtype) -> Lookup<'a> {
        Box::pin(async { Err(DnsFailure::ServerFailure) })
    }
}

/// hickory-resolver (std's resolver is never used: the binary is static glibc): given servers,
/// or the system's resolv.conf followed as it changes.
pub struct HickoryResolve(Servers);

impl HickoryResolve {
    /// The servers /etc/resolv.conf names, asked anew when the file changes (a DHCP lease, the
    /// console): a DNSBL check asks the servers the box has now.
    pub fn from_system(deadline: Duration) -> Result<HickoryResolve, BuildError> {
        let make = move |servers: &[SocketAddr]| {
            crate::nameserver::builder(servers)
                .with_options(options(deadline))
                .build()
                .ok()
        };
        make(&[]).ok_or(BuildError::Resolver)?;
        Ok(HickoryResolve(Servers::System(FollowResolvConf::system(
            make,
        ))))
    }

    /// Asking these servers (tests run one on 127.0.0.1, on any port).
    pub fn with_servers(
        servers: &[SocketAddr],
        deadline: Duration,
    ) -> Result<HickoryResolve, BuildError> {
        crate::nameserver::builder(servers)
            .with_options(options(deadline))
            .build()
            .map(|r| HickoryResolve(Servers::Fixed(r)))
            .map_err(|_| BuildError::Resolver)
    }
}

/// Why no resolver could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    Resolver,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BuildError::Resolver => "the DNS resolver could not be set up",
        })
    }
}

pub use crate::trust::unused_tls_config;

fn options(deadline: Duration) -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.timeout = deadline;
    opts.attempts = 1;
    opts.cache_size = 4096;
    opts.ndots = 0;
    // DNS only: the appliance has no /etc/hosts, and a developer's must not change answers.
    opts.use_hosts_file = ResolveHosts::Never;
    opts
}

fn rtype(t: Rtype) -> RecordType {
    match t {
        Rtype::A => RecordType::A,
        Rtype::Aaaa => RecordType::AAAA,
        Rtype::Mx => RecordType::MX,
        Rtype::Txt => RecordType::TXT,
        Rtype::Ptr => RecordType::PTR,
    }
}

fn rdata(d: &RData) -> Option<Rdata> {
    Some(match d {
        RData::A(a) => Rdata::Ip(IpAddr::V4(a.0)),
        RData::AAAA(a) => Rdata::Ip(IpAddr::V6(a.0)),
        RData::MX(mx) => Rdata::Mx(mx.preference, mx.exchange.to_ascii()),
        RData::TXT(t) => Rdata::Txt(
            t.txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect(),
        ),
        RData::PTR(p) => Rdata::Name(p.0.to_ascii()),
        _ => return None,
    })
}

impl Resolve for HickoryResolve {
    fn query<'a>(&'a self, name: &'a str, t: Rtype) -> Lookup<'a> {
        Box::pin(async move {
            // A trailing dot: no search-domain expansion, mail names are absolute.
            let absolute = format!("{}.", name.trim_end_matches('.'));
            let resolver = self.0.current().ok_or(DnsFailure::ServerFailure)?;
            match resolver.lookup(absolute, rtype(t)).await {
                Ok(l) => Ok(l.answers().iter().filter_map(|r| rdata(&r.data)).collect()),
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => Err(DnsFailure::NotFound),
                Err(_) => Err(DnsFailure::ServerFailure),
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A table of answers for unit tests.
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct FakeDns {
        pub answers: HashMap<(String, Rtype), Result<Vec<Rdata>, DnsFailure>>,
        /// Names whose server never answers.
        pub silent: Vec<String>,
    }

    impl FakeDns {
        pub fn add(&mut self, name: &str, t: Rtype, records: Vec<Rdata>) -> &mut Self {
            self.answers.insert((name.to_string(), t), Ok(records));
            self
        }
        pub fn fail(&mut self, name: &str, t: Rtype, e: DnsFailure) -> &mut Self {
            self.answers.insert((name.to_string(), t), Err(e));
            self
        }
    }

    impl Resolve for FakeDns {
        fn query<'a>(&'a self, name: &'a str, t: Rtype) -> Lookup<'a> {
            Box::pin(async move {
                if self.silent.iter().any(|s| s == name) {
                    std::future::pending::<()>().await;
                }
                self.answers
                    .get(&(name.to_string(), t))
                    .cloned()
                    .unwrap_or(Err(DnsFailure::NotFound))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_for_ptr_and_blocklists() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap(), "in-addr.arpa", "ip6.arpa"),
            "1.2.0.192.in-addr.arpa"
        );
        let v6 = reverse_name("2001:db8::1".parse().unwrap(), "bl.example", "bl.example");
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."), "{v6}");
        assert!(v6.ends_with(".8.b.d.0.1.0.0.2.bl.example"), "{v6}");
        assert_eq!(v6.split('.').count(), 34);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_gives_a_timeout_not_a_hang() {
        let mut fake = fake::FakeDns::default();
        fake.silent.push("slow.example".into());
        let dns = Dns::new(Arc::new(fake), Duration::from_secs(3));
        assert_eq!(
            dns.query("slow.example", Rtype::A).await,
            Err(DnsFailure::Timeout)
        );
        let long = format!("{}.example", "a.".repeat(300));
        assert_eq!(dns.query(&long, Rtype::A).await, Err(DnsFailure::NotFound));
    }
}
