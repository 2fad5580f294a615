//! Why a restriction refused a recipient, and the reply Postfix gives for it (its default
//! `*_reject_code` settings and wording), so an admin's greps and a sender's bounce read alike.

use std::fmt;
use std::net::IpAddr;

use crate::mail::Reply;

/// What a blocklist listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// The client's address (`reject_rbl_client`).
    ClientAddress,
    /// The client's verified host name (`reject_rhsbl_client`).
    ClientName,
    /// The client's unverified reverse name (`reject_rhsbl_reverse_client`).
    ReverseClientName,
    /// The sender's domain (`reject_rhsbl_sender`).
    SenderDomain,
}

/// A restriction's refusal of one RCPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptRefusal {
    /// `reject_invalid_helo_hostname`.
    InvalidHelo(String),
    /// `reject_non_fqdn_helo_hostname`.
    NonFqdnHelo(String),
    /// `reject_unknown_helo_hostname`: neither an address nor an MX record.
    UnknownHelo(String),
    /// `reject_non_fqdn_sender`.
    NonFqdnSender(String),
    /// `reject_unknown_sender_domain`.
    UnknownSenderDomain(String),
    /// `reject_non_fqdn_recipient`.
    NonFqdnRecipient(String),
    /// `reject_unknown_recipient_domain`.
    UnknownRecipientDomain(String),
    /// `reject_unknown_client_hostname`: no PTR, or its name does not lead back to the address.
    UnknownClient(IpAddr),
    /// `reject_unknown_reverse_client_hostname`: no PTR.
    UnknownReverseClient(IpAddr),
    /// A blocklist hit, with the list's TXT reason when it has one.
    Listed {
        what: Listed,
        /// The address, name or domain that was listed.
        subject: String,
        list: String,
        reason: Option<String>,
    },
    /// `reject` (the recipient, as Postfix names it in the reply).
    Reject(String),
    /// An address at the box's own name other than postmaster and abuse.
    UnknownLocalUser(String),
    /// A policy service's answer (its code, status and text), or the default action when it
    /// failed (no recipient in the reply then).
    Service {
        code: u16,
        status: [u8; 3],
        text: String,
        recipient: Option<String>,
    },
    /// SPF `fail` with `posternSpfAction reject` (policyd-spf's words, its 5.7.23 of RFC 7372),
    /// with the sender domain's explanation when it has one.
    SpfFail {
        recipient: String,
        identity: &'static str,
        explanation: Option<String>,
    },
    /// SPF `temperror` with `posternSpfAction reject`: the client tries again (4.7.24).
    SpfTempError { recipient: String },
    /// A lookup behind this refusal failed for now: the client may try again (Postfix's
    /// `defer_if_permit`).
    Deferred(Box<RcptRefusal>),
}

/// At most this much of what a client sent is echoed in a reply.
const ECHO_MAX: usize = 200;

/// A client's words made safe to echo: printable ASCII, bounded.
pub(super) fn echo(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(ECHO_MAX)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().nth(ECHO_MAX).is_some() {
        out.push_str("...");
    }
    out
}

impl RcptRefusal {
    /// The SMTP reply.
    pub fn reply(&self) -> Reply {
        match self {
            RcptRefusal::Deferred(inner) if matches!(**inner, RcptRefusal::Service { .. }) => {
                inner.reply()
            }
            RcptRefusal::Deferred(inner) => {
                // Client name lookups keep their own status; domain lookups say "try later".
                let status = match **inner {
                    RcptRefusal::UnknownClient(_) | RcptRefusal::UnknownReverseClient(_) => {
                        [4, 7, 25]
                    }
                    _ => [4, 4, 3],
                };
                Reply::new(450, status, inner.to_string())
            }
            _ => {
                let (code, status) = self.code();
                Reply::new(code, status, self.to_string())
            }
        }
    }

    fn code(&self) -> (u16, [u8; 3]) {
        match self {
            RcptRefusal::InvalidHelo(_) => (501, [5, 5, 2]),
            RcptRefusal::NonFqdnHelo(_)
            | RcptRefusal::NonFqdnSender(_)
            | RcptRefusal::NonFqdnRecipient(_) => (504, [5, 5, 2]),
            RcptRefusal::UnknownHelo(_) => (450, [4, 7, 1]),
            RcptRefusal::UnknownSenderDomain(_) => (450, [4, 1, 8]),
            RcptRefusal::UnknownRecipientDomain(_) => (450, [4, 1, 2]),
            RcptRefusal::UnknownClient(_) | RcptRefusal::UnknownReverseClient(_) => {
                (450, [4, 7, 25])
            }
            RcptRefusal::Listed { .. } | RcptRefusal::Reject(_) => (554, [5, 7, 1]),
            RcptRefusal::UnknownLocalUser(_) => (550, [5, 1, 1]),
            RcptRefusal::Service { code, status, .. } => (*code, *status),
            RcptRefusal::SpfFail { .. } => (550, [5, 7, 23]),
            RcptRefusal::SpfTempError { .. } => (451, [4, 7, 24]),
            RcptRefusal::Deferred(_) => (450, [4, 4, 3]),
        }
    }
}

