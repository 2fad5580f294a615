//! One SMTP or LMTP connection: greeting, EHLO/LHLO, STARTTLS, and mail transactions with
//! per-recipient results. Wording of failures follows Postfix's smtp/lmtp clients so logs and
//! bounces read as admins expect.

use std::fmt;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;

use super::dotstuff::DotStuffer;
use super::reply::{
    Capabilities, Reply, ReplyError, complete_reply_len, parse_capabilities, parse_reply,
};
use super::resolve::Target;
use super::stream::Stream;
use super::tls::TlsPolicy;
use crate::mail::{BodyType, Envelope, Notify, Protocol, Ret};
use crate::queue::RcptResult;
use crate::route::greeting_is_myself;

/// RFC 5321 §4.5.3.2 timeouts (connect is Postfix's smtp_connect_timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub greeting: Duration,
    pub helo: Duration,
    pub starttls: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data_block: Duration,
    pub data_done: Duration,
    pub rset: Duration,
    pub quit: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let m = |n: u64| Duration::from_secs(n * 60);
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: m(5),
            helo: m(5),
            starttls: m(5),
            mail: m(5),
            rcpt: m(5),
            data_init: m(2),
            data_block: m(3),
            data_done: m(10),
            rset: Duration::from_secs(20),
            quit: Duration::from_secs(10),
        }
    }
}

/// Where in the conversation something went wrong (Postfix's "while ..." phrases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Helo,
    StartTls,
    Mail,
    Rcpt,
    Data,
    Body,
    EndOfData,
    Rset,
}

impl Stage {
    fn phrase(self) -> &'static str {
        match self {
            Stage::Greeting => "while receiving the initial server greeting",
            Stage::Helo => "while performing the EHLO handshake",
            Stage::StartTls => "while performing the TLS handshake",
            Stage::Mail => "while sending MAIL FROM",
            Stage::Rcpt => "while sending RCPT TO",
            Stage::Data => "while sending DATA command",
            Stage::Body => "while sending message body",
            Stage::EndOfData => "while sending end of data -- message may be sent more than once",
            Stage::Rset => "while sending RSET",
        }
    }

    fn command(self) -> &'static str {
        match self {
            Stage::Greeting => "initial server greeting",
            Stage::Helo => "EHLO command",
            Stage::StartTls => "STARTTLS command",
            Stage::Mail => "MAIL FROM command",
            Stage::Rcpt => "RCPT TO command",
            Stage::Data => "DATA command",
            Stage::Body | Stage::EndOfData => "end of DATA command",
            Stage::Rset => "RSET command",
        }
    }
}

/// A connection-level failure: everything not yet final on it is deferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    Timeout {
        relay: String,
        stage: Stage,
    },
    Lost {
        relay: String,
        stage: Stage,
    },
    BadReply {
        relay: String,
        stage: Stage,
        error: ReplyError,
    },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Timeout { relay, stage } => {
                write!(f, "conversation with {relay} timed out {}", stage.phrase())
            }
            SessionError::Lost { relay, stage } => {
                write!(f, "lost connection with {relay} {}", stage.phrase())
            }
            SessionError::BadReply {
                relay,
                stage,
                error,
            } => write!(f, "{error} from {relay} {}", stage.phrase()),
        }
    }
}

/// Why a connection could not be made ready for mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    pub status: String,
    pub reason: String,
    /// The TLS handshake failed after STARTTLS was accepted: under `may` the same host is
    /// tried again in clear, as Postfix does.
    pub tls_failed: bool,
    /// The server named itself with this box's own hostname: the mail would loop back to
    /// this box. The caller bounces it (5.4.6) and tries no other address.
    pub loops_back: bool,
}

impl OpenError {
    fn loops_back(relay: &str, helo: &str, said: &str) -> OpenError {
        OpenError {
            tls_failed: false,
            loops_back: true,
            status: "5.4.6".into(),
            reason: format!("host {relay} {said} with my own hostname {helo}"),
        }
    }
}

