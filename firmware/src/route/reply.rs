//! Why a recipient is refused or waits: each reason is one SMTP reply code and one enhanced
//! status code, with Postfix's wording so log tools and admins recognise it (`inbound` puts the
//! address in and sends it).

use std::fmt;

use crate::mail::EnhancedStatus;

/// A recipient refused at RCPT TO (or, inside a forwarding expansion, bounced later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// A local domain has no such account or alias (the primary case).
    UserUnknown,
    /// The account exists but `zimbraMailStatus` is `disabled`.
    MailboxDisabled,
    /// Another domain, and the client is neither in `zimbraMtaMyNetworks` nor authenticated.
    RelayDenied,
    /// Not an address the router can take apart.
    BadAddress,
    /// Forwarding leads back to itself and nothing is left to deliver.
    ForwardingLoop,
    /// Forwarding expands to more recipients than one message may have.
    TooManyTargets,
}

impl Reject {
    /// The SMTP reply code.
    pub fn code(self) -> u16 {
        match self {
            Reject::RelayDenied => 554,
            Reject::BadAddress => 501,
            _ => 550,
        }
    }

    /// The enhanced status code (RFC 3463).
    pub fn status(self) -> EnhancedStatus {
        match self {
            Reject::UserUnknown => EnhancedStatus::of(5, 1, 1),
            Reject::MailboxDisabled => EnhancedStatus::of(5, 2, 1),
            Reject::RelayDenied => EnhancedStatus::of(5, 7, 1),
            Reject::BadAddress => EnhancedStatus::of(5, 1, 3),
            Reject::ForwardingLoop => EnhancedStatus::of(5, 4, 6),
            Reject::TooManyTargets => EnhancedStatus::of(5, 5, 3),
        }
    }

    /// The words after the address.
    pub fn text(self) -> &'static str {
        match self {
            Reject::UserUnknown => "Recipient address rejected: User unknown",
            Reject::MailboxDisabled => "Recipient address rejected: Mailbox disabled",
            Reject::RelayDenied => "Relay access denied",
            Reject::BadAddress => "Recipient address rejected: Bad recipient address syntax",
            Reject::ForwardingLoop => "Recipient address rejected: mail forwarding loop",
            Reject::TooManyTargets => {
                "Recipient address rejected: forwarding expands to too many recipients"
            }
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.text())
    }
}

/// A recipient accepted, but with no next hop yet: it stays in the deferred queue with this
/// reason, as Postfix defers mail it cannot route (it never rejects at RCPT for this), and goes
/// out once the admin fixes the setting, or bounces when its queue lifetime ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deferral {
    /// A local account (or catch-all) with no `zimbraMailTransport` on the account or domain and
    /// no `virtual_transport`.
    NoTransport,
    /// Another domain, with no `zimbraMtaRelayHost` and `zimbraMtaDnsLookupsEnabled` FALSE.
    NoRelayHost,
}

impl Deferral {
    pub fn status(self) -> EnhancedStatus {
        match self {
            Deferral::NoTransport => EnhancedStatus::of(4, 3, 5),
            Deferral::NoRelayHost => EnhancedStatus::of(4, 4, 3),
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Deferral::NoTransport => {
                "no zimbraMailTransport for the account or its domain, and no virtual_transport"
            }
            Deferral::NoRelayHost => {
                "no zimbraMtaRelayHost and zimbraMtaDnsLookupsEnabled is FALSE: no next hop"
            }
        }
    }
}

impl fmt::Display for Deferral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.text())
    }
}
