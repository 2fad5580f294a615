//! A DHCP server as the tests need one: it reads what the client sent and answers as QEMU's or
//! ISC's server would. Shared with the state machine's tests.

use super::*;

pub const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const SERVER_MAC: [u8; 6] = [0x52, 0x55, 10, 0, 2, 2];

/// A client's frame as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub eth_dst: [u8; 6],
    pub ip_src: Ipv4Addr,
    pub ip_dst: Ipv4Addr,
    pub kind: MessageType,
    pub xid: u32,
    pub client_mac: [u8; 6],
    pub ciaddr: Ipv4Addr,
    pub broadcast_flag: bool,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
}

/// Parses a client's frame, checking every checksum (the client's must be right).
pub fn sent(frame: &[u8]) -> Sent {
    let rx = ChecksumCapabilities::default();
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let packet = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let ip = Ipv4Repr::parse(&packet, &rx).unwrap();
    let datagram = UdpPacket::new_checked(packet.payload()).unwrap();
    let (src, dst) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
    let udp = UdpRepr::parse(&datagram, &src, &dst, &rx).unwrap();
    assert_eq!((udp.src_port, udp.dst_port), (CLIENT_PORT, SERVER_PORT));
    let dhcp = DhcpPacket::new_checked(datagram.payload()).unwrap();
    let r = DhcpRepr::parse(&dhcp).unwrap();
    Sent {
        eth_dst: eth.dst_addr().0,
        ip_src: ip.src_addr,
        ip_dst: ip.dst_addr,
        kind: r.message_type,
        xid: r.transaction_id,
        client_mac: r.client_hardware_address.0,
        ciaddr: r.client_ip,
        broadcast_flag: r.broadcast,
        requested_ip: r.requested_ip,
        server_id: r.server_identifier,
    }
}

/// What the server puts in its answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub kind: MessageType,
    pub your_ip: Ipv4Addr,
    pub server_id: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub mask: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub lease_secs: Option<u32>,
    pub renew_secs: Option<u32>,
    pub rebind_secs: Option<u32>,
    /// Added to the request's xid (non-zero: an answer to another transaction).
    pub xid_delta: u32,
}

impl Answer {
    /// QEMU's user network's answer: 10.0.2.15/24 through 10.0.2.2, DNS 10.0.2.3, a day.
    pub fn qemu(kind: MessageType) -> Answer {
        Answer {
            kind,
            your_ip: Ipv4Addr::new(10, 0, 2, 15),
            server_id: SERVER,
            router: Some(SERVER),
            mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
            lease_secs: Some(86_400),
            renew_secs: None,
            rebind_secs: None,
            xid_delta: 0,
        }
    }

    /// The frame answering `request` (broadcast when the client asked for it, else to ciaddr).
    pub fn to(&self, request: &[u8]) -> Vec<u8> {
        let asked = sent(request);
        let dns = heapless::Vec::from_slice(&self.dns).unwrap();
        let dhcp = DhcpRepr {
            message_type: self.kind,
            transaction_id: asked.xid.wrapping_add(self.xid_delta),
            secs: 0,
            client_hardware_address: EthernetAddress(asked.client_mac),
            client_ip: asked.ciaddr,
            your_ip: self.your_ip,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: self.router,
            subnet_mask: self.mask,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: asked.broadcast_flag,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(self.server_id),
            parameter_request_list: None,
            dns_servers: Some(dns),
            max_size: None,
            lease_duration: self.lease_secs,
            renew_duration: self.renew_secs,
            rebind_duration: self.rebind_secs,
            additional_options: &[],
        };
        let (dst_ip, dst_mac) = if asked.broadcast_flag || asked.ciaddr.is_unspecified() {
            (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST)
        } else {
            (asked.ciaddr, EthernetAddress(asked.client_mac))
        };
        let udp = UdpRepr {
            src_port: SERVER_PORT,
            dst_port: CLIENT_PORT,
        };
        let ip = Ipv4Repr {
            src_addr: self.server_id,
            dst_addr: dst_ip,
            next_header: IpProtocol::Udp,
            payload_len: 8 + dhcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress(SERVER_MAC),
            dst_addr: dst_mac,
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
}

fn lease(lease_secs: u32, renew: Option<u32>, rebind: Option<u32>) -> Lease {
    Lease {
        address: Ipv4Addr::new(10, 0, 2, 15),
        prefix_len: 24,
        router: None,
        dns: vec![],
        server: SERVER,
        lease_secs,
        renew_secs: renew,
        rebind_secs: rebind,
    }
}

#[test]
fn t1_and_t2_default_to_half_and_seven_eighths_of_the_lease() {
    let l = lease(86_400, None, None);
    assert_eq!(l.renew_after(), Some(Duration::from_secs(43_200)));
    assert_eq!(l.rebind_after(), Some(Duration::from_secs(75_600)));
    assert_eq!(l.duration(), Some(Duration::from_secs(86_400)));
    let l = lease(3600, Some(600), Some(1200));
    assert_eq!(l.renew_after(), Some(Duration::from_secs(600)));
    assert_eq!(l.rebind_after(), Some(Duration::from_secs(1200)));
}

#[test]
fn server_times_out_of_order_are_clamped_and_infinite_leases_never_renew() {
    let l = lease(3600, Some(5000), Some(4000));
    assert_eq!(l.rebind_after(), Some(Duration::from_secs(3600)));
    assert_eq!(l.renew_after(), Some(Duration::from_secs(3600)));
    let l = lease(u32::MAX, None, None);
    assert_eq!(
        (l.duration(), l.renew_after(), l.rebind_after()),
        (None, None, None)
    );
    // A lease of a few seconds is kept as a minute, not renewed in a loop.
    assert_eq!(
        lease(2, None, None).renew_after(),
        Some(Duration::from_secs(30))
    );
}

#[test]
fn a_renewal_that_only_extends_the_lease_is_the_same_network() {
    let a = lease(3600, None, None);
    let mut b = lease(7200, Some(100), None);
    assert!(a.same_network(&b));
    b.dns = vec![Ipv4Addr::new(10, 0, 2, 3)];
    assert!(!a.same_network(&b));
}

#[test]
fn replies_are_parsed_with_their_source_and_noise_is_not() {
    let discover = Outgoing {
        kind: MessageType::Discover,
        xid: 9,
        client_ip: Ipv4Addr::UNSPECIFIED,
        requested_ip: None,
        server_id: None,
        broadcast_reply: true,
        to: Destination::Broadcast,
    }
    .frame(MAC);
    let offer = parse(&Answer::qemu(MessageType::Offer).to(&discover)).unwrap();
    assert_eq!(offer.source_mac, SERVER_MAC);
    assert_eq!(
        (offer.kind, offer.xid, offer.client_mac),
        (MessageType::Offer, 9, MAC)
    );
    assert_eq!(offer.dns, Some(vec![Ipv4Addr::new(10, 0, 2, 3)]));
    assert_eq!(parse(&discover), None, "a client's own message");
    assert_eq!(parse(&[0u8; 10]), None);
    assert_eq!(parse(&discover[..discover.len() - 40]), None, "truncated");
}

#[test]
fn netmasks_become_prefixes() {
    assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
    assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
    assert_eq!(prefix_of(Ipv4Addr::new(255, 0, 255, 0)), None);
    assert_eq!(prefix_of(Ipv4Addr::UNSPECIFIED), None);
}
