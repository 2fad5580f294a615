//! One SMTP or LMTP connection over TCP or TLS: greeting, EHLO/LHLO, STARTTLS, RSET, QUIT,
//! and the socket work the mail transaction ([`super::transaction`]) needs. The protocol itself
//! (commands, replies, which reply answers which command) is [`crate::smtp::client`]'s; this
//! file moves its bytes and keeps the clock. Wording of failures follows Postfix's smtp/lmtp
//! clients so logs and bounces read as admins expect.

use std::fmt;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;

use super::open_error::{OpenError, TlsFailure};
use super::resolve::Target;
use super::stream::Stream;
use super::tls::TlsPolicy;
use crate::mail::{EnhancedStatus, Protocol, Reply};
use crate::queue::BodyError;
use crate::route::greeting_is_myself;
use crate::smtp::client::{
    Capabilities, Command, Pipeline, ReplyError, ReplyParser, ServerReply, Verb,
};

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

impl Timeouts {
    /// How long to wait for the reply to `verb`.
    fn reply(&self, verb: Verb) -> Duration {
        match verb {
            Verb::Greeting => self.greeting,
            Verb::Ehlo | Verb::Lhlo | Verb::Helo => self.helo,
            Verb::StartTls => self.starttls,
            Verb::Mail => self.mail,
            Verb::Rcpt(_) => self.rcpt,
            Verb::Data => self.data_init,
            Verb::EndOfData => self.data_done,
            Verb::Rset => self.rset,
            Verb::Quit => self.quit,
        }
    }
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
    /// Where the conversation is while waiting for the reply to `verb`.
    fn awaiting(verb: Verb) -> Stage {
        match verb {
            Verb::Greeting => Stage::Greeting,
            Verb::Ehlo | Verb::Lhlo | Verb::Helo => Stage::Helo,
            Verb::StartTls => Stage::StartTls,
            Verb::Mail => Stage::Mail,
            Verb::Rcpt(_) => Stage::Rcpt,
            Verb::Data => Stage::Data,
            Verb::EndOfData => Stage::EndOfData,
            Verb::Rset | Verb::Quit => Stage::Rset,
        }
    }

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

    pub(super) fn command(self) -> &'static str {
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
    /// The queued body could not be read to its end (damaged on flash, message gone): the
    /// transaction was abandoned before its final dot and the connection closed.
    BodyUnreadable(BodyError),
}

