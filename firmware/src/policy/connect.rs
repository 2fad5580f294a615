//! The connect stage: how many clients are served at once, in all and per client address, and how
//! often one client may connect and send mail (Postfix's anvil rates, per `anvil_rate_time_unit`).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::network::NetworkList;
use crate::mail::Reply;

use super::Policy;

/// Connection limits, one named setting each, Postfix's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once, all ports together. Postfix `default_process_limit` (100).
    pub connection_limit: usize,
    /// Connections at once from one client IP. Postfix `smtpd_client_connection_count_limit` (50).
    pub client_connection_limit: usize,
    /// `smtpd_client_connection_rate_limit`: connections one client may open per time unit;
    /// 0 means no limit (Postfix's default).
    pub connection_rate_limit: u32,
    /// `smtpd_client_message_rate_limit`: messages one client may send per time unit; 0: none.
    pub message_rate_limit: u32,
    /// `smtpd_client_auth_rate_limit`: AUTH commands one client may send per time unit,
    /// accepted or not, across its connections (password guessing from many sessions); 0: none.
    pub auth_rate_limit: u32,
    /// `anvil_rate_time_unit` (60 s).
    pub rate_time_unit: Duration,
    /// `smtpd_client_event_limit_exceptions` (default `$mynetworks`): clients the per-client
    /// limits do not apply to (the box's own relays, the LAN).
    pub client_limit_exceptions: NetworkList,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            connection_limit: 100,
            client_connection_limit: 50,
            connection_rate_limit: 0,
            message_rate_limit: 0,
            auth_rate_limit: 0,
            rate_time_unit: Duration::from_secs(60),
            client_limit_exceptions: NetworkList::loopback(),
        }
    }
}

/// Why a connection is refused at connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `default_process_limit` connections are served already.
    TooManyConnections,
    /// This client holds `smtpd_client_connection_count_limit` connections already, or opened
    /// `smtpd_client_connection_rate_limit` in this time unit.
    TooManyFromClient(IpAddr),
    /// This client asked for more than `smtpd_client_message_rate_limit` messages in this time
    /// unit; the second field is its rate, refused requests included (as Postfix's anvil counts).
    TooMuchMail(IpAddr, u32),
    /// This client sent `smtpd_client_auth_rate_limit` AUTH commands in this time unit.
    TooManyAuth(IpAddr),
    /// The counters are unusable (a thread panicked holding them): refuse rather than guess.
    Unavailable,
}

impl Refusal {
    /// `421 4.7.0 mx.example.com Error: too many connections from 192.0.2.1`, as Postfix words it;
    /// the server hangs up after it. For the message rate, `450 4.7.1 Error: too much mail from
    /// 192.0.2.1` and the session goes on.
    pub fn reply(self, hostname: &str) -> Reply {
        match self {
            Refusal::TooMuchMail(..) | Refusal::TooManyAuth(_) => {
                Reply::new(450, [4, 7, 1], format!("Error: {self}"))
            }
            _ => Reply::new(421, [4, 7, 0], format!("{hostname} Error: {self}")),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooManyConnections => f.write_str("too many connections"),
            Refusal::TooManyFromClient(ip) => write!(f, "too many connections from {ip}"),
            Refusal::TooMuchMail(ip, _) => write!(f, "too much mail from {ip}"),
            Refusal::TooManyAuth(ip) => write!(f, "too many AUTH commands from {ip}"),
            Refusal::Unavailable => f.write_str("service unavailable"),
        }
    }
}

/// A connection slot; given back when dropped, however the session ends.
#[derive(Debug)]
pub struct Admitted {
    pub(super) policy: Arc<Policy>,
    pub(super) ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.policy.release(self.ip);
    }
}

/// Connections served now, and each client's events in its current time unit.
#[derive(Debug, Default)]
pub(super) struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    rates: HashMap<IpAddr, Rates>,
}

/// One client's events since `since` (one time unit at most).
#[derive(Debug, Clone, Copy)]
struct Rates {
    since: Instant,
    connections: u32,
    messages: u32,
    auths: u32,
}

/// Past this many clients, those whose time unit is over are forgotten.
const RATE_CLIENTS: usize = 4096;

impl Counts {
    pub(super) fn total(&self) -> usize {
        self.total
    }

    pub(super) fn admit(
        &mut self,
        ip: IpAddr,
        limits: &ConnectionLimits,
        now: Instant,
    ) -> Result<(), Refusal> {
        if self.total >= limits.connection_limit {
            return Err(Refusal::TooManyConnections);
        }
        let count = self.per_ip.get(&ip).copied().unwrap_or(0);
        let exempt = limits.client_limit_exceptions.contains(ip);
        if count >= limits.client_connection_limit && !exempt {
            return Err(Refusal::TooManyFromClient(ip));
        }
        if !exempt && limits.connection_rate_limit > 0 {
            let rates = self.rates(ip, limits, now);
            if rates.connections >= limits.connection_rate_limit {
                return Err(Refusal::TooManyFromClient(ip));
            }
            rates.connections += 1;
        }
        self.total += 1;
        self.per_ip.insert(ip, count + 1);
        Ok(())
    }

    /// Counts one message from `ip`, or refuses it over `smtpd_client_message_rate_limit`.
    pub(super) fn message(
        &mut self,
        ip: IpAddr,
        limits: &ConnectionLimits,
        now: Instant,
    ) -> Result<(), Refusal> {
        if limits.message_rate_limit == 0 || limits.client_limit_exceptions.contains(ip) {
            return Ok(());
        }
        let rates = self.rates(ip, limits, now);
        rates.messages = rates.messages.saturating_add(1);
        if rates.messages > limits.message_rate_limit {
            return Err(Refusal::TooMuchMail(ip, rates.messages));
        }
        Ok(())
    }

