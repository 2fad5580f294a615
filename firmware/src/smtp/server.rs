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
//! States: greeting → EHLO/HELO (LHLO) → [STARTTLS → EHLO] → [AUTH] → MAIL → RCPT* → DATA/BDAT →
//! back to MAIL. Line discipline is strict: CRLF only (see [`super::data`] for DATA).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::{Error as ParseError, Request};

use super::auth::{self, Mechanism, SaslError};
use super::data::{DataDecoder, DataError, Progress};
use super::error::Refusal;
use super::reply::Reply;
use crate::envelope::{BodyType, ClientInfo, Envelope, Notify, QueueId, Recipient, Ret};
use crate::route::Transport;

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
    /// `smtpd_forbid_unauth_pipelining`.
    pub forbid_unauth_pipelining: bool,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Ask the router; answer with [`Session::answer_recipient`].
    CheckRecipient(RcptQuery),
    /// Check the password; answer with [`Session::answer_auth`].
    Authenticate {
        mechanism: Mechanism,
        user: String,
        password: String,
    },
    /// Flush the output (the 220), run the TLS handshake, then call [`Session::tls_established`].
    StartTls,
    /// Open a message in the spool; answer with [`Session::answer_begin`]. `arrival` is 0: the
    /// driver sets it from its clock.
    MessageBegin(Box<Envelope>),
    /// Body bytes (dot-unstuffed, CRLF line ends) to append to the open message.
    MessageData(Vec<u8>),
    /// The body is complete: commit it and answer with [`Session::answer_commit`].
    MessageEnd,
    /// Drop the open message: it will never be committed.
    MessageAbort,
}

/// A question the session is waiting on; no input is read meanwhile.
#[derive(Debug)]
enum Awaiting {
    Rcpt(Recipient),
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
}

