//! `zimbraMtaRestriction` at RCPT, in the order Zimbra's `smtpd_recipient_restrictions` template
//! puts them (LDAP values have no order, so the template fixes one):
//!
//! ```text
//! check_recipient_access ldap:.../ldap-splitdomain.cf   (when set)
//! reject_non_fqdn_recipient, reject_unknown_recipient_domain   (when set)
//! permit_sasl_authenticated, permit_mynetworks
//! reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, reject_non_fqdn_sender,
//! reject_unknown_client_hostname, reject_unknown_reverse_client_hostname,
//! reject_unknown_helo_hostname, reject_unknown_sender_domain,
//! reject_rbl_client ..., reject_rhsbl_client ..., reject_rhsbl_reverse_client ...,
//! reject_rhsbl_sender ...   (zimbraMtaRestriction values, then Zimbra's list attributes)
//! reject                                                 (when set)
//! permit
//! ```
//!
//! The first restriction that refuses decides. A DNS lookup that fails for now does not refuse at
//! once: as Postfix's `defer_if_permit`, the recipient is deferred (450) only if nothing after it
//! refuses for good. A blocklist that cannot be asked counts as not listing the client, as in
//! Postfix: a dead list must not stop all mail.

use std::net::IpAddr;
use std::time::Instant;

use crate::config::Restriction;
use crate::directory::{Directory, Lookup, MailStatus};
use crate::mail::ClientInfo;

use super::dns::{Dns, DnsFailure, earlier, reverse_name};
use super::names::{domain_of, is_address_literal, is_fqdn, is_fqdn_address, is_valid_hostname};
use super::refusal::{Listed, RcptRefusal};
use super::service::{self, Verdict};

/// What the restrictions look at.
pub struct Request<'a> {
    pub client: &'a ClientInfo,
    /// Empty for the null sender.
    pub sender: &'a str,
    pub recipient: &'a str,
}

/// Where each restriction stands in the template; the permits stand at [`PERMITS`].
fn rank(r: &Restriction) -> u8 {
    match r {
        Restriction::SplitDomainAccess => 0,
        Restriction::RejectInvalidHeloHostname => 2,
        Restriction::RejectNonFqdnHeloHostname => 3,
        Restriction::RejectNonFqdnSender => 4,
        Restriction::RejectUnknownClientHostname => 5,
        Restriction::RejectUnknownReverseClientHostname => 6,
        Restriction::RejectUnknownHeloHostname => 7,
        Restriction::RejectUnknownSenderDomain => 8,
        Restriction::RejectNonFqdnRecipient => 0,
        // Before the permits, as Zimbra has reject_non_fqdn_recipient: a client outside
        // mynetworks only reaches the box's own domains, which are never looked up.
        Restriction::RejectUnknownRecipientDomain => 0,
        Restriction::RejectRblClient(_) => 11,
        Restriction::RejectRhsblClient(_) => 12,
        Restriction::RejectRhsblReverseClient(_) => 13,
        Restriction::RejectRhsblSender(_) => 14,
        Restriction::CheckPolicyService(_) => 15,
        Restriction::Reject => 16,
    }
}

/// `permit_sasl_authenticated, permit_mynetworks`.
const PERMITS: u8 = 1;

/// The restrictions in force, in evaluation order: `zimbraMtaRestriction` and the list attributes.
fn in_order(dir: &Directory) -> Vec<Restriction> {
    let c = dir.config();
    let mut all: Vec<Restriction> = c.restrictions.clone();
    all.extend(c.rbls.iter().cloned().map(Restriction::RejectRblClient));
    all.extend(
        c.rhsbl_clients
            .iter()
            .cloned()
            .map(Restriction::RejectRhsblClient),
    );
    all.extend(
        c.rhsbl_senders
            .iter()
            .cloned()
            .map(Restriction::RejectRhsblSender),
    );
    all.sort_by_key(rank);
    all.dedup();
    all
}

/// One restriction's answer.
enum Outcome {
    /// Accept the recipient now; later restrictions are not asked.
    Permit,
    /// Nothing to say: ask the next.
    Dunno,
    Refuse(RcptRefusal),
    /// A lookup failed for now: refuse with 450 unless a later restriction refuses for good.
    DeferIfPermit(RcptRefusal),
}

