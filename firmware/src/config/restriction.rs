//! `zimbraMtaRestriction`: the Postfix SMTP restrictions an admin turns on, one per value, with the
//! Zimbra spelling (`reject_rbl_client zen.spamhaus.org` is one value). The policy stage applies
//! them; here they are parsed, so a typo is refused when it is set, and [`Restriction::is_enforced`]
//! says which the policy stage applies, so the config refuses the others instead of keeping them.

use std::fmt;
use std::str::FromStr;

use super::dnsbl::Dnsbl;

/// The Split Domain page's recipe (`check_recipient_access ldap:/opt/zimbra/conf/ldap-splitdomain.cf`).
/// The `.cf` file is recognised by its name and never read: it is Zimbra's query for "an account
/// or alias with this address", which this box answers from its own directory.
pub const SPLIT_DOMAIN_ACCESS: &str =
    "check_recipient_access ldap:/opt/zimbra/conf/ldap-splitdomain.cf";

/// One restriction, as Postfix names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Restriction {
    RejectInvalidHeloHostname,
    RejectNonFqdnHeloHostname,
    RejectUnknownHeloHostname,
    RejectNonFqdnSender,
    RejectUnknownSenderDomain,
    RejectNonFqdnRecipient,
    RejectUnknownRecipientDomain,
    RejectUnknownClientHostname,
    RejectUnknownReverseClientHostname,
    /// DNS blocklist of client addresses, e.g. `zen.spamhaus.org`.
    RejectRblClient(Dnsbl),
    /// Domain blocklist of client host names.
    RejectRhsblClient(Dnsbl),
    /// Domain blocklist of the reverse client host name.
    RejectRhsblReverseClient(Dnsbl),
    /// Domain blocklist of sender domains.
    RejectRhsblSender(Dnsbl),
    /// A policy server speaking Postfix's policy delegation protocol (`inet:host:port`).
    CheckPolicyService(PolicyService),
    /// [`SPLIT_DOMAIN_ACCESS`]: a recipient the directory knows by its own address or an alias (not
    /// through a catch-all) is accepted without further checks.
    SplitDomainAccess,
    /// Refuse what no earlier restriction permitted.
    Reject,
}

/// Where a policy service listens: `inet:127.0.0.1:10023`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyService {
    pub host: String,
    pub port: u16,
}

/// Why a restriction was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRestriction {
    Unknown(String),
    /// A blocklist restriction without its list, or with a list that is not a domain.
    BadList(String),
    /// `check_policy_service` without `inet:host:port`.
    BadService(String),
}

impl fmt::Display for BadRestriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRestriction::Unknown(s) => write!(f, "unknown restriction {s:?}"),
            BadRestriction::BadList(s) => {
                write!(
                    f,
                    "{s:?} needs one blocklist domain, e.g. \"{s} zen.spamhaus.org\""
                )
            }
            BadRestriction::BadService(s) => write!(
                f,
                "{s:?} needs a service address, e.g. \"check_policy_service inet:127.0.0.1:10023\""
            ),
        }
    }
}

const SIMPLE: [(&str, Restriction); 10] = [
    (
        "reject_invalid_helo_hostname",
        Restriction::RejectInvalidHeloHostname,
    ),
    (
        "reject_non_fqdn_helo_hostname",
        Restriction::RejectNonFqdnHeloHostname,
    ),
    (
        "reject_unknown_helo_hostname",
        Restriction::RejectUnknownHeloHostname,
    ),
    ("reject_non_fqdn_sender", Restriction::RejectNonFqdnSender),
    (
        "reject_unknown_sender_domain",
        Restriction::RejectUnknownSenderDomain,
    ),
    (
        "reject_non_fqdn_recipient",
        Restriction::RejectNonFqdnRecipient,
    ),
    (
        "reject_unknown_recipient_domain",
        Restriction::RejectUnknownRecipientDomain,
    ),
    (
        "reject_unknown_client_hostname",
        Restriction::RejectUnknownClientHostname,
    ),
    (
        "reject_unknown_reverse_client_hostname",
        Restriction::RejectUnknownReverseClientHostname,
    ),
    ("reject", Restriction::Reject),
];

/// Postfix's names from before 2.3, which it still accepts for the same restriction (Zimbra's
/// "Zimbra MTA" page still shows them).
const OLD_NAMES: [(&str, &str); 5] = [
    ("reject_invalid_hostname", "reject_invalid_helo_hostname"),
    ("reject_non_fqdn_hostname", "reject_non_fqdn_helo_hostname"),
    ("reject_unknown_hostname", "reject_unknown_helo_hostname"),
    ("reject_unknown_client", "reject_unknown_client_hostname"),
    ("reject_maps_rbl", "reject_rbl_client"),
];

impl FromStr for Restriction {
    type Err = BadRestriction;

