//! A DHCPv4 client (RFC 2131), sans-IO: it makes the Ethernet frames to send and reads the frames
//! that arrive, with smoltcp's wire types as the codec. The caller owns the socket
//! ([`super::packet`]) and the clock; the kernel keeps the IP stack, so nothing here answers
//! anything but DHCP.
//!
//! What is handled: the DISCOVER/OFFER/REQUEST/ACK exchange, NAKs, frames for other clients or
//! other transactions, and UDP checksums left partial by the NIC's offload (not verified: the
//! kernel's own checks already passed or did not apply). Renewal is a new exchange asking for the
//! same address at T1 ([`Lease::renew_after`]).

use std::net::Ipv4Addr;
use std::time::Duration;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

const CLIENT_PORT: u16 = 68;
const SERVER_PORT: u16 = 67;
/// Options asked for: subnet mask, router, DNS servers.
const PARAMETERS: &[u8] = &[1, 3, 6];
/// Used when the server gives no lease time (RFC 2131 has none; a day is common).
const DEFAULT_LEASE: u32 = 86_400;

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
}

impl Lease {
    /// When to ask again: T1, or half the lease (RFC 2131 4.4.5).
    pub fn renew_after(&self) -> Duration {
        let t1 = self.renew_secs.unwrap_or(self.lease_secs / 2);
        Duration::from_secs(u64::from(t1.clamp(10, self.lease_secs.max(10))))
    }
}

/// What a received frame meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not for us, or not DHCP, or not what we wait for.
    Ignored,
    /// An offer was taken: send this REQUEST.
    Send(Vec<u8>),
    /// The server acknowledged: the lease is ours.
    Bound(Lease),
    /// The server refused the request: start again with a DISCOVER.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Selecting,
    Requesting { offered: Ipv4Addr, server: Ipv4Addr },
    Bound,
}

/// One DHCP transaction of one interface.
#[derive(Debug, Clone)]
pub struct Client {
    mac: EthernetAddress,
    xid: u32,
    /// An address to ask for again (a renewal, or the last lease).
    wanted: Option<Ipv4Addr>,
    state: State,
}

impl Client {
    pub fn new(mac: [u8; 6], xid: u32, wanted: Option<Ipv4Addr>) -> Client {
        Client {
            mac: EthernetAddress(mac),
            xid,
            wanted,
            state: State::Selecting,
        }
    }

    /// The DISCOVER that starts (or restarts) the exchange.
    pub fn discover(&mut self) -> Vec<u8> {
        self.state = State::Selecting;
        self.frame(DhcpMessageType::Discover, self.wanted, None)
    }

    /// Reads one received Ethernet frame.
    pub fn receive(&mut self, frame: &[u8]) -> Step {
        let Some(reply) = parse(frame) else {
            return Step::Ignored;
        };
        if reply.transaction_id != self.xid || reply.client_hardware_address != self.mac {
            return Step::Ignored;
        }
        match (self.state, reply.message_type) {
            (State::Selecting, DhcpMessageType::Offer) => {
                let (Some(server), offered) = (reply.server_identifier, reply.your_ip) else {
                    return Step::Ignored;
                };
                if offered.is_unspecified() {
                    return Step::Ignored;
                }
                self.state = State::Requesting { offered, server };
                Step::Send(self.frame(DhcpMessageType::Request, Some(offered), Some(server)))
            }
            (State::Requesting { offered, server }, DhcpMessageType::Ack)
                if reply.your_ip == offered =>
            {
                let Some(prefix_len) = reply.subnet_mask.and_then(prefix_of) else {
                    return Step::Ignored;
                };
                self.state = State::Bound;
                Step::Bound(Lease {
                    address: offered,
                    prefix_len,
                    router: reply.router,
                    dns: reply.dns_servers.unwrap_or_default(),
                    server: reply.server_identifier.unwrap_or(server),
                    lease_secs: reply.lease_duration.unwrap_or(DEFAULT_LEASE),
                    renew_secs: reply.renew_duration,
                })
            }
            (State::Requesting { .. }, DhcpMessageType::Nak) => {
                self.state = State::Selecting;
                self.wanted = None;
                Step::Refused
            }
            _ => Step::Ignored,
        }
    }

