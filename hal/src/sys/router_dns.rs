//! The DNS servers routers advertise (RFC 8106's RDNSS option). Linux configures SLAAC itself but
//! leaves these options to userspace: after it has checked an advertisement (hop limit 255,
//! link-local source, accept_ra on the interface) it passes each one on NETLINK_ROUTE's
//! ND_USEROPT group as an RTM_NEWNDUSEROPT message. [`RouterDnsSocket`] receives them; [`parse`]
//! reads them without trusting a byte (the kernel copies the router's option bytes as they came).

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType, bind, recv, socket_with};

/// RTNLGRP_ND_USEROPT, as a group mask bit (groups count from 1).
const ND_USEROPT_GROUP: u32 = 1 << (20 - 1);
const RTM_NEWNDUSEROPT: u16 = 68;
const NLMSG_HDRLEN: usize = 16;
/// struct nduseroptmsg: family, pad, options' length, ifindex, ICMPv6 type and code, padding.
const USEROPT_HDRLEN: usize = 16;
const AF_INET6: u8 = 10;
const ICMPV6_ROUTER_ADVERT: u8 = 134;
const ND_OPT_RDNSS: u8 = 25;

/// Servers one advertisement named for an interface, and how long they may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterDns {
    pub ifindex: u32,
    /// Seconds; 0 withdraws the servers, u32::MAX never ends (RFC 8106 5.1).
    pub lifetime_secs: u32,
    pub servers: Vec<Ipv6Addr>,
}

/// A socket on the kernel's ND_USEROPT messages.
pub struct RouterDnsSocket(OwnedFd);

impl RouterDnsSocket {
    pub fn open() -> io::Result<RouterDnsSocket> {
        // NETLINK_ROUTE is protocol 0.
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None,
        )?;
        bind(&fd, &SocketAddrNetlink::new(0, ND_USEROPT_GROUP))?;
        Ok(RouterDnsSocket(fd))
    }

    /// The servers in the next message within `wait` (empty when none came, or it named none).
    pub fn recv(&self, wait: Duration) -> io::Result<Vec<RouterDns>> {
        set_socket_timeout(
            &self.0,
            Timeout::Recv,
            Some(wait.max(Duration::from_millis(1))),
        )?;
        let mut buf = vec![0u8; 8192];
        match recv(&self.0, &mut buf, RecvFlags::empty()) {
            Ok((n, _)) => Ok(parse(buf.get(..n).unwrap_or_default())),
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => {
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The RDNSS options of the router advertisements in one netlink datagram.
pub fn parse(datagram: &[u8]) -> Vec<RouterDns> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(len) = u32_at(datagram, at).map(|l| l as usize) {
        let Some(msg) = datagram.get(at..at.saturating_add(len)) else {
            break;
        };
        if len < NLMSG_HDRLEN {
            break;
        }
        if u16_at(msg, 4) == Some(RTM_NEWNDUSEROPT) {
            found.extend(useropt(&msg[NLMSG_HDRLEN..]));
        }
        // Messages are 4-byte aligned.
        at = at.saturating_add(len.saturating_add(3) & !3);
    }
    found
}

fn useropt(m: &[u8]) -> Vec<RouterDns> {
    let (Some(&family), Some(opts_len), Some(ifindex), Some(&icmp_type)) =
        (m.first(), u16_at(m, 2), u32_at(m, 4), m.get(8))
    else {
        return Vec::new();
    };
    if family != AF_INET6 || icmp_type != ICMPV6_ROUTER_ADVERT {
        return Vec::new();
    }
    let Some(mut opts) = m.get(USEROPT_HDRLEN..USEROPT_HDRLEN + usize::from(opts_len)) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    // ND options: type, length in units of 8 bytes (0 is invalid), body.
    while let (Some(&kind), Some(&units)) = (opts.first(), opts.get(1)) {
        let len = usize::from(units) * 8;
        let Some(opt) = opts.get(..len).filter(|_| len > 0) else {
            break;
        };
        // RDNSS: reserved(2), lifetime(4, network order), then whole addresses (length odd, ≥ 3).
        if kind == ND_OPT_RDNSS && units >= 3 && units % 2 == 1 {
            let lifetime_secs = opt
                .get(4..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_be_bytes);
            let servers = opt[8..]
                .chunks_exact(16)
                .filter_map(|c| <[u8; 16]>::try_from(c).ok().map(Ipv6Addr::from))
                .collect();
            found.push(RouterDns {
                ifindex,
                lifetime_secs,
                servers,
            });
        }
        opts = &opts[len..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One RTM_NEWNDUSEROPT message as the kernel frames it, with `opts` as the router sent them.
    fn message(ifindex: u32, icmp_type: u8, opts: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        let len = (NLMSG_HDRLEN + USEROPT_HDRLEN + opts.len()) as u32;
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&RTM_NEWNDUSEROPT.to_ne_bytes());
        m.extend_from_slice(&[0; 10]); // flags, sequence, port
        m.extend_from_slice(&[AF_INET6, 0]);
        m.extend_from_slice(&(opts.len() as u16).to_ne_bytes());
        m.extend_from_slice(&ifindex.to_ne_bytes());
        m.extend_from_slice(&[icmp_type, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(opts);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn rdnss(lifetime: u32, servers: &[Ipv6Addr]) -> Vec<u8> {
        let mut o = vec![ND_OPT_RDNSS, (1 + 2 * servers.len()) as u8, 0, 0];
        o.extend_from_slice(&lifetime.to_be_bytes());
        for s in servers {
            o.extend_from_slice(&s.octets());
        }
        o
    }

    #[test]
    fn reads_the_servers_and_lifetime_of_each_rdnss_option() {
        let a: Ipv6Addr = "2001:db8::53".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::54".parse().unwrap();
        // A DNSSL option (31) first: passed over.
        let mut opts = vec![31, 2, 0, 0, 0, 0, 1, 44, 3, b'l', b'a', b'n', 0, 0, 0, 0];
        opts.extend(rdnss(1800, &[a, b]));
        let mut datagram = message(2, ICMPV6_ROUTER_ADVERT, &opts);
        datagram.extend(message(3, ICMPV6_ROUTER_ADVERT, &rdnss(0, &[a])));
        assert_eq!(
            parse(&datagram),
            [
                RouterDns {
                    ifindex: 2,
                    lifetime_secs: 1800,
                    servers: vec![a, b]
                },
                RouterDns {
                    ifindex: 3,
                    lifetime_secs: 0,
                    servers: vec![a]
                }
            ]
        );
    }

    #[test]
    fn malformed_messages_and_options_give_nothing() {
        let a: Ipv6Addr = "2001:db8::53".parse().unwrap();
        let good = rdnss(60, &[a]);
        // Not a router advertisement; an even RDNSS length; a zero-length option.
        assert!(parse(&message(2, 133, &good)).is_empty());
        let mut even = good.clone();
        even[1] = 2;
        assert!(parse(&message(2, ICMPV6_ROUTER_ADVERT, &even[..16])).is_empty());
        assert!(parse(&message(2, ICMPV6_ROUTER_ADVERT, &[25, 0, 0, 0])).is_empty());
        // Every cut of a good message parses without panicking and finds no more than it holds.
        let whole = message(2, ICMPV6_ROUTER_ADVERT, &good);
        for n in 0..whole.len() {
            assert!(parse(&whole[..n]).len() <= 1);
        }
        assert_eq!(parse(&whole).len(), 1);
        // A length field that claims more than the datagram.
        let mut lying = whole.clone();
        lying[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse(&lying).is_empty());
    }
}