/// Evaluates the restrictions for one RCPT. `permitted` is the relay answer (mynetworks or
/// AUTH), which is also `permit_mynetworks, permit_sasl_authenticated` here.
pub async fn evaluate(
    req: &Request<'_>,
    dir: &Directory,
    dns: &Dns,
    permitted: bool,
    warnings: &mut Vec<String>,
) -> Result<(), RcptRefusal> {
    let restrictions = in_order(dir);
    let mut names = ClientNames::default();
    let result = evaluate_in_order(&restrictions, req, dir, dns, permitted, &mut names).await;
    warnings.append(&mut names.warnings);
    result
}

async fn evaluate_in_order(
    restrictions: &[Restriction],
    req: &Request<'_>,
    dir: &Directory,
    dns: &Dns,
    permitted: bool,
    names: &mut ClientNames,
) -> Result<(), RcptRefusal> {
    let mut deferred = None;
    let mut permits_asked = false;
    for r in restrictions {
        if !permits_asked && rank(r) > PERMITS {
            permits_asked = true;
            if permitted {
                break;
            }
        }
        match check(r, req, dir, dns, names).await {
            Outcome::Permit => break,
            Outcome::Dunno => {}
            Outcome::Refuse(refusal) => return Err(refusal),
            Outcome::DeferIfPermit(refusal) => {
                deferred.get_or_insert(refusal);
            }
        }
    }
    match deferred {
        Some(refusal) => Err(RcptRefusal::Deferred(Box::new(refusal))),
        None => Ok(()),
    }
}

async fn check(
    r: &Restriction,
    req: &Request<'_>,
    dir: &Directory,
    dns: &Dns,
    names: &mut ClientNames,
) -> Outcome {
    let helo = req.client.helo.as_str();
    let sender = req.sender;
    let refuse_if = |bad: bool, refusal: fn(String) -> RcptRefusal, what: &str| {
        if bad {
            Outcome::Refuse(refusal(what.to_string()))
        } else {
            Outcome::Dunno
        }
    };
    match r {
        Restriction::SplitDomainAccess => split_domain_access(dir, req.recipient),
        // Without HELO there is no name to judge (Postfix skips these too).
        Restriction::RejectInvalidHeloHostname if !helo.is_empty() => refuse_if(
            !is_address_literal(helo) && !is_valid_hostname(helo),
            RcptRefusal::InvalidHelo,
            helo,
        ),
        Restriction::RejectNonFqdnHeloHostname if !helo.is_empty() => refuse_if(
            !is_address_literal(helo) && !is_fqdn(helo),
            RcptRefusal::NonFqdnHelo,
            helo,
        ),
        Restriction::RejectUnknownHeloHostname if !helo.is_empty() && !is_address_literal(helo) => {
            match mail_domain_exists(dns, helo).await {
                Ok(()) => Outcome::Dunno,
                Err(e) => refused(e, RcptRefusal::UnknownHelo(helo.to_string())),
            }
        }
        Restriction::RejectNonFqdnSender if !sender.is_empty() => {
            refuse_if(!is_fqdn_address(sender), RcptRefusal::NonFqdnSender, sender)
        }
        Restriction::RejectUnknownSenderDomain if !sender.is_empty() => {
            unknown_domain(dir, dns, sender, RcptRefusal::UnknownSenderDomain).await
        }
        Restriction::RejectNonFqdnRecipient => refuse_if(
            !is_fqdn_address(req.recipient),
            RcptRefusal::NonFqdnRecipient,
            req.recipient,
        ),
        Restriction::RejectUnknownRecipientDomain => {
            unknown_domain(dir, dns, req.recipient, RcptRefusal::UnknownRecipientDomain).await
        }
        Restriction::RejectUnknownClientHostname => match req.client.addr {
            Some(ip) => match names.verified(dns, ip).await {
                Ok(Some(_)) => Outcome::Dunno,
                Ok(None) => Outcome::Refuse(RcptRefusal::UnknownClient(ip)),
                Err(_) => Outcome::DeferIfPermit(RcptRefusal::UnknownClient(ip)),
            },
            None => Outcome::Dunno,
        },
        Restriction::RejectUnknownReverseClientHostname => match req.client.addr {
            Some(ip) => match names.reverse(dns, ip).await {
                Ok(Some(_)) => Outcome::Dunno,
                Ok(None) => Outcome::Refuse(RcptRefusal::UnknownReverseClient(ip)),
                Err(_) => Outcome::DeferIfPermit(RcptRefusal::UnknownReverseClient(ip)),
            },
            None => Outcome::Dunno,
        },
        Restriction::RejectRblClient(list) => match req.client.addr {
            Some(ip) => {
                let query = reverse_name(ip, &list.domain, &list.domain);
                let subject = ip.to_string();
                listed(dns, list, &query, Listed::ClientAddress, subject, names).await
            }
            None => Outcome::Dunno,
        },
        Restriction::RejectRhsblClient(list) => match req.client.addr {
            Some(ip) => match names.verified(dns, ip).await {
                Ok(Some(name)) => rhsbl(dns, list, &name, Listed::ClientName, names).await,
                _ => Outcome::Dunno,
            },
            None => Outcome::Dunno,
        },
        Restriction::RejectRhsblReverseClient(list) => match req.client.addr {
            Some(ip) => match names.reverse(dns, ip).await {
                Ok(Some(name)) => rhsbl(dns, list, &name, Listed::ReverseClientName, names).await,
                _ => Outcome::Dunno,
            },
            None => Outcome::Dunno,
        },
        Restriction::RejectRhsblSender(list) => match domain_of(sender) {
            Some(d) if is_valid_hostname(d) => {
                rhsbl(dns, list, d, Listed::SenderDomain, names).await
            }
            _ => Outcome::Dunno,
        },
        Restriction::CheckPolicyService(service) => policy_service(service, req, dns, names).await,
        Restriction::Reject => Outcome::Refuse(RcptRefusal::Reject(req.recipient.to_string())),
        _ => Outcome::Dunno,
    }
}

