//! Loop checks that catch what configuration gets wrong ("Avoiding Loops in Delivery"):
//!
//! - hop counting: a message carrying more `Received:` headers than `hopcount_limit` bounces
//!   with `5.4.6`, so two systems that catch-all to each other end in a bounce, not a storm;
//! - "mail loops back to myself": a next hop that resolves to one of this box's own listeners is
//!   an error (`5.4.6`), never a delivery to itself. Delivery calls the check after resolving.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A loop found before or during delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopError {
    /// More `Received:` headers than `hopcount_limit`.
    TooManyHops { count: usize, limit: u32 },
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
            LoopError::TooManyHops { count, limit } => write!(
                f,
                "5.4.6 mail forwarding loop: {count} Received headers, hopcount_limit is {limit}"
            ),
            LoopError::LoopsBackToMyself { host } => {
                write!(f, "5.4.6 mail for {host} loops back to myself")
            }
        }
    }
}

impl std::error::Error for LoopError {}

/// The number of `Received:` header fields in a message's header section (the bytes up to the
/// first empty line; a whole message may be passed).
pub fn hop_count(headers: &[u8]) -> usize {
    const NAME: &[u8] = b"received:";
    headers
        .split(|&b| b == b'\n')
        .take_while(|line| !matches!(line, [] | [b'\r']))
        .filter(|line| {
            line.get(..NAME.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(NAME))
        })
        .count()
}

/// Whether the message has travelled through more than `limit` hops.
pub fn hop_limit_exceeded(headers: &[u8], limit: u32) -> bool {
    check_hops(headers, limit).is_err()
}

/// The hop count, or the error to bounce with when it is over `limit`.
pub fn check_hops(headers: &[u8], limit: u32) -> Result<usize, LoopError> {
    let count = hop_count(headers);
    if count > limit as usize {
        return Err(LoopError::TooManyHops { count, limit });
    }
    Ok(count)
}

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
    fn counts_received_headers_only_in_the_header_section() {
        let msg =
            b"Received: from a by b\r\n\tid 1\r\nreceived: from c\r\nSubject: Received: no\r\n\
X-Received: no\r\n\r\nReceived: in the body\r\n";
        assert_eq!(hop_count(msg), 2);
        assert_eq!(hop_count(b""), 0);
        let many: Vec<u8> = b"Received: x\r\n".repeat(51);
        assert!(hop_limit_exceeded(&many, 50));
        assert!(!hop_limit_exceeded(&many[..many.len() - 13], 50));
        assert_eq!(
            check_hops(&many, 50).unwrap_err().to_string(),
            "5.4.6 mail forwarding loop: 51 Received headers, hopcount_limit is 50"
        );
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
