//! The policy stage: what the box lets a client do, asked by `inbound` at each stage of a session
//! before the router or the spool sees anything. Postfix's names, Postfix's order:
//!
//! - **connect** ([`Policy::connect`]): connection limits, all clients together
//!   (`default_process_limit`) and per client IP (`smtpd_client_connection_count_limit`), with the
//!   clients of `smtpd_client_event_limit_exceptions` (`$mynetworks`) exempt. A refused client
//!   gets `421 4.7.0` and is disconnected.
//! - **RCPT** ([`Policy::rcpt`]): relay control (`smtpd_relay_restrictions =
//!   permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination`). The policy says
//!   whether this client may relay ([`Relay`]); the router, which knows the box's domains, refuses
//!   an address in none of them when it may not (`554 5.7.1 Relay access denied`).
//!
//! HELO and MAIL FROM restrictions are evaluated at RCPT, as Postfix does with its default
//! `smtpd_delay_reject = yes`, so a client always learns which recipient was refused and why: the
//! restriction list of `zimbraMtaRestriction` (HELO name, sender domain, DNSBL, policy service)
//! joins [`Policy::rcpt`], read from the settings as they are at that moment.

mod connect;
mod relay;

pub use connect::{Admitted, ConnectionLimits, Refusal};

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::MtaConfig;
use crate::mail::ClientInfo;
pub use crate::route::Relay;

use connect::Counts;

/// The policy of one running box: its limits, and the connections it serves now.
#[derive(Debug)]
pub struct Policy {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
}

impl Policy {
    pub fn new(limits: ConnectionLimits) -> Arc<Policy> {
        Arc::new(Policy {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// The connect stage: a slot for a new connection from `ip`, held until the returned
    /// [`Admitted`] is dropped, or the limit it would break.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let mut counts = self.counts.lock().map_err(|_| Refusal::Unavailable)?;
        counts.admit(ip, &self.limits)?;
        Ok(Admitted {
            policy: self.clone(),
            ip,
        })
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.counts.lock().map(|c| c.total()).unwrap_or(0)
    }

    fn release(&self, ip: IpAddr) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.release(ip);
        }
    }

    /// The RCPT stage: whether mail from this client may go to domains the box does not serve,
    /// under the settings as they are now (`zimbraMtaMyNetworks` may change while it runs).
    pub fn rcpt(&self, client: &ClientInfo, config: &MtaConfig) -> Relay {
        relay::relay_for(client, config)
    }
}
