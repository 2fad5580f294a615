//! Listeners and sessions: drives the sans-IO [`crate::smtp`] core over TCP and TLS on the three
//! SMTP ports, enforces timeouts, and asks the other stages before it answers (see [`stages`]):
//! [`crate::policy`] at connect and RCPT, the router at RCPT ([`recipients`]), the content checks,
//! the spool and the queue for DATA/BDAT ([`store`]), the directory for AUTH. Their answers are
//! typed; turning them into SMTP replies is this module's job.
//!
//! - port 25 ([`ListenerKind::Smtp`]): MX; STARTTLS offered; AUTH offered after TLS.
//! - port 587 ([`ListenerKind::Submission`]): STARTTLS, then AUTH, before MAIL.
//! - port 465 ([`ListenerKind::Smtps`]): implicit TLS (RFC 8314), AUTH required before MAIL.
//! - LMTP ([`ListenerKind::Lmtp`]): the same core in LMTP mode, for the delivery side.
//!
//! AUTH PLAIN and LOGIN are offered and accepted only under TLS (Zimbra's
//! `zimbraMtaTlsAuthOnly=TRUE`).

mod connection;
pub mod content_notice;
pub mod limits;
pub mod recipients;
pub mod stages;
pub mod store;
pub mod tls;

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::log::LogSink;
use crate::policy::Policy;

pub use limits::{Limits, LiveLimits};
pub use recipients::Recipients;
pub use stages::{Authenticator, IncomingMessage, MessageStore, NoAuth, RecipientCheck};
pub use store::{SpoolStore, spool_reply};
pub use tls::{TlsError, TlsIdentity};

/// Which service a listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// Port 25, mail exchanger.
    Smtp,
    /// Port 587, message submission: TLS and AUTH before MAIL.
    Submission,
    /// Port 465, submission over implicit TLS.
    Smtps,
    /// LMTP (RFC 2033): LHLO, one reply per recipient after DATA; no TLS, no AUTH. For local
    /// delivery tests and for boxes that take mail from a trusted front end.
    Lmtp,
}

impl std::fmt::Display for ListenerKind {
    /// The service names of Postfix's master.cf.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ListenerKind::Smtp => "smtp",
            ListenerKind::Submission => "submission",
            ListenerKind::Smtps => "smtps",
            ListenerKind::Lmtp => "lmtp",
        })
    }
}

impl ListenerKind {
    /// The usual port.
    pub fn default_port(self) -> u16 {
        match self {
            ListenerKind::Smtp => 25,
            ListenerKind::Submission => 587,
            ListenerKind::Smtps => 465,
            // Zimbra's mailbox LMTP port.
            ListenerKind::Lmtp => 7025,
        }
    }
}

/// Everything the listeners share: settings, TLS, and the stages they ask.
pub struct InboundContext<R, S, A> {
    /// `myhostname`.
    pub hostname: String,
    /// Replaced when the MTA settings change.
    pub limits: LiveLimits,
    /// `None`: no STARTTLS, no port 465, and so no AUTH.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Asked at connect (connection limits); the recipient check asks it at RCPT.
    pub policy: Arc<Policy>,
    pub recipients: R,
    pub store: S,
    /// `None`: AUTH is never offered.
    pub auth: Option<A>,
    /// Where smtpd's lines go (connect, reject, client=, disconnect).
    pub log: LogSink,
}

/// Accepts connections on `listener` forever, one tokio task per client. Call it from within the
/// daemon's runtime, once per port.
pub async fn serve<R, S, A>(
    kind: ListenerKind,
    listener: TcpListener,
    ctx: Arc<InboundContext<R, S, A>>,
) -> std::io::Result<()>
where
    R: RecipientCheck,
    S: MessageStore,
    A: Authenticator,
{
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(c) => c,
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let admitted = match ctx.policy.connect(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let reply = refusal.reply(&ctx.hostname);
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    reply.write_to(&mut out);
                    let _ = stream.write_all(&out).await;
                    let _ = stream.shutdown().await;
                });
                continue;
            }
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            // The slot is given back when the session ends, however it ends.
            let _admitted = admitted;
            let _ = connection::handle(kind, stream, peer, ctx).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::SharedDirectory;

    /// The size of what `f` returns, without calling it.
    fn output_size<F, A, B, C, D, R>(_f: F) -> usize
    where
        F: FnOnce(A, B, C, D) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// An idle session's RAM is mostly its task, the future of `connection::handle` as the
    /// daemon instantiates it: 10 000 idle sessions in 200 MB leave it ~17 KB with the rest of
    /// a session (issue 15), and it once grew to 30.7 KB when a content check's future was
    /// awaited in place instead of boxed (12.7 KB in 2026-12). Over 16 KiB tokio boxes the task at
    /// spawn as well.
    #[test]
    fn a_sessions_task_stays_small() {
        let size = output_size(connection::handle::<Recipients, SpoolStore, Arc<SharedDirectory>>);
        assert!(size <= 16 * 1024, "the session task is {size} bytes");
    }
}
