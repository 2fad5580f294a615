//! eth0 from the stored network (or the boot parameters that override it): a static address
//! with its gateway, or a DHCP lease kept by a thread that renews it; and the resolvers in
//! /etc/resolv.conf, which every DNS client of the box follows. Applied at boot and again whenever the console stores
//! a new network, without a reboot.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hal::sys::{arp, net, net6};

use super::boot::WAN;
use crate::config::box_ipv6::Ipv6Method;
use crate::config::box_settings::{Ipv4Method, NetworkSettings};

const RESOLV_CONF: &str = "/etc/resolv.conf";
/// How long the first DHCP exchange may hold up the boot (or the console) before it goes on in
/// the background.
const DHCP_FIRST: Duration = Duration::from_secs(30);
/// How long the gateway has to answer ARP.
const ARP_WAIT: Duration = Duration::from_secs(1);
/// How long eth0 may take to find its link before the gateway is checked.
const LINK_WAIT: Duration = Duration::from_secs(5);

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
            super::dhcp::forget();
            match net::link_up(WAN).and_then(|()| net::configure_ipv4(WAN, &cfg)) {
                Ok(()) => {
                    let check = s.gateway().map(|gw| gateway_warning(s.address(), gw));
                    format!("postern: {WAN} {s}\n{}", check.unwrap_or_default())
                }
                Err(e) => format!("postern: cannot configure {WAN}: {e}\n"),
            }
        }
        Ipv4Method::Dhcp => {
            if let Err(e) = net::link_up(WAN) {
                return format!("postern: cannot bring up {WAN}: {e}\n");
            }
            let current = move || GENERATION.load(Ordering::SeqCst) == generation;
            super::dhcp::start(current, n.dns.is_empty(), DHCP_FIRST)
        }
    };
    // Stored resolvers, or none for a static network without them; DHCP without stored ones
    // leaves resolv.conf to the lease.
    {
        let mut r = RESOLVERS.lock().unwrap_or_else(|e| e.into_inner());
        r.stored = !n.dns.is_empty();
        // Advertised resolvers belong to SLAAC: another method drops them.
        if n.ipv6 != Ipv6Method::Slaac {
            r.from_routers.clear();
        }
    }
    if !(n.ipv4 == Ipv4Method::Dhcp && n.dns.is_empty()) {
        report += &write_resolv_conf(&n.dns);
    }
    super::router_dns::start();
    report + &apply_ipv6(n.ipv6)
}

/// The IPv6 last applied: applying it again would drop the addresses SLAAC made for nothing.
static APPLIED_IPV6: Mutex<Option<Ipv6Method>> = Mutex::new(None);

/// Applies eth0's IPv6 when it changed; one line on what was done.
fn apply_ipv6(m: Ipv6Method) -> String {
    let Ok(mut applied) = APPLIED_IPV6.lock() else {
        return String::new();
    };
    if *applied == Some(m) {
        return String::new();
    }
    let cfg = match m {
        Ipv6Method::Slaac => net6::Ipv6Config::Slaac,
        Ipv6Method::Off => net6::Ipv6Config::Off,
        Ipv6Method::Static(s) => net6::Ipv6Config::Static {
            address: s.address(),
            prefix_len: s.prefix_len(),
            gateway: s.gateway(),
        },
    };
    match net6::configure_ipv6(WAN, &cfg) {
        Ok(()) => {
            *applied = Some(m);
            format!("postern: {WAN} IPv6 {m}\n")
        }
        Err(e) => format!("postern: cannot configure {WAN}'s IPv6 ({m}): {e}\n"),
    }
}

/// The resolvers resolv.conf holds, from their sources: the stored ones or the DHCP lease's,
/// and the IPv6 ones routers advertise (used only while the admin stored none).
struct Resolvers {
    configured: Vec<IpAddr>,
    from_routers: Vec<Ipv6Addr>,
    stored: bool,
}

static RESOLVERS: Mutex<Resolvers> = Mutex::new(Resolvers {
    configured: Vec::new(),
    from_routers: Vec::new(),
    stored: false,
});

/// Sets the resolvers of the lease or the stored ones and writes resolv.conf; returns a line
/// only on failure.
pub fn write_resolv_conf(dns: &[IpAddr]) -> String {
    let mut r = RESOLVERS.lock().unwrap_or_else(|e| e.into_inner());
    r.configured = dns.to_vec();
    write(&r)
}

/// Sets the resolvers routers advertise (RFC 8106) and writes resolv.conf when they are used.
pub fn set_router_resolvers(dns: &[Ipv6Addr]) -> String {
    let mut r = RESOLVERS.lock().unwrap_or_else(|e| e.into_inner());
    if r.from_routers == dns {
        return String::new();
    }
    r.from_routers = dns.to_vec();
    match r.stored {
        true => String::new(),
        false => write(&r),
    }
}

/// The text of resolv.conf: the stored or leased resolvers first, then the routers' (glibc
/// reads three).
fn resolv_conf_text(r: &Resolvers) -> String {
    let v6: &[Ipv6Addr] = if r.stored { &[] } else { &r.from_routers };
    r.configured
        .iter()
        .copied()
        .chain(v6.iter().map(|a| IpAddr::from(*a)))
        .take(3)
        .map(|a| format!("nameserver {a}\n"))
        .collect()
}

