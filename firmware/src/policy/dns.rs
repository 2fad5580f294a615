//! DNS for the restrictions: client names, HELO and sender domains, blocklists. Every lookup has a
//! deadline and comes back as an answer, "not found", or a temporary failure; none can hold a
//! session longer than [`Dns::deadline`]. Answers are cached for their TTL by hickory's resolver,
//! so a blocklist is asked once per client address, not once per recipient; clients' verified
//! names are kept here too, for the same TTLs, so a client that connects again costs no lookup.
//!
//! [`Resolve`] is the seam: [`HickoryResolve`] in the daemon, a table in unit tests.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// An answer (records, or why there are none) and until when it holds: the records' smallest
/// TTL, or the negative TTL of a "not found"; `None` when that is not known (a temporary
/// failure, a resolver that does not say), and then the answer is never kept beyond its use.
pub type Held = (Result<Vec<Rdata>, DnsFailure>, Option<Instant>);
pub type LookupHeld<'a> = Pin<Box<dyn Future<Output = Held> + Send + 'a>>;

/// Something that answers DNS questions.
pub trait Resolve: Send + Sync {
    /// The records of type `rtype` at the absolute name `name` (no trailing dot needed).
    fn query<'a>(&'a self, name: &'a str, rtype: Rtype) -> Lookup<'a>;

    /// [`Resolve::query`] with until when the answer holds; an answer whose TTL is not known is
    /// never kept beyond its use.
    fn query_held<'a>(&'a self, name: &'a str, rtype: Rtype) -> LookupHeld<'a> {
        Box::pin(async move { (self.query(name, rtype).await, None) })
    }
}

