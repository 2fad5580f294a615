//! eth0 from the stored network (or the boot parameters that override it): a static address
//! with its gateway, or a DHCP lease kept by a thread that renews it; and the resolvers in
//! /etc/resolv.conf, which delivery reads. Applied at boot and again whenever the console stores
//! a new network, without a reboot.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hal::sys::dhcp::Lease;
use hal::sys::{dhcp_socket, net};

use super::boot::WAN;
use crate::config::box_settings::{Ipv4Method, NetworkSettings};

const RESOLV_CONF: &str = "/etc/resolv.conf";
/// How long the first DHCP exchange may hold up the boot (or the console) before it goes on in
/// the background.
const DHCP_FIRST: Duration = Duration::from_secs(30);
/// How long a renewal may try before the lease is given up on and a new one sought.
const DHCP_RETRY: Duration = Duration::from_secs(60);
/// The pause between failed renewals.
const DHCP_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Bumped by every [`apply`]: a DHCP thread of an older network stops at its next step.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Applies `n` to eth0; returns what it did, as one line for the console and boot log.
pub fn apply(n: &NetworkSettings) -> String {
    if !net::link_exists(WAN) {
        return format!("postern: no {WAN}: the network is stored and applied once {WAN} exists\n");
    }
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    let mut report = match n.ipv4 {
        Ipv4Method::Static(s) => {
            let cfg = net::Ipv4Config {
                address: s.address(),
                prefix_len: s.prefix_len(),
                gateway: s.gateway(),
            };
            match net::link_up(WAN).and_then(|()| net::configure_ipv4(WAN, &cfg)) {
                Ok(()) => format!("postern: {WAN} {s}\n"),
                Err(e) => format!("postern: cannot configure {WAN}: {e}\n"),
            }
        }
        Ipv4Method::Dhcp => dhcp(generation, n.dns.is_empty()),
    };
    if !n.dns.is_empty() {
        report += &write_resolv_conf(&n.dns);
    }
    report
}

/// Writes the resolvers delivery's DNS client reads at its next start; returns a line only on
/// failure.
pub fn write_resolv_conf(dns: &[Ipv4Addr]) -> String {
    let text: String = dns.iter().map(|d| format!("nameserver {d}\n")).collect();
    match std::fs::write(RESOLV_CONF, text) {
        Ok(()) => String::new(),
        Err(e) => format!("postern: cannot write {RESOLV_CONF}: {e}\n"),
    }
}

/// Takes a lease (waiting up to [`DHCP_FIRST`]), then keeps it from a thread.
fn dhcp(generation: u64, lease_dns: bool) -> String {
    if let Err(e) = net::link_up(WAN) {
        return format!("postern: cannot bring up {WAN}: {e}\n");
    }
    let (report, lease) = match dhcp_socket::acquire(WAN, None, DHCP_FIRST) {
        Ok(lease) => (bind(&lease, lease_dns), Some(lease)),
        Err(e) => (
            format!("postern: {WAN}: {e}; still asking in the background\n"),
            None,
        ),
    };
    let kept = std::thread::Builder::new()
        .name("dhcp".into())
        .spawn(move || keep_lease(generation, lease, lease_dns));
    match kept {
        Ok(_) => report,
        Err(e) => format!("{report}postern: cannot start the DHCP thread: {e}\n"),
    }
}

/// Renews at T1, asking for the same address; a changed lease is applied at once, and a lease
/// that ran out without a renewal is taken off eth0. Stops when a newer network was applied.
fn keep_lease(generation: u64, mut lease: Option<Lease>, lease_dns: bool) {
    let current = || GENERATION.load(Ordering::SeqCst) == generation;
    let mut bound_at = Instant::now();
    let mut failed = false;
    loop {
        let wait = match &lease {
            Some(l) if !failed => l.renew_after(),
            _ => DHCP_RETRY_WAIT,
        };
        std::thread::sleep(wait);
        if !current() {
            return;
        }
        let wanted = lease.as_ref().map(|l| l.address);
        match dhcp_socket::acquire(WAN, wanted, DHCP_RETRY) {
            Ok(new) if current() => {
                if lease.as_ref() != Some(&new) {
                    eprint!("{}", bind(&new, lease_dns));
                }
                (lease, bound_at, failed) = (Some(new), Instant::now(), false);
            }
            Ok(_) => return,
            Err(e) => {
                eprintln!("postern: {WAN}: DHCP renewal: {e}");
                failed = true;
                let expired = lease.as_ref().is_some_and(|l| {
                    bound_at.elapsed() >= Duration::from_secs(l.lease_secs.into())
                });
                if expired && current() {
                    lease = None;
                    match net::remove_ipv4(WAN) {
                        Ok(()) => eprintln!("postern: {WAN}: DHCP lease ran out; address removed"),
                        Err(e) => eprintln!(
                            "postern: {WAN}: DHCP lease ran out; cannot remove the address: {e}"
                        ),
                    }
                }
            }
        }
    }
}