/// A parsed command line or why there is none.
enum Line {
    /// The line without its CRLF.
    Text(Vec<u8>),
    TooLong,
    BareLf,
}

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
            config,
        };
        s.reply(Reply::bare(220, greeting));
        s
    }

    /// Hands the session bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8], now: Instant) {
        if self.is_closed() {
            return;
        }
        self.input.extend_from_slice(bytes);
        self.process(now);
    }

    /// The bytes to send to the client, in order. Empties the output buffer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
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
        self.wants_input().then_some(self.deadline)
    }

    /// Ends the session with `421 4.4.2` if its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.wants_input() && now >= self.deadline {
            self.refuse(Refusal::Timeout);
        }
    }

    /// What is known of the client; `helo` is the name it claimed, kept for policy.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Failed AUTH attempts so far (the driver slows each next answer by this count).
    pub fn auth_failures(&self) -> u32 {
        self.auth_failures
    }

    /// The router's answer to [`Event::CheckRecipient`].
    pub fn answer_recipient(&mut self, verdict: Result<Transport, Reply>, now: Instant) {
        let Some(Awaiting::Rcpt(mut rcpt)) = self.awaiting.take() else {
            return;
        };
        match verdict {
            Ok(next_hop) => {
                rcpt.next_hop = next_hop;
                if let Some(tx) = self.tx.as_mut() {
                    tx.recipients.push(rcpt);
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

    // ---- the engine ----

    fn process(&mut self, now: Instant) {
        while !self.is_closed() && self.awaiting.is_none() {
            let progressed = match self.phase {
                Phase::Data(_) => self.process_data(),
                Phase::Bdat { .. } | Phase::BdatDiscard { .. } => self.process_bdat(),
                _ => match self.next_line() {
                    Some(line) => {
                        self.handle_line(line);
                        true
                    }
                    None => false,
                },
            };
            if !progressed {
                break;
            }
        }
        if self.pos > 0 {
            self.input.drain(..self.pos.min(self.input.len()));
            self.pos = 0;
        }
        let timeout = match self.phase {
            Phase::Data(_) | Phase::Bdat { .. } | Phase::BdatDiscard { .. } => {
                self.config.data_timeout
            }
            _ => self.config.command_timeout,
        };
        self.deadline = now + timeout;
    }

    fn next_line(&mut self) -> Option<Line> {
        let limit = self.config.line_length_limit;
        loop {
            let avail = self.input.get(self.pos..).unwrap_or_default();
            let lf = avail.iter().position(|&b| b == b'\n');
            if self.discarding {
                match lf {
                    Some(i) => {
                        self.pos += i + 1;
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        self.pos = self.input.len();
                        return None;
                    }
                }
            }
            return match lf {
                Some(i) if i + 1 > limit => {
                    self.pos += i + 1;
                    Some(Line::TooLong)
                }
                Some(i) => {
                    if i == 0 || avail.get(i - 1) != Some(&b'\r') {
                        return Some(Line::BareLf);
                    }
                    let text = avail.get(..i - 1).unwrap_or_default().to_vec();
                    self.pos += i + 1;
                    Some(Line::Text(text))
                }
                None if avail.len() > limit => {
                    self.pos = self.input.len();
                    self.discarding = true;
                    Some(Line::TooLong)
                }
                None => None,
            };
        }
    }

    fn handle_line(&mut self, line: Line) {
        let text = match line {
            Line::Text(t) => t,
            Line::TooLong => {
                if !matches!(self.phase, Phase::Command) {
                    self.phase = Phase::Command;
                }
                return self.refuse(Refusal::LineTooLong);
            }
            Line::BareLf => {
                let code = self.config.bare_newline_reject_code;
                return self.refuse(Refusal::BareLf { code });
            }
        };
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::AuthPlain => self.auth_plain_response(&text),
            Phase::AuthLoginUser => self.auth_login_user(&text),
            Phase::AuthLoginPass(user) => self.auth_login_pass(user, &text),
            _ => self.command(text),
        }
    }

    fn command(&mut self, mut line: Vec<u8>) {
        if line.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
            return self.refuse(Refusal::BadSyntax);
        }
        if std::str::from_utf8(&line).is_err() {
            return self.refuse(Refusal::BadUtf8);
        }
        line.extend_from_slice(b"\r\n");
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r.into_owned(),
            Err(e) => return self.refuse(parse_refusal(e)),
        };
        match request {
            Request::Ehlo { host } => self.hello(host, Greeted::Ehlo, Mode::Smtp),
            Request::Helo { host } => self.hello(host, Greeted::Helo, Mode::Smtp),
            Request::Lhlo { host } => self.hello(host, Greeted::Ehlo, Mode::Lmtp),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to, &line),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            Request::StartTls => self.starttls(),
            Request::Noop { .. } => self.reply(Reply::new(250, [2, 0, 0], "Ok")),
            Request::Rset => {
                self.reset_transaction();
                self.reply(Reply::new(250, [2, 0, 0], "Ok"));
            }
            Request::Quit => {
                self.reset_transaction();
                self.reply(Reply::new(221, [2, 0, 0], "Bye"));
                self.phase = Phase::Closed;
            }
            Request::Vrfy { .. } if self.config.vrfy => self.reply(Reply::new(
                252,
                [2, 0, 0],
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Vrfy { .. } => self.refuse(Refusal::VrfyDisabled),
            Request::Help { .. } => self.reply(Reply::new(
                214,
                [2, 0, 0],
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP STARTTLS AUTH",
            )),
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.refuse(Refusal::NotImplemented),
        }
    }

    fn hello(&mut self, host: String, kind: Greeted, mode: Mode) {
        if mode != self.config.mode {
            return self.refuse(Refusal::WrongGreeting);
        }
        self.reset_transaction();
        self.client.helo = host;
        let hostname = self.config.hostname.clone();
        if matches!(kind, Greeted::Helo) {
            self.helo = Greeted::Helo;
            return self.reply(Reply::bare(250, hostname));
        }
        self.helo = Greeted::Ehlo;
        let mut lines = vec![
            hostname,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.config.max_message_size),
        ];
        if self.config.starttls && self.tls.is_none() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        for ext in [
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ] {
            lines.push(ext.into());
        }
        let last = lines.len() - 1;
        for (i, l) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.output
                .extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
        }
    }

    fn auth_offered(&self) -> bool {
        self.config.auth && self.tls.is_some()
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>) {
        if matches!(self.helo, Greeted::No) {
            return self.refuse(Refusal::NeedHelo);
        }
        if self.config.auth_required && self.client.auth.is_none() {
            return self.refuse(if self.tls.is_none() {
                Refusal::NeedTls
            } else {
                Refusal::NeedAuth
            });
        }
        if self.tx.is_some() {
            return self.refuse(Refusal::NestedMail);
        }
        use smtp_proto::*;
        let unsupported = [
            (MAIL_BODY_BINARYMIME, "BODY=BINARYMIME"),
            (MAIL_REQUIRETLS, "REQUIRETLS"),
            (MAIL_CONPERM, "CONPERM"),
            (MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE, "BY"),
        ];
        for (flag, name) in unsupported {
            if from.flags & flag != 0 {
                return self.refuse(Refusal::UnsupportedParameter(name.into()));
            }
        }
        let extras = [
            (from.trans_id.is_some(), "TRANSID"),
            (from.by != 0, "BY"),
            (from.solicit.is_some(), "SOLICIT"),
            (from.mtrk.is_some(), "MTRK"),
            (from.hold_for != 0 || from.hold_until != 0, "FUTURERELEASE"),
            (from.mt_priority != 0, "MT-PRIORITY"),
        ];
        for (present, name) in extras {
            if present {
                return self.refuse(Refusal::UnsupportedParameter(name.into()));
            }
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if smtputf8 && !matches!(self.helo, Greeted::Ehlo) {
            return self.refuse(Refusal::UnsupportedParameter("SMTPUTF8".into()));
        }
        if !from.address.is_ascii() && !smtputf8 {
            return self.refuse(Refusal::NeedSmtpUtf8);
        }
        if from.size as u64 > self.config.max_message_size {
            return self.refuse(Refusal::SizeTooBig);
        }
        let body_type = if from.flags & MAIL_BODY_8BITMIME != 0 {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        };
        let ret = if from.flags & MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & MAIL_RET_HDRS != 0 {
            Some(Ret::Headers)
        } else {
            None
        };
        self.tx = Some(Transaction {
            sender: from.address,
            ret,
            envid: from.env_id,
            body_type,
            smtputf8,
            recipients: Vec::new(),
            open: false,
            bdat: false,
            size: 0,
            too_big: false,
        });
        self.reply(Reply::new(250, [2, 1, 0], "Ok"));
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<String>, line: &[u8]) {
        use smtp_proto::*;
        if matches!(self.helo, Greeted::No) {
            return self.refuse(Refusal::NeedHelo);
        }
        let Some(tx) = self.tx.as_ref() else {
            return self.refuse(Refusal::NeedMail);
        };
        if tx.recipients.len() >= self.config.max_recipients {
            return self.refuse(Refusal::TooManyRecipients);
        }
        if to.flags & (RCPT_CONNEG | RCPT_RRVS_REJECT | RCPT_RRVS_CONTINUE) != 0 || to.rrvs != 0 {
            return self.refuse(Refusal::UnsupportedParameter("RRVS/CONNEG".into()));
        }
        let mut address = to.address;
        if address.is_empty() {
            // smtp-proto maps both <> and <postmaster> to "": only the latter is a recipient.
            let lower = String::from_utf8_lossy(line).to_ascii_lowercase();
            if !lower.contains("<postmaster>") {
                return self.refuse(Refusal::BadRecipient);
            }
            address = "postmaster".into();
        }
        if !address.is_ascii() && !tx.smtputf8 {
            return self.refuse(Refusal::NeedSmtpUtf8);
        }
        let never = to.flags & RCPT_NOTIFY_NEVER != 0;
        let others = to.flags & (RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY);
        if never && others != 0 {
            return self.refuse(Refusal::BadParameter("NOTIFY"));
        }
        let notify = if never {
            Notify::NEVER
        } else if others != 0 {
            Notify {
                success: to.flags & RCPT_NOTIFY_SUCCESS != 0,
                failure: to.flags & RCPT_NOTIFY_FAILURE != 0,
                delay: to.flags & RCPT_NOTIFY_DELAY != 0,
                explicit: true,
            }
        } else {
            Notify::DEFAULT
        };
        let orcpt = to.orcpt.map(|a| ("rfc822".to_string(), a));
        let query = RcptQuery {
            client: self.client_info(),
            sender: tx.sender.clone(),
            address: address.clone(),
            notify,
            orcpt: orcpt.clone(),
        };
        // The next hop is filled from the router's answer.
        let pending = Recipient {
            address,
            original: None,
            orcpt,
            notify,
            next_hop: Transport {
                protocol: crate::route::Protocol::Smtp,
                host: crate::route::Host::Name(String::new()),
                port: 25,
                mx: true,
            },
        };
        self.events.push_back(Event::CheckRecipient(query));
        self.awaiting = Some(Awaiting::Rcpt(pending));
    }

    fn data(&mut self) {
        if matches!(self.helo, Greeted::No) {
            return self.refuse(Refusal::NeedHelo);
        }
        match &self.tx {
            None => return self.refuse(Refusal::NeedRcpt),
            Some(tx) if tx.recipients.is_empty() => return self.refuse(Refusal::NeedRcpt),
            Some(tx) if tx.bdat => return self.refuse(Refusal::DataAfterBdat),
            Some(_) => {}
        }
        self.begin(AfterBegin::Data);
    }

    fn bdat(&mut self, size: usize, last: bool) {
        let refusal = if matches!(self.helo, Greeted::No) {
            Some(Refusal::NeedHelo)
        } else {
            match &self.tx {
                None => Some(Refusal::NeedMail),
                Some(tx) if tx.recipients.is_empty() => Some(Refusal::NeedRcpt),
                Some(_) => None,
            }
        };
        if let Some(r) = refusal {
            // Counted as an error when the reply goes out, after the chunk.
            let reply = r.reply(&self.config.hostname);
            self.phase = Phase::BdatDiscard {
                remaining: size,
                reply,
            };
            return;
        }
        let Some(tx) = self.tx.as_mut() else { return };
        tx.bdat = true;
        if tx.open {
            self.phase = Phase::Bdat {
                remaining: size,
                size,
                last,
            };
        } else {
            self.begin(AfterBegin::Bdat { size, last });
        }
    }

    fn begin(&mut self, after: AfterBegin) {
        let Some(tx) = self.tx.as_ref() else { return };
        let envelope = Envelope {
            sender: tx.sender.clone(),
            recipients: tx.recipients.clone(),
            ret: tx.ret,
            envid: tx.envid.clone(),
            body_type: tx.body_type,
            smtputf8: tx.smtputf8,
            arrival: 0,
            client: self.client_info(),
        };
        self.events
            .push_back(Event::MessageBegin(Box::new(envelope)));
        self.awaiting = Some(Awaiting::Begin(after));
    }

    fn process_data(&mut self) -> bool {
        let Phase::Data(decoder) = &mut self.phase else {
            return false;
        };
        let avail = self.input.get(self.pos..).unwrap_or_default();
        if avail.is_empty() {
            return false;
        }
        let mut body = Vec::new();
        let progress = decoder.decode(avail, &mut body);
        match progress {
            Progress::NeedMore => self.pos = self.input.len(),
            Progress::End(n) | Progress::Error(_, n) => self.pos += n,
        }
        self.take_body(body);
        match progress {
            Progress::NeedMore => {}
            Progress::End(_) => self.end_of_message(),
            Progress::Error(e, _) => {
                self.reset_transaction();
                let code = self.config.bare_newline_reject_code;
                self.refuse(match e {
                    DataError::BareLf => Refusal::BareLf { code },
                    DataError::BareCr => Refusal::BareCr { code },
                });
            }
        }
        true
    }

    fn process_bdat(&mut self) -> bool {
        let avail = self.input.len().saturating_sub(self.pos);
        match &mut self.phase {
            Phase::BdatDiscard { remaining, reply } => {
                let n = avail.min(*remaining);
                *remaining -= n;
                self.pos += n;
                if *remaining > 0 {
                    return false;
                }
                let reply = reply.clone();
                self.phase = Phase::Command;
                self.reply(reply);
                true
            }
            Phase::Bdat {
                remaining,
                size,
                last,
            } => {
                let n = avail.min(*remaining);
                *remaining -= n;
                let done = *remaining == 0;
                let (size, last) = (*size, *last);
                let chunk = self
                    .input
                    .get(self.pos..self.pos + n)
                    .unwrap_or_default()
                    .to_vec();
                self.pos += n;
                self.take_body(chunk);
                if !done {
                    return false;
                }
                self.phase = Phase::Command;
                if last || self.tx.as_ref().is_some_and(|tx| tx.too_big) {
                    self.end_of_message();
                } else {
                    self.reply(Reply::new(250, [2, 0, 0], format!("Ok: {size} bytes")));
                }
                true
            }
            _ => false,
        }
    }

    /// Counts body bytes against the size limit and passes them on while under it.
    fn take_body(&mut self, body: Vec<u8>) {
        let Some(tx) = self.tx.as_mut() else { return };
        tx.size += body.len() as u64;
        if tx.too_big {
            return;
        }
        if tx.size > self.config.max_message_size {
            tx.too_big = true;
            tx.open = false;
            self.events.push_back(Event::MessageAbort);
            return;
        }
        if !body.is_empty() {
            self.events.push_back(Event::MessageData(body));
        }
    }

    fn end_of_message(&mut self) {
        self.phase = Phase::Command;
        if self.tx.as_ref().is_some_and(|tx| tx.too_big) {
            self.tx = None;
            return self.refuse(Refusal::MessageTooBig);
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.open = false;
        }
        self.events.push_back(Event::MessageEnd);
        self.awaiting = Some(Awaiting::Commit);
    }

    fn auth(&mut self, mechanism: u64, initial: String) {
        if matches!(self.helo, Greeted::No) {
            return self.refuse(Refusal::NeedHelo);
        }
        if !self.auth_offered() {
            return self.refuse(Refusal::AuthNotEnabled);
        }
        if self.client.auth.is_some() {
            return self.refuse(Refusal::AlreadyAuthenticated);
        }
        if self.tx.is_some() {
            return self.refuse(Refusal::TransactionInProgress);
        }
        match mechanism {
            smtp_proto::AUTH_PLAIN if initial.is_empty() => {
                self.phase = Phase::AuthPlain;
                self.reply(Reply::bare(334, ""));
            }
            smtp_proto::AUTH_PLAIN => self.auth_plain_response(initial.as_bytes()),
            smtp_proto::AUTH_LOGIN if initial.is_empty() => {
                self.phase = Phase::AuthLoginUser;
                self.reply(Reply::bare(334, "VXNlcm5hbWU6"));
            }
            smtp_proto::AUTH_LOGIN => self.auth_login_user(initial.as_bytes()),
            _ => self.refuse(Refusal::UnknownMechanism),
        }
    }

    fn auth_plain_response(&mut self, line: &[u8]) {
        match auth::decode_response(line).and_then(|d| auth::parse_plain(&d)) {
            Ok((user, password)) => self.authenticate(Mechanism::Plain, user, password),
            Err(e) => self.sasl_error(e),
        }
    }

    fn auth_login_user(&mut self, line: &[u8]) {
        match auth::decode_response(line).and_then(auth::parse_login_item) {
            Ok(user) => {
                self.phase = Phase::AuthLoginPass(user);
                self.reply(Reply::bare(334, "UGFzc3dvcmQ6"));
            }
            Err(e) => self.sasl_error(e),
        }
    }

    fn auth_login_pass(&mut self, user: String, line: &[u8]) {
        match auth::decode_response(line).and_then(auth::parse_login_item) {
            Ok(password) => self.authenticate(Mechanism::Login, user, password),
            Err(e) => self.sasl_error(e),
        }
    }

    fn authenticate(&mut self, mechanism: Mechanism, user: String, password: String) {
        self.events.push_back(Event::Authenticate {
            mechanism,
            user: user.clone(),
            password,
        });
        self.awaiting = Some(Awaiting::Auth { user });
    }

    fn sasl_error(&mut self, e: SaslError) {
        self.refuse(match e {
            SaslError::Base64 => Refusal::AuthUndecodable,
            SaslError::Cancelled => Refusal::AuthCancelled,
            SaslError::Malformed => Refusal::AuthFailed,
        });
    }

    fn starttls(&mut self) {
        if self.tls.is_some() {
            return self.refuse(Refusal::TlsAlreadyActive);
        }
        if !self.config.starttls {
            return self.refuse(Refusal::TlsNotAvailable);
        }
        if self.tx.is_some() {
            return self.refuse(Refusal::TransactionInProgress);
        }
        self.reply(Reply::new(220, [2, 0, 0], "Ready to start TLS"));
        // Plaintext sent after STARTTLS must never be read as if it came over TLS
        // (CVE-2011-0411, command injection).
        self.pos = self.input.len();
        self.events.push_back(Event::StartTls);
        self.awaiting = Some(Awaiting::Tls);
    }

    // ---- helpers ----

    fn client_info(&self) -> ClientInfo {
        let mut c = self.client.clone();
        let base = match (self.config.mode, &self.helo) {
            (Mode::Lmtp, _) => "LMTP",
            (Mode::Smtp, Greeted::Helo) => "SMTP",
            (Mode::Smtp, _) => "ESMTP",
        };
        let tls = if self.tls.is_some() { "S" } else { "" };
        let auth = if self.client.auth.is_some() { "A" } else { "" };
        c.protocol = if base == "SMTP" {
            base.to_string()
        } else {
            format!("{base}{tls}{auth}")
        };
        c
    }

    fn reset_transaction(&mut self) {
        if let Some(tx) = self.tx.take()
            && tx.open
        {
            self.events.push_back(Event::MessageAbort);
        }
    }

    fn reply(&mut self, reply: Reply) {
        if self.is_closed() {
            return;
        }
        reply.write_to(&mut self.output);
        if reply.is_error() {
            self.count_error();
        }
    }

    /// Counts a client error; at `smtpd_hard_error_limit` the session ends with 421.
    fn count_error(&mut self) {
        self.errors += 1;
        if self.errors >= self.config.hard_error_limit && !self.is_closed() {
            Refusal::TooManyErrors
                .reply(&self.config.hostname)
                .write_to(&mut self.output);
            self.close();
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        if self.is_closed() {
            return;
        }
        let reply = refusal.reply(&self.config.hostname);
        reply.write_to(&mut self.output);
        if refusal.disconnects() {
            self.close();
        } else {
            self.count_error();
        }
    }

    fn close(&mut self) {
        self.reset_transaction();
        self.phase = Phase::Closed;
        self.awaiting = None;
    }
}

fn parse_refusal(e: ParseError) -> Refusal {
    match e {
        ParseError::UnknownCommand => Refusal::UnknownCommand,
        ParseError::SyntaxError { syntax } => Refusal::Syntax(syntax),
        ParseError::InvalidSenderAddress => Refusal::BadSender,
        ParseError::InvalidRecipientAddress => Refusal::BadRecipient,
        ParseError::InvalidParameter { param } => Refusal::BadParameter(param),
        ParseError::UnsupportedParameter { param } => Refusal::UnsupportedParameter(param),
        _ => Refusal::BadSyntax,
    }
}