impl SessionError {
    /// The enhanced status of what it leaves pending: a local spool fault is 4.3.0, as when the
    /// message cannot be read before connecting; a failed conversation 4.4.2.
    pub fn status(&self) -> EnhancedStatus {
        match self {
            SessionError::BodyUnreadable(_) => EnhancedStatus::of(4, 3, 0),
            _ => EnhancedStatus::of(4, 4, 2),
        }
    }
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
            SessionError::BodyUnreadable(error) => {
                write!(f, "cannot read the queued message: {error}")
            }
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
    replies: ReplyParser,
    pipeline: Pipeline,
    pub target: Target,
    pub protocol: Protocol,
    pub caps: Capabilities,
    pub tls: bool,
    pub idle_since: Instant,
    /// The server's reply texts mention `host[ip]`; so do our logs.
    pub(super) relay_name: String,
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
        let mut c = Connection::connect(target, protocol, t).await?;
        let greeting = c.read_reply(t).await.map_err(OpenError::Session)?.reply;
        if greeting.code != 220 {
            c.quit(t).await;
            return Err(OpenError::Refused {
                relay: c.relay_name.clone(),
                reply: greeting,
                command: None,
            });
        }
        if names_myself(protocol, &greeting, helo) {
            c.quit(t).await;
            return Err(c.loops_back(helo, Verb::Greeting));
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
            return Err(OpenError::TlsNotOffered {
                relay: c.relay_name.clone(),
            });
        }
        Ok(c)
    }

    /// The TCP connection, awaiting the greeting.
    async fn connect(
        target: &Target,
        protocol: Protocol,
        t: &Timeouts,
    ) -> Result<Connection, OpenError> {
        let relay = target.relay();
        let addr = std::net::SocketAddr::new(target.ip, target.port);
        let refused = |why: String| OpenError::Connect {
            relay: relay.clone(),
            why,
        };
        let tcp = match timeout(t.connect, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(refused(io_text(&e))),
            Err(_) => return Err(refused("Connection timed out".into())),
        };
        let _ = tcp.set_nodelay(true);
        Ok(Connection {
            stream: Stream::Plain(tcp),
            replies: ReplyParser::new(),
            pipeline: Pipeline::new(),
            target: target.clone(),
            protocol,
            caps: Capabilities::default(),
            tls: false,
            idle_since: Instant::now(),
            relay_name: format!("{}[{}]", target.name, target.ip),
        })
    }

    async fn hello(&mut self, helo: &str, t: &Timeouts) -> Result<(), OpenError> {
        let verb = match self.protocol {
            Protocol::Smtp => Verb::Ehlo,
            Protocol::Lmtp => Verb::Lhlo,
        };
        self.command(&Command::Hello(verb, helo), Stage::Helo, t.helo)
            .await
            .map_err(OpenError::Session)?;
        let ServerReply { reply, lines } = self.read_reply(t).await.map_err(OpenError::Session)?;
        if reply.code == 250 {
            if names_myself(self.protocol, &reply, helo) {
                self.quit(t).await;
                return Err(self.loops_back(helo, verb));
            }
            self.caps = Capabilities::from_ehlo(&lines);
            return Ok(());
        }
        // RFC 5321 §3.2: a server that does not know EHLO gets HELO and no extensions.
        if self.protocol == Protocol::Smtp && reply.code >= 500 {
            self.command(&Command::Hello(Verb::Helo, helo), Stage::Helo, t.helo)
                .await
                .map_err(OpenError::Session)?;
            let r = self.read_reply(t).await.map_err(OpenError::Session)?.reply;
            if r.code == 250 {
                if names_myself(self.protocol, &r, helo) {
                    self.quit(t).await;
                    return Err(self.loops_back(helo, Verb::Helo));
                }
                self.caps = Capabilities::default();
                return Ok(());
            }
        }
        Err(OpenError::Refused {
            relay: self.relay_name.clone(),
            reply,
            command: Some(verb),
        })
    }

    async fn starttls(
        mut self,
        connector: &TlsConnector,
        helo: &str,
        t: &Timeouts,
    ) -> Result<Connection, OpenError> {
        let relay = self.relay_name.clone();
        let fail = |e| OpenError::Tls(TlsFailure::Session(e));
        self.command(&Command::StartTls, Stage::StartTls, t.starttls)
            .await
            .map_err(fail)?;
        let r = self.read_reply(t).await.map_err(fail)?.reply;
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
            Ok(Err(error)) => {
                return Err(OpenError::Tls(TlsFailure::Handshake { relay, error }));
            }
            Err(_) => return Err(OpenError::Tls(TlsFailure::HandshakeTimeout { relay })),
        };
        self.stream = Stream::Tls(Box::new(tls));
        self.tls = true;
        // RFC 3207 §4.2: forget what was said in clear, including any pipelined leftovers.
        self.replies.clear();
        self.pipeline.restart();
        self.hello(helo, t).await?;
        Ok(self)
    }

    fn loops_back(&self, helo: &str, said: Verb) -> OpenError {
        OpenError::LoopsBack {
            relay: self.relay_name.clone(),
            helo: helo.to_string(),
            said,
        }
    }

    /// `host[ip]:port` for logs and outcomes.
    pub fn relay(&self) -> String {
        self.target.relay()
    }

    /// Is the connection still good for another transaction? (Sent before reuse.)
    pub async fn reset(&mut self, t: &Timeouts) -> bool {
        if self
            .command(&Command::Rset, Stage::Rset, t.rset)
            .await
            .is_err()
        {
            return false;
        }
        matches!(self.read_reply(t).await, Ok(r) if r.reply.code == 250)
    }

    /// Say goodbye politely, without caring for the answer.
    pub async fn quit(&mut self, t: &Timeouts) {
        if self
            .command(&Command::Quit, Stage::Rset, t.quit)
            .await
            .is_ok()
        {
            let _ = self.read_reply(t).await;
        }
        let _ = timeout(t.quit, self.stream.shutdown()).await;
    }

    /// Gives up on a transaction in the middle of DATA: closes the connection without the final
    /// dot, so the server discards what it got (RFC 5321 §4.1.1.4). RSET would only be more
    /// message text there.
    pub(super) async fn abandon_data(&mut self, t: &Timeouts) {
        let _ = timeout(t.quit, self.stream.shutdown()).await;
    }

    /// Write and flush one command.
    pub(super) async fn command(
        &mut self,
        command: &Command<'_>,
        stage: Stage,
        d: Duration,
    ) -> Result<(), SessionError> {
        self.pipeline_commands(std::slice::from_ref(command), stage, d)
            .await
    }

    /// Write and flush several commands at once (RFC 2920); their replies come back in order.
    pub(super) async fn pipeline_commands(
        &mut self,
        commands: &[Command<'_>],
        stage: Stage,
        d: Duration,
    ) -> Result<(), SessionError> {
        let mut out = Vec::new();
        for c in commands {
            self.pipeline.write(c, &mut out);
        }
        self.send(&out, stage, d).await
    }

    /// The final `.` went out (or is about to): `replies` answers are due for it.
    pub(super) fn expect_end_of_data(&mut self, replies: usize) {
        self.pipeline.end_of_data(replies);
    }

    pub(super) async fn write(
        &mut self,
        bytes: &[u8],
        stage: Stage,
        d: Duration,
    ) -> Result<(), SessionError> {
        match timeout(d, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.lost(stage)),
            Err(_) => Err(self.timed_out(stage)),
        }
    }

    pub(super) async fn send(
        &mut self,
        bytes: &[u8],
        stage: Stage,
        d: Duration,
    ) -> Result<(), SessionError> {
        self.write(bytes, stage, d).await?;
        match timeout(d, self.stream.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.lost(stage)),
            Err(_) => Err(self.timed_out(stage)),
        }
    }

    /// The reply to the oldest command awaiting one, waiting as long as that command allows.
    /// A failed read counts as that command's answer: the connection is not used again.
    pub(super) async fn read_reply(&mut self, t: &Timeouts) -> Result<ServerReply, SessionError> {
        // Nothing outstanding happens only if a caller reads twice; treat it as a QUIT's wait.
        let verb = self.pipeline.answered().unwrap_or(Verb::Quit);
        let stage = Stage::awaiting(verb);
        let deadline = Instant::now() + t.reply(verb);
        loop {
            match self.replies.next_reply() {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(error) => {
                    return Err(SessionError::BadReply {
                        relay: self.relay_name.clone(),
                        stage,
                        error,
                    });
                }
            }
            let inbox = self.replies.inbox(4096);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(inbox)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(self.lost(stage)),
                Ok(Ok(_)) => {}
                Err(_) => return Err(self.timed_out(stage)),
            }
        }
    }

    fn lost(&self, stage: Stage) -> SessionError {
        SessionError::Lost {
            relay: self.relay_name.clone(),
            stage,
        }
    }

    fn timed_out(&self, stage: Stage) -> SessionError {
        SessionError::Timeout {
            relay: self.relay_name.clone(),
            stage,
        }
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