/// Puts a lease on eth0.
fn bind(lease: &Lease, lease_dns: bool) -> String {
    let cfg = net::Ipv4Config {
        address: lease.address,
        prefix_len: lease.prefix_len,
        gateway: lease.router,
    };
    let mut report = match net::configure_ipv4(WAN, &cfg) {
        Ok(()) => format!(
            "postern: {WAN} {}/{} gateway {} (DHCP from {}, {} s)\n",
            lease.address,
            lease.prefix_len,
            lease.router.map_or("none".into(), |g| g.to_string()),
            lease.server,
            lease.lease_secs
        ),
        Err(e) => format!("postern: cannot configure {WAN} from DHCP: {e}\n"),
    };
    if lease_dns && !lease.dns.is_empty() {
        report += &write_resolv_conf(&lease.dns);
    }
    report
}

/// eth0 as it is now, for the console's status screen: link, address, default gateway and
/// whether it answered ARP, resolvers.
pub fn status() -> String {
    if !net::link_exists(WAN) {
        return format!("{WAN}: not present\n");
    }
    let sys = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{WAN}/{f}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    };
    let mut out = format!("{WAN}: link {}, MAC {}\n", sys("operstate"), sys("address"));
    out += &match net::ipv4_address(WAN) {
        Ok(Some((a, p))) => format!("address: {a}/{p}\n"),
        Ok(None) => "address: none\n".into(),
        Err(e) => format!("address: cannot read ({e})\n"),
    };
    let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    out += &match default_gateway(&route) {
        Some(gw) => {
            let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
            let answered = if answers_arp(&arp, gw) {
                "answers ARP"
            } else {
                "no ARP answer yet"
            };
            format!("gateway: {gw} ({answered})\n")
        }
        None => "gateway: none\n".into(),
    };
    let resolv = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
    let dns: Vec<&str> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    out += &format!(
        "dns: {}\n",
        if dns.is_empty() {
            "none".to_string()
        } else {
            dns.join(" ")
        }
    );
    out
}

/// The gateway of the default route in /proc/net/route (addresses in host-order hex).
fn default_gateway(route: &str) -> Option<Ipv4Addr> {
    route.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (dest, gw) = (f.get(1)?, f.get(2)?);
        if *dest != "00000000" {
            return None;
        }
        let raw = u32::from_str_radix(gw, 16).ok()?;
        // /proc prints the address as the kernel holds it: network order read as a native u32.
        Some(Ipv4Addr::from(raw.to_ne_bytes()))
    })
}

/// Whether /proc/net/arp holds a complete entry (flags 0x2) for `ip`.
fn answers_arp(arp: &str, ip: Ipv4Addr) -> bool {
    let ip = ip.to_string();
    arp.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.first() == Some(&ip.as_str()) && f.get(2).is_some_and(|flags| *flags == "0x2")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_and_arp_from_proc() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let gw = default_gateway(route);
        if cfg!(target_endian = "little") {
            assert_eq!(gw, Some(Ipv4Addr::new(10, 0, 2, 2)));
        }
        assert_eq!(default_gateway("Iface\tDestination\n"), None);
        let arp = "IP address       HW type     Flags       HW address            Mask     Device\n\
                   10.0.2.2         0x1         0x2         52:55:0a:00:02:02     *        eth0\n\
                   10.0.2.3         0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        assert!(answers_arp(arp, Ipv4Addr::new(10, 0, 2, 2)));
        assert!(!answers_arp(arp, Ipv4Addr::new(10, 0, 2, 3)));
        assert!(!answers_arp(arp, Ipv4Addr::new(10, 0, 2, 4)));
    }
}