/// DNS with a deadline on every lookup.
#[derive(Clone)]
pub struct Dns {
    resolver: Arc<dyn Resolve>,
    /// Clients' verified names, kept for the TTLs of the answers that made them: each
    /// connection asks for its client's (PTR, then A and AAAA), and asking hickory three times
    /// cost ~28 K instructions, near what the SMTP server spends on a 5 KB message.
    names: Arc<Mutex<HashMap<IpAddr, KeptName>>>,
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
            names: Arc::default(),
            deadline,
            authenticator: None,
        }
    }

    /// DNS through hickory, shared with sender authentication.
    pub fn hickory(resolver: HickoryResolve, deadline: Duration) -> Dns {
        let resolver = Arc::new(resolver);
        Dns {
            resolver: resolver.clone(),
            names: Arc::default(),
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
        self.query_held(name, rtype).await.0
    }

    /// [`Dns::query`] with until when the answer holds, when known.
    pub async fn query_held(&self, name: &str, rtype: Rtype) -> Held {
        if !is_queryable(name) {
            // Longer than DNS allows, or empty labels: no server can hold such a name.
            return (Err(DnsFailure::NotFound), None);
        }
        match tokio::time::timeout(self.deadline, self.resolver.query_held(name, rtype)).await {
            Ok((Ok(records), until)) if records.is_empty() => (Err(DnsFailure::NotFound), until),
            Ok((Err(e), _)) if e.is_temporary() => (Err(e), None),
            Ok(held) => held,
            Err(_) => (Err(DnsFailure::Timeout), None),
        }
    }

    /// A client's verified name (`None`: it has none) found earlier and still within the TTLs
    /// of the answers that made it.
    pub fn kept_name(&self, ip: IpAddr) -> Option<Option<String>> {
        let names = self.names.lock().ok()?;
        let kept = names.get(&ip)?;
        (kept.until > Instant::now()).then(|| kept.name.clone())
    }

    /// Keeps a client's verified name until `until` (see [`Dns::kept_name`]).
    pub fn keep_name(&self, ip: IpAddr, name: Option<String>, until: Instant) {
        let now = Instant::now();
        let until = until.min(now + KEEP_NAME_AT_MOST);
        let Ok(mut names) = self.names.lock() else {
            return;
        };
        if names.len() >= KEPT_NAMES {
            names.retain(|_, k| k.until > now);
            if names.len() >= KEPT_NAMES {
                // Full of live names: this one is asked for again next time.
                return;
            }
        }
        names.insert(ip, KeptName { name, until });
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
        self.ips_held(name).await.0
    }

    /// [`Dns::ips`] with until when both answers hold, when known.
    pub async fn ips_held(&self, name: &str) -> (Result<Vec<IpAddr>, DnsFailure>, Option<Instant>) {
        let ((a, a_until), (aaaa, aaaa_until)) = tokio::join!(
            self.query_held(name, Rtype::A),
            self.query_held(name, Rtype::Aaaa)
        );
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
        // A temporary failure has no time (`query_held`), so neither has the pair.
        let until = earlier(a_until, aaaa_until);
        (
            if out.is_empty() {
                Err(failure)
            } else {
                Ok(out)
            },
            until,
        )
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
        self.ptr_held(ip).await.0
    }

    /// [`Dns::ptr`] with until when the answer holds, when known.
    pub async fn ptr_held(&self, ip: IpAddr) -> (Result<Vec<String>, DnsFailure>, Option<Instant>) {
        let name = reverse_name(ip, "in-addr.arpa", "ip6.arpa");
        let (records, until) = self.query_held(&name, Rtype::Ptr).await;
        let names = records.map(|records| {
            records
                .into_iter()
                .filter_map(|r| match r {
                    Rdata::Name(n) => Some(n.trim_end_matches('.').to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        });
        (names, until)
    }
}

/// The earlier of two times, when both are known.
pub fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    Some(a?.min(b?))
}

/// Longest a client's name is kept, whatever the TTLs: an admin who fixes a PTR sees it within
/// the hour.
const KEEP_NAME_AT_MOST: Duration = Duration::from_secs(3600);

/// A client's verified name and until when it holds.
#[derive(Debug, Clone)]
struct KeptName {
    name: Option<String>,
    until: Instant,
}

/// Clients whose names are kept at most: a bound on RAM (~100 bytes each) under a spray of
/// addresses.
const KEPT_NAMES: usize = 4096;

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

/// Until when a "not found" holds: its zone's negative TTL (RFC 2308), when the answer had one.
fn negative_until(e: &hickory_resolver::net::NetError) -> Option<Instant> {
    use hickory_resolver::net::{DnsError, NetError};
    match e {
        NetError::Dns(DnsError::NoRecordsFound(none)) => none
            .negative_ttl
            .map(|ttl| Instant::now() + Duration::from_secs(u64::from(ttl))),
        _ => None,
    }
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
        Box::pin(async move { self.query_held(name, t).await.0 })
    }

    fn query_held<'a>(&'a self, name: &'a str, t: Rtype) -> LookupHeld<'a> {
        Box::pin(async move {
            // A trailing dot: no search-domain expansion, mail names are absolute.
            let absolute = format!("{}.", name.trim_end_matches('.'));
            let Some(resolver) = self.0.current() else {
                return (Err(DnsFailure::ServerFailure), None);
            };
            match resolver.lookup(absolute, rtype(t)).await {
                Ok(l) => (
                    Ok(l.answers().iter().filter_map(|r| rdata(&r.data)).collect()),
                    Some(l.valid_until()),
                ),
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                    (Err(DnsFailure::NotFound), negative_until(&e))
                }
                Err(_) => (Err(DnsFailure::ServerFailure), None),
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
        /// The TTL every answer has; `None`: answers whose TTL is not known.
        pub ttl: Option<Duration>,
        /// Questions asked so far.
        pub asked: std::sync::atomic::AtomicUsize,
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
            Box::pin(async move { self.query_held(name, t).await.0 })
        }

        fn query_held<'a>(&'a self, name: &'a str, t: Rtype) -> LookupHeld<'a> {
            Box::pin(async move {
                self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if self.silent.iter().any(|s| s == name) {
                    std::future::pending::<()>().await;
                }
                let answer = self
                    .answers
                    .get(&(name.to_string(), t))
                    .cloned()
                    .unwrap_or(Err(DnsFailure::NotFound));
                // "Not found" holds for its negative TTL; a failure is not held at all.
                let until = self
                    .ttl
                    .map(|ttl| Instant::now() + ttl)
                    .filter(|_| !matches!(answer, Err(e) if e.is_temporary()));
                (answer, until)
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

    /// A client's name is asked for once per TTL, not once per connection; an answer whose TTL
    /// is not known is asked for every time.
    #[tokio::test]
    async fn client_names_are_kept_for_their_ttl() {
        use crate::policy::restrictions::client_name;
        use std::sync::atomic::Ordering::SeqCst;
        let table = |ttl| {
            let mut fake = fake::FakeDns::default();
            let name = |n: &str| Rdata::Name(n.into());
            for (query, t, answer) in [
                (
                    "1.2.0.192.in-addr.arpa",
                    Rtype::Ptr,
                    name("mx.good.example."),
                ),
                ("mx.good.example", Rtype::A, Rdata::Ip(ip("192.0.2.1"))),
                ("mx.good.example", Rtype::Aaaa, Rdata::Ip(ip("2001:db8::1"))),
                ("66.2.0.192.in-addr.arpa", Rtype::Ptr, name("liar.example.")),
                ("liar.example", Rtype::A, Rdata::Ip(ip("198.51.100.1"))),
                (
                    "77.2.0.192.in-addr.arpa",
                    Rtype::Ptr,
                    name("flaky.example."),
                ),
            ] {
                fake.add(query, t, vec![answer]);
            }
            fake.fail("flaky.example", Rtype::A, DnsFailure::ServerFailure);
            fake.ttl = ttl;
            Arc::new(fake)
        };
        let good = ip("192.0.2.1");
        let fake = table(Some(Duration::from_secs(300)));
        let dns = Dns::new(fake.clone(), Duration::from_secs(2));
        assert_eq!(
            client_name(&dns, good).await.as_deref(),
            Some("mx.good.example")
        );
        assert_eq!(fake.asked.load(SeqCst), 3, "PTR, A and AAAA");
        assert_eq!(
            client_name(&dns, good).await.as_deref(),
            Some("mx.good.example")
        );
        assert_eq!(fake.asked.load(SeqCst), 3, "kept");
        // A clone (another session's) shares what was kept.
        assert_eq!(
            client_name(&dns.clone(), good).await.as_deref(),
            Some("mx.good.example")
        );
        assert_eq!(fake.asked.load(SeqCst), 3);
        // Expired: asked again.
        dns.keep_name(good, Some("old.example".into()), Instant::now());
        assert_eq!(
            client_name(&dns, good).await.as_deref(),
            Some("mx.good.example")
        );
        assert_eq!(fake.asked.load(SeqCst), 6);

        // A name that does not point back is kept as no name, "not found" for its negative TTL.
        let liar = ip("192.0.2.66");
        assert_eq!(client_name(&dns, liar).await, None);
        assert_eq!(client_name(&dns, liar).await, None);
        assert_eq!(fake.asked.load(SeqCst), 9);
        let nameless = ip("192.0.2.99");
        assert_eq!(client_name(&dns, nameless).await, None);
        assert_eq!(client_name(&dns, nameless).await, None);
        assert_eq!(fake.asked.load(SeqCst), 10);
        // A server failure is never kept: the next connection asks again.
        let flaky = ip("192.0.2.77");
        assert_eq!(client_name(&dns, flaky).await, None);
        assert_eq!(client_name(&dns, flaky).await, None);
        assert_eq!(fake.asked.load(SeqCst), 16);
        // Nor is a name kept past the hour, whatever its TTL.
        dns.keep_name(
            good,
            Some("far.example".into()),
            Instant::now() + Duration::from_secs(86_400),
        );
        let kept = dns.names.lock().unwrap().get(&good).unwrap().until;
        assert!(kept <= Instant::now() + KEEP_NAME_AT_MOST);

        // Answers without a TTL are never kept.
        let fake = table(None);
        let dns = Dns::new(fake.clone(), Duration::from_secs(2));
        assert_eq!(
            client_name(&dns, good).await.as_deref(),
            Some("mx.good.example")
        );
        assert_eq!(
            client_name(&dns, good).await.as_deref(),
            Some("mx.good.example")
        );
        assert_eq!(fake.asked.load(SeqCst), 6);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
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
