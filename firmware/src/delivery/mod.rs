//! SMTP and LMTP delivery: the client side of the conversation with the next hop.
//!
//! [`Client::deliver`] takes one job (a message's recipients for one next hop, a
//! [`crate::queue::DeliveryRequest`]) and returns a result per recipient (the queue's
//! [`crate::queue::Attempt`]; `Client` is the queue's [`crate::queue::Deliverer`]): EHLO/LHLO
//! with this box's name, PIPELINING when offered, SIZE, 8BITMIME/SMTPUTF8 (a message that needs SMTPUTF8 bounces with 5.6.7 at a server without it),
//! opportunistic STARTTLS ([`TlsPolicy`]), RFC 5321 timeouts, LMTP's reply per recipient after
//! DATA, connection reuse per next hop, and MX lookup with fallback ([`resolve`]). The protocol
//! (commands, replies, capabilities, pipelining, dot-stuffing) is [`crate::smtp::client`]'s;
//! this module drives it over TCP and TLS, keeps the clock, and words the results.
//!
//! "Mail loops back to myself" (5.4.6, bounced): a next hop address that is one of this box's
//! own listeners is never connected to (MX hosts no better than this box are dropped, as
//! Postfix's smtp_truncate_self does), and an SMTP server that greets or answers EHLO with this
//! box's hostname gets no mail. LMTP servers are exempt from the name check, as in Postfix: a
//! mailbox server on this same host rightly shares its name.
//!
//! Under `may`, a TLS handshake that fails after STARTTLS is retried once in clear, as Postfix
//! does. DSN parameters (RET, ENVID, NOTIFY, ORCPT) go on to a server that offers DSN, except
//! NOTIFY=SUCCESS, which Postern answers itself with a "relayed" report at hand-off.
//!
//! The body streams from the spool a piece at a time ([`crate::queue::BodySource`]), so a job
//! holds at most a piece or two in RAM whatever the message size. A piece that fails its check
//! abandons the transaction before the final dot (the connection is closed; the next hop
//! discards what it got) and the recipients are deferred with 4.3.0, as when the message
//! cannot be read at all.
//!
//! Not done here: SMTP AUTH to a relay host, DANE/MTA-STS, BDAT/CHUNKING, converting 8-bit
//! bodies for servers without 8BITMIME (sent as they are).

mod client;
pub mod lookups;
mod open_error;
pub mod resolve;
mod session;
mod stream;
mod tls;
mod transaction;

pub use client::{Client, ClientSettings};
pub use lookups::{ConfiguredDns, LookupSettings, NameLookups};
pub use open_error::{OpenError, TlsFailure};
pub use resolve::{Dns, DnsError, DnsSetupError, HickoryDns, MxAnswer, ResolveError, Target};
pub use session::{SessionError, Stage, Timeouts};
pub use tls::{AnyCertificate, TlsPolicy};
