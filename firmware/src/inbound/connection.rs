//! One client connection: drives the sans-IO [`Session`] over a socket, asks the other stages its
//! questions, and upgrades to TLS on STARTTLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::stages::{Authenticator, IncomingMessage, MessageStore, RecipientCheck};
use super::tls::tls_info;
use super::{InboundContext, ListenerKind};
use crate::log::Program;
use crate::log::smtpd::{self, Ending, RejectedRcpt};
use crate::mail::Reply;
use crate::smtp::received::received_header;
use crate::smtp::server::stats::CommandStats;
use crate::smtp::{Event, Mode, Session};

/// Reads start into a small buffer: a command line fits, and thousands of idle sessions (a
/// backup MX's peers, clients that connect and wait) cost little. A read that fills it grows it
/// to `READ_BUF` (message content comes in large reads).
const READ_BUF_IDLE: usize = 1024;
const READ_BUF: usize = 16 * 1024;

/// How a run of the session over one stream ended.
enum Outcome {
    Closed,
    StartTls,
}

/// The message being received, across events, and what smtpd's lines need.
struct Receiving<M> {
    message: Option<M>,
    /// A write to the spool failed: the body is read to its end, then this is the reply.
    failed: Option<Reply>,
    client: smtpd::Client,
    /// The listener's service name (`smtp`, `submission`...), for warnings.
    service: ListenerKind,
    /// How the session ended when the client did not say QUIT.
    ending: Option<Ending>,
    /// The client's name while its lookup runs; [`Receiving::client`] waits for it.
    name_lookup: Option<JoinHandle<String>>,
}

impl<M> Receiving<M> {
    /// The client as smtpd's lines name it, once its name lookup has come back (the lookup has
    /// the DNS deadline, so this waits no longer than that).
    async fn client(&mut self) -> &smtpd::Client {
        if let Some(lookup) = self.name_lookup.take() {
            self.client.name = lookup.await.unwrap_or_default();
        }
        &self.client
    }
}

/// Serves one accepted connection to its end.
pub(super) async fn handle<R, S, A>(
    kind: ListenerKind,
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<InboundContext<R, S, A>>,
) -> std::io::Result<()>
where
    R: RecipientCheck,
    S: MessageStore,
    A: Authenticator,
{
    let _ = stream.set_nodelay(true);
    crate::metrics::global().smtpd_connect();
    let (mode, starttls, auth, auth_required) = match kind {
        ListenerKind::Smtp => (Mode::Smtp, ctx.tls.is_some(), ctx.auth.is_some(), false),
        // Both submission ports want AUTH before MAIL.
        ListenerKind::Submission => (Mode::Smtp, ctx.tls.is_some(), ctx.auth.is_some(), true),
        ListenerKind::Smtps => (Mode::Smtp, false, ctx.auth.is_some(), true),
        ListenerKind::Lmtp => (Mode::Lmtp, false, false, false),
    };
    let mut config =
        ctx.limits
            .get()
            .session_config(&ctx.hostname, mode, starttls, auth, auth_required);
    if kind != ListenerKind::Smtp {
        // postscreen guards the MX port only; submission clients are known users.
        config.greet_wait = std::time::Duration::ZERO;
    }
    let config = Arc::new(config);
    // The name is looked up while the greeting goes out: a resolver that does not answer must
    // not hold every banner for the DNS deadline (QEMU's user network without upstream DNS did
    // exactly that). The connect line waits for the name, so smtpd's lines keep their order.
    let (policy, log, ip) = (ctx.policy.clone(), ctx.log.clone(), peer.ip());
    let name_lookup = tokio::spawn(async move {
        let name = policy.client_name(ip).await.unwrap_or_default();
        let client = smtpd::Client { name, ip: Some(ip) };
        log.line(Program::Smtpd, &smtpd::connect_line(&client));
        client.name
    });
    let mut rx = Receiving {
        message: None,
        failed: None,
        client: smtpd::Client {
            name: String::new(),
            ip: Some(ip),
        },
        service: kind,
        ending: None,
        name_lookup: Some(name_lookup),
    };
    let started = Instant::now();
    let result = serve_session(kind, stream, peer, &ctx, config, &mut rx).await;
    rx.client().await;
    let (stats, pregreeted) = match &result {
        Ok(Some((stats, pregreeted))) => (stats.clone(), *pregreeted),
        _ => (Default::default(), false),
    };
    if pregreeted {
        let line = smtpd::pregreet_line(peer.ip(), peer.port(), started.elapsed());
        ctx.log.line(Program::Postscreen, &line);
    }
    if let Some(ending) = rx.ending {
        let line = smtpd::ending_line(ending, stats.last(), &rx.client);
        ctx.log.line(Program::Smtpd, &line);
    }
    let line = smtpd::disconnect_line(&rx.client, &stats.summary());
    ctx.log.line(Program::Smtpd, &line);
    result.map(|_| ())
}

