//! An interface's IPv6: the kernel's switches in /proc/sys/net/ipv6/conf/NAME (`disable_ipv6`,
//! `accept_ra`, `autoconf`), a static address (`SIOCSIFADDR` with an `in6_ifreq`) and default
//! route (`SIOCADDRT` with an `in6_rtmsg`) on an `AF_INET6` socket; and what the kernel holds,
//! read back from /proc/net/if_inet6 and /proc/net/ipv6_route.
//!
//! Each change first turns IPv6 off and on again on the interface: the kernel then drops every
//! address and route it had (an old static address, routes learnt from advertisements), makes a
//! new link-local address, and with SLAAC solicits a router at once.

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::net::{AddressFamily, SocketType, socket};

/// How an interface gets its IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Config {
    /// Router advertisements (stateless autoconfiguration).
    Slaac,
    Static {
        address: Ipv6Addr,
        prefix_len: u8,
        gateway: Option<Ipv6Addr>,
    },
    Off,
}

/// One address the kernel holds on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Address {
    pub address: Ipv6Addr,
    pub prefix_len: u8,
    /// The kernel's scope: 0x00 global, 0x20 link, 0x10 host.
    pub scope: u8,
    /// IFA_F_* flags: 0x40 tentative (DAD running), 0x80 permanent (static), 0x08 DAD failed.
    pub flags: u8,
}

impl Ipv6Address {
    pub fn is_link_local(&self) -> bool {
        self.scope == 0x20
    }
    /// Made from a router advertisement rather than set (neither permanent nor link-local).
    pub fn from_slaac(&self) -> bool {
        self.flags & 0x80 == 0 && !self.is_link_local()
    }
    pub fn dad_failed(&self) -> bool {
        self.flags & 0x08 != 0
    }
}

fn conf_dir(name: &str) -> io::Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    let dir = Path::new("/proc/sys/net/ipv6/conf").join(name);
    if !dir.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} missing: no IPv6 in this kernel, or no {name}",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

fn set(dir: &Path, knob: &str, value: u8) -> io::Result<()> {
    std::fs::write(dir.join(knob), format!("{value}\n"))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(knob).display())))
}

/// Applies `cfg` to the interface `name` (which should be up, so SLAAC can solicit a router).
pub fn configure_ipv6(name: &str, cfg: &Ipv6Config) -> io::Result<()> {
    let dir = conf_dir(name)?;
    set(&dir, "disable_ipv6", 1)?;
    let slaac = u8::from(*cfg == Ipv6Config::Slaac);
    set(&dir, "accept_ra", slaac)?;
    set(&dir, "autoconf", slaac)?;
    if *cfg == Ipv6Config::Off {
        return Ok(());
    }
    set(&dir, "disable_ipv6", 0)?;
    if let Ipv6Config::Static {
        address,
        prefix_len,
        gateway,
    } = *cfg
    {
        if !(1..=128).contains(&prefix_len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("prefix /{prefix_len} is not 1 to 128"),
            ));
        }
        let index = if_index(name)?;
        let sock =
            socket(AddressFamily::INET6, SocketType::DGRAM, None).map_err(io::Error::from)?;
        add_address(&sock, index, address, prefix_len)?;
        if let Some(gw) = gateway {
            add_default_route(&sock, index, gw)?;
        }
    }
    Ok(())
}

fn if_index(name: &str) -> io::Result<i32> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("ifindex"))?
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad ifindex"))
}

fn in6_addr(a: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: a.octets(),
    }
}

