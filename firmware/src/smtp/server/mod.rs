//! The server session: the SMTP (and LMTP) state machine, sans-IO, in the manner of rustls's
//! `Connection`.
//!
//! Bytes and the current time go in ([`Session::feed`]); replies come out ([`Session::take_output`])
//! together with [`Event`]s the driver must act on. Where the answer to the client depends on
//! something outside the core (may this recipient be accepted? is the message on flash? is this
//! password right? is TLS up?), the session emits the question as an event and stops reading input
//! until the driver calls the matching `answer_*` method. So a 250 after DATA is only ever written
//! after [`Session::answer_commit`] was called with the spool's queue id.
//!
//! States: greeting → EHLO/HELO (LHLO) → (STARTTLS → EHLO)? → (AUTH)? → MAIL → RCPT* → DATA/BDAT →
//! back to MAIL. Line discipline is strict: CRLF only (see [`super::data`] for DATA).
//!
//! This file holds the types and the driver-facing API; `engine` frames input into commands and
//! writes every reply, `transaction` serves HELO to DATA/BDAT, `security` STARTTLS and AUTH.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::auth::{Mechanism, Password};
use super::data::DataDecoder;
use super::error::Refusal;
use crate::mail::Reply;
use crate::mail::Transport;
use crate::mail::{BodyType, ClientInfo, Envelope, Notify, QueueId, Recipient, Ret};

/// SMTP (RFC 5321) or LMTP (RFC 2033: LHLO, one reply per recipient after DATA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Smtp,
    Lmtp,
}

/// What the session core needs to know of the settings. `inbound::Limits` fills it.
#[derive(Debug, Clone)]
pub struct Config {
    /// `myhostname`: in the greeting, the EHLO reply, 421 replies and bare-newline refusals.
    pub hostname: String,
    pub mode: Mode,
    /// `message_size_limit` (Zimbra `zimbraMtaMaxMessageSize`), in bytes.
    pub max_message_size: u64,
    /// `smtpd_recipient_limit`.
    pub max_recipients: usize,
    /// `line_length_limit` for command lines, CRLF included.
    pub line_length_limit: usize,
    /// `smtpd_hard_error_limit`.
    pub hard_error_limit: u32,
    /// Failed AUTH attempts allowed per connection.
    pub auth_failure_limit: u32,
    /// `smtpd_timeout`: waiting for a command.
    pub command_timeout: Duration,
    /// Waiting for the next block of message data (RFC 5321 §4.5.3.2: 3 minutes).
    pub data_timeout: Duration,
    /// STARTTLS is offered (a certificate is loaded).
    pub starttls: bool,
    /// AUTH can be offered (an authenticator is set); it is offered only under TLS.
    pub auth: bool,
    /// Submission: MAIL needs TLS and AUTH first.
    pub auth_required: bool,
    /// `disable_vrfy_command = no`: VRFY answers 252 instead of 502.
    pub vrfy: bool,
    /// `smtpd_forbid_unauth_pipelining`: an unauthenticated client that sends anything after
    /// DATA before our 354 is dropped with `554 5.5.0 Error: SMTP protocol synchronization`, and
    /// so is one that pipelines without PIPELINING announced (after HELO, or before any
    /// greeting), as postscreen's pipelining test does. Postfix also applies it to EHLO, NOOP and
    /// the other "last in group" commands of RFC 2920; here only those two cases, so clients
    /// that pipeline EHLO with MAIL keep working.
    pub forbid_unauth_pipelining: bool,
    /// postscreen's pregreet test (`postscreen_greet_wait` with `postscreen_greet_action =
    /// drop`): the greeting is sent as `220-` first and completed after this pause; a client
    /// that speaks before is dropped with `521 5.5.1 Protocol error`. Zero: greet at once.
    pub greet_wait: Duration,
    /// `smtpd_forbid_bare_newline_reject_code`: the reply code for a bare LF or CR (Postfix 3.9:
    /// 550; the 3.8.4-era fixed code was 521). The session is closed either way.
    pub bare_newline_reject_code: u16,
}

