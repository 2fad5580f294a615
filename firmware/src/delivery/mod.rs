//! SMTP and LMTP delivery: the client side of the conversation with the next hop.
//!
//! [`Client::deliver`] takes one job (a message's recipients for one next hop) and returns a
//! result per recipient: EHLO/LHLO with this box's name, PIPELINING when offered, SIZE,
//! 8BITMIME/SMTPUTF8 (a message that needs SMTPUTF8 bounces with 5.6.7 at a server without it),
//! opportunistic STARTTLS ([`TlsPolicy`]), RFC 5321 timeouts, LMTP's reply per recipient after
//! DATA, connection reuse per next hop, and MX lookup with fallback ([`resolve`]). Replies are
//! parsed with smtp-proto; the body is dot-stuffed on the way out ([`dotstuff`]).
//!
//! Under `may`, a TLS handshake that fails after STARTTLS is retried once in clear, as Postfix
//! does. DSN parameters (RET, ENVID, NOTIFY, ORCPT) go on to a server that offers DSN, except
//! NOTIFY=SUCCESS, which Postern answers itself with a "relayed" report at hand-off.
//!
//! Not done here: SMTP AUTH to a relay host, DANE/MTA-STS, BDAT/CHUNKING, converting 8-bit
//! bodies for servers without 8BITMIME (sent as they are), streaming the body from flash (it
//! comes as one buffer per job).

mod client;
pub mod dotstuff;
pub mod reply;
pub mod resolve;
mod session;
mod stream;
mod tls;

pub use client::{Attempt, Client, ClientSettings, DeliveryRequest};
pub use resolve::{Dns, DnsError, HickoryDns, MxAnswer, ResolveError, Target};
pub use session::{SessionError, Stage, Timeouts};
pub use tls::TlsPolicy;