    fn from_str(s: &str) -> Result<Restriction, BadRestriction> {
        let mut words = s.split_whitespace();
        let typed = words.next().unwrap_or("").to_ascii_lowercase();
        let name = OLD_NAMES
            .iter()
            .find(|(old, _)| *old == typed)
            .map_or(typed.as_str(), |(_, new)| new);
        let arg = words.next();
        let extra = words.next().is_some();
        if let Some((_, r)) = SIMPLE.iter().find(|(n, _)| *n == name) {
            if arg.is_some() {
                return Err(BadRestriction::Unknown(s.to_string()));
            }
            return Ok(r.clone());
        }
        if name == "check_recipient_access" {
            return match arg {
                Some(map) if !extra && is_split_domain_map(map) => {
                    Ok(Restriction::SplitDomainAccess)
                }
                _ => Err(BadRestriction::Unknown(s.to_string())),
            };
        }
        if name == "check_policy_service" {
            return match arg.and_then(policy_service) {
                Some(service) if !extra => Ok(Restriction::CheckPolicyService(service)),
                _ => Err(BadRestriction::BadService(name.to_string())),
            };
        }
        let make: fn(Dnsbl) -> Restriction = match name {
            "reject_rbl_client" => Restriction::RejectRblClient,
            "reject_rhsbl_client" => Restriction::RejectRhsblClient,
            "reject_rhsbl_reverse_client" => Restriction::RejectRhsblReverseClient,
            "reject_rhsbl_sender" => Restriction::RejectRhsblSender,
            _ => return Err(BadRestriction::Unknown(s.to_string())),
        };
        match arg.map(str::parse::<Dnsbl>) {
            Some(Ok(list)) if !extra => Ok(make(list)),
            _ => Err(BadRestriction::BadList(name.to_string())),
        }
    }
}

/// `ldap:/opt/zimbra/conf/ldap-splitdomain.cf`, wherever Zimbra was installed.
fn is_split_domain_map(map: &str) -> bool {
    map.to_ascii_lowercase()
        .strip_prefix("ldap:")
        .is_some_and(|path| path.rsplit('/').next() == Some("ldap-splitdomain.cf"))
}

/// `inet:host:port` (Postfix also allows `unix:` sockets, which this box does not have).
fn policy_service(s: &str) -> Option<PolicyService> {
    let rest = s.strip_prefix("inet:")?;
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b));
    ok.then(|| PolicyService {
        host: host.to_ascii_lowercase(),
        port,
    })
}

impl Restriction {
    /// Whether the policy stage applies this restriction; `mcf` refuses the others rather than
    /// store what does nothing. Every restriction this type can hold is applied now; values an
    /// older firmware stored that this one cannot parse are refused at parse time.
    pub fn is_enforced(&self) -> bool {
        true
    }
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, list) = match self {
            Restriction::RejectRblClient(l) => ("reject_rbl_client", l),
            Restriction::RejectRhsblClient(l) => ("reject_rhsbl_client", l),
            Restriction::RejectRhsblReverseClient(l) => ("reject_rhsbl_reverse_client", l),
            Restriction::RejectRhsblSender(l) => ("reject_rhsbl_sender", l),
            Restriction::CheckPolicyService(s) => {
                return if s.host.contains(':') {
                    write!(f, "check_policy_service inet:[{}]:{}", s.host, s.port)
                } else {
                    write!(f, "check_policy_service inet:{}:{}", s.host, s.port)
                };
            }
            Restriction::SplitDomainAccess => return f.write_str(SPLIT_DOMAIN_ACCESS),
            simple => {
                let name = SIMPLE
                    .iter()
                    .find(|(_, r)| r == simple)
                    .map_or("?", |(n, _)| n);
                return f.write_str(name);
            }
        };
        write!(f, "{name} {list}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zimbra_values_parse_and_show() {
        for s in [
            "reject_invalid_helo_hostname",
            "reject_non_fqdn_sender",
            "reject_unknown_sender_domain",
            "reject_rbl_client zen.spamhaus.org",
            "reject_rhsbl_sender dbl.spamhaus.org",
        ] {
            let r: Restriction = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
        }
        assert_eq!(
            "REJECT_RBL_CLIENT  Zen.Spamhaus.org".parse::<Restriction>(),
            Ok(Restriction::RejectRblClient(
                "zen.spamhaus.org".parse().unwrap()
            ))
        );
    }

    #[test]
    fn typos_are_refused() {
        for s in [
            "",
            "reject_invalid_hostnames",
            "reject_rbl_client",
            "reject extra",
            "check_recipient_access ldap:/opt/zimbra/conf/ldap-vmm.cf",
            "check_recipient_access hash:/etc/postfix/access",
            "check_policy_service unix:private/policy",
            "check_policy_service inet:host",
            "reject_rbl_client bad..list",
            "reject_rbl_client a.b c.d",
            "reject_non_fqdn_sender extra",
        ] {
            assert!(s.parse::<Restriction>().is_err(), "{s} accepted");
        }
    }

    /// The "Zimbra MTA" page's names from Postfix before 2.3 mean what Postfix makes of them.
    #[test]
    fn old_postfix_names_are_the_same_restrictions() {
        for (old, new) in OLD_NAMES {
            let arg = if new == "reject_rbl_client" {
                " bl.example"
            } else {
                ""
            };
            let r: Restriction = format!("{old}{arg}").parse().unwrap();
            assert_eq!(r.to_string(), format!("{new}{arg}"));
        }
    }

    #[test]
    fn split_domain_recipe_reject_and_policy_service_parse() {
        let r: Restriction = "check_recipient_access ldap:/opt/zimbra/conf/ldap-splitdomain.cf"
            .parse()
            .unwrap();
        assert_eq!(r, Restriction::SplitDomainAccess);
        assert_eq!(r.to_string(), SPLIT_DOMAIN_ACCESS);
        assert_eq!("reject".parse(), Ok(Restriction::Reject));
        let p: Restriction = "check_policy_service inet:127.0.0.1:10023".parse().unwrap();
        assert_eq!(p.to_string(), "check_policy_service inet:127.0.0.1:10023");
    }
}
