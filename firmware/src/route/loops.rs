//! "Mail loops back to myself" ("Avoiding Loops in Delivery"): a next hop that resolves to one of
//! this box's own listeners is an error (`5.4.6`), never a delivery to itself. Delivery calls the
//! check after resolving. (Hop counting, the other loop check, is a content check: it reads the
//! message's headers at the end of data, see `content::hops`.)

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A loop found during delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopError {
    /// The next hop is this box.
    LoopsBackToMyself { host: String },
}

impl LoopError {
    pub fn status(&self) -> &'static str {
        "5.4.6"
    }
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopError::LoopsBackToMyself { host } => {
                write!(f, "5.4.6 mail for {host} loops back to myself")
            }
        }
    }
}

impl std::error::Error for LoopError {}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether delivering to `peer` would hand the message to this box itself: `peer` is one of
/// `listeners` (the box's SMTP/LMTP listening sockets), where a wildcard listener (`0.0.0.0:25`,
/// `[::]:25`) stands for every address in `own_addrs` and every loopback address.
pub fn loops_back_to_myself(
    peer: SocketAddr,
    listeners: &[SocketAddr],
    own_addrs: &[IpAddr],
) -> bool {
    let ip = unmapped(peer.ip());
    listeners.iter().any(|l| {
        if l.port() != peer.port() {
            return false;
        }
        let lip = unmapped(l.ip());
        if lip.is_unspecified() {
            ip.is_loopback() || ip.is_unspecified() || own_addrs.iter().any(|a| unmapped(*a) == ip)
        } else {
            lip == ip
        }
    })
}

/// The check as an error for delivery to report: `host` is the next hop's name for the message.
pub fn check_not_myself(
    host: &str,
    peer: SocketAddr,
    listeners: &[SocketAddr],
    own_addrs: &[IpAddr],
) -> Result<(), LoopError> {
    if loops_back_to_myself(peer, listeners, own_addrs) {
        return Err(LoopError::LoopsBackToMyself {
            host: host.to_string(),
        });
    }
    Ok(())
}

/// Whether a server greeting with `name` is this box (Postfix compares the peer's greeting name
/// to `myhostname` for the same reason).
pub fn greeting_is_myself(name: &str, my_hostname: &str) -> bool {
    name.trim_end_matches('.')
        .eq_ignore_ascii_case(my_hostname.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn next_hop_on_own_listener_is_a_loop() {
        let listeners = [sa("0.0.0.0:25"), sa("192.0.2.10:587")];
        let own = [
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ];
        assert!(loops_back_to_myself(sa("192.0.2.10:25"), &listeners, &own));
        assert!(loops_back_to_myself(sa("127.0.0.1:25"), &listeners, &own));
        assert!(loops_back_to_myself(
            sa("[::ffff:192.0.2.10]:25"),
            &listeners,
            &own
        ));
        assert!(loops_back_to_myself(sa("192.0.2.10:587"), &listeners, &own));
        assert!(!loops_back_to_myself(sa("192.0.2.11:25"), &listeners, &own));
        assert!(!loops_back_to_myself(
            sa("192.0.2.10:2525"),
            &listeners,
            &own
        ));
        assert!(!loops_back_to_myself(sa("127.0.0.1:587"), &listeners, &own));
        let e = check_not_myself("mail.example.com", sa("127.0.0.1:25"), &listeners, &own);
        assert_eq!(
            e.unwrap_err().to_string(),
            "5.4.6 mail for mail.example.com loops back to myself"
        );
        assert!(greeting_is_myself("GW.example.com.", "gw.example.com"));
    }
}