/// Whether a greeting or EHLO reply names this box: its first word is the server's name
/// (RFC 5321 §4.2). Only for SMTP, as in Postfix: an LMTP server on this same host (Dovecot,
/// a mailbox server) rightly shares the hostname.
fn names_myself(protocol: Protocol, reply: &Reply, helo: &str) -> bool {
    protocol == Protocol::Smtp
        && reply
            .text
            .split_whitespace()
            .next()
            .is_some_and(|name| greeting_is_myself(name, helo))
}

/// A ready connection (greeted, EHLO/LHLO done, TLS if it was to be had).
pub struct Connection {
    stream: Stream,
    buf: Vec<u8>,
    pub target: Target,
    pub protocol: Protocol,
    pub caps: Capabilities,
    pub tls: bool,
    pub idle_since: Instant,
    /// The server's reply texts mention `host[ip]`; so do our logs.
    relay_name: String,
}

/// What one mail transaction carries.
#[derive(Debug, Clone, Copy)]
pub struct Transaction<'a> {
    pub sender: &'a str,
    /// (envelope index, address).
    pub recipients: &'a [(usize, &'a str)],
    pub body: &'a [u8],
    pub body_type: BodyType,
    pub smtputf8: bool,
    /// RFC 3461 parameters (RET, ENVID, NOTIFY, ORCPT), passed on when the server offers DSN.
    pub dsn: Option<&'a Envelope>,
}

/// TLS for one connection attempt.
#[derive(Clone)]
pub struct TlsSetup {
    pub policy: TlsPolicy,
    pub connector: Option<TlsConnector>,
}