    fn frame(
        &self,
        kind: DhcpMessageType,
        requested: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
    ) -> Vec<u8> {
        let dhcp = DhcpRepr {
            message_type: kind,
            transaction_id: self.xid,
            secs: 0,
            client_hardware_address: self.mac,
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip: Ipv4Addr::UNSPECIFIED,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: None,
            subnet_mask: None,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            // Without an address the kernel would drop a unicast reply before we saw it.
            broadcast: true,
            requested_ip: requested,
            client_identifier: Some(self.mac),
            server_identifier: server,
            parameter_request_list: Some(PARAMETERS),
            dns_servers: None,
            max_size: None,
            lease_duration: None,
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let udp = UdpRepr {
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
        };
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::UNSPECIFIED,
            dst_addr: Ipv4Addr::BROADCAST,
            next_header: IpProtocol::Udp,
            payload_len: 8 + dhcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: self.mac,
            dst_addr: EthernetAddress::BROADCAST,
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

/// The fields of a DHCP message this client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    message_type: DhcpMessageType,
    transaction_id: u32,
    client_hardware_address: EthernetAddress,
    your_ip: Ipv4Addr,
    requested_ip: Option<Ipv4Addr>,
    server_identifier: Option<Ipv4Addr>,
    router: Option<Ipv4Addr>,
    subnet_mask: Option<Ipv4Addr>,
    dns_servers: Option<Vec<Ipv4Addr>>,
    lease_duration: Option<u32>,
    renew_duration: Option<u32>,
}

impl Message {
    fn of(r: &DhcpRepr<'_>) -> Message {
        Message {
            message_type: r.message_type,
            transaction_id: r.transaction_id,
            client_hardware_address: r.client_hardware_address,
            your_ip: r.your_ip,
            requested_ip: r.requested_ip,
            server_identifier: r.server_identifier,
            router: r.router,
            subnet_mask: r.subnet_mask,
            dns_servers: r.dns_servers.as_ref().map(|d| d.iter().copied().collect()),
            lease_duration: r.lease_duration,
            renew_duration: r.renew_duration,
        }
    }
}

/// The DHCP message in a frame to the client port, if it is one.
fn parse(frame: &[u8]) -> Option<Message> {
    // Offloaded checksums arrive partial: do not verify them.
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
    DhcpRepr::parse(&dhcp).ok().map(|r| Message::of(&r))
}

/// The prefix length of a contiguous netmask.
fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0 && len > 0).then_some(len as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

    /// A server's reply to `request` (a frame the client made), as QEMU's DHCP server sends it.
    fn reply(request: &[u8], kind: DhcpMessageType, yiaddr: Ipv4Addr, xid_delta: u32) -> Vec<u8> {
        let asked = parse_as_server(request);
        let dns = heapless::Vec::from_slice(&[Ipv4Addr::new(10, 0, 2, 3)]).unwrap();
        let dhcp = DhcpRepr {
            message_type: kind,
            transaction_id: asked.transaction_id.wrapping_add(xid_delta),
            secs: 0,
            client_hardware_address: asked.client_hardware_address,
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip: yiaddr,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: Some(SERVER),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: true,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(SERVER),
            parameter_request_list: None,
            dns_servers: Some(dns),
            max_size: None,
            lease_duration: Some(86_400),
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let udp = UdpRepr {
            src_port: SERVER_PORT,
            dst_port: CLIENT_PORT,
        };
        let ip = Ipv4Repr {
            src_addr: SERVER,
            dst_addr: Ipv4Addr::BROADCAST,
            next_header: IpProtocol::Udp,
            payload_len: 8 + dhcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([0x52, 0x55, 10, 0, 2, 2]),
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; 14 + 20 + ip.payload_len];
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
            |p| dhcp.emit(&mut DhcpPacket::new_unchecked(p)).unwrap(),
            &caps,
        );
        buf
    }

    #[test]
    fn discover_offer_request_ack() {
        let mut c = Client::new(MAC, 0x1234_5678, None);
        let discover = c.discover();
        let d = parse_as_server(&discover);
        assert_eq!(d.message_type, DhcpMessageType::Discover);
        assert_eq!(d.client_hardware_address, EthernetAddress(MAC));
        let yiaddr = Ipv4Addr::new(10, 0, 2, 15);
        let Step::Send(request) = c.receive(&reply(&discover, DhcpMessageType::Offer, yiaddr, 0))
        else {
            panic!()
        };
        let r = parse_as_server(&request);
        assert_eq!(r.message_type, DhcpMessageType::Request);
        assert_eq!(r.requested_ip, Some(yiaddr));
        assert_eq!(r.server_identifier, Some(SERVER));
        // A second offer while requesting is ignored.
        assert_eq!(
            c.receive(&reply(&discover, DhcpMessageType::Offer, yiaddr, 0)),
            Step::Ignored
        );
        let Step::Bound(lease) = c.receive(&reply(&request, DhcpMessageType::Ack, yiaddr, 0))
        else {
            panic!()
        };
        assert_eq!(
            lease,
            Lease {
                address: yiaddr,
                prefix_len: 24,
                router: Some(SERVER),
                dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
                server: SERVER,
                lease_secs: 86_400,
                renew_secs: None,
            }
        );
        assert_eq!(lease.renew_after(), Duration::from_secs(43_200));
    }

    #[test]
    fn other_transactions_naks_and_noise() {
        let mut c = Client::new(MAC, 7, Some(Ipv4Addr::new(10, 0, 2, 15)));
        let discover = c.discover();
        assert_eq!(
            parse_as_server(&discover).requested_ip,
            Some(Ipv4Addr::new(10, 0, 2, 15))
        );
        let yiaddr = Ipv4Addr::new(10, 0, 2, 16);
        assert_eq!(
            c.receive(&reply(&discover, DhcpMessageType::Offer, yiaddr, 1)),
            Step::Ignored
        );
        assert_eq!(c.receive(&[0u8; 10]), Step::Ignored);
        assert_eq!(c.receive(&discover), Step::Ignored, "our own broadcast");
        let Step::Send(request) = c.receive(&reply(&discover, DhcpMessageType::Offer, yiaddr, 0))
        else {
            panic!()
        };
        assert_eq!(
            c.receive(&reply(
                &request,
                DhcpMessageType::Nak,
                Ipv4Addr::UNSPECIFIED,
                0
            )),
            Step::Refused
        );
        assert_eq!(parse_as_server(&c.discover()).requested_ip, None);
    }

    #[test]
    fn netmasks_become_prefixes() {
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 0, 255, 0)), None);
        assert_eq!(prefix_of(Ipv4Addr::UNSPECIFIED), None);
    }

    /// Parses a client's frame as the server sees it (ports reversed).
    fn parse_as_server(frame: &[u8]) -> Message {
        let rx = ChecksumCapabilities::default();
        let frame = EthernetFrame::new_checked(frame).unwrap();
        let packet = Ipv4Packet::new_checked(frame.payload()).unwrap();
        let ip = Ipv4Repr::parse(&packet, &rx).unwrap();
        let datagram = UdpPacket::new_checked(packet.payload()).unwrap();
        let (src, dst) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
        let udp = UdpRepr::parse(&datagram, &src, &dst, &rx).unwrap();
        assert_eq!((udp.src_port, udp.dst_port), (CLIENT_PORT, SERVER_PORT));
        let dhcp = DhcpPacket::new_checked(datagram.payload()).unwrap();
        Message::of(&DhcpRepr::parse(&dhcp).unwrap())
    }
}
