//! An `AF_PACKET`/`SOCK_RAW` socket on one interface, for one ethertype: whole Ethernet frames in
//! and out, beside the kernel's own stack. The DHCP client and the ARP check use it. The `unsafe`
//! calls are libc's (rustix has no link-layer addresses).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;

/// One instruction of a classic BPF program (as `tcpdump -dd` prints them).
pub type FilterOp = libc::sock_filter;

/// Builds a [`FilterOp`].
pub const fn op(code: u16, jt: u8, jf: u8, k: u32) -> FilterOp {
    libc::sock_filter { code, jt, jf, k }
}

/// An interface's hardware address and index, from sysfs.
pub fn link_identity(ifname: &str) -> io::Result<([u8; 6], i32)> {
    if ifname.is_empty() || ifname.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {ifname:?}"),
        ));
    }
    let sys = Path::new("/sys/class/net").join(ifname);
    let mac = parse_mac(&std::fs::read_to_string(sys.join("address"))?)?;
    let index: i32 = std::fs::read_to_string(sys.join("ifindex"))?
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad ifindex"))?;
    Ok((mac, index))
}

pub fn parse_mac(s: &str) -> io::Result<[u8; 6]> {
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

/// A packet socket bound to one interface and one ethertype.
pub struct PacketSocket {
    fd: OwnedFd,
    index: i32,
    ethertype: u16,
}

impl PacketSocket {
    /// Opens and binds the socket; `filter`, when given, is attached before the bind so no frame
    /// it refuses is ever queued.
    pub fn bind(index: i32, ethertype: u16, filter: Option<&[FilterOp]>) -> io::Result<Self> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(ethertype.to_be()),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let s = PacketSocket {
            fd,
            index,
            ethertype,
        };
        if let Some(program) = filter {
            s.attach_filter(program)?;
        }
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

    fn attach_filter(&self, program: &[FilterOp]) -> io::Result<()> {
        let mut program = program.to_vec();
        let len = u16::try_from(program.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
        let fprog = libc::sock_fprog {
            len,
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
            sll_protocol: self.ethertype.to_be(),
            sll_ifindex: self.index,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 6,
            sll_addr: addr_bytes,
        }
    }

    /// Sends a whole Ethernet frame (its own header says where to).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let mut dst = [0xff; 6];
        if let Some(d) = frame.get(..6) {
            dst.copy_from_slice(d);
        }
        let to = self.address(&dst);
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
    pub fn recv(&self, buf: &mut [u8], wait: Duration) -> io::Result<Option<usize>> {
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

    #[test]
    fn interface_names_that_are_paths_are_refused() {
        assert_eq!(
            link_identity("../lo").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(link_identity("").is_err());
    }
}