/// Runs the session over plain TCP or TLS to its end; the commands it saw, and whether the
/// client talked before the greeting, for the log.
async fn serve_session<R, S, A>(
    kind: ListenerKind,
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Arc<InboundContext<R, S, A>>,
    config: Arc<crate::smtp::Config>,
    rx: &mut Receiving<S::Incoming>,
) -> std::io::Result<Option<(CommandStats, bool)>>
where
    R: RecipientCheck,
    S: MessageStore,
    A: Authenticator,
{
    let done = |s: &Session| Some((s.stats().clone(), s.pregreeted()));
    if kind == ListenerKind::Smtps {
        let Some(tls) = ctx.tls.clone() else {
            return Ok(None);
        };
        let handshake = TlsAcceptor::from(tls).accept(stream);
        let mut tls_stream =
            match tokio::time::timeout(ctx.limits.get().tls_handshake_timeout, handshake).await {
                Ok(Ok(s)) => s,
                _ => {
                    rx.ending = Some(Ending::LostConnection);
                    return Ok(None);
                }
            };
        let info = tls_info(tls_stream.get_ref().1);
        crate::metrics::global().smtpd_tls(&info.version);
        let mut session = Session::new(config, Some(peer.ip()), Some(info), Instant::now());
        drive(&mut tls_stream, &mut session, ctx, rx).await?;
        return Ok(done(&session));
    }
    let mut stream = stream;
    let mut session = Session::new(config, Some(peer.ip()), None, Instant::now());
    match drive(&mut stream, &mut session, ctx, rx).await? {
        Outcome::Closed => Ok(done(&session)),
        Outcome::StartTls => {
            let Some(tls) = ctx.tls.clone() else {
                return Ok(done(&session));
            };
            let handshake = TlsAcceptor::from(tls).accept(stream);
            let mut tls_stream =
                match tokio::time::timeout(ctx.limits.get().tls_handshake_timeout, handshake).await
                {
                    Ok(Ok(s)) => s,
                    _ => {
                        rx.ending = Some(Ending::LostConnection);
                        return Ok(done(&session));
                    }
                };
            let info = tls_info(tls_stream.get_ref().1);
            crate::metrics::global().smtpd_tls(&info.version);
            session.tls_established(info, Instant::now());
            // A second STARTTLS is refused by the session, so this run ends the connection.
            drive(&mut tls_stream, &mut session, ctx, rx).await?;
            Ok(done(&session))
        }
    }
}

/// Runs the session over `io` until it closes, the client leaves, or TLS must start.
async fn drive<IO, R, S, A>(
    io: &mut IO,
    session: &mut Session,
    ctx: &InboundContext<R, S, A>,
    rx: &mut Receiving<S::Incoming>,
) -> std::io::Result<Outcome>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    R: RecipientCheck,
    S: MessageStore,
    A: Authenticator,
{
    // Read into its spare room: nothing is zeroed, and the buffer is not part of the future.
    let mut buf = Vec::with_capacity(READ_BUF_IDLE);
    // Taken once: the settings may change while the session runs.
    let limits = ctx.limits.get();
    // When the record in hand (a command line, or the content after 354) must be complete: set
    // when a reply goes out, later by `smtpd_min_data_rate` with every read.
    let mut record_deadline = session
        .poll_timeout()
        .unwrap_or_else(|| Instant::now() + limits.command_timeout);
    loop {
        while let Some(event) = session.poll_event() {
            if let Event::StartTls = event {
                flush(io, session).await?;
                return Ok(Outcome::StartTls);
            }
            answer(event, session, ctx, rx).await;
        }
        if session.has_output() {
            record_deadline = session
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + limits.command_timeout);
        }
        flush(io, session).await?;
        if session.is_closed() {
            let _ = io.shutdown().await;
            return Ok(Outcome::Closed);
        }
        if !session.wants_input() {
            // Every question was answered above; a session still waiting would never wake.
            return Ok(Outcome::Closed);
        }
        let mut deadline = session
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + limits.command_timeout);
        let per_record = limits.per_record_deadline && record_deadline < deadline;
        if per_record {
            deadline = record_deadline;
        }
        buf.clear();
        tokio::select! {
            read = io.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    rx.ending = Some(Ending::LostConnection);
                    return Ok(Outcome::Closed);
                }
                Ok(n) => {
                    record_deadline += limits.record_extension(n);
                    session.feed(&buf, Instant::now());
                    if n == buf.capacity() && buf.capacity() < READ_BUF {
                        buf.clear();
                        buf.reserve_exact(READ_BUF);
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                if per_record {
                    session.expire();
                } else {
                    session.handle_timeout(Instant::now());
                }
                if session.is_closed() && !session.pregreeted() {
                    rx.ending = Some(Ending::Timeout);
                }
            }
        }
    }
}

async fn flush<IO: AsyncWrite + Unpin>(io: &mut IO, session: &mut Session) -> std::io::Result<()> {
    if session.has_output() {
        io.write_all(session.output()).await?;
        session.output_sent();
        io.flush().await?;
    }
    Ok(())
}

