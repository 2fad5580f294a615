//! Why a connection could not be made ready for mail, each case with the enhanced status code
//! it defers or bounces with and the words Postfix's smtp client logs for it.

use std::fmt;

use super::session::SessionError;
use crate::mail::{EnhancedStatus, Reply};
use crate::smtp::client::{Verb, status_of};

/// "Mail loops back to myself" (RFC 3463 5.4.6, as Postfix bounces it).
pub(super) const LOOPS_BACK: EnhancedStatus = EnhancedStatus::of(5, 4, 6);

#[derive(Debug)]
pub enum OpenError {
    /// No address of the next hop was there to try.
    NoAddress,
    /// TCP connect failed; `why` as Postfix words it ("Connection refused").
    Connect { relay: String, why: String },
    /// The conversation broke before mail could start.
    Session(SessionError),
    /// The greeting (`command` None) or EHLO/LHLO was answered with a refusal.
    Refused {
        relay: String,
        reply: Reply,
        command: Option<Verb>,
    },
    /// `encrypt` or `verify`, and the server offered no STARTTLS.
    TlsNotOffered { relay: String },
    /// STARTTLS was offered and accepted, but no TLS session came of it: under `may` the
    /// same host is tried again in clear, as Postfix does.
    Tls(TlsFailure),
    /// The server named itself with this box's own hostname: the mail would loop back to
    /// this box. The caller bounces it (5.4.6) and tries no other address.
    LoopsBack {
        relay: String,
        helo: String,
        /// `Greeting`, or the hello command the server answered.
        said: Verb,
    },
}

/// How STARTTLS failed.
#[derive(Debug)]
pub enum TlsFailure {
    /// Sending STARTTLS or reading its reply.
    Session(SessionError),
    Handshake {
        relay: String,
        error: std::io::Error,
    },
    HandshakeTimeout {
        relay: String,
    },
}

impl OpenError {
    /// The enhanced status code the recipients defer (or, looping, bounce) with.
    pub fn status(&self) -> EnhancedStatus {
        match self {
            OpenError::NoAddress | OpenError::Connect { .. } => EnhancedStatus::of(4, 4, 1),
            OpenError::Session(_) => EnhancedStatus::of(4, 4, 2),
            // A refusal to talk defers: the next MX, or a later try, may do better.
            OpenError::Refused { reply, .. } => status_of(reply).with_class(4),
            OpenError::TlsNotOffered { .. } => EnhancedStatus::of(4, 7, 4),
            OpenError::Tls(_) => EnhancedStatus::of(4, 7, 5),
            OpenError::LoopsBack { .. } => LOOPS_BACK,
        }
    }

    pub fn tls_failed(&self) -> bool {
        matches!(self, OpenError::Tls(_))
    }

    pub fn loops_back(&self) -> bool {
        matches!(self, OpenError::LoopsBack { .. })
    }
}

fn hello(verb: Verb) -> &'static str {
    match verb {
        Verb::Lhlo => "LHLO",
        Verb::Helo => "HELO",
        _ => "EHLO",
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NoAddress => f.write_str("no address to try"),
            OpenError::Connect { relay, why } => write!(f, "connect to {relay}: {why}"),
            OpenError::Session(e) => e.fmt(f),
            OpenError::Refused {
                relay,
                reply,
                command: None,
            } => write!(f, "host {relay} refused to talk to me: {reply}"),
            OpenError::Refused {
                relay,
                reply,
                command: Some(verb),
            } => write!(
                f,
                "host {relay} refused to talk to me: {reply} (in reply to {} command)",
                hello(*verb)
            ),
            OpenError::TlsNotOffered { relay } => {
                write!(f, "TLS is required, but was not offered by host {relay}")
            }
            OpenError::Tls(TlsFailure::Session(e)) => e.fmt(f),
            OpenError::Tls(TlsFailure::Handshake { relay, error }) => {
                write!(
                    f,
                    "Cannot start TLS: handshake failure with {relay}: {error}"
                )
            }
            OpenError::Tls(TlsFailure::HandshakeTimeout { relay }) => write!(
                f,
                "conversation with {relay} timed out while performing the TLS handshake"
            ),
            OpenError::LoopsBack { relay, helo, said } => {
                let said = match said {
                    Verb::Greeting => "greeted me".to_string(),
                    v => format!("replied to {}", hello(*v)),
                };
                write!(f, "host {relay} {said} with my own hostname {helo}")
            }
        }
    }
}

impl std::error::Error for OpenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_postfix_writes_them() {
        let relay = "mx.example.com[192.0.2.1]".to_string();
        let e = OpenError::Refused {
            relay: relay.clone(),
            reply: Reply::new(554, [5, 7, 1], "go away"),
            command: Some(Verb::Ehlo),
        };
        assert_eq!(
            e.to_string(),
            "host mx.example.com[192.0.2.1] refused to talk to me: 554 5.7.1 go away (in reply to EHLO command)"
        );
        // Refusing to talk defers: another MX, or a later try, may do better.
        assert_eq!(e.status().to_string(), "4.7.1");
        let e = OpenError::LoopsBack {
            relay,
            helo: "gw.example.com".into(),
            said: Verb::Greeting,
        };
        assert_eq!(
            e.to_string(),
            "host mx.example.com[192.0.2.1] greeted me with my own hostname gw.example.com"
        );
        assert!(e.loops_back() && !e.tls_failed());
        assert_eq!(e.status(), LOOPS_BACK);
    }
}
