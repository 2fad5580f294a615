//! DHCPv4's messages (RFC 2131) as the box's client sends and reads them, with smoltcp's wire
//! types as the codec, and the lease they give. The state machine that decides what to send when
//! is [`super::dhcp_client`]; the sockets are [`super::dhcp_socket`].
//!
//! UDP checksums of received frames are not verified: NIC offload leaves them partial, and the
//! kernel's own checks already passed or did not apply.

use std::net::Ipv4Addr;
use std::time::Duration;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

pub use smoltcp::wire::DhcpMessageType as MessageType;

pub(crate) const CLIENT_PORT: u16 = 68;
pub(crate) const SERVER_PORT: u16 = 67;
/// Options asked for: subnet mask, router, DNS servers.
const PARAMETERS: &[u8] = &[1, 3, 6];
/// Used when the server gives no lease time (RFC 2131 has none; a day is common).
const DEFAULT_LEASE: u32 = 86_400;
/// RFC 2132's lease time that never ends.
const INFINITE: u32 = u32::MAX;
/// Shorter leases are kept as if they were this long: a server that hands out a lease of a few
/// seconds would otherwise have the box renewing in a loop.
const MIN_LEASE: u32 = 60;

/// An address leased from a DHCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub server: Ipv4Addr,
    pub lease_secs: u32,
    /// T1, if the server said.
    pub renew_secs: Option<u32>,
    /// T2, if the server said.
    pub rebind_secs: Option<u32>,
}

impl Lease {
    /// The lease's length, or None for one that never ends.
    pub fn duration(&self) -> Option<Duration> {
        (self.lease_secs != INFINITE)
            .then(|| Duration::from_secs(self.lease_secs.max(MIN_LEASE).into()))
    }

    /// T1, when RENEWING starts: the server's, or half the lease (RFC 2131 4.4.5), never after T2.
    pub fn renew_after(&self) -> Option<Duration> {
        let lease = self.duration()?;
        let t1 = self
            .renew_secs
            .map_or(lease / 2, |s| Duration::from_secs(s.into()));
        Some(t1.min(self.rebind_after()?))
    }

    /// T2, when REBINDING starts: the server's, or 7/8 of the lease, never after its end.
    pub fn rebind_after(&self) -> Option<Duration> {
        let lease = self.duration()?;
        let t2 = self
            .rebind_secs
            .map_or(lease * 7 / 8, |s| Duration::from_secs(s.into()));
        Some(t2.min(lease))
    }

    /// Whether `other` puts something else on the interface or in resolv.conf (a renewal that
    /// only extends the lease does not).
    pub fn same_network(&self, other: &Lease) -> bool {
        (self.address, self.prefix_len, self.router, &self.dns)
            == (other.address, other.prefix_len, other.router, &other.dns)
    }
}

/// Where a message goes on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// To every host: 255.255.255.255 and the Ethernet broadcast address.
    Broadcast,
    /// To one server, through the hardware address its last message came from (the server on
    /// the link, or the relay that forwarded it).
    Unicast { ip: Ipv4Addr, mac: [u8; 6] },
}

/// A message the client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub kind: MessageType,
    pub xid: u32,
    /// `ciaddr`: set (and the IP source) only while the client holds a lease it can answer ARP
    /// for, that is when renewing or rebinding.
    pub client_ip: Ipv4Addr,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    /// Asks for a broadcast reply: needed while the client has no address, since the kernel
    /// would drop a unicast one before the packet socket saw it.
    pub broadcast_reply: bool,
    pub to: Destination,
}