    /// Counts one AUTH command from `ip`, or refuses it over `smtpd_client_auth_rate_limit`.
    pub(super) fn auth(
        &mut self,
        ip: IpAddr,
        limits: &ConnectionLimits,
        now: Instant,
    ) -> Result<(), Refusal> {
        if limits.auth_rate_limit == 0 || limits.client_limit_exceptions.contains(ip) {
            return Ok(());
        }
        let rates = self.rates(ip, limits, now);
        if rates.auths >= limits.auth_rate_limit {
            return Err(Refusal::TooManyAuth(ip));
        }
        rates.auths += 1;
        Ok(())
    }

    /// This client's counters in the current time unit.
    fn rates(&mut self, ip: IpAddr, limits: &ConnectionLimits, now: Instant) -> &mut Rates {
        let unit = limits.rate_time_unit;
        let over = |r: &Rates| now.saturating_duration_since(r.since) >= unit;
        if self.rates.len() >= RATE_CLIENTS {
            self.rates.retain(|_, r| !over(r));
        }
        let fresh = Rates {
            since: now,
            connections: 0,
            messages: 0,
            auths: 0,
        };
        let rates = self.rates.entry(ip).or_insert(fresh);
        if over(rates) {
            *rates = fresh;
        }
        rates
    }

    pub(super) fn release(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_client_limit_spares_mynetworks_and_slots_come_back() {
        let policy = Policy::new(ConnectionLimits {
            connection_limit: 10,
            client_connection_limit: 1,
            client_limit_exceptions: "192.168.0.0/16".parse().unwrap(),
            ..ConnectionLimits::default()
        });
        let outside = ip("203.0.113.5");
        let first = policy.connect(outside).unwrap();
        assert_eq!(
            policy.connect(outside).unwrap_err(),
            Refusal::TooManyFromClient(outside)
        );
        let lan: Vec<_> = (0..3)
            .map(|_| policy.connect(ip("192.168.1.2")).unwrap())
            .collect();
        assert_eq!(policy.active_connections(), 4);
        drop(first);
        assert!(policy.connect(outside).is_ok());
        drop(lan);
        assert_eq!(policy.active_connections(), 0);
    }

    #[test]
    fn new_limits_hold_for_the_connections_after_them() {
        let policy = Policy::new(ConnectionLimits {
            connection_limit: 1,
            ..ConnectionLimits::default()
        });
        let _held = policy.connect(ip("127.0.0.1")).unwrap();
        assert!(policy.connect(ip("127.0.0.1")).is_err());
        policy.set_limits(ConnectionLimits {
            connection_limit: 2,
            ..ConnectionLimits::default()
        });
        let second = policy.connect(ip("127.0.0.1")).unwrap();
        assert!(policy.connect(ip("127.0.0.1")).is_err());
        // Lowered under what is served: the connections stay, new ones wait.
        policy.set_limits(ConnectionLimits {
            connection_limit: 1,
            ..ConnectionLimits::default()
        });
        assert_eq!(policy.active_connections(), 2);
        drop(second);
        assert!(policy.connect(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn total_limit_covers_everyone_and_reads_as_postfix() {
        let policy = Policy::new(ConnectionLimits {
            connection_limit: 1,
            ..ConnectionLimits::default()
        });
        let _held = policy.connect(ip("127.0.0.1")).unwrap();
        let refusal = policy.connect(ip("127.0.0.1")).unwrap_err();
        assert_eq!(
            refusal.reply("mx.test").to_string(),
            "421 4.7.0 mx.test Error: too many connections"
        );
        assert_eq!(
            Refusal::TooManyFromClient(ip("192.0.2.1"))
                .reply("mx.test")
                .to_string(),
            "421 4.7.0 mx.test Error: too many connections from 192.0.2.1"
        );
    }

    #[test]
    fn rates_per_time_unit_spare_mynetworks_and_start_over() {
        let policy = Policy::new(ConnectionLimits {
            connection_rate_limit: 2,
            message_rate_limit: 3,
            client_limit_exceptions: "192.168.0.0/16".parse().unwrap(),
            ..ConnectionLimits::default()
        });
        let t0 = Instant::now();
        let outside = ip("203.0.113.5");
        drop(policy.connect_at(outside, t0).unwrap());
        drop(policy.connect_at(outside, t0).unwrap());
        let refused = policy.connect_at(outside, t0).unwrap_err();
        assert_eq!(
            refused.reply("mx.test").to_string(),
            "421 4.7.0 mx.test Error: too many connections from 203.0.113.5"
        );
        for _ in 0..5 {
            drop(policy.connect_at(ip("192.168.1.1"), t0).unwrap());
        }
        let later = t0 + Duration::from_secs(60);
        assert!(policy.connect_at(outside, later).is_ok());

        let sender = ip("203.0.113.6");
        for _ in 0..3 {
            policy.message_at(sender, t0).unwrap();
        }
        assert_eq!(
            policy
                .message_at(sender, t0)
                .unwrap_err()
                .reply("mx.test")
                .to_string(),
            "450 4.7.1 Error: too much mail from 203.0.113.6"
        );
        // Refused requests count too: the rate the warning names goes on rising.
        assert!(matches!(
            policy.message_at(sender, t0),
            Err(Refusal::TooMuchMail(_, 5))
        ));
        assert!(policy.message_at(ip("192.168.1.1"), t0).is_ok());
        assert!(policy.message_at(sender, later).is_ok());
    }
}
