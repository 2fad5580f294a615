//! The sockets the DHCP client ([`super::dhcp_client`]) needs on an interface: a packet socket
//! for its frames (filtered to UDP to port 68, so nothing else on the wire is copied to it), and
//! a UDP socket bound to port 68, so the kernel does not answer a unicast reply (every ACK of a
//! renewal) with ICMP port unreachable. The UDP socket's own copies are thrown away.

use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use super::packet::{ETH_P_IP, FilterOp, PacketSocket, link_identity, op};

/// `udp dst port 68` for unfragmented IPv4 over Ethernet, as tcpdump -dd compiles it.
const PORT_68: [FilterOp; 11] = [
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

/// DHCP's sockets on one interface, for as long as a lease is kept there.
pub struct DhcpSocket {
    frames: PacketSocket,
    /// None while another socket holds the port (an older client not yet stopped); bound again
    /// at the next receive.
    port68: Option<UdpSocket>,
    mac: [u8; 6],
}

impl DhcpSocket {
    pub fn open(ifname: &str) -> io::Result<DhcpSocket> {
        let (mac, index) = link_identity(ifname)?;
        let frames = PacketSocket::bind(index, ETH_P_IP, Some(&PORT_68))?;
        Ok(DhcpSocket {
            frames,
            port68: bind_port68(),
            mac,
        })
    }

    /// The interface's hardware address (the client's `chaddr`).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.frames.send(frame)
    }

    /// One frame to port 68 within `wait`, or None.
    pub fn recv(&mut self, buf: &mut [u8], wait: Duration) -> io::Result<Option<usize>> {
        match &self.port68 {
            Some(udp) => {
                let mut scratch = [0u8; 64];
                while udp.recv_from(&mut scratch).is_ok() {}
            }
            None => self.port68 = bind_port68(),
        }
        self.frames.recv(buf, wait)
    }
}

fn bind_port68() -> Option<UdpSocket> {
    let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68)).ok()?;
    udp.set_nonblocking(true).ok()?;
    Some(udp)
}

/// A random seed for transaction ids, so two boxes booting together do not take each other's
/// replies.
pub fn transaction_seed() -> u32 {
    let mut b = [0u8; 4];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut b))
    {
        Ok(()) => u32::from_ne_bytes(b),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5057_4e31, |d| d.subsec_nanos() ^ std::process::id()),
    }
}