impl Config {
    /// Postfix-like defaults for an MX on port 25.
    pub fn new(hostname: impl Into<String>) -> Config {
        Config {
            hostname: hostname.into(),
            mode: Mode::Smtp,
            max_message_size: 10_240_000,
            max_recipients: 1000,
            line_length_limit: 2048,
            hard_error_limit: 20,
            auth_failure_limit: 3,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            starttls: true,
            auth: true,
            auth_required: false,
            vrfy: false,
            forbid_unauth_pipelining: true,
            greet_wait: Duration::ZERO,
            bare_newline_reject_code: 550,
        }
    }
}

/// The negotiated TLS parameters, for the Received header and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: String,
    /// IANA cipher suite name.
    pub cipher: String,
    /// Symmetric key bits.
    pub bits: u16,
}

impl TlsInfo {
    /// `TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`, as Postfix logs it.
    pub fn describe(&self) -> String {
        format!(
            "{} with cipher {} ({}/{} bits)",
            self.version, self.cipher, self.bits, self.bits
        )
    }
}

/// Where one accepted recipient goes: the address delivery uses and its next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTarget {
    pub address: String,
    pub next_hop: Transport,
}

/// The question a recipient check must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptQuery {
    /// What is known of the client: address, claimed HELO, AUTH user, TLS.
    pub client: ClientInfo,
    /// The reverse path of the transaction (empty for the null sender).
    pub sender: String,
    /// The address as given in RCPT TO.
    pub address: String,
    pub notify: Notify,
    /// RFC 3461 ORCPT: (address type, decoded address).
    pub orcpt: Option<(String, String)>,
}

/// What the driver must act on.
///
/// The message events of a transaction follow one contract: [`Event::MessageBegin`], then
/// [`Event::MessageData`] zero or more times, then exactly one of [`Event::MessageEnd`] (commit
/// and answer) or [`Event::MessageAbort`] (drop what was written); a begin answered with an error
/// opened nothing and is followed by neither. Data is streamed as it is
/// decoded, so a driver never holds a whole body in RAM; the cost is that a message refused part
/// way (over `message_size_limit`, a bare LF, RSET after BDAT, a lost connection) may have had some
/// of its data passed on before the abort. How much depends on how TCP split the input: the
/// replies, and what is committed, do not. The data of one message never adds up to more than
/// `message_size_limit`: the chunk that would pass it is not passed on, it aborts the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A MAIL FROM to admit (Postfix counts `smtpd_client_message_rate_limit` here); answer with
    /// [`Session::answer_sender`].
    CheckSender,
    /// Ask the router; answer with [`Session::answer_recipient`].
    CheckRecipient(RcptQuery),
    /// Check the password; answer with [`Session::answer_auth`].
    Authenticate {
        mechanism: Mechanism,
        user: String,
        password: Password,
    },
    /// Flush the output (the 220), run the TLS handshake, then call [`Session::tls_established`].
    StartTls,
    /// Open a message in the spool; answer with [`Session::answer_begin`]. `arrival` is 0: the
    /// driver sets it from its clock.
    MessageBegin(Box<Envelope>),
    /// Body bytes (dot-unstuffed, CRLF line ends) to append to the open message. Their split
    /// follows the input's; only what precedes [`Event::MessageEnd`] is ever committed.
    MessageData(Vec<u8>),
    /// The body is complete: commit it and answer with [`Session::answer_commit`].
    MessageEnd,
    /// Drop the open message and any data written for it: it will never be committed.
    MessageAbort,
}

/// A RCPT TO waiting for the router: what the client said, and no next hop until the router's
/// answer gives one per target.
#[derive(Debug, Clone)]
struct PendingRcpt {
    address: String,
    orcpt: Option<(String, String)>,
    notify: Notify,
}

/// A question the session is waiting on; no input is read meanwhile.
#[derive(Debug)]
enum Awaiting {
    Sender(Box<Transaction>),
    Rcpt(PendingRcpt),
    Auth { user: String },
    Tls,
    Begin(AfterBegin),
    Commit,
}

#[derive(Debug, Clone, Copy)]
enum AfterBegin {
    Data,
    Bdat { size: usize, last: bool },
}

#[derive(Debug)]
enum Phase {
    Command,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass(String),
    Data(DataDecoder),
    Bdat {
        remaining: usize,
        size: usize,
        last: bool,
    },
    /// Swallow a BDAT chunk whose command was refused, then give the refusal.
    BdatDiscard {
        remaining: usize,
        reply: Reply,
    },
    Closed,
}

