//! Recipient to next hop: directory lookup, aliases, forwarding, catch-all, transports, relay host,
//! MX, loop checks. A pure function of the address, the directory, the config and the policy's
//! relay answer: no sockets, no flash, no client.
//!
//! [`route`] decides, for one RCPT TO, as Zimbra's split-domain setup does:
//!
//! | recipient | decision | next hop |
//! |---|---|---|
//! | local domain, enabled account or alias | accept | account's `zimbraMailTransport`, else the domain's, else `virtual_transport`, else deferred |
//! | local domain, disabled account | `550 5.2.1` | — |
//! | local domain, unknown, catch-all forwarding (secondary) | accept | the domain's transport (`@same.domain`), or the forwarding address routed again |
//! | local domain, unknown, `posternAuthoritative FALSE` (relay domain) | accept | the domain's transport |
//! | local domain, unknown, no catch-all (primary) | `550 5.1.1 User unknown` | — |
//! | other domain, relay permitted (policy: `zimbraMtaMyNetworks` or authenticated) | accept | `zimbraMtaRelayHost`, else MX of the domain, else deferred |
//! | other domain, relay denied | `554 5.7.1 Relay access denied` | — |
//!
//! Forwarding (`zimbraMailForwardingAddress`, `zimbraPrefMailForwardingAddress`) expands: each
//! target is routed again (relaying allowed, the account's owner asked for it); an address met
//! twice is not expanded again, so loops end; an expansion left with nothing is a forwarding loop.
//!
//! With no relay host and DNS lookups off, Postfix accepts mail for other domains and defers it
//! ("Host or domain name not found" at delivery); so does Postern, with [`Deferral::NoRelayHost`].
//!
//! The common case (an account without forwarding) neither allocates nor clones: the decision
//! borrows the address and the transport from the directory.

mod loops;
mod reply;

use std::borrow::Cow;
use std::net::IpAddr;

pub use loops::{LoopError, check_not_myself, greeting_is_myself, loops_back_to_myself};
pub use reply::{Deferral, Reject};

use crate::config::MtaConfig;
use crate::directory::{Account, Directory, Domain, Lookup, MailStatus, address};
use crate::mail::{Host, Protocol, Transport};

/// Whether mail for a domain the box does not serve may go out for this client: the answer of
/// the policy stage's relay control (Postfix's `smtpd_relay_restrictions`), which the router
/// applies only when the address is in none of the box's domains (`reject_unauth_destination`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    Permitted,
    /// Other domains get `554 5.7.1 Relay access denied`.
    Denied,
}

/// Where one accepted address goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop<'a> {
    Transport(Cow<'a, Transport>),
    /// Accepted, but no next hop yet: queue it deferred with this reason.
    Defer(Deferral),
    /// Accepted as part of a forwarding expansion, but this target fails: bounce it.
    Bounce(Reject),
}

impl NextHop<'_> {
    /// The transport, when there is one to deliver through now.
    pub fn transport(&self) -> Option<&Transport> {
        match self {
            NextHop::Transport(t) => Some(t),
            NextHop::Defer(_) | NextHop::Bounce(_) => None,
        }
    }
}

/// One address to deliver to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The address delivery uses: the account's own address for an alias, the forwarding target
    /// for a forward, the recipient as given otherwise.
    pub address: Cow<'a, str>,
    pub next_hop: NextHop<'a>,
}

impl Target<'_> {
    /// A copy that owns its strings, to keep past the directory snapshot.
    pub fn into_owned(self) -> Target<'static> {
        Target {
            address: Cow::Owned(self.address.into_owned()),
            next_hop: match self.next_hop {
                NextHop::Transport(t) => NextHop::Transport(Cow::Owned(t.into_owned())),
                NextHop::Defer(d) => NextHop::Defer(d),
                NextHop::Bounce(r) => NextHop::Bounce(r),
            },
        }
    }
}

/// The targets of an accepted recipient: at least one, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets<'a> {
    first: Target<'a>,
    rest: Vec<Target<'a>>,
}

impl<'a> Targets<'a> {
    fn one(t: Target<'a>) -> Targets<'a> {
        Targets {
            first: t,
            rest: Vec::new(),
        }
    }

    pub fn first(&self) -> &Target<'a> {
        &self.first
    }

