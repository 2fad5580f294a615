//! SMTP and LMTP protocol core, sans-IO: bytes and time in, replies and events out (RFC 5321,
//! 6531, 2033, 3030, 3461, 4954).
//!
//! - [`server`]: the server session state machine ([`Session`]).
//! - [`client`]: the client side (reply parsing, capabilities, commands, pipelining, dot-stuffing),
//!   driven by the `delivery` stage.
//! - [`data`]: DATA dot-unstuffing and the strict end-of-data rule (no SMTP smuggling).
//! - [`auth`]: SASL PLAIN and LOGIN decoding.
//! - [`error`]: every refusal of the core, each with its reply (`crate::mail::Reply`).
//! - [`received`]: the `Received:` header in Postfix's shape.
//!
//! - [`loopback`]: an in-memory peer for the session, behind the tests, fuzz targets and benchmark.
//!
//! Command parsing is `smtp-proto` (Stalwart's parser); line framing, the state machine and every
//! reply are ours. The client's reply parser is ours too: smtp-proto's stops at 4 KiB of text.
//!
//! Announced in EHLO: PIPELINING, SIZE, STARTTLS (before TLS), AUTH PLAIN LOGIN (under TLS),
//! ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING.
//!
//! Not supported, refused when a client uses them anyway: BINARYMIME, REQUIRETLS, DELIVERBY,
//! FUTURERELEASE, MT-PRIORITY, MTRK, RRVS, CONNEG, CONPERM (`555 5.5.4`); ETRN, ATRN, BURL, EXPN
//! (`502 5.5.1`); SASL mechanisms other than PLAIN and LOGIN (`504 5.5.4`); AUTH on behalf of
//! another identity (a PLAIN authzid that is not the user). VRFY answers `502` unless enabled, and
//! then only `252`.

pub mod auth;
pub mod client;
pub mod data;
pub mod error;
pub mod loopback;
pub mod received;
pub mod server;

pub use error::Refusal;
pub use server::{Config, Event, Mode, RcptQuery, RcptTarget, Session, TlsInfo};

#[cfg(test)]
mod tests;