/// Asks a policy service about this RCPT.
async fn policy_service(
    service: &crate::config::restriction::PolicyService,
    req: &Request<'_>,
    dns: &Dns,
    names: &mut ClientNames,
) -> Outcome {
    let (mut client_name, mut reverse_name) = (String::new(), String::new());
    if let Some(ip) = req.client.addr {
        reverse_name = names
            .reverse(dns, ip)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        client_name = names
            .verified(dns, ip)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
    }
    let or_unknown = |s: &str| if s.is_empty() { "unknown" } else { s }.to_string();
    let (client_name, reverse_name) = (or_unknown(&client_name), or_unknown(&reverse_name));
    let text = service::request(&service::Attributes {
        helo: &req.client.helo,
        sender: req.sender,
        recipient: req.recipient,
        client_address: req.client.addr,
        client_name: &client_name,
        reverse_client_name: &reverse_name,
        sasl_username: req.client.auth.as_deref(),
        protocol: &req.client.protocol,
        tls: req.client.tls.as_deref(),
    });
    let verdict = match service::ask(service, &text, dns).await {
        Ok(answer) => service::verdict(&answer, req.recipient),
        Err(e) => Err(e),
    };
    match verdict {
        Ok(Verdict::Permit) => Outcome::Permit,
        Ok(Verdict::Dunno) => Outcome::Dunno,
        Ok(Verdict::Refuse(r)) => Outcome::Refuse(r),
        Ok(Verdict::DeferIfPermit(r)) => Outcome::DeferIfPermit(r),
        Err(e) => {
            names.warnings.push(format!(
                "problem talking to policy service {}:{}: {e}",
                service.host, service.port
            ));
            Outcome::Refuse(e.refusal())
        }
    }
}

/// Zimbra's `ldap-splitdomain.cf`: an enabled account or alias with this exact address is OK.
/// A catch-all is not asked, so with `reject` after it the box refuses what neither system has.
fn split_domain_access(dir: &Directory, recipient: &str) -> Outcome {
    match dir.lookup(recipient) {
        Lookup::Account { account, .. } if account.status() == MailStatus::Enabled => {
            Outcome::Permit
        }
        _ => Outcome::Dunno,
    }
}

fn refused(e: DnsFailure, refusal: RcptRefusal) -> Outcome {
    if e.is_temporary() {
        Outcome::DeferIfPermit(refusal)
    } else {
        Outcome::Refuse(refusal)
    }
}

/// Whether a domain can receive mail: an MX record, or else an address record.
async fn mail_domain_exists(dns: &Dns, domain: &str) -> Result<(), DnsFailure> {
    match dns.mx(domain).await {
        Ok(_) => Ok(()),
        Err(DnsFailure::NotFound) => dns.ips(domain).await.map(|_| ()),
        Err(e) => Err(e),
    }
}

