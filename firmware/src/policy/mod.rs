//! The policy stage: what the box lets a client do, asked by `inbound` at each stage of a session
//! before the router or the spool sees anything. Postfix's names, Postfix's order:
//!
//! - **connect** ([`Policy::connect`]): connection limits, all clients together
//!   (`default_process_limit`) and per client IP (`smtpd_client_connection_count_limit`,
//!   `smtpd_client_connection_rate_limit`), with the clients of
//!   `smtpd_client_event_limit_exceptions` (`$mynetworks`) exempt. A refused client gets
//!   `421 4.7.0` and is disconnected.
//! - **message** ([`Policy::message`]): `smtpd_client_message_rate_limit`, asked at MAIL FROM
//!   as Postfix does (`450 4.7.1 Error: too much mail from IP`).
//! - **RCPT** ([`Policy::rcpt`]): relay control (`smtpd_relay_restrictions =
//!   permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination`). The policy says
//!   whether this client may relay ([`Relay`]); the router, which knows the box's domains, refuses
//!   an address in none of them when it may not (`554 5.7.1 Relay access denied`).
//!
//! - **restrictions** ([`Policy::restrictions`]): `zimbraMtaRestriction` and Zimbra's blocklist
//!   attributes, asked after the router accepted a recipient ([`restrictions`] has the order).
//!   HELO and MAIL FROM restrictions are evaluated at RCPT, as Postfix does with its default
//!   `smtpd_delay_reject = yes`, so a client always learns which recipient was refused and why.
//!   Read from the settings as they are at that moment. DNS through [`dns`], with a deadline.
//! - **sender authentication** ([`auth`]): SPF last among the RCPT checks (`posternSpfAction
//!   reject`), and DKIM and DMARC for the content stage at the end of data, over the same
//!   resolver and deadline.

pub mod auth;
mod connect;
pub mod dns;
pub mod names;
mod own_name;
mod refusal;
mod relay;
pub mod restrictions;
pub mod service;
#[cfg(test)]
mod tests;

pub use auth::SenderAuth;
pub use connect::{Admitted, ConnectionLimits, Refusal};
pub use dns::Dns;
pub use own_name::OwnName;
pub use refusal::{Listed, RcptRefusal};

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::MtaConfig;
use crate::config::sender_auth::SpfAction;
use crate::directory::Directory;
use crate::log::{LogSink, Program};
use crate::mail::ClientInfo;
pub use crate::route::Relay;
use crate::smtp::RcptQuery;
use mail_auth::SpfResult;

use connect::Counts;

/// The connections served now, and the limits they are held to.
#[derive(Debug)]
struct Served {
    counts: Counts,
    limits: ConnectionLimits,
}

/// The policy of one running box: its limits, and the connections it serves now.
#[derive(Debug)]
pub struct Policy {
    served: Mutex<Served>,
    dns: Dns,
    /// The name the box greets with; mail to it is the box's own (see [`OwnName`]).
    hostname: String,
    /// Where warnings go (a blocklist or policy service not answering).
    log: LogSink,
    /// SPF, DKIM and DMARC over the same resolver.
    sender_auth: Arc<SenderAuth>,
}

impl Policy {
    /// A policy without DNS: restrictions that need a lookup defer (450) rather than pass.
    pub fn new(limits: ConnectionLimits) -> Arc<Policy> {
        Policy::with_dns(limits, Dns::none(), "", LogSink::memory())
    }

    /// The policy of a box called `hostname`, asking `dns`, with its warnings to `log`.
    pub fn with_dns(
        limits: ConnectionLimits,
        dns: Dns,
        hostname: &str,
        log: LogSink,
    ) -> Arc<Policy> {
        Arc::new(Policy {
            served: Mutex::new(Served {
                counts: Counts::default(),
                limits,
            }),
            sender_auth: Arc::new(SenderAuth::new(&dns, hostname)),
            dns,
            hostname: hostname.to_string(),
            log,
        })
    }

