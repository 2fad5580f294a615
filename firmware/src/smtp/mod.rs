//! SMTP and LMTP protocol core, sans-IO: bytes and time in, replies and events out (RFC 5321,
//! 6531, 2033, 3030, 3461, 4954).
//!
//! - [`server`]: the server session state machine ([`Session`]).
//! - [`data`]: DATA dot-unstuffing and the strict end-of-data rule (no SMTP smuggling).
//! - [`auth`]: SASL PLAIN and LOGIN decoding.
//! - [`reply`], [`error`]: replies with enhanced status codes, and every refusal of the core.
//! - [`received`]: the `Received:` header in Postfix's shape.
//!
//! Command parsing is `smtp-proto` (Stalwart's parser); line framing, the state machine and every
//! reply are ours.

pub mod auth;
pub mod data;
pub mod error;
pub mod loopback;
pub mod received;
pub mod reply;
pub mod server;

pub use error::Refusal;
pub use reply::Reply;
pub use server::{Config, Event, Mode, RcptQuery, Session, TlsInfo};

#[cfg(test)]
mod tests;