fn add_address(sock: &OwnedFd, index: i32, address: Ipv6Addr, prefix_len: u8) -> io::Result<()> {
    let mut req = libc::in6_ifreq {
        ifr6_addr: in6_addr(address),
        ifr6_prefixlen: u32::from(prefix_len),
        ifr6_ifindex: index,
    };
    // SAFETY: req is a valid, fully initialised in6_ifreq that outlives the call; SIOCSIFADDR
    // on an AF_INET6 socket reads exactly that struct.
    let r = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFADDR,
            &mut req as *mut libc::in6_ifreq,
        )
    };
    match r {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// `struct in6_rtmsg` of <linux/ipv6_route.h> (libc keeps its fields private).
#[repr(C)]
struct In6Rtmsg {
    dst: libc::in6_addr,
    src: libc::in6_addr,
    gateway: libc::in6_addr,
    kind: u32,
    dst_len: u16,
    src_len: u16,
    metric: u32,
    info: libc::c_ulong,
    flags: u32,
    ifindex: libc::c_int,
}

fn add_default_route(sock: &OwnedFd, index: i32, gateway: Ipv6Addr) -> io::Result<()> {
    let mut rt = In6Rtmsg {
        dst: in6_addr(Ipv6Addr::UNSPECIFIED),
        src: in6_addr(Ipv6Addr::UNSPECIFIED),
        gateway: in6_addr(gateway),
        kind: 0,
        dst_len: 0,
        src_len: 0,
        // 0: the kernel's default metric for routes set by hand.
        metric: 0,
        info: 0,
        flags: u32::from(libc::RTF_UP | libc::RTF_GATEWAY),
        ifindex: index,
    };
    // SAFETY: rt is a valid, fully initialised struct in6_rtmsg that outlives the call; the
    // kernel reads only that struct for SIOCADDRT on an AF_INET6 socket.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT, &mut rt as *mut In6Rtmsg) };
    match r {
        0 => Ok(()),
        _ => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            e => Err(io::Error::new(
                e.kind(),
                format!("default route via {gateway}: {e}"),
            )),
        },
    }
}

/// The interface's IPv6 addresses, from /proc/net/if_inet6 (empty without IPv6).
pub fn ipv6_addresses(name: &str) -> Vec<Ipv6Address> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    parse_if_inet6(&text, name)
}

/// The gateway of the interface's IPv6 default route, from /proc/net/ipv6_route.
pub fn ipv6_default_gateway(name: &str) -> Option<Ipv6Addr> {
    let text = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    parse_default_route(&text, name)
}

fn hex_addr(s: &str) -> Option<Ipv6Addr> {
    (s.len() == 32)
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
        .map(Ipv6Addr::from)
}

/// Lines of `ADDRESS IFINDEX PREFIX SCOPE FLAGS NAME`, all hex but the name.
fn parse_if_inet6(text: &str, name: &str) -> Vec<Ipv6Address> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 6 || f[5] != name {
                return None;
            }
            let byte = |s: &str| u8::from_str_radix(s, 16).ok();
            Some(Ipv6Address {
                address: hex_addr(f[0])?,
                prefix_len: byte(f[2])?,
                scope: byte(f[3])?,
                flags: byte(f[4])?,
            })
        })
        .collect()
}

/// Lines of `DEST DEST_LEN SRC SRC_LEN NEXTHOP METRIC REFCNT USE FLAGS NAME`: the default
/// route is ::/0 with a next hop.
fn parse_default_route(text: &str, name: &str) -> Option<Ipv6Addr> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() != 10 || f[9] != name || f[1] != "00" || hex_addr(f[0])? != Ipv6Addr::UNSPECIFIED
        {
            return None;
        }
        hex_addr(f[4]).filter(|gw| !gw.is_unspecified())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_proc_net_if_inet6() {
        let text = "fe80000000000000505400fffe123456 02 40 20 80     eth0\n\
                    fec00000000000005054fffe00123456 02 40 00 00     eth0\n\
                    20010db8000000000000000000000010 02 40 00 c0     eth0\n\
                    00000000000000000000000000000001 01 80 10 80       lo\n";
        let a = parse_if_inet6(text, "eth0");
        assert_eq!(a.len(), 3);
        assert!(a[0].is_link_local() && !a[0].from_slaac());
        assert_eq!(
            a[1].address,
            "fec0::5054:fffe:12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert!(a[1].from_slaac());
        assert_eq!(a[2].address, "2001:db8::10".parse::<Ipv6Addr>().unwrap());
        assert_eq!((a[2].prefix_len, a[2].from_slaac()), (64, false));
        assert_eq!(a[2].flags & 0x40, 0x40, "tentative");
        assert!(parse_if_inet6("garbage\n", "eth0").is_empty());
    }

    #[test]
    fn the_default_route_from_proc_net_ipv6_route() {
        let text = "fec00000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
                    00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000002 00000400 00000001 00000000 00450003     eth0\n\
                    00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        assert_eq!(
            parse_default_route(text, "eth0"),
            Some("fe80::2".parse().unwrap())
        );
        assert_eq!(parse_default_route(text, "lo"), None);
        assert_eq!(parse_default_route("", "eth0"), None);
    }

    #[test]
    fn names_that_are_paths_are_refused_before_any_write() {
        assert_eq!(
            configure_ipv6("../all", &Ipv6Config::Off)
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
