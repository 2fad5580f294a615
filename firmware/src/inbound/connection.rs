//! One client connection: drives the sans-IO [`Session`] over a socket, asks the other stages its
//! questions, and upgrades to TLS on STARTTLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::stages::{Authenticator, IncomingMessage, MessageStore, RecipientCheck};
use super::tls::tls_info;
use super::{InboundContext, ListenerKind};
use crate::mail::Reply;
use crate::smtp::received::received_header;
use crate::smtp::{Event, Mode, Session};

const READ_BUF: usize = 16 * 1024;

/// How a run of the session over one stream ended.
enum Outcome {
    Closed,
    StartTls,
}

/// The message being received, across events.
struct Receiving<M> {
    message: Option<M>,
    /// A write to the spool failed: the body is read to its end, then this is the reply.
    failed: Option<Reply>,
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
    let (mode, starttls, auth, auth_required) = match kind {
        ListenerKind::Smtp => (Mode::Smtp, ctx.tls.is_some(), ctx.auth.is_some(), false),
        // Both submission ports want AUTH before MAIL.
        ListenerKind::Submission => (Mode::Smtp, ctx.tls.is_some(), ctx.auth.is_some(), true),
        ListenerKind::Smtps => (Mode::Smtp, false, ctx.auth.is_some(), true),
        ListenerKind::Lmtp => (Mode::Lmtp, false, false, false),
    };
    let config =
        Arc::new(
            ctx.limits
                .session_config(&ctx.hostname, mode, starttls, auth, auth_required),
        );
    let mut rx = Receiving {
        message: None,
        failed: None,
    };
    if kind == ListenerKind::Smtps {
        let Some(tls) = ctx.tls.clone() else {
            return Ok(());
        };
        let handshake = TlsAcceptor::from(tls).accept(stream);
        let mut tls_stream =
            match tokio::time::timeout(ctx.limits.tls_handshake_timeout, handshake).await {
                Ok(Ok(s)) => s,
                _ => return Ok(()),
            };
        let info = tls_info(tls_stream.get_ref().1);
        let mut session = Session::new(config, Some(peer.ip()), Some(info), Instant::now());
        drive(&mut tls_stream, &mut session, &ctx, &mut rx).await?;
        return Ok(());
    }
    let mut stream = stream;
    let mut session = Session::new(config, Some(peer.ip()), None, Instant::now());
    match drive(&mut stream, &mut session, &ctx, &mut rx).await? {
        Outcome::Closed => Ok(()),
        Outcome::StartTls => {
            let Some(tls) = ctx.tls.clone() else {
                return Ok(());
            };
            let handshake = TlsAcceptor::from(tls).accept(stream);
            let mut tls_stream =
                match tokio::time::timeout(ctx.limits.tls_handshake_timeout, handshake).await {
                    Ok(Ok(s)) => s,
                    _ => return Ok(()),
                };
            session.tls_established(tls_info(tls_stream.get_ref().1), Instant::now());
            // A second STARTTLS is refused by the session, so this run ends the connection.
            drive(&mut tls_stream, &mut session, &ctx, &mut rx).await?;
            Ok(())
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
    let mut buf = vec![0u8; READ_BUF];
    loop {
        while let Some(event) = session.poll_event() {
            if let Event::StartTls = event {
                flush(io, session).await?;
                return Ok(Outcome::StartTls);
            }
            answer(event, session, ctx, rx).await;
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
        let deadline = session
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + ctx.limits.command_timeout);
        tokio::select! {
            read = io.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Ok(Outcome::Closed),
                Ok(n) => session.feed(buf.get(..n).unwrap_or_default(), Instant::now()),
            },
            _ = tokio::time::sleep_until(deadline.into()) => session.handle_timeout(Instant::now()),
        }
    }
}

async fn flush<IO: AsyncWrite + Unpin>(io: &mut IO, session: &mut Session) -> std::io::Result<()> {
    let out = session.take_output();
    if !out.is_empty() {
        io.write_all(&out).await?;
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
            let verdict = ctx.recipients.check(&query).await;
            session.answer_recipient_targets(verdict, Instant::now());
        }
        Event::Authenticate { user, password, .. } => {
            let ok = match &ctx.auth {
                Some(auth) => auth.verify(&user, password.expose()).await,
                None => false,
            };
            if !ok {
                // Slow down password guessing: each failure on this connection waits longer.
                let delay = ctx.limits.auth_delay(session.auth_failures() + 1);
                tokio::time::sleep(delay).await;
            }
            session.answer_auth(ok, Instant::now());
        }
        Event::MessageBegin(mut envelope) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
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
                (Some(message), None) => message.commit().await,
                (None, None) => Err(Reply::new(451, [4, 3, 0], "Error: queue file write error")),
            };
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