/// Writes the resolvers delivery, the DNS restrictions and LDAP ask (each looks at the file
/// before a lookup). Written aside and renamed, so a lookup never reads half a file.
fn write(r: &Resolvers) -> String {
    let aside = format!("{RESOLV_CONF}.new");
    let text = resolv_conf_text(r);
    match std::fs::write(&aside, text).and_then(|()| std::fs::rename(&aside, RESOLV_CONF)) {
        Ok(()) => String::new(),
        Err(e) => format!("postern: cannot write {RESOLV_CONF}: {e}\n"),
    }
}

/// Says whether the gateway answers ARP, as one warning line when it does not (nothing when it
/// does): mail would wait in the queue behind a gateway that is not there.
pub fn gateway_warning(source: Ipv4Addr, gateway: Ipv4Addr) -> String {
    // A NIC negotiates its link for a few seconds after it is brought up.
    if !super::boot::wait_for(has_carrier, LINK_WAIT) {
        return format!(
            "postern: warning: {WAN} has no link after {} s (cable, switch port?): \
             gateway {gateway} not checked\n",
            LINK_WAIT.as_secs()
        );
    }
    match arp::probe(WAN, source, gateway, ARP_WAIT) {
        Ok(Some(_)) => String::new(),
        Ok(None) => format!(
            "postern: warning: gateway {gateway} does not answer ARP on {WAN} within {} s \
             (check the address, prefix, gateway and cable)\n",
            ARP_WAIT.as_secs()
        ),
        Err(e) => format!("postern: warning: cannot check gateway {gateway} with ARP: {e}\n"),
    }
}

fn has_carrier() -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{WAN}/carrier")).is_ok_and(|c| c.trim() == "1")
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
        Some(gw) => format!("gateway: {gw} ({})\n", gateway_reachability(gw)),
        None => "gateway: none\n".into(),
    };
    out += &super::dhcp::status(Instant::now());
    out += &ipv6_status(&net6::ipv6_addresses(WAN), net6::ipv6_default_gateway(WAN));
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

/// eth0's IPv6 addresses, each with where it came from, and its default gateway.
fn ipv6_status(addresses: &[net6::Ipv6Address], gateway: Option<std::net::Ipv6Addr>) -> String {
    if addresses.is_empty() {
        return "ipv6: none\n".into();
    }
    let shown: Vec<String> = addresses
        .iter()
        .map(|a| {
            let origin = if a.is_link_local() {
                "link-local"
            } else if a.from_slaac() {
                "SLAAC"
            } else {
                "static"
            };
            let state = if a.dad_failed() {
                ", in use by another host"
            } else if a.flags & 0x40 != 0 {
                ", being checked"
            } else {
                ""
            };
            format!("{}/{} ({origin}{state})", a.address, a.prefix_len)
        })
        .collect();
    format!(
        "ipv6: {}\nipv6 gateway: {}\n",
        shown.join(", "),
        gateway.map_or("none".into(), |g| g.to_string())
    )
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

/// Whether the gateway answers ARP now, as the status screen says it.
fn gateway_reachability(gateway: Ipv4Addr) -> String {
    let source = net::ipv4_address(WAN)
        .ok()
        .flatten()
        .map_or(Ipv4Addr::UNSPECIFIED, |(a, _)| a);
    match arp::probe(WAN, source, gateway, ARP_WAIT) {
        Ok(Some(mac)) => format!("answers ARP from {}", arp::format_mac(mac)),
        Ok(None) => format!("no ARP answer within {} s", ARP_WAIT.as_secs()),
        Err(e) => format!("cannot check with ARP: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_gateway_from_proc() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let gw = default_gateway(route);
        if cfg!(target_endian = "little") {
            assert_eq!(gw, Some(Ipv4Addr::new(10, 0, 2, 2)));
        }
        assert_eq!(default_gateway("Iface\tDestination\n"), None);
    }

    #[test]
    fn ipv6_status_says_where_each_address_came_from() {
        let a = |s: &str, scope, flags| net6::Ipv6Address {
            address: s.parse().unwrap(),
            prefix_len: 64,
            scope,
            flags,
        };
        assert_eq!(ipv6_status(&[], None), "ipv6: none\n");
        let shown = ipv6_status(
            &[
                a("2001:db8::10", 0, 0x80),
                a("fec0::5054:ff:fe12:3456", 0, 0),
                a("2001:db8::11", 0, 0x88),
                a("fe80::1", 0x20, 0xc0),
            ],
            Some("fe80::2".parse().unwrap()),
        );
        assert_eq!(
            shown,
            "ipv6: 2001:db8::10/64 (static), fec0::5054:ff:fe12:3456/64 (SLAAC), \
             2001:db8::11/64 (static, in use by another host), fe80::1/64 (link-local, being checked)\n\
             ipv6 gateway: fe80::2\n"
        );
    }
}

#[cfg(test)]
mod resolver_tests {
    use super::*;

    #[test]
    fn resolv_conf_takes_ipv4_first_and_router_servers_only_without_stored_ones() {
        let v4 = vec![IpAddr::from([192, 0, 2, 53])];
        let v6: Vec<Ipv6Addr> = vec![
            "2001:db8::53".parse().unwrap(),
            "2001:db8::54".parse().unwrap(),
            "2001:db8::55".parse().unwrap(),
        ];
        let mut r = Resolvers {
            configured: v4,
            from_routers: v6,
            stored: false,
        };
        assert_eq!(
            resolv_conf_text(&r),
            "nameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 2001:db8::54\n"
        );
        r.stored = true;
        assert_eq!(resolv_conf_text(&r), "nameserver 192.0.2.53\n");
        r.configured.clear();
        r.stored = false;
        assert_eq!(resolv_conf_text(&r).lines().count(), 3);
    }
}