    /// The connect stage: a slot for a new connection from `ip`, held until the returned
    /// [`Admitted`] is dropped, or the limit it would break.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        self.connect_at(ip, Instant::now())
    }

    /// [`Policy::connect`] at a given time (the connection rate is counted per time unit).
    pub fn connect_at(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Admitted, Refusal> {
        let mut s = self.served.lock().map_err(|_| Refusal::Unavailable)?;
        let Served { counts, limits } = &mut *s;
        counts.admit(ip, limits, now)?;
        Ok(Admitted {
            policy: self.clone(),
            ip,
        })
    }

    /// A new message from `ip` (`smtpd_client_message_rate_limit`); refused with 450 over it.
    pub fn message(&self, ip: IpAddr) -> Result<(), Refusal> {
        self.message_at(ip, Instant::now())
    }

    pub fn message_at(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let mut s = self.served.lock().map_err(|_| Refusal::Unavailable)?;
        let Served { counts, limits } = &mut *s;
        counts.message(ip, limits, now)
    }

    /// An AUTH command from `ip` (`smtpd_client_auth_rate_limit`); refused with 450 over it.
    pub fn auth(&self, ip: IpAddr) -> Result<(), Refusal> {
        let mut s = self.served.lock().map_err(|_| Refusal::Unavailable)?;
        let Served { counts, limits } = &mut *s;
        counts.auth(ip, limits, Instant::now())
    }

    /// New limits (the settings changed): the connections served now stay, and count against
    /// them; what was counted per client and minute is kept.
    pub fn set_limits(&self, limits: ConnectionLimits) {
        if let Ok(mut s) = self.served.lock() {
            s.limits = limits;
        }
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.served.lock().map(|s| s.counts.total()).unwrap_or(0)
    }

    fn release(&self, ip: IpAddr) {
        if let Ok(mut s) = self.served.lock() {
            s.counts.release(ip);
        }
    }

    /// The RCPT stage: whether mail from this client may go to domains the box does not serve,
    /// under the settings as they are now (`zimbraMtaMyNetworks` may change while it runs).
    pub fn rcpt(&self, client: &ClientInfo, config: &MtaConfig) -> Relay {
        relay::relay_for(client, config)
    }

    /// The client's verified host name for smtpd's lines (`None`: `unknown`), looked up at
    /// connect as Postfix does, within the DNS deadline, and then kept for the answers' TTLs.
    pub async fn client_name(&self, ip: IpAddr) -> Option<String> {
        restrictions::client_name(&self.dns, ip).await
    }

    /// Whether `recipient` is addressed to the box's own name (its hostname or
    /// `zimbraMtaMyHostname`), and what becomes of it then. Asked before the router.
    pub fn own_name(&self, recipient: &str, dir: &Directory) -> OwnName {
        let own = [self.hostname.as_str(), dir.config().my_hostname.as_str()];
        own_name::classify(recipient, &own, dir)
    }

    /// The recipient restrictions for a recipient the router accepted, under the directory's
    /// settings as they are now.
    pub async fn restrictions(&self, q: &RcptQuery, dir: &Directory) -> Result<(), RcptRefusal> {
        let permitted = self.rcpt(&q.client, dir.config()) == Relay::Permitted;
        let req = restrictions::Request {
            client: &q.client,
            sender: &q.sender,
            recipient: &q.address,
        };
        let mut warnings = Vec::new();
        let result = restrictions::evaluate(&req, dir, &self.dns, permitted, &mut warnings).await;
        for w in warnings {
            self.log.line(Program::Smtpd, &format!("warning: {w}"));
        }
        result?;
        // After the restrictions, as policyd-spf sits last in smtpd_recipient_restrictions, and
        // never for clients that may relay (their mail is the box's own to sign).
        if permitted || dir.config().auth.spf != SpfAction::Reject {
            return Ok(());
        }
        let Some(spf) = self.sender_auth.spf(&q.client, &q.sender).await else {
            return Ok(());
        };
        let identity = if spf.helo_identity {
            "helo"
        } else {
            "mailfrom"
        };
        match spf.result() {
            SpfResult::Fail => Err(RcptRefusal::SpfFail {
                recipient: q.address.clone(),
                identity,
                explanation: spf.output.explanation().map(str::to_string),
            }),
            SpfResult::TempError => Err(RcptRefusal::SpfTempError {
                recipient: q.address.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Sender authentication (SPF, DKIM, DMARC) for the end of data.
    pub fn sender_auth(&self) -> &Arc<SenderAuth> {
        &self.sender_auth
    }
}