impl Outgoing {
    /// The whole Ethernet frame from `mac`.
    pub fn frame(&self, mac: [u8; 6]) -> Vec<u8> {
        let mac = EthernetAddress(mac);
        let dhcp = DhcpRepr {
            message_type: self.kind,
            transaction_id: self.xid,
            secs: 0,
            client_hardware_address: mac,
            client_ip: self.client_ip,
            your_ip: Ipv4Addr::UNSPECIFIED,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: None,
            subnet_mask: None,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: self.broadcast_reply,
            requested_ip: self.requested_ip,
            client_identifier: Some(mac),
            server_identifier: self.server_id,
            parameter_request_list: Some(PARAMETERS),
            dns_servers: None,
            max_size: None,
            lease_duration: None,
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let (dst_ip, dst_mac) = match self.to {
            Destination::Broadcast => (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST),
            Destination::Unicast { ip, mac } => (ip, EthernetAddress(mac)),
        };
        let udp = UdpRepr {
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
        };
        let ip = Ipv4Repr {
            src_addr: self.client_ip,
            dst_addr: dst_ip,
            next_header: IpProtocol::Udp,
            payload_len: 8 + dhcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: mac,
            dst_addr: dst_mac,
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
        let caps = ChecksumCapabilities::default();
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut frame);
        let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
        ip.emit(&mut packet, &caps);
        let mut datagram = UdpPacket::new_unchecked(packet.payload_mut());
        let (src, dst) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
        udp.emit(
            &mut datagram,
            &src,
            &dst,
            dhcp.buffer_len(),
            |payload| {
                // The buffer is exactly buffer_len() long: emitting cannot fail.
                let _ = dhcp.emit(&mut DhcpPacket::new_unchecked(payload));
            },
            &caps,
        );
        buf
    }
}

/// The fields of a server's message this client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The hardware address the frame came from: the server, or the relay in front of it.
    pub source_mac: [u8; 6],
    pub kind: MessageType,
    pub xid: u32,
    pub client_mac: [u8; 6],
    pub your_ip: Ipv4Addr,
    pub server_id: Option<Ipv4Addr>,
    pub router: Option<Ipv4Addr>,
    pub subnet_mask: Option<Ipv4Addr>,
    pub dns: Option<Vec<Ipv4Addr>>,
    pub lease_secs: Option<u32>,
    pub renew_secs: Option<u32>,
    pub rebind_secs: Option<u32>,
}

impl Reply {
    /// The lease an ACK gives for `address`; a missing netmask is `known_prefix` (a renewal
    /// keeps the one it had), else the ACK is no use.
    pub fn lease(
        &self,
        address: Ipv4Addr,
        server: Ipv4Addr,
        known_prefix: Option<u8>,
    ) -> Option<Lease> {
        let prefix_len = match self.subnet_mask {
            Some(mask) => prefix_of(mask)?,
            None => known_prefix?,
        };
        Some(Lease {
            address,
            prefix_len,
            router: self.router,
            dns: self.dns.clone().unwrap_or_default(),
            server: self.server_id.unwrap_or(server),
            lease_secs: self.lease_secs.unwrap_or(DEFAULT_LEASE),
            renew_secs: self.renew_secs,
            rebind_secs: self.rebind_secs,
        })
    }
}

/// The DHCP message in a frame from a server's port to the client's, if it is one.
pub(crate) fn parse(frame: &[u8]) -> Option<Reply> {
    let rx = ChecksumCapabilities::ignored();
    let frame = EthernetFrame::new_checked(frame).ok()?;
    if frame.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let packet = Ipv4Packet::new_checked(frame.payload()).ok()?;
    let ip = Ipv4Repr::parse(&packet, &rx).ok()?;
    if ip.next_header != IpProtocol::Udp {
        return None;
    }
    let datagram = UdpPacket::new_checked(packet.payload()).ok()?;
    let (src, dst) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
    let udp = UdpRepr::parse(&datagram, &src, &dst, &rx).ok()?;
    if udp.dst_port != CLIENT_PORT || udp.src_port != SERVER_PORT {
        return None;
    }
    let dhcp = DhcpPacket::new_checked(datagram.payload()).ok()?;
    let r = DhcpRepr::parse(&dhcp).ok()?;
    Some(Reply {
        source_mac: frame.src_addr().0,
        kind: r.message_type,
        xid: r.transaction_id,
        client_mac: r.client_hardware_address.0,
        your_ip: r.your_ip,
        server_id: r.server_identifier,
        router: r.router,
        subnet_mask: r.subnet_mask,
        dns: r.dns_servers.as_ref().map(|d| d.iter().copied().collect()),
        lease_secs: r.lease_duration,
        renew_secs: r.renew_duration,
        rebind_secs: r.rebind_duration,
    })
}

/// The prefix length of a contiguous netmask.
fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0 && len > 0).then_some(len as u8)
}

#[cfg(test)]
#[path = "dhcp_wire_tests.rs"]
pub(crate) mod tests;
