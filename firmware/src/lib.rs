//! # Postern: mail-gateway firmware
//!
//! One binary that is the whole userland of a small mail-gateway box (PID 1 of its image), or an
//! ordinary process on a developer's machine (`postern run`). This page walks the mail flow through
//! the modules, one module per stage as Postfix has one daemon per job.
//!
//! ```text
//!  client ──► inbound ──► policy ──► route (per RCPT) ──► content ──► spool ──► 250 queued as QID
//!                                       │                              │
//!                                   directory                        queue ──► delivery ──► next hop
//!                                                                      └──► bounce (DSN) ──► spool
//! ```
//!
//! - [`smtp`]: the protocol core, sans-IO. Bytes and the current time go in, replies and events
//!   come out; it knows nothing of sockets. Both the server side (SMTP, LMTP) and the client side.
//! - [`inbound`]: listeners on 25/587/465, TLS, AUTH, limits and timeouts; drives [`smtp`] over
//!   TCP and asks [`policy`], [`route`] and [`spool`] before it answers.
//! - [`policy`]: restrictions per stage and relay control.
//! - [`route`]: recipient → accept/reject and next hop, a pure function of the address, the
//!   [`directory`] and the [`config`].
//! - [`directory`]: accounts, aliases, domains, MTA settings; in RAM, snapshot on flash.
//! - [`content`]: size, attachments, spam and virus checks.
//! - [`spool`]: the flash store. A message exists once its commit record is synced; only then does
//!   the client get its 250.
//! - [`queue`]: incoming, active, deferred, hold; when each message is tried next.
//! - [`delivery`]: SMTP and LMTP client sessions.
//! - [`bounce`]: RFC 3464 delivery status notifications.
//! - [`mail`]: the types every stage shares: queue ids, the envelope, transports, enhanced status
//!   codes and SMTP replies.
//! - [`log`]: mail log lines in Postfix's shape.
//! - [`config`], [`admin`], [`console`], [`daemon`]: settings, the command line and control
//!   socket, the serial console, and the services both running modes start.
//!
//! ## The import rule
//!
//! <!-- import-table begin: parsed by firmware/tests/import_rule (run by `make lint`) -->
//! ```text
//! hal → mail → log → smtp → config → directory → route / policy → spool → content → bounce
//!     → queue → delivery → inbound → admin → daemon / console → appliance → main
//! ```
//! <!-- import-table end -->
//!
//! A module may import those on its left, never those on its right, nor a neighbour on its own
//! level (`route / policy`) unless a line `A may import B` in the table says so. Where a lower
//! module needs something from a higher one, the type moves down (into [`mail`]) or the higher
//! one passes a closure or trait object in. Change the table and the code together.

#![forbid(unsafe_code)]

pub mod admin;
pub mod appliance;
pub mod bounce;
pub mod config;
pub mod console;
pub mod content;
pub mod daemon;
pub mod delivery;
pub mod directory;
pub mod inbound;
pub mod log;
pub mod mail;
pub mod policy;
pub mod queue;
pub mod route;
pub mod smtp;
pub mod spool;