#[derive(Debug)]
struct Transaction {
    sender: String,
    ret: Option<Ret>,
    envid: Option<String>,
    body_type: BodyType,
    smtputf8: bool,
    recipients: Vec<Recipient>,
    /// The spool has an open message for this transaction.
    open: bool,
    bdat: bool,
    size: u64,
    too_big: bool,
    /// The body held a NUL byte: it is read to its end, then refused, never stored.
    nul: bool,
}

#[derive(Debug)]
enum Greeted {
    No,
    Helo,
    Ehlo,
}

/// One SMTP or LMTP server session.
#[derive(Debug)]
pub struct Session {
    config: Arc<Config>,
    phase: Phase,
    awaiting: Option<Awaiting>,
    input: Vec<u8>,
    pos: usize,
    /// Skipping the rest of an overlong command line.
    discarding: bool,
    output: Vec<u8>,
    events: VecDeque<Event>,
    client: ClientInfo,
    helo: Greeted,
    tls: Option<TlsInfo>,
    tx: Option<Transaction>,
    errors: u32,
    auth_failures: u32,
    deadline: Instant,
    /// The greeting is held until then (the pregreet test); input meanwhile is a pregreet.
    greeting: Option<(Instant, Reply)>,
    pregreet: bool,
    stats: stats::CommandStats,
}

/// A parsed command line or why there is none.
enum Line {
    /// The line without its CRLF.
    Text(Vec<u8>),
    TooLong,
    BareLf,
}

/// Room a session keeps for its replies between sends.
const OUTPUT_KEPT: usize = 1024;

impl Session {
    /// A session for a client at `addr`; `tls` is set when the connection is already encrypted
    /// (port 465). The greeting is queued at once.
    pub fn new(
        config: Arc<Config>,
        addr: Option<IpAddr>,
        tls: Option<TlsInfo>,
        now: Instant,
    ) -> Session {
        let greeting = match config.mode {
            Mode::Smtp => format!("{} ESMTP Postern", config.hostname),
            Mode::Lmtp => format!("{} LMTP Postern", config.hostname),
        };
        let deadline = now + config.command_timeout;
        let mut s = Session {
            phase: Phase::Command,
            awaiting: None,
            input: Vec::new(),
            pos: 0,
            discarding: false,
            output: Vec::new(),
            events: VecDeque::new(),
            client: ClientInfo {
                addr,
                tls: tls.as_ref().map(TlsInfo::describe),
                ..ClientInfo::default()
            },
            helo: Greeted::No,
            tls,
            tx: None,
            errors: 0,
            auth_failures: 0,
            deadline,
            greeting: None,
            pregreet: false,
            stats: stats::CommandStats::default(),
            config,
        };
        let greeting = Reply::bare(220, greeting);
        if s.config.greet_wait.is_zero() || s.config.mode == Mode::Lmtp {
            s.reply(greeting);
        } else {
            // Clients that wait for the last line of the greeting are not bothered; bots that
            // talk first are caught.
            s.output
                .extend_from_slice(format!("220-{}\r\n", greeting.text).as_bytes());
            s.greeting = Some((now + s.config.greet_wait, greeting));
        }
        s
    }

