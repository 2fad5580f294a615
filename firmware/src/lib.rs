//! # Postern: mail-gateway firmware
//!
//! One binary that is the whole userland of a small mail-gateway box (PID 1 of its image), or an
//! ordinary process on a developer's machine (`postern run`). This page walks the mail flow through
//! the modules, one module per stage as Postfix has one daemon per job.
//!
//! ```text
//!  client ─► inbound ─► policy: connect (connection limits)
//!              │        policy: RCPT (relay control) ─► route (directory, config) ─► RCPT reply
//!              │        DATA/BDAT: body ─► content (checks) ────┐
//!              │                     └──► spool (flash) ────────┴─► commit, sync ─► 250 queued as QID
//!              │                                                     │
//!              └─ reject with a clear code at the earliest stage     queue ─► delivery ─► next hop
//!                                                                    └─► bounce (DSN) ─► spool
//! ```
//!
//! - [`smtp`]: the protocol core, sans-IO. Bytes and the current time go in, replies and events
//!   come out; it knows nothing of sockets, and no stage: it asks, the driver answers.
//! - [`inbound`]: listeners on 25/587/465, TLS and the box's TLS identity, AUTH, timeouts; drives
//!   [`smtp`] over TCP. It asks [`policy`] at connect and RCPT, [`route`] at RCPT, runs [`content`]
//!   over the body as it streams to the [`spool`], hands the committed message to the [`queue`],
//!   and turns their typed answers (a route rejection, a content rejection, a spool error) into
//!   SMTP replies.
//! - [`policy`]: what a client may do, per stage: connection limits and rates at connect, the
//!   message rate when a message begins, relay control and the restrictions of
//!   `zimbraMtaRestriction` (HELO, sender, client names, DNSBL, policy service) at RCPT, and
//!   what becomes of mail to the box's own name.
//! - [`route`]: recipient → accept/reject and next hop, a pure function of the address, the
//!   [`directory`], the [`config`] and the policy's relay answer.
//! - [`directory`]: accounts, aliases, domains, MTA settings; in RAM, snapshot on flash; AUTH
//!   verification against the accounts' hashes.
//! - [`content`]: the end-of-data checks, one streaming pass over the body before the 250: hop
//!   count, attachment blocking, clamd and spamd or rspamd (called at once), header edits of what passes.
//! - [`spool`]: the flash store. A message exists once its commit record is synced; only then does
//!   the client get its 250. Its errors are its own; it speaks no SMTP.
//! - [`queue`]: active, deferred, hold; when each message is tried next; reads and writes messages
//!   through the spool.
//! - [`delivery`]: SMTP and LMTP client sessions.
//! - [`bounce`]: RFC 3464 delivery status notifications.
//! - [`mail`]: the types every stage shares: queue ids, the envelope, transports, enhanced status
//!   codes and SMTP replies.
//! - [`log`]: mail log lines in Postfix's shape. [`metrics`]: the counters every stage bumps for
//!   the Prometheus endpoint (`admin` adds the queue, flash and directory at scrape time).
//! - [`trust`]: the certificate authorities the box's TLS clients (LDAP, update downloads) check
//!   servers against.
//! - [`update`]: signed A/B firmware updates: the bundle format and its checks, the boot slots on
//!   the EFI system partition, installing into the slot that is not running.
//! - [`config`]: settings with Zimbra's names. [`admin`]: the admin commands and the control
//!   socket; each operation takes the handles it needs (spool, queue, directory). [`daemon`]: the
//!   services both running modes start. [`console`]: the serial console. [`appliance`] (PID 1)
//!   and [`cli`] (a shell): the binary's two entries.
//!
//! ## The import rule
//!
//! <!-- import-table begin: parsed by firmware/tests/import_rule (run by `make lint`) -->
//! ```text
//! hal → mail → log → metrics → trust → nameserver → smtp → config → directory → route → policy → spool → content
//!     → bounce → queue → delivery → inbound → update → admin → daemon / console → appliance / cli
//!     → main
//! ```
//! <!-- import-table end -->
//!
//! A module may import those on its left, never those on its right, nor a neighbour on its own
//! level (`daemon / console`) unless a line `A may import B` in the table says so; `make lint`
//! checks it. `policy` comes after `route`: relay control answers with the router's
//! [`route::Relay`], and the restrictions that will join it need to know which domains are the
//! box's. Where a lower module needs something from a higher one, the type moves down (into
//! [`mail`]) or the higher one passes a closure or trait object in (the queue's bounce route, the
//! inbound traits in [`inbound::stages`]). Change the table and the code together.

#![forbid(unsafe_code)]

pub mod admin;
pub mod appliance;
pub mod bounce;
pub mod cli;
pub mod config;
pub mod console;
pub mod content;
pub mod daemon;
pub mod delivery;
pub mod directory;
pub mod inbound;
pub mod log;
pub mod mail;
pub mod metrics;
pub mod nameserver;
pub mod policy;
pub mod queue;
pub mod route;
pub mod smtp;
pub mod spool;
pub mod trust;
pub mod update;
