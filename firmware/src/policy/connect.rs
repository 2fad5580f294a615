//! The connect stage: how many clients are served at once, in all and per client address.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

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
    /// `smtpd_client_event_limit_exceptions` (default `$mynetworks`): clients the per-client
    /// connection limit does not apply to (the box's own relays, the LAN).
    pub client_limit_exceptions: NetworkList,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            connection_limit: 100,
            client_connection_limit: 50,
            client_limit_exceptions: NetworkList::loopback(),
        }
    }
}

/// Why a connection is refused at connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `default_process_limit` connections are served already.
    TooManyConnections,
    /// This client holds `smtpd_client_connection_count_limit` connections already.
    TooManyFromClient(IpAddr),
    /// The counters are unusable (a thread panicked holding them): refuse rather than guess.
    Unavailable,
}

impl Refusal {
    /// `421 4.7.0 mx.example.com Error: too many connections from 192.0.2.1`, as Postfix words it;
    /// the server hangs up after it.
    pub fn reply(self, hostname: &str) -> Reply {
        Reply::new(421, [4, 7, 0], format!("{hostname} Error: {self}"))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooManyConnections => f.write_str("too many connections"),
            Refusal::TooManyFromClient(ip) => write!(f, "too many connections from {ip}"),
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

/// Connections served now.
#[derive(Debug, Default)]
pub(super) struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Counts {
    pub(super) fn total(&self) -> usize {
        self.total
    }

    pub(super) fn admit(&mut self, ip: IpAddr, limits: &ConnectionLimits) -> Result<(), Refusal> {
        if self.total >= limits.connection_limit {
            return Err(Refusal::TooManyConnections);
        }
        let count = self.per_ip.get(&ip).copied().unwrap_or(0);
        if count >= limits.client_connection_limit && !limits.client_limit_exceptions.contains(ip) {
            return Err(Refusal::TooManyFromClient(ip));
        }
        self.total += 1;
        self.per_ip.insert(ip, count + 1);
        Ok(())
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
}
