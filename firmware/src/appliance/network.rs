//! eth0 from the stored network (or the boot parameters that override it): the static address,
//! its gateway and the resolvers in /etc/resolv.conf, which delivery reads. Applied at boot and
//! again whenever the console stores a new network, without a reboot.

use std::net::Ipv4Addr;

use hal::sys::net;

use super::boot::WAN;
use crate::config::box_settings::{Ipv4Method, NetworkSettings};

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Applies `n` to eth0; returns what it did, as one line for the console and boot log.
pub fn apply(n: &NetworkSettings) -> String {
    if !net::link_exists(WAN) {
        return format!("postern: no {WAN}: the network is stored and applied once {WAN} exists\n");
    }
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
        Ipv4Method::Dhcp => format!(
            "postern: {WAN} is set to DHCP, but this firmware has no DHCP client yet: \
             {WAN} has no address (set a static one in the menu, 2)\n"
        ),
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