impl fmt::Display for RcptRefusal {
    /// The reply text, without code and status.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RcptRefusal::InvalidHelo(h) => {
                write!(f, "<{}>: Helo command rejected: Invalid name", echo(h))
            }
            RcptRefusal::NonFqdnHelo(h) => write!(
                f,
                "<{}>: Helo command rejected: need fully-qualified hostname",
                echo(h)
            ),
            RcptRefusal::UnknownHelo(h) => {
                write!(f, "<{}>: Helo command rejected: Host not found", echo(h))
            }
            RcptRefusal::NonFqdnSender(s) => write!(
                f,
                "<{}>: Sender address rejected: need fully-qualified address",
                echo(s)
            ),
            RcptRefusal::UnknownSenderDomain(s) => {
                write!(
                    f,
                    "<{}>: Sender address rejected: Domain not found",
                    echo(s)
                )
            }
            RcptRefusal::NonFqdnRecipient(r) => write!(
                f,
                "<{}>: Recipient address rejected: need fully-qualified address",
                echo(r)
            ),
            RcptRefusal::UnknownRecipientDomain(r) => write!(
                f,
                "<{}>: Recipient address rejected: Domain not found",
                echo(r)
            ),
            RcptRefusal::UnknownClient(ip) => {
                write!(f, "Client host rejected: cannot find your hostname, [{ip}]")
            }
            RcptRefusal::UnknownReverseClient(ip) => write!(
                f,
                "Client host rejected: cannot find your reverse hostname, [{ip}]"
            ),
            RcptRefusal::Listed {
                what,
                subject,
                list,
                reason,
            } => {
                let class = match what {
                    Listed::ClientAddress | Listed::ClientName => "Client host",
                    Listed::ReverseClientName => "Unverified Client host",
                    Listed::SenderDomain => "Sender address",
                };
                write!(
                    f,
                    "Service unavailable; {class} [{}] blocked using {list}",
                    echo(subject)
                )?;
                match reason {
                    Some(r) => write!(f, "; {}", echo(r)),
                    None => Ok(()),
                }
            }
            RcptRefusal::Reject(r) => {
                write!(
                    f,
                    "<{}>: Recipient address rejected: Access denied",
                    echo(r)
                )
            }
            RcptRefusal::SpfFail {
                recipient,
                identity,
                explanation,
            } => {
                write!(
                    f,
                    "<{}>: Recipient address rejected: Message rejected due to: SPF fail - not authorized ({identity})",
                    echo(recipient)
                )?;
                match explanation {
                    Some(e) => write!(f, ". {}", echo(e)),
                    None => Ok(()),
                }
            }
            RcptRefusal::SpfTempError { recipient } => write!(
                f,
                "<{}>: Recipient address rejected: SPF Temporary Error: DNS lookup failed, try again later",
                echo(recipient)
            ),
            RcptRefusal::UnknownLocalUser(r) => write!(
                f,
                "<{}>: Recipient address rejected: User unknown in local recipient table",
                echo(r)
            ),
            RcptRefusal::Service {
                text, recipient, ..
            } => match recipient {
                Some(r) => write!(
                    f,
                    "<{}>: Recipient address rejected: {}",
                    echo(r),
                    echo(text)
                ),
                None => f.write_str(&echo(text)),
            },
            RcptRefusal::Deferred(inner) => inner.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_postfix_writes_them() {
        let cases = [
            (
                RcptRefusal::NonFqdnHelo("box".into()),
                "504 5.5.2 <box>: Helo command rejected: need fully-qualified hostname",
            ),
            (
                RcptRefusal::UnknownSenderDomain("a@nx.example".into()),
                "450 4.1.8 <a@nx.example>: Sender address rejected: Domain not found",
            ),
            (
                RcptRefusal::Deferred(Box::new(RcptRefusal::UnknownSenderDomain(
                    "a@slow.example".into(),
                ))),
                "450 4.4.3 <a@slow.example>: Sender address rejected: Domain not found",
            ),
            (
                RcptRefusal::Listed {
                    what: Listed::ClientAddress,
                    subject: "192.0.2.1".into(),
                    list: "bl.example".into(),
                    reason: Some("Listed\r\nsee http://bl.example/".into()),
                },
                "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using bl.example; Listed??see http://bl.example/",
            ),
            (
                RcptRefusal::Reject("x@example.com".into()),
                "554 5.7.1 <x@example.com>: Recipient address rejected: Access denied",
            ),
        ];
        for (refusal, text) in cases {
            assert_eq!(refusal.reply().to_string(), text);
        }
        let huge = RcptRefusal::InvalidHelo("h\u{0}".repeat(5_000_000)).reply();
        assert!(huge.to_string().len() < 300, "{}", huge.to_string().len());
    }
}