    pub fn len(&self) -> usize {
        1 + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn iter(&self) -> impl Iterator<Item = &Target<'a>> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }

    pub fn into_vec(self) -> Vec<Target<'a>> {
        let mut v = Vec::with_capacity(self.len());
        v.push(self.first);
        v.extend(self.rest);
        v
    }
}

/// The router's answer for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    Accept(Targets<'a>),
    Reject(Reject),
}

/// Deepest forwarding chain followed (Postfix `virtual_alias_recursion_limit` is 1000; real
/// chains are a few links, and a deeper one is a loop).
const MAX_DEPTH: u32 = 100;
/// Most targets one recipient may expand to (Postfix `virtual_alias_expansion_limit`).
const MAX_TARGETS: usize = 1000;

/// Decides what happens to mail for `address` (an RCPT TO address without angle brackets).
pub fn route<'a>(
    address: &'a str,
    dir: &'a Directory,
    config: &'a MtaConfig,
    relay: Relay,
) -> Decision<'a> {
    let relay_ok = relay == Relay::Permitted;
    // RFC 5321 §4.5.1: a bare "postmaster" is always accepted; it is the box's own postmaster.
    let address: Cow<'a, str> = if address.eq_ignore_ascii_case("postmaster") {
        Cow::Owned(format!("postmaster@{}", config.my_hostname))
    } else {
        Cow::Borrowed(address)
    };
    let relay_ok = relay_ok || matches!(address, Cow::Owned(_));
    match step(address.clone(), dir, config, relay_ok) {
        Step::Final(t) => Decision::Accept(Targets::one(t)),
        Step::Reject(r) => Decision::Reject(r),
        Step::Account(a, d) if a.forwarding().is_none() => {
            Decision::Accept(Targets::one(account_target(a, d, config)))
        }
        other => Expander::new(dir, config).run(&address, other),
    }
}

/// One address looked at once, before any forwarding.
enum Step<'a> {
    Final(Target<'a>),
    Account(&'a Account, &'a Domain),
    /// A catch-all that names another address: route that one.
    Rewrite(String),
    Reject(Reject),
}

fn step<'a>(
    addr: Cow<'a, str>,
    dir: &'a Directory,
    config: &'a MtaConfig,
    relay_ok: bool,
) -> Step<'a> {
    match dir.lookup(&addr) {
        Lookup::Account {
            account, domain, ..
        } => match account.status() {
            MailStatus::Enabled => Step::Account(account, domain),
            MailStatus::Disabled => Step::Reject(Reject::MailboxDisabled),
        },
        Lookup::Unknown { domain } => match domain.catch_all_forwarding() {
            Some(fwd) => catch_all(addr, fwd, domain, config),
            None if !domain.authoritative() => Step::Final(Target {
                address: addr,
                next_hop: local_hop(None, domain, config),
            }),
            None => Step::Reject(Reject::UserUnknown),
        },
        Lookup::NotLocal if relay_ok => match foreign_hop(&addr, config) {
            Ok(next_hop) => Step::Final(Target {
                address: addr,
                next_hop,
            }),
            Err(r) => Step::Reject(r),
        },
        Lookup::NotLocal => Step::Reject(Reject::RelayDenied),
        Lookup::Invalid => Step::Reject(Reject::BadAddress),
    }
}

fn catch_all<'a>(
    addr: Cow<'a, str>,
    fwd: &str,
    domain: &'a Domain,
    config: &'a MtaConfig,
) -> Step<'a> {
    let local = address::split(&addr).map_or("", |(l, _)| l);
    let same_place = |to: &str| Target {
        address: Cow::Owned(to.to_string()),
        next_hop: local_hop(None, domain, config),
    };
    match fwd.strip_prefix('@') {
        // The secondary case: the same address, handed to the domain's transport.
        Some(d) if d == domain.name() => Step::Final(Target {
            next_hop: local_hop(None, domain, config),
            address: addr,
        }),
        Some(d) => Step::Rewrite(format!("{local}@{d}")),
        None if fwd.eq_ignore_ascii_case(&addr) => Step::Final(same_place(fwd)),
        None => Step::Rewrite(fwd.to_string()),
    }
}

fn local_hop<'a>(
    account: Option<&'a Account>,
    domain: &'a Domain,
    config: &'a MtaConfig,
) -> NextHop<'a> {
    account
        .and_then(Account::transport)
        .or(domain.transport())
        .or(config.virtual_transport.as_ref())
        .map_or(NextHop::Defer(Deferral::NoTransport), |t| {
            NextHop::Transport(Cow::Borrowed(t))
        })
}

