//! Listeners and sessions: drives the sans-IO [`crate::smtp`] core over TCP and TLS on the three
//! SMTP ports, enforces connection limits and timeouts, and asks the router, the spool and the
//! directory through the [`seams`] before it answers.
//!
//! - port 25 ([`ListenerKind::Smtp`]): MX; STARTTLS offered; AUTH offered after TLS.
//! - port 587 ([`ListenerKind::Submission`]): STARTTLS, then AUTH, before MAIL.
//! - port 465 ([`ListenerKind::Smtps`]): implicit TLS (RFC 8314), AUTH required before MAIL.
//! - LMTP ([`ListenerKind::Lmtp`]): the same core in LMTP mode, for the delivery side.
//!
//! AUTH PLAIN and LOGIN are offered and accepted only under TLS (Zimbra's
//! `zimbraMtaTlsAuthOnly=TRUE`).

mod connection;
pub mod limits;
pub mod seams;
pub mod tls;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

pub use limits::Limits;
pub use seams::{Authenticator, IncomingMessage, MessageStore, NoAuth, RecipientCheck};
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

/// Everything the listeners share: settings, TLS, and the seams to the rest of the box.
pub struct InboundContext<R, S, A> {
    /// `myhostname`.
    pub hostname: String,
    pub limits: Limits,
    /// `None`: no STARTTLS, no port 465, and so no AUTH.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub recipients: R,
    pub store: S,
    /// `None`: AUTH is never offered.
    pub auth: Option<A>,
    connections: Mutex<Connections>,
}

#[derive(Default)]
struct Connections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl<R, S, A> InboundContext<R, S, A> {
    pub fn new(
        hostname: impl Into<String>,
        limits: Limits,
        tls: Option<Arc<rustls::ServerConfig>>,
        recipients: R,
        store: S,
        auth: Option<A>,
    ) -> InboundContext<R, S, A> {
        InboundContext {
            hostname: hostname.into(),
            limits,
            tls,
            recipients,
            store,
            auth,
            connections: Mutex::new(Connections::default()),
        }
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.connections.lock().map(|c| c.total).unwrap_or(0)
    }

    /// Takes a connection slot for `ip`, or says which limit is reached.
    fn admit(&self, ip: IpAddr) -> Result<(), String> {
        let Ok(mut c) = self.connections.lock() else {
            return Err(format!("{} Error: service unavailable", self.hostname));
        };
        if c.total >= self.limits.connection_limit {
            return Err(format!("{} Error: too many connections", self.hostname));
        }
        let count = c.per_ip.get(&ip).copied().unwrap_or(0);
        if count >= self.limits.client_connection_limit
            && !self.limits.client_limit_exceptions.contains(ip)
        {
            return Err(format!(
                "{} Error: too many connections from {ip}",
                self.hostname
            ));
        }
        c.total += 1;
        c.per_ip.insert(ip, count + 1);
        Ok(())
    }

    fn release(&self, ip: IpAddr) {
        if let Ok(mut c) = self.connections.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_ip.remove(&ip);
                }
            }
        }
    }
}

/// Gives back a connection slot however the task ends.
struct Slot<R, S, A> {
    ctx: Arc<InboundContext<R, S, A>>,
    ip: IpAddr,
}

impl<R, S, A> Drop for Slot<R, S, A> {
    fn drop(&mut self) {
        self.ctx.release(self.ip);
    }
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
        if let Err(text) = ctx.admit(peer.ip()) {
            tokio::spawn(async move {
                let reply = crate::mail::Reply::new(421, [4, 7, 0], text);
                let mut out = Vec::new();
                reply.write_to(&mut out);
                let _ = stream.write_all(&out).await;
                let _ = stream.shutdown().await;
            });
            continue;
        }
        let slot = Slot {
            ctx: ctx.clone(),
            ip: peer.ip(),
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = connection::handle(kind, stream, peer, ctx).await;
        });
    }
}