impl Connection {
    /// Connect to `target`, read the greeting, say EHLO/LHLO as `helo`, upgrade with STARTTLS
    /// when offered and allowed.
    pub async fn open(
        target: &Target,
        protocol: Protocol,
        helo: &str,
        tls: &TlsSetup,
        t: &Timeouts,
    ) -> Result<Connection, OpenError> {
        let relay = target.relay();
        let addr = std::net::SocketAddr::new(target.ip, target.port);
        let tcp = match timeout(t.connect, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(OpenError {
                    tls_failed: false,
                    loops_back: false,
                    status: "4.4.1".into(),
                    reason: format!("connect to {relay}: {}", io_text(&e)),
                });
            }
            Err(_) => {
                return Err(OpenError {
                    tls_failed: false,
                    loops_back: false,
                    status: "4.4.1".into(),
                    reason: format!("connect to {relay}: Connection timed out"),
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut c = Connection {
            stream: Stream::Plain(tcp),
            buf: Vec::with_capacity(1024),
            target: target.clone(),
            protocol,
            caps: Capabilities::default(),
            tls: false,
            idle_since: Instant::now(),
            relay_name: format!("{}[{}]", target.name, target.ip),
        };
        let defer = |e: SessionError| OpenError {
            tls_failed: false,
            loops_back: false,
            status: "4.4.2".into(),
            reason: e.to_string(),
        };
        let greeting = c
            .read_reply(Stage::Greeting, t.greeting)
            .await
            .map_err(defer)?;
        if greeting.code != 220 {
            c.quit(t).await;
            return Err(OpenError {
                tls_failed: false,
                loops_back: false,
                status: transient(&greeting.status()),
                reason: format!("host {} refused to talk to me: {greeting}", c.relay_name),
            });
        }
        if names_myself(protocol, &greeting, helo) {
            c.quit(t).await;
            return Err(OpenError::loops_back(&c.relay_name, helo, "greeted me"));
        }
        c.hello(helo, t).await?;
        if c.caps.starttls
            && tls.policy != TlsPolicy::None
            && let Some(connector) = &tls.connector
        {
            c = c.starttls(connector, helo, t).await?;
        }
        if tls.policy.required() && !c.tls {
            c.quit(t).await;
            return Err(OpenError {
                tls_failed: false,
                loops_back: false,
                status: "4.7.4".into(),
                reason: format!(
                    "TLS is required, but was not offered by host {}",
                    c.relay_name
                ),
            });
        }
        Ok(c)
    }

    async fn hello(&mut self, helo: &str, t: &Timeouts) -> Result<(), OpenError> {
        let defer = |e: SessionError| OpenError {
            tls_failed: false,
            loops_back: false,
            status: "4.4.2".into(),
            reason: e.to_string(),
        };
        let verb = match self.protocol {
            Protocol::Smtp => "EHLO",
            Protocol::Lmtp => "LHLO",
        };
        self.send(format!("{verb} {helo}\r\n").as_bytes(), Stage::Helo, t.helo)
            .await
            .map_err(defer)?;
        let raw = self.read_raw(Stage::Helo, t.helo).await.map_err(defer)?;
        let reply = parse_reply(&raw).map_err(|error| {
            defer(SessionError::BadReply {
                relay: self.relay_name.clone(),
                stage: Stage::Helo,
                error,
            })
        })?;
        if reply.code == 250 {
            if names_myself(self.protocol, &reply, helo) {
                self.quit(t).await;
                let said = format!("replied to {verb}");
                return Err(OpenError::loops_back(&self.relay_name, helo, &said));
            }
            self.caps = parse_capabilities(&raw);
            return Ok(());
        }
        // RFC 5321 §3.2: a server that does not know EHLO gets HELO and no extensions.
        if self.protocol == Protocol::Smtp && reply.code >= 500 {
            self.send(format!("HELO {helo}\r\n").as_bytes(), Stage::Helo, t.helo)
                .await
                .map_err(defer)?;
            let r = self.read_reply(Stage::Helo, t.helo).await.map_err(defer)?;
            if r.code == 250 {
                if names_myself(self.protocol, &r, helo) {
                    self.quit(t).await;
                    return Err(OpenError::loops_back(
                        &self.relay_name,
                        helo,
                        "replied to HELO",
                    ));
                }
                self.caps = Capabilities::default();
                return Ok(());
            }
        }
        Err(OpenError {
            tls_failed: false,
            loops_back: false,
            status: transient(&reply.status()),
            reason: format!(
                "host {} refused to talk to me: {reply} (in reply to {verb} command)",
                self.relay_name
            ),
        })
    }

    async fn starttls(
        mut self,
        connector: &TlsConnector,
        helo: &str,
        t: &Timeouts,
    ) -> Result<Connection, OpenError> {
        let relay = self.relay_name.clone();
        let fail = |reason: String| OpenError {
            tls_failed: true,
            loops_back: false,
            status: "4.7.5".into(),
            reason,
        };
        self.send(b"STARTTLS\r\n", Stage::StartTls, t.starttls)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let r = self
            .read_reply(Stage::StartTls, t.starttls)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if r.code != 220 {
            // Offered but refused: carry on in clear; required TLS is checked by the caller.
            return Ok(self);
        }
        let Stream::Plain(tcp) = self.stream else {
            return Ok(self);
        };
        let name = ServerName::try_from(self.target.name.clone())
            .unwrap_or_else(|_| ServerName::IpAddress(self.target.ip.into()));
        let tls = match timeout(t.starttls, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(fail(format!(
                    "Cannot start TLS: handshake failure with {relay}: {e}"
                )));
            }
            Err(_) => {
                return Err(fail(format!(
                    "conversation with {relay} timed out while performing the TLS handshake"
                )));
            }
        };
        self.stream = Stream::Tls(Box::new(tls));
        self.tls = true;
        // RFC 3207 §4.2: forget what was said in clear, including any pipelined leftovers.
        self.buf.clear();
        self.hello(helo, t).await?;
        Ok(self)
    }

    /// `host[ip]:port` for logs and outcomes.
    pub fn relay(&self) -> String {
        self.target.relay()
    }

    /// Is the connection still good for another transaction? (Sent before reuse.)
    pub async fn reset(&mut self, t: &Timeouts) -> bool {
        if self.send(b"RSET\r\n", Stage::Rset, t.rset).await.is_err() {
            return false;
        }
        matches!(self.read_reply(Stage::Rset, t.rset).await, Ok(r) if r.code == 250)
    }

    /// Say goodbye politely, without caring for the answer.
    pub async fn quit(&mut self, t: &Timeouts) {
        if self.send(b"QUIT\r\n", Stage::Rset, t.quit).await.is_ok() {
            let _ = self.read_reply(Stage::Rset, t.quit).await;
        }
        let _ = timeout(t.quit, self.stream.shutdown()).await;
    }

    /// One mail transaction. `Ok` holds a result for every recipient. `Err` holds the session
    /// error and the recipients that already have a final answer; the rest are the caller's to
    /// defer, and the connection is not to be reused.
    pub async fn send_mail(
        &mut self,
        tx: &Transaction<'_>,
        t: &Timeouts,
    ) -> Result<Vec<(usize, RcptResult)>, (SessionError, Vec<(usize, RcptResult)>)> {
        let mut results: Vec<(usize, RcptResult)> = Vec::with_capacity(tx.recipients.len());
        let relay = self.relay();
        let remote = self.target.name.clone();

        if tx.smtputf8 && !self.caps.smtputf8 {
            let why = format!(
                "SMTPUTF8 is required, but was not offered by host {}",
                self.relay_name
            );
            return Ok(all(tx, |_| {
                bounced("5.6.7", &format!("X-Postern; {why}"), &remote)
            }));
        }
        if let Some(limit) = self.caps.size.filter(|&l| l > 0)
            && tx.body.len() > limit
        {
            let why = format!(
                "message size {} exceeds size limit {limit} of server {}",
                tx.body.len(),
                self.relay_name
            );
            return Ok(all(tx, |_| {
                bounced("5.3.4", &format!("X-Postern; {why}"), &remote)
            }));
        }

        let mut mail = format!("MAIL FROM:<{}>", tx.sender);
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", tx.body.len()));
        }
        if tx.body_type != BodyType::SevenBit && self.caps.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if tx.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        let dsn = tx.dsn.filter(|_| self.caps.dsn);
        if let Some(env) = dsn {
            match env.ret {
                Some(Ret::Full) => mail.push_str(" RET=FULL"),
                Some(Ret::Headers) => mail.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(id) = &env.envid {
                mail.push_str(&format!(" ENVID={}", xtext(id)));
            }
        }
        mail.push_str("\r\n");
        let rcpt_lines: Vec<String> = tx
            .recipients
            .iter()
            .map(|(i, a)| {
                let params = dsn
                    .and_then(|env| env.recipients.get(*i))
                    .map(|r| rcpt_dsn_params(r.notify, r.orcpt.as_ref()))
                    .unwrap_or_default();
                format!("RCPT TO:<{a}>{params}\r\n")
            })
            .collect();

        let fail = |e: SessionError, r: Vec<(usize, RcptResult)>| Err((e, r));
        let pipelining = self.caps.pipelining;
        if pipelining {
            // RFC 2920: MAIL, all RCPTs and DATA in one write; replies come back in order.
            let mut batch = mail.clone().into_bytes();
            for l in &rcpt_lines {
                batch.extend_from_slice(l.as_bytes());
            }
            batch.extend_from_slice(b"DATA\r\n");
            if let Err(e) = self.send(&batch, Stage::Mail, t.mail).await {
                return fail(e, results);
            }
        } else if let Err(e) = self.send(mail.as_bytes(), Stage::Mail, t.mail).await {
            return fail(e, results);
        }

        let mail_reply = match self.read_reply(Stage::Mail, t.mail).await {
            Ok(r) => r,
            Err(e) => return fail(e, results),
        };
        let mail_ok = mail_reply.is_positive();

        let mut accepted: Vec<(usize, &str)> = Vec::new();
        for ((idx, addr), line) in tx.recipients.iter().zip(&rcpt_lines) {
            if !pipelining {
                if !mail_ok {
                    break;
                }
                if let Err(e) = self.send(line.as_bytes(), Stage::Rcpt, t.rcpt).await {
                    return fail(e, results);
                }
            }
            let r = match self.read_reply(Stage::Rcpt, t.rcpt).await {
                Ok(r) => r,
                Err(e) => return fail(e, results),
            };
            if !mail_ok {
                continue;
            }
            if r.is_positive() {
                accepted.push((*idx, addr));
            } else {
                results.push((*idx, self.negative(&r, Stage::Rcpt)));
            }
        }
        if !mail_ok {
            if pipelining {
                // The DATA reply is still to come; it is a refusal, read and ignore it.
                let _ = self.read_reply(Stage::Data, t.data_init).await;
            }
            let _ = self.reset(t).await;
            return Ok(all(tx, |_| self.negative(&mail_reply, Stage::Mail)));
        }

        if !pipelining {
            if accepted.is_empty() {
                let _ = self.reset(t).await;
                return Ok(results);
            }
            if let Err(e) = self.send(b"DATA\r\n", Stage::Data, t.data_init).await {
                return fail(e, results);
            }
        }
        let data_reply = match self.read_reply(Stage::Data, t.data_init).await {
            Ok(r) => r,
            Err(e) => return fail(e, results),
        };
        if data_reply.code != 354 {
            for (idx, _) in &accepted {
                results.push((*idx, self.negative(&data_reply, Stage::Data)));
            }
            if !accepted.is_empty() || data_reply.is_positive() {
                let _ = self.reset(t).await;
            }
            return Ok(results);
        }
        if accepted.is_empty() {
            // Pipelined DATA was accepted with no recipient: send an empty message's end.
            if let Err(e) = self.send(b".\r\n", Stage::EndOfData, t.data_done).await {
                return fail(e, results);
            }
            let _ = self.read_reply(Stage::EndOfData, t.data_done).await;
            return Ok(results);
        }

        if let Err(e) = self.send_body(tx.body, t).await {
            return fail(e, results);
        }
        // SMTP: one reply for all; LMTP (RFC 2033 §4.2): one per accepted recipient, in order.
        let replies = match self.protocol {
            Protocol::Smtp => 1,
            Protocol::Lmtp => accepted.len(),
        };
        let mut end_replies = Vec::with_capacity(replies);
        for _ in 0..replies {
            match self.read_reply(Stage::EndOfData, t.data_done).await {
                Ok(r) => end_replies.push(r),
                Err(e) => {
                    // LMTP recipients answered before the loss are final.
                    for ((idx, _), r) in accepted.iter().zip(&end_replies) {
                        results.push((*idx, self.final_result(r, &relay)));
                    }
                    return fail(e, results);
                }
            }
        }
        for (k, (idx, _)) in accepted.iter().enumerate() {
            let r = end_replies.get(k).or_else(|| end_replies.first()).cloned();
            if let Some(r) = r {
                results.push((*idx, self.final_result(&r, &relay)));
            }
        }
        self.idle_since = Instant::now();
        Ok(results)
    }

    fn final_result(&self, r: &Reply, relay: &str) -> RcptResult {
        if r.is_positive() {
            RcptResult::Delivered {
                relay: relay.to_string(),
                reply: r.to_string(),
            }
        } else {
            self.negative(r, Stage::EndOfData)
        }
    }

    /// A 4xx or 5xx (or nonsense) to a command, as Postfix words it.
    fn negative(&self, r: &Reply, stage: Stage) -> RcptResult {
        let said = format!(
            "host {} said: {r} (in reply to {})",
            self.relay_name,
            stage.command()
        );
        if r.code >= 500 && r.code < 600 {
            RcptResult::Bounced {
                status: r.status(),
                diagnostic: format!("smtp; {r}"),
                remote_mta: Some(self.target.name.clone()),
            }
        } else {
            let status = if r.is_transient() {
                r.status()
            } else {
                "4.0.0".to_string()
            };
            RcptResult::Deferred {
                status,
                reason: said,
            }
        }
    }

    async fn send_body(&mut self, body: &[u8], t: &Timeouts) -> Result<(), SessionError> {
        const CHUNK: usize = 64 * 1024;
        let mut stuffer = DotStuffer::new();
        let mut out = Vec::with_capacity(CHUNK + CHUNK / 16);
        for chunk in body.chunks(CHUNK) {
            out.clear();
            stuffer.push(chunk, &mut out);
            self.write(&out, Stage::Body, t.data_block).await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        self.send(&out, Stage::EndOfData, t.data_block).await
    }

    async fn write(&mut self, bytes: &[u8], stage: Stage, d: Duration) -> Result<(), SessionError> {
        match timeout(d, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SessionError::Lost {
                relay: self.relay_name.clone(),
                stage,
            }),
            Err(_) => Err(SessionError::Timeout {
                relay: self.relay_name.clone(),
                stage,
            }),
        }
    }

    async fn send(&mut self, bytes: &[u8], stage: Stage, d: Duration) -> Result<(), SessionError> {
        self.write(bytes, stage, d).await?;
        match timeout(d, self.stream.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SessionError::Lost {
                relay: self.relay_name.clone(),
                stage,
            }),
            Err(_) => Err(SessionError::Timeout {
                relay: self.relay_name.clone(),
                stage,
            }),
        }
    }

    async fn read_reply(&mut self, stage: Stage, d: Duration) -> Result<Reply, SessionError> {
        let raw = self.read_raw(stage, d).await?;
        parse_reply(&raw).map_err(|error| SessionError::BadReply {
            relay: self.relay_name.clone(),
            stage,
            error,
        })
    }

    /// The bytes of the next complete reply, waiting at most `d` for all of it.
    async fn read_raw(&mut self, stage: Stage, d: Duration) -> Result<Vec<u8>, SessionError> {
        let deadline = Instant::now() + d;
        loop {
            match complete_reply_len(&self.buf) {
                Ok(Some(n)) => {
                    let rest = self.buf.split_off(n);
                    return Ok(std::mem::replace(&mut self.buf, rest));
                }
                Ok(None) => {}
                Err(error) => {
                    return Err(SessionError::BadReply {
                        relay: self.relay_name.clone(),
                        stage,
                        error,
                    });
                }
            }
            let mut tmp = [0u8; 4096];
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut tmp)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return Err(SessionError::Lost {
                        relay: self.relay_name.clone(),
                        stage,
                    });
                }
                Ok(Ok(n)) => n,
                Err(_) => {
                    return Err(SessionError::Timeout {
                        relay: self.relay_name.clone(),
                        stage,
                    });
                }
            };
            self.buf.extend_from_slice(tmp.get(..n).unwrap_or_default());
        }
    }
}

