//! Network links, IPv4 addresses and the default route, set with the classic ioctls.
//!
//! `SIOCSIFFLAGS`, `SIOCSIFADDR`, `SIOCSIFNETMASK` and `SIOCADDRT` on an `AF_INET` datagram socket
//! do all a static configuration needs, without a netlink library. They are the only `unsafe` here.

use std::ffi::c_char;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use rustix::net::{AddressFamily, SocketType, socket};

/// A static IPv4 configuration for one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Config {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
}

/// Why an interface name cannot be used.
fn bad_name(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("interface name {name:?} is empty or too long"),
    )
}

/// Whether the kernel has an interface of that name (drivers register them asynchronously).
pub fn link_exists(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && Path::new("/sys/class/net").join(name).exists()
}

/// Brings an interface up.
pub fn link_up(name: &str) -> io::Result<()> {
    set_flag(name, libc::IFF_UP, true)
}

/// Takes an interface down (before reboot: a virtio-net guest was seen to hang otherwise).
pub fn link_down(name: &str) -> io::Result<()> {
    set_flag(name, libc::IFF_UP, false)
}

/// Sets the interface's IPv4 address and netmask, and replaces the default route with one through
/// the gateway, if one is given (else the box has none).
pub fn configure_ipv4(name: &str, cfg: &Ipv4Config) -> io::Result<()> {
    if cfg.prefix_len > 32 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("prefix /{} is over 32", cfg.prefix_len),
        ));
    }
    let sock = inet_socket()?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_addr = sockaddr(cfg.address);
    ioctl(&sock, libc::SIOCSIFADDR, &mut req)?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_netmask = sockaddr(netmask(cfg.prefix_len));
    ioctl(&sock, libc::SIOCSIFNETMASK, &mut req)?;
    clear_default_routes(&sock)?;
    if let Some(gw) = cfg.gateway {
        add_default_route(&sock, gw)?;
    }
    Ok(())
}

/// Removes the interface's IPv4 address (and with it the routes through it): a DHCP lease ran
/// out. Setting 0.0.0.0 is how the classic ioctl deletes it.
pub fn remove_ipv4(name: &str) -> io::Result<()> {
    let sock = inet_socket()?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_addr = sockaddr(Ipv4Addr::UNSPECIFIED);
    ioctl(&sock, libc::SIOCSIFADDR, &mut req)
}

/// The interface's IPv4 address and prefix length, or None when it has none.
pub fn ipv4_address(name: &str) -> io::Result<Option<(Ipv4Addr, u8)>> {
    let sock = inet_socket()?;
    let mut req = ifreq(name)?;
    match ioctl(&sock, libc::SIOCGIFADDR, &mut req) {
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => return Ok(None),
        r => r?,
    }
    // SAFETY: SIOCGIFADDR just filled the address member of the union.
    let address = from_sockaddr(unsafe { req.ifr_ifru.ifru_addr });
    let mut req = ifreq(name)?;
    ioctl(&sock, libc::SIOCGIFNETMASK, &mut req)?;
    // SAFETY: SIOCGIFNETMASK just filled the netmask member of the union.
    let mask = from_sockaddr(unsafe { req.ifr_ifru.ifru_netmask });
    Ok(Some((address, u32::from(mask).leading_ones() as u8)))
}

fn from_sockaddr(sa: libc::sockaddr) -> Ipv4Addr {
    // SAFETY: the kernel filled an AF_INET sockaddr, which is a sockaddr_in of the same size.
    let sin = unsafe { std::mem::transmute_copy::<libc::sockaddr, libc::sockaddr_in>(&sa) };
    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))
}

/// The netmask of a prefix length (`24` → 255.255.255.0).
pub fn netmask(prefix_len: u8) -> Ipv4Addr {
    match prefix_len {
        0 => Ipv4Addr::UNSPECIFIED,
        n => Ipv4Addr::from(u32::MAX << (32 - u32::from(n.min(32)))),
    }
}

fn inet_socket() -> io::Result<OwnedFd> {
    socket(AddressFamily::INET, SocketType::DGRAM, None).map_err(io::Error::from)
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(bad_name(name));
    }
    // SAFETY: ifreq is plain old data (a name array and a union of integers, sockaddrs and a
    // pointer); all-zero bytes are a valid value of every field.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as c_char;
    }
    Ok(req)
}

fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes on Linux and the kernel reads an AF_INET
    // sockaddr as a sockaddr_in; transmute_copy reads exactly size_of::<sockaddr>() bytes.
    const _: () =
        assert!(std::mem::size_of::<libc::sockaddr_in>() == std::mem::size_of::<libc::sockaddr>());
    unsafe { std::mem::transmute_copy::<libc::sockaddr_in, libc::sockaddr>(&sin) }
}

fn set_flag(name: &str, flag: libc::c_int, on: bool) -> io::Result<()> {
    let sock = inet_socket()?;
    let mut req = ifreq(name)?;
    ioctl(&sock, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS just filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    let flag = flag as libc::c_short;
    req.ifr_ifru.ifru_flags = if on { flags | flag } else { flags & !flag };
    ioctl(&sock, libc::SIOCSIFFLAGS, &mut req)
}

/// `struct rtentry` of <linux/route.h> (libc has it for musl but not glibc).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

fn add_default_route(sock: &OwnedFd, gateway: Ipv4Addr) -> io::Result<()> {
    match route_ioctl(sock, libc::SIOCADDRT, Some(gateway)) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// Deletes every default route, so a changed address or gateway replaces the old one.
fn clear_default_routes(sock: &OwnedFd) -> io::Result<()> {
    // Each call deletes one; a handful is more than one interface ever has.
    for _ in 0..8 {
        match route_ioctl(sock, libc::SIOCDELRT, None) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn route_ioctl(
    sock: &OwnedFd,
    request: libc::c_ulong,
    gateway: Option<Ipv4Addr>,
) -> io::Result<()> {
    let mut rt = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr(Ipv4Addr::UNSPECIFIED),
        rt_gateway: sockaddr(gateway.unwrap_or(Ipv4Addr::UNSPECIFIED)),
        rt_genmask: sockaddr(Ipv4Addr::UNSPECIFIED),
        rt_flags: libc::RTF_UP
            | if gateway.is_some() {
                libc::RTF_GATEWAY
            } else {
                0
            },
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: std::ptr::null_mut(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    // SAFETY: rt is a valid, fully initialised struct rtentry that outlives the call; rt_dev is
    // null, so the kernel reads no other memory.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), request, &mut rt as *mut RtEntry) };
    match r {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

fn ioctl(sock: &OwnedFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: req is a valid ifreq with a NUL-terminated name (ifreq() keeps the last byte zero)
    // that outlives the call; each request used here reads or writes only that struct.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), request, req as *mut libc::ifreq) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_of_prefixes() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(netmask(32), Ipv4Addr::BROADCAST);
        assert_eq!(netmask(20), Ipv4Addr::new(255, 255, 240, 0));
    }

    #[test]
    fn interface_names_are_checked_before_any_ioctl() {
        assert_eq!(link_up("").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            link_up("a-name-much-too-long").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(!link_exists("../etc"));
    }

    #[test]
    fn loopback_flags_can_be_read() {
        // Reading flags needs no privilege; lo exists on every Linux host and container.
        let sock = inet_socket().unwrap();
        let mut req = ifreq("lo").unwrap();
        ioctl(&sock, libc::SIOCGIFFLAGS, &mut req).unwrap();
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        assert_ne!(flags as libc::c_int & libc::IFF_LOOPBACK, 0);
    }
}
