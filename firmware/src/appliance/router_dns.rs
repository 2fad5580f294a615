//! Keeps the DNS servers routers advertise (RFC 8106's RDNSS, which Linux leaves to userspace)
//! in resolv.conf while eth0 takes its IPv6 by SLAAC: each until its lifetime ends or a router
//! withdraws it (lifetime 0). The kernel only passes advertisements on for an interface that
//! accepts them, so with static or no IPv6 nothing arrives. Servers the admin stored win
//! (`network::set_router_resolvers` keeps them out then).

use std::net::Ipv6Addr;
use std::sync::Once;
use std::time::{Duration, Instant};

use hal::sys::packet::link_identity;
use hal::sys::router_dns::{RouterDns, RouterDnsSocket};

use super::boot::WAN;
use super::network;
use crate::log::console::{say, say_text};

/// RFC 8106 asks a host to keep at least three; glibc asks three.
const KEEP: usize = 3;

/// Starts the one thread that follows the advertisements (later calls do nothing).
pub fn start() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        if let Err(e) = std::thread::Builder::new()
            .name("router-dns".into())
            .spawn(keep)
        {
            say!("postern: router-advertised DNS servers are not followed: {e}");
        }
    });
}

fn keep() {
    let socket = match RouterDnsSocket::open() {
        Ok(s) => s,
        Err(e) => {
            say!("postern: router-advertised DNS servers are not followed: {e}");
            return;
        }
    };
    let mut table = Advertised::default();
    let mut shown: Vec<Ipv6Addr> = Vec::new();
    loop {
        match socket.recv(Duration::from_secs(1)) {
            Ok(got) if !got.is_empty() => {
                if let Ok((_, index)) = link_identity(WAN) {
                    let now = Instant::now();
                    got.iter()
                        .filter(|d| i64::from(d.ifindex) == i64::from(index))
                        .for_each(|d| table.update(d, now));
                }
            }
            Ok(_) => {}
            Err(e) => {
                say!("postern: {WAN}: cannot read router advertisements: {e}");
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        let now = table.current(Instant::now());
        if now != shown {
            let list: Vec<String> = now.iter().map(|a| a.to_string()).collect();
            say!(
                "postern: {WAN}: DNS servers from router advertisements: {}",
                if list.is_empty() {
                    "none".into()
                } else {
                    list.join(" ")
                }
            );
            say_text(&network::set_router_resolvers(&now));
            shown = now;
        }
    }
}

/// The advertised servers and when each runs out (None: never).
#[derive(Debug, Default)]
struct Advertised {
    servers: Vec<(Ipv6Addr, Option<Instant>)>,
}

impl Advertised {
    fn update(&mut self, d: &RouterDns, now: Instant) {
        for &server in &d.servers {
            // Link-local servers would need the interface named with each query, which the
            // resolver cannot carry; multicast and unspecified ones are no servers.
            if server.is_unicast_link_local() || server.is_multicast() || server.is_unspecified() {
                continue;
            }
            self.servers.retain(|(s, _)| *s != server);
            let ends = match d.lifetime_secs {
                0 => continue,
                u32::MAX => None,
                secs => Some(now + Duration::from_secs(secs.into())),
            };
            // The newest first; the oldest beyond KEEP dropped.
            self.servers.insert(0, (server, ends));
            self.servers.truncate(KEEP);
        }
    }

    /// The servers still in their lifetime at `now`, newest first.
    fn current(&mut self, now: Instant) -> Vec<Ipv6Addr> {
        self.servers
            .retain(|(_, ends)| ends.is_none_or(|e| e > now));
        self.servers.iter().map(|(s, _)| *s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(lifetime_secs: u32, servers: &[&str]) -> RouterDns {
        RouterDns {
            ifindex: 2,
            lifetime_secs,
            servers: servers.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn servers_last_their_lifetime_and_a_zero_lifetime_withdraws_them() {
        let t0 = Instant::now();
        let mut a = Advertised::default();
        a.update(&ad(600, &["2001:db8::53", "fe80::1", "ff02::1"]), t0);
        a.update(&ad(u32::MAX, &["2001:db8::54"]), t0);
        let s = |v: &[&str]| -> Vec<Ipv6Addr> { v.iter().map(|x| x.parse().unwrap()).collect() };
        assert_eq!(a.current(t0), s(&["2001:db8::54", "2001:db8::53"]));
        assert_eq!(
            a.current(t0 + Duration::from_secs(601)),
            s(&["2001:db8::54"])
        );
        // Advertised again: renewed; then withdrawn.
        a.update(&ad(600, &["2001:db8::53"]), t0 + Duration::from_secs(700));
        assert_eq!(a.current(t0 + Duration::from_secs(701)).len(), 2);
        a.update(&ad(0, &["2001:db8::54"]), t0 + Duration::from_secs(702));
        assert_eq!(
            a.current(t0 + Duration::from_secs(703)),
            s(&["2001:db8::53"])
        );
        // At most three, the newest kept.
        a.update(
            &ad(60, &["2001:db8::1", "2001:db8::2", "2001:db8::3"]),
            t0 + Duration::from_secs(704),
        );
        assert_eq!(
            a.current(t0 + Duration::from_secs(705)),
            s(&["2001:db8::3", "2001:db8::2", "2001:db8::1"])
        );
    }
}