fn account_target<'a>(a: &'a Account, d: &'a Domain, config: &'a MtaConfig) -> Target<'a> {
    Target {
        address: Cow::Borrowed(a.address()),
        next_hop: local_hop(Some(a), d, config),
    }
}

fn foreign_hop<'a>(addr: &str, config: &'a MtaConfig) -> Result<NextHop<'a>, Reject> {
    let domain = address::split(addr).map_or("", |(_, d)| d);
    let direct = match domain.strip_prefix('[') {
        // An address literal names the host itself; no DNS is needed.
        Some(literal) => {
            let ip = literal
                .strip_suffix(']')
                .map(|l| l.strip_prefix("IPv6:").unwrap_or(l))
                .and_then(|l| l.parse::<IpAddr>().ok())
                .ok_or(Reject::BadAddress)?;
            Transport {
                protocol: Protocol::Smtp,
                host: Host::Ip(ip),
                port: 25,
                mx: false,
            }
        }
        None => Transport::mx(domain).map_err(|_| Reject::BadAddress)?,
    };
    if let Some(relay) = &config.relay_host {
        return Ok(NextHop::Transport(Cow::Borrowed(relay)));
    }
    if direct.mx && !config.dns_lookups_enabled {
        return Ok(NextHop::Defer(Deferral::NoRelayHost));
    }
    Ok(NextHop::Transport(Cow::Owned(direct)))
}

/// The slow path: forwarding and catch-all rewrites, with loop detection.
struct Expander<'a> {
    dir: &'a Directory,
    config: &'a MtaConfig,
    targets: Vec<Target<'a>>,
    /// Lowercase addresses already expanded or delivered to.
    seen: Vec<String>,
    looped: bool,
}

impl<'a> Expander<'a> {
    fn new(dir: &'a Directory, config: &'a MtaConfig) -> Expander<'a> {
        Expander {
            dir,
            config,
            targets: Vec::new(),
            seen: Vec::new(),
            looped: false,
        }
    }

    fn run(mut self, address: &str, first: Step<'a>) -> Decision<'a> {
        self.visit(Cow::Owned(address.to_string()), first, 0);
        if self.targets.len() > MAX_TARGETS {
            return Decision::Reject(Reject::TooManyTargets);
        }
        let mut targets = self.targets.into_iter();
        match targets.next() {
            Some(first) => Decision::Accept(Targets {
                first,
                rest: targets.collect(),
            }),
            None if self.looped => Decision::Reject(Reject::ForwardingLoop),
            None => Decision::Reject(Reject::UserUnknown),
        }
    }

    /// Records `addr` as met; false if it was met before (a loop or a duplicate).
    fn first_time(&mut self, addr: &str) -> bool {
        let key = addr.to_ascii_lowercase();
        if self.seen.contains(&key) {
            self.looped = true;
            return false;
        }
        self.seen.push(key);
        true
    }

    fn visit(&mut self, addr: Cow<'a, str>, s: Step<'a>, depth: u32) {
        if self.targets.len() > MAX_TARGETS {
            return;
        }
        match s {
            Step::Final(t) => {
                if self.first_time(&t.address) {
                    self.targets.push(t);
                }
            }
            Step::Reject(r) => {
                if self.first_time(&addr) {
                    self.targets.push(Target {
                        address: addr,
                        next_hop: NextHop::Bounce(r),
                    });
                }
            }
            Step::Rewrite(to) => {
                if !self.first_time(&addr) {
                    return;
                }
                if depth >= MAX_DEPTH {
                    self.looped = true;
                    return;
                }
                let next = step(Cow::Owned(to.clone()), self.dir, self.config, true);
                self.visit(Cow::Owned(to), next, depth + 1);
            }
            Step::Account(a, d) => {
                if !self.first_time(a.address()) {
                    return;
                }
                if a.delivers_locally() {
                    self.targets.push(account_target(a, d, self.config));
                }
                for to in a.forward_targets() {
                    if depth >= MAX_DEPTH {
                        self.looped = true;
                        return;
                    }
                    let next = step(Cow::Borrowed(to), self.dir, self.config, true);
                    self.visit(Cow::Borrowed(to), next, depth + 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