/// `reject_unknown_{sender,recipient}_domain`: not for the box's own domains (Postfix only
/// asks DNS when it is not the final destination) nor address literals.
async fn unknown_domain(
    dir: &Directory,
    dns: &Dns,
    address: &str,
    refusal: fn(String) -> RcptRefusal,
) -> Outcome {
    let Some(domain) = domain_of(address) else {
        return Outcome::Refuse(refusal(address.to_string()));
    };
    if is_address_literal(domain) || dir.domain(domain).is_some() {
        return Outcome::Dunno;
    }
    if !is_valid_hostname(domain) {
        return Outcome::Refuse(refusal(address.to_string()));
    }
    match mail_domain_exists(dns, domain).await {
        Ok(()) => Outcome::Dunno,
        Err(e) => refused(e, refusal(address.to_string())),
    }
}

/// A domain blocklist: `NAME.LIST`.
async fn rhsbl(
    dns: &Dns,
    list: &crate::config::Dnsbl,
    name: &str,
    what: Listed,
    names: &mut ClientNames,
) -> Outcome {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let query = format!("{name}.{}", list.domain);
    listed(dns, list, &query, what, name, names).await
}

/// Asks `query` of a blocklist: an A record the list's pattern accepts is a hit, and the TXT
/// record at the same name is the reason shown to the client.
async fn listed(
    dns: &Dns,
    list: &crate::config::Dnsbl,
    query: &str,
    what: Listed,
    subject: String,
    names: &mut ClientNames,
) -> Outcome {
    let answers = match dns.ipv4(query).await {
        Ok(answers) => answers,
        Err(e) => {
            if e.is_temporary() {
                // Not listed, as in Postfix; the admin learns the list is not answering.
                names
                    .warnings
                    .push(format!("RBL lookup error for DNS query {query}: {e}"));
            }
            return Outcome::Dunno;
        }
    };
    if !answers.into_iter().any(|a| list.lists(a)) {
        return Outcome::Dunno;
    }
    let reason = dns.txt(query).await.ok().and_then(|t| t.into_iter().next());
    Outcome::Refuse(RcptRefusal::Listed {
        what,
        subject,
        list: list.domain.clone(),
        reason,
    })
}

/// The client's verified name (PTR whose addresses include `ip`), as smtpd logs it; `None` for
/// Postfix's `unknown`.
pub async fn client_name(dns: &Dns, ip: IpAddr) -> Option<String> {
    ClientNames::default()
        .verified(dns, ip)
        .await
        .ok()
        .flatten()
}

/// The client's names, looked up once per evaluation (and cached by the resolver beyond that).
/// And the warnings for the log the evaluation met on the way (lists or services not answering).
#[derive(Default)]
struct ClientNames {
    reverse: Option<Result<Option<String>, DnsFailure>>,
    /// Until when the PTR answer holds, when known.
    reverse_until: Option<Instant>,
    verified: Option<Result<Option<String>, DnsFailure>>,
    warnings: Vec<String>,
}

impl ClientNames {
    /// The PTR name (Postfix's `reverse_client_name`); `None` when there is none.
    async fn reverse(&mut self, dns: &Dns, ip: IpAddr) -> Result<Option<String>, DnsFailure> {
        if let Some(known) = &self.reverse {
            return known.clone();
        }
        let (names, until) = dns.ptr_held(ip).await;
        self.reverse_until = until;
        let found = match names {
            Ok(names) => Ok(names.into_iter().find(|n| is_valid_hostname(n))),
            Err(DnsFailure::NotFound) => Ok(None),
            Err(e) => Err(e),
        };
        self.reverse = Some(found.clone());
        found
    }

    /// The PTR name when its addresses include `ip` (Postfix's `client_name`). Kept by `dns`
    /// for the TTLs of the answers that made it, when they are known.
    async fn verified(&mut self, dns: &Dns, ip: IpAddr) -> Result<Option<String>, DnsFailure> {
        if let Some(known) = &self.verified {
            return known.clone();
        }
        if let Some(kept) = dns.kept_name(ip) {
            self.verified = Some(Ok(kept.clone()));
            return Ok(kept);
        }
        let (found, until) = match self.reverse(dns, ip).await? {
            None => (None, self.reverse_until),
            Some(name) => {
                let (ips, until) = dns.ips_held(&name).await;
                let until = earlier(until, self.reverse_until);
                match ips {
                    Ok(ips) => (ips.contains(&ip).then_some(name), until),
                    Err(DnsFailure::NotFound) => (None, until),
                    Err(e) => {
                        self.verified = Some(Err(e));
                        return Err(e);
                    }
                }
            }
        };
        if let Some(until) = until {
            dns.keep_name(ip, found.clone(), until);
        }
        self.verified = Some(Ok(found.clone()));
        Ok(found)
    }
}
