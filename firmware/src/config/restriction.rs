//! `zimbraMtaRestriction`: the Postfix SMTP restrictions an admin turns on, one per value, with the
//! Zimbra spelling (`reject_rbl_client zen.spamhaus.org` is one value). The policy stage applies
//! them; here they are parsed, so a typo is refused when it is set, and [`Restriction::is_enforced`]
//! says which the policy stage applies, so the config refuses the others instead of keeping them.

use std::fmt;
use std::str::FromStr;

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
    RejectRblClient(String),
    /// Domain blocklist of client host names.
    RejectRhsblClient(String),
    /// Domain blocklist of the reverse client host name.
    RejectRhsblReverseClient(String),
    /// Domain blocklist of sender domains.
    RejectRhsblSender(String),
}

/// Why a restriction was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRestriction {
    Unknown(String),
    /// A blocklist restriction without its list, or with a list that is not a domain.
    BadList(String),
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
        }
    }
}

const SIMPLE: [(&str, Restriction); 9] = [
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
];

impl FromStr for Restriction {
    type Err = BadRestriction;

    fn from_str(s: &str) -> Result<Restriction, BadRestriction> {
        let mut words = s.split_whitespace();
        let name = words.next().unwrap_or("").to_ascii_lowercase();
        let list = words.next();
        let extra = words.next().is_some();
        if let Some((_, r)) = SIMPLE.iter().find(|(n, _)| *n == name) {
            if list.is_some() {
                return Err(BadRestriction::Unknown(s.to_string()));
            }
            return Ok(r.clone());
        }
        let make: fn(String) -> Restriction = match name.as_str() {
            "reject_rbl_client" => Restriction::RejectRblClient,
            "reject_rhsbl_client" => Restriction::RejectRhsblClient,
            "reject_rhsbl_reverse_client" => Restriction::RejectRhsblReverseClient,
            "reject_rhsbl_sender" => Restriction::RejectRhsblSender,
            _ => return Err(BadRestriction::Unknown(s.to_string())),
        };
        match list {
            Some(l) if !extra && is_domain(l) => Ok(make(l.to_ascii_lowercase())),
            _ => Err(BadRestriction::BadList(name)),
        }
    }
}

impl Restriction {
    /// Whether the policy stage applies this restriction. None yet: the policy issue turns them
    /// on one by one, and until then `mcf` refuses them rather than store what does nothing.
    pub fn is_enforced(&self) -> bool {
        false
    }
}

fn is_domain(s: &str) -> bool {
    format!("smtp:{s}")
        .parse::<crate::mail::Transport>()
        .is_ok()
        && s.contains('.')
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, list) = match self {
            Restriction::RejectRblClient(l) => ("reject_rbl_client", l),
            Restriction::RejectRhsblClient(l) => ("reject_rhsbl_client", l),
            Restriction::RejectRhsblReverseClient(l) => ("reject_rhsbl_reverse_client", l),
            Restriction::RejectRhsblSender(l) => ("reject_rhsbl_sender", l),
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
            Ok(Restriction::RejectRblClient("zen.spamhaus.org".into()))
        );
    }

    #[test]
    fn typos_are_refused() {
        for s in [
            "",
            "reject_invalid_hostname",
            "reject_rbl_client",
            "reject_rbl_client bad..list",
            "reject_rbl_client a.b c.d",
            "reject_non_fqdn_sender extra",
        ] {
            assert!(s.parse::<Restriction>().is_err(), "{s} accepted");
        }
    }
}