/// Acts on one event and gives the session its answer.
async fn answer<R, S, A>(
    event: Event,
    session: &mut Session,
    ctx: &InboundContext<R, S, A>,
    rx: &mut Receiving<S::Incoming>,
) where
    R: RecipientCheck,
    S: MessageStore,
    A: Authenticator,
{
    match event {
        Event::CheckRecipient(query) => {
            // Boxed: the restrictions' DNS lookups would size every session's task.
            let verdict = Box::pin(ctx.recipients.check(&query)).await;
            if let Err(reply) = &verdict {
                let line = smtpd::reject_line(&RejectedRcpt {
                    client: rx.client().await,
                    reply,
                    sender: &query.sender,
                    recipient: &query.address,
                    proto: &query.client.protocol,
                    helo: &query.client.helo,
                });
                ctx.log.line(Program::Smtpd, &line);
                crate::metrics::global().smtpd_rejected(reply.code);
            }
            session.answer_recipient_targets(verdict, Instant::now());
        }
        Event::Authenticate {
            mechanism,
            user,
            password,
        } => {
            if let Some(ip) = session.client().addr
                && let Err(refusal) = ctx.policy.auth(ip)
            {
                let service = rx.service;
                let line = format!(
                    "warning: AUTH command rate limit exceeded from {} for service {service}",
                    rx.client().await,
                );
                ctx.log.line(Program::Smtpd, &line);
                session.refuse_auth(refusal.reply(&ctx.hostname), Instant::now());
                return;
            }
            let ok = match &ctx.auth {
                // Boxed, as the commit below: rare or once a message, and large (a password
                // scheme's state), they would otherwise size every session's task, idle ones
                // included.
                Some(auth) => Box::pin(auth.verify(&user, password.expose())).await,
                None => false,
            };
            if !ok {
                // Postfix's words, which fail2ban and admins grep for.
                let line = format!(
                    "warning: {}: SASL {} authentication failed: authentication failure",
                    rx.client().await,
                    mechanism.name()
                );
                ctx.log.line(Program::Smtpd, &line);
                // Slow down password guessing: each failure on this connection waits longer.
                let delay = ctx.limits.get().auth_delay(session.auth_failures() + 1);
                tokio::time::sleep(delay).await;
            }
            session.answer_auth(ok, Instant::now());
        }
        Event::CheckSender => {
            let verdict = match session.client().addr.map(|ip| ctx.policy.message(ip)) {
                Some(Err(refusal)) => {
                    if let crate::policy::Refusal::TooMuchMail(_, rate) = refusal {
                        // Postfix's words, for the tools that count them.
                        let service = rx.service;
                        let line = format!(
                            "warning: Message delivery request rate limit exceeded: {rate} from {} for service {service}",
                            rx.client().await,
                        );
                        ctx.log.line(Program::Smtpd, &line);
                    }
                    Err(refusal.reply(&ctx.hostname))
                }
                _ => Ok(()),
            };
            session.answer_sender(verdict, Instant::now());
        }
        Event::MessageBegin(mut envelope) => {
            let now = crate::mail::unix_now();
            envelope.arrival = now;
            let single = match envelope.recipients.as_slice() {
                [only] => Some(only.address.clone()),
                _ => None,
            };
            let header = received_header(&ctx.hostname, &envelope.client, single.as_deref(), now);
            rx.failed = None;
            match ctx.store.begin(*envelope).await {
                Ok(mut message) => {
                    if let Err(e) = message.write(header.as_bytes()).await {
                        rx.failed = Some(e);
                    }
                    rx.message = Some(message);
                    session.answer_begin(Ok(()), Instant::now());
                }
                Err(reply) => session.answer_begin(Err(reply), Instant::now()),
            }
        }
        Event::MessageData(chunk) => {
            if rx.failed.is_none()
                && let Some(message) = rx.message.as_mut()
                && let Err(e) = message.write(&chunk).await
            {
                rx.failed = Some(e);
            }
        }
        Event::MessageEnd => {
            let result = match (rx.message.take(), rx.failed.take()) {
                (_, Some(e)) => Err(e),
                (Some(message), None) => {
                    let committed = Box::pin(message.commit()).await;
                    if let Ok(qid) = &committed {
                        let auth = session.client().auth.as_deref();
                        let line = smtpd::client_line(*qid, rx.client().await, auth);
                        ctx.log.line(Program::Smtpd, &line);
                    }
                    committed
                }
                (None, None) => Err(Reply::new(451, [4, 3, 0], "Error: queue file write error")),
            };
            crate::metrics::global()
                .smtpd_message_end(result.as_ref().map(|_| ()).map_err(|r| r.code));
            session.answer_commit(result, Instant::now());
        }
        Event::MessageAbort => {
            rx.message = None;
            rx.failed = None;
        }
        // Handled by `drive`, which owns the stream.
        Event::StartTls => {}
    }
}