fn all(tx: &Transaction<'_>, f: impl Fn(usize) -> RcptResult) -> Vec<(usize, RcptResult)> {
    tx.recipients.iter().map(|(i, _)| (*i, f(*i))).collect()
}

fn bounced(status: &str, diagnostic: &str, remote: &str) -> RcptResult {
    RcptResult::Bounced {
        status: status.into(),
        diagnostic: diagnostic.into(),
        remote_mta: Some(remote.into()),
    }
}

/// NOTIFY and ORCPT for a RCPT TO. SUCCESS is not passed on: Postern itself reports a
/// successful hand-off ("relayed"), so the sender gets one success report, not two.
fn rcpt_dsn_params(notify: Notify, orcpt: Option<&(String, String)>) -> String {
    let mut p = String::new();
    if notify.explicit {
        let mut kinds = Vec::new();
        if notify.failure {
            kinds.push("FAILURE");
        }
        if notify.delay {
            kinds.push("DELAY");
        }
        if kinds.is_empty() {
            p.push_str(" NOTIFY=NEVER");
        } else {
            p.push_str(" NOTIFY=");
            p.push_str(&kinds.join(","));
        }
    }
    if let Some((kind, addr)) = orcpt {
        p.push_str(&format!(" ORCPT={};{}", xtext(kind), xtext(addr)));
    }
    p
}

/// RFC 3461 §4 xtext: printable ASCII except `+` and `=` as is, everything else `+HH`.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// A refusal to talk defers (the next MX, or a later try, may do better): class 4 of the status.
fn transient(status: &str) -> String {
    match status.split_once('.') {
        Some((_, rest)) => format!("4.{rest}"),
        None => "4.0.0".into(),
    }
}

fn io_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "Connection refused".into(),
        TimedOut => "Connection timed out".into(),
        HostUnreachable => "No route to host".into(),
        NetworkUnreachable => "Network is unreachable".into(),
        _ => e.to_string(),
    }
}