    /// Hands the session bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8], now: Instant) {
        if self.is_closed() {
            return;
        }
        if self.greeting.is_some() {
            // Kept, never read: the client will be dropped when the greeting is due.
            self.pregreet |= !bytes.is_empty();
            return;
        }
        self.input.extend_from_slice(bytes);
        self.process(now);
    }

    /// The bytes to send to the client, in order. Empties the output buffer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// The bytes to send to the client, in order, left in place: call [`Session::output_sent`]
    /// once they are sent. The buffer is kept for the next replies (a session's replies each
    /// grew a new one).
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Empties the output buffer after [`Session::output`] was sent.
    pub fn output_sent(&mut self) {
        self.output.clear();
        if self.output.capacity() > OUTPUT_KEPT {
            // A long reply's room (a big EHLO, a help text) is not kept for an idle session.
            self.output = Vec::new();
        }
    }

    /// Whether replies are waiting to be sent.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// The next event to act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The session is over: flush the output, then close the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether the session reads input now (not closed, not waiting on an answer). A driver that
    /// stops reading meanwhile keeps the buffered input bounded.
    pub fn wants_input(&self) -> bool {
        !self.is_closed() && self.awaiting.is_none()
    }

    /// When [`Session::handle_timeout`] must be called if no input came; `None` while waiting on
    /// the driver or closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.greeting {
            Some((due, _)) => Some(*due),
            None => self.wants_input().then_some(self.deadline),
        }
    }

    /// Completes a held greeting when it is due (or drops a client that spoke first); ends the
    /// session with `421 4.4.2` if its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((due, greeting)) = self.greeting.take() {
            if now < due {
                self.greeting = Some((due, greeting));
            } else if self.pregreet {
                self.refuse(Refusal::Pregreet);
            } else {
                self.reply(greeting);
                self.deadline = now + self.config.command_timeout;
            }
            return;
        }
        if self.wants_input() && now >= self.deadline {
            self.refuse(Refusal::Timeout);
        }
    }

    /// Ends the session with `421 4.4.2` now: a deadline the driver keeps (Postfix
    /// `smtpd_per_record_deadline`) has passed, though bytes kept arriving.
    pub fn expire(&mut self) {
        if self.wants_input() {
            self.refuse(Refusal::Timeout);
        }
    }

    /// The commands so far, for smtpd's disconnect and lost-connection lines.
    pub fn stats(&self) -> &stats::CommandStats {
        &self.stats
    }

    /// Whether the client spoke before the greeting (postscreen's PREGREET), for the log.
    pub fn pregreeted(&self) -> bool {
        self.pregreet
    }

    /// What is known of the client; `helo` is the name it claimed, kept for policy.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Failed AUTH attempts so far (the driver slows each next answer by this count).
    pub fn auth_failures(&self) -> u32 {
        self.auth_failures
    }

    /// The answer to [`Event::CheckSender`]: `250 2.1.0 Ok` opens the transaction; a refusal is
    /// sent as it is and the client may try again.
    pub fn answer_sender(&mut self, verdict: Result<(), Reply>, now: Instant) {
        let Some(Awaiting::Sender(tx)) = self.awaiting.take() else {
            return;
        };
        match verdict {
            Ok(()) => {
                self.tx = Some(*tx);
                self.reply(Reply::new(250, [2, 1, 0], "Ok"));
            }
            Err(reply) => self.reply(reply),
        }
        self.process(now);
    }

    /// The router's answer to [`Event::CheckRecipient`].
    pub fn answer_recipient(&mut self, verdict: Result<Transport, Reply>, now: Instant) {
        let address = match &self.awaiting {
            Some(Awaiting::Rcpt(rcpt)) => rcpt.address.clone(),
            _ => return,
        };
        self.answer_recipient_targets(
            verdict.map(|next_hop| vec![RcptTarget { address, next_hop }]),
            now,
        );
    }

    /// The router's answer when one RCPT becomes one or more recipients (an alias rewritten to its
    /// account, a forwarding list): each target keeps the client's address as its original.
    pub fn answer_recipient_targets(
        &mut self,
        verdict: Result<Vec<RcptTarget>, Reply>,
        now: Instant,
    ) {
        let Some(Awaiting::Rcpt(rcpt)) = self.awaiting.take() else {
            return;
        };
        match verdict {
            Ok(targets) if targets.is_empty() => {
                self.reply(Reply::new(
                    451,
                    [4, 3, 0],
                    "Error: no next hop for this recipient",
                ));
            }
            Ok(targets) => {
                if let Some(tx) = self.tx.as_mut() {
                    for target in targets {
                        let rewritten = !target.address.eq_ignore_ascii_case(&rcpt.address);
                        tx.recipients.push(Recipient {
                            address: if rewritten {
                                target.address
                            } else {
                                rcpt.address.clone()
                            },
                            original: rewritten.then(|| rcpt.address.clone()),
                            orcpt: rcpt.orcpt.clone(),
                            notify: rcpt.notify,
                            next_hop: target.next_hop,
                        });
                    }
                }
                self.reply(Reply::new(250, [2, 1, 5], "Ok"));
            }
            Err(reply) => self.reply(reply),
        }
        self.process(now);
    }

    /// The authenticator's answer to [`Event::Authenticate`].
    pub fn answer_auth(&mut self, ok: bool, now: Instant) {
        let Some(Awaiting::Auth { user }) = self.awaiting.take() else {
            return;
        };
        if ok {
            self.client.auth = Some(user);
            self.reply(Reply::new(235, [2, 7, 0], "Authentication successful"));
        } else {
            self.auth_failures += 1;
            self.refuse(Refusal::AuthFailed);
            if self.auth_failures >= self.config.auth_failure_limit {
                self.refuse(Refusal::TooManyAuthFailures);
            }
        }
        self.process(now);
    }

    /// [`Event::Authenticate`] refused before the password was checked (a per-client AUTH rate
    /// limit): `reply` is the answer; no login, and no failed attempt on this connection.
    pub fn refuse_auth(&mut self, reply: Reply, now: Instant) {
        if !matches!(self.awaiting, Some(Awaiting::Auth { .. })) {
            return;
        }
        self.awaiting = None;
        self.reply(reply);
        self.process(now);
    }

    /// The TLS handshake after STARTTLS succeeded: the session starts over (RFC 3207 §4.2).
    pub fn tls_established(&mut self, info: TlsInfo, now: Instant) {
        if !matches!(self.awaiting, Some(Awaiting::Tls)) {
            return;
        }
        self.awaiting = None;
        self.client.tls = Some(info.describe());
        self.tls = Some(info);
        self.client.helo.clear();
        self.client.auth = None;
        self.helo = Greeted::No;
        self.reset_transaction();
        // Anything the client sent in plaintext after STARTTLS was already dropped.
        self.input.clear();
        self.pos = 0;
        self.process(now);
    }

    /// The spool's answer to [`Event::MessageBegin`].
    pub fn answer_begin(&mut self, result: Result<(), Reply>, now: Instant) {
        let Some(Awaiting::Begin(after)) = self.awaiting.take() else {
            return;
        };
        match (result, after) {
            (Ok(()), AfterBegin::Data) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.open = true;
                }
                if self.config.forbid_unauth_pipelining
                    && self.client.auth.is_none()
                    && self.pos < self.input.len()
                {
                    // The client did not wait for our 354: what it sent may be commands meant
                    // to be smuggled as data, or the reverse. Closing aborts the message.
                    self.refuse(Refusal::PipeliningViolation);
                } else {
                    self.reply(Reply::bare(354, "End data with <CR><LF>.<CR><LF>"));
                    self.phase = Phase::Data(DataDecoder::new());
                }
            }
            (Ok(()), AfterBegin::Bdat { size, last }) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.open = true;
                }
                self.phase = Phase::Bdat {
                    remaining: size,
                    size,
                    last,
                };
            }
            (Err(reply), AfterBegin::Data) => {
                self.tx = None;
                self.reply(reply);
            }
            (Err(reply), AfterBegin::Bdat { size, .. }) => {
                self.tx = None;
                self.phase = Phase::BdatDiscard {
                    remaining: size,
                    reply,
                };
            }
        }
        self.process(now);
    }

    /// The spool's answer to [`Event::MessageEnd`]: the queue id once the message is on flash.
    pub fn answer_commit(&mut self, result: Result<QueueId, Reply>, now: Instant) {
        let Some(Awaiting::Commit) = self.awaiting.take() else {
            return;
        };
        let recipients = self.tx.take().map(|tx| tx.recipients).unwrap_or_default();
        let replies: Vec<Reply> = match (&result, self.config.mode) {
            (Ok(qid), Mode::Smtp) => {
                vec![Reply::new(250, [2, 0, 0], format!("Ok: queued as {qid}"))]
            }
            (Err(r), Mode::Smtp) => vec![r.clone()],
            (Ok(qid), Mode::Lmtp) => recipients
                .iter()
                .map(|r| {
                    Reply::new(
                        250,
                        [2, 0, 0],
                        format!("<{}> Ok: queued as {qid}", r.address),
                    )
                })
                .collect(),
            (Err(e), Mode::Lmtp) => recipients
                .iter()
                .map(|r| Reply {
                    text: format!("<{}> {}", r.address, e.text),
                    ..e.clone()
                })
                .collect(),
        };
        for r in replies {
            self.reply(r);
        }
        self.process(now);
    }
}

mod engine;
mod security;
pub mod stats;
mod transaction;
