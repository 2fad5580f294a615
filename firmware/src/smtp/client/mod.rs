//! The client side of SMTP and LMTP, sans-IO: commands as bytes, replies from bytes, and which
//! reply answers which command. The `delivery` stage drives it over TCP and TLS, as `inbound`
//! drives [`super::server`]; nothing here knows a socket, a clock or a stage.
//!
//! - [`ReplyParser`]: bytes from the server in, whole replies out (multi-line, at most
//!   [`MAX_REPLY`] bytes, enhanced status codes typed), or a [`ReplyError`].
//! - [`Capabilities`]: what an EHLO/LHLO reply offers.
//! - [`Command`]: EHLO/LHLO/HELO, STARTTLS, MAIL FROM and RCPT TO with their parameters, DATA,
//!   RSET, QUIT.
//! - [`Pipeline`]: the commands still awaiting a reply (RFC 2920).
//! - [`dotstuff`]: the body on the wire.

mod capabilities;
mod command;
pub mod dotstuff;
mod pipeline;
mod reply;

pub use capabilities::Capabilities;
pub use command::{Command, MailFrom, RcptTo, Verb, xtext};
pub use dotstuff::{DotStuffer, dot_stuff};
pub use pipeline::Pipeline;
pub use reply::{MAX_REPLY, ReplyError, ReplyParser, ServerReply, accepts, status_of};
