//! The DHCP client ([`super::dhcp`]) on an interface: an `AF_PACKET` socket bound to it for the
//! frames, and a UDP socket bound to port 68 meanwhile, so the kernel does not answer a unicast
//! reply with ICMP port unreachable. The `unsafe` calls are the packet socket's (libc; rustix has
//! no link-layer addresses).

use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::dhcp::{Client, Lease, Step};

/// How long to wait for an answer before asking again (doubling, RFC 2131 4.1).
const FIRST_WAIT: Duration = Duration::from_secs(2);
const MAX_WAIT: Duration = Duration::from_secs(16);

/// Runs one exchange on `ifname` (which must be up) until a server acknowledges or `limit`
/// passes. `wanted` is asked for again (a renewal, or the previous lease).
pub fn acquire(ifname: &str, wanted: Option<Ipv4Addr>, limit: Duration) -> io::Result<Lease> {
    let sys = std::path::Path::new("/sys/class/net").join(ifname);
    let mac = parse_mac(&std::fs::read_to_string(sys.join("address"))?)?;
    let index: i32 = std::fs::read_to_string(sys.join("ifindex"))?
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad ifindex"))?;
    let socket = PacketSocket::bind(index)?;
    // Held for the exchange only; EADDRINUSE (a renewal while another holds it) is no reason to stop.
    let _port68 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68)).ok();
    let mut client = Client::new(mac, transaction_id(), wanted);
    let start = Instant::now();
    let mut wait = FIRST_WAIT;
    let mut buf = vec![0u8; 2048];
    'exchange: while start.elapsed() < limit {
        socket.send(&client.discover())?;
        let deadline = Instant::now() + wait;
        wait = (wait * 2).min(MAX_WAIT);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(n) = socket.recv(&mut buf, left)? else {
                continue;
            };
            match client.receive(&buf[..n]) {
                Step::Ignored => {}
                Step::Send(request) => socket.send(&request)?,
                Step::Bound(lease) => return Ok(lease),
                Step::Refused => continue 'exchange,
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "no DHCP server answered on {ifname} within {} s",
            limit.as_secs()
        ),
    ))
}

fn parse_mac(s: &str) -> io::Result<[u8; 6]> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad MAC address {s:?}"));
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next().ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// A random transaction id, so two boxes booting together do not take each other's replies.
fn transaction_id() -> u32 {
    let mut b = [0u8; 4];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut b))
    {
        Ok(()) => u32::from_ne_bytes(b),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5057_4e31, |d| d.subsec_nanos() ^ std::process::id()),
    }
}

/// An `AF_PACKET`/`SOCK_RAW` socket for IPv4 frames on one interface.
struct PacketSocket {
    fd: OwnedFd,
    index: i32,
}

const ETH_P_IP: u16 = 0x0800;

impl PacketSocket {
    fn bind(index: i32) -> io::Result<PacketSocket> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_IP.to_be()),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let s = PacketSocket { fd, index };
        s.attach_filter()?;
        let addr = s.address(&[0; 6]);
        // SAFETY: addr is a valid sockaddr_ll and the length passed is its size.
        let r = unsafe {
            libc::bind(
                s.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(s)
    }

    /// Lets only IPv4 UDP to port 68 (unfragmented) through to this socket: without it every
    /// frame on the wire would be copied here while the exchange runs.
    fn attach_filter(&self) -> io::Result<()> {
        // `udp dst port 68` for IPv4 over Ethernet, as tcpdump -dd compiles it.
        let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
        let mut program = [
            op(0x28, 0, 0, 12),      // ldh [12]: ethertype
            op(0x15, 0, 8, 0x0800),  // IPv4, else drop
            op(0x30, 0, 0, 23),      // ldb [23]: IP protocol
            op(0x15, 0, 6, 17),      // UDP, else drop
            op(0x28, 0, 0, 20),      // ldh [20]: fragment offset
            op(0x45, 4, 0, 0x1fff),  // a later fragment: drop
            op(0xb1, 0, 0, 14),      // x = IP header length
            op(0x48, 0, 0, 16),      // ldh [x + 16]: UDP destination port
            op(0x15, 0, 1, 68),      // port 68, else drop
            op(0x06, 0, 0, 0x40000), // accept the whole frame
            op(0x06, 0, 0, 0),       // drop
        ];
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: fprog points at `program`, which outlives the call; the kernel copies it.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn address(&self, mac: &[u8; 6]) -> libc::sockaddr_ll {
        let mut addr_bytes = [0u8; 8];
        addr_bytes[..6].copy_from_slice(mac);
        libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: ETH_P_IP.to_be(),
            sll_ifindex: self.index,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 6,
            sll_addr: addr_bytes,
        }
    }

    /// Sends a whole Ethernet frame (its own header says where to).
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        let to = self.address(&[0xff; 6]);
        // SAFETY: frame is a valid buffer of frame.len() bytes; to is a valid sockaddr_ll.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One frame within `wait`, or None.
    fn recv(&self, buf: &mut [u8], wait: Duration) -> io::Result<Option<usize>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: pfd is one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        match r {
            0 => return Ok(None),
            r if r < 0 => {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::Interrupted {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
            _ => {}
        }
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_from_sysfs() {
        assert_eq!(
            parse_mac("52:54:00:12:34:56\n").unwrap(),
            [0x52, 0x54, 0, 0x12, 0x34, 0x56]
        );
        assert!(parse_mac("52:54:00:12:34").is_err());
        assert!(parse_mac("52:54:00:12:34:56:78").is_err());
        assert!(parse_mac("zz:54:00:12:34:56").is_err());
    }
}
