//! A DHCPv4 server (RFC 2131) for a guest on a QEMU UDP link ([`qemu::Network::Udp`]), so a test
//! decides what lease the box gets and can change it while the box runs: QEMU's own server never
//! does. smoltcp's wire types parse and build the frames.
//!
//! The server hands out one lease, the [`Offer`] the test sets: DISCOVER gets an OFFER of it, a
//! REQUEST for its address (selecting, renewing or rebinding) an ACK, a REQUEST for any other
//! address a NAK. [`DhcpServer::set_silent`] makes it answer nothing (a lease left to run out).
//! It answers ARP for itself and the offer's router, so the box's gateway check passes, and, when
//! given an [`Advert`], router solicitations as an IPv6 router with a prefix and a DNS server. Every
//! DHCP message it reads is logged with its addressing, for the test's assertions.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress,
    EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr,
    UdpPacket, UdpRepr,
};

pub use smoltcp::wire::DhcpMessageType as MessageType;

const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;
/// The server's address and hardware address on the test's link.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
pub const SERVER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x77, 0x00, 0x01];
/// smoltcp's DHCP codec carries at most this many DNS servers.
const MAX_DNS: usize = 3;

/// The lease the server gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Ipv4Addr,
    pub dns: Vec<Ipv4Addr>,
    pub lease_secs: u32,
    /// T1 and T2 (options 58 and 59).
    pub renew_secs: Option<u32>,
    pub rebind_secs: Option<u32>,
}

/// What the server answered to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Offer(Ipv4Addr),
    Ack(Ipv4Addr),
    Nak,
    Nothing,
}

/// One DHCP message from the client, as the server saw it on the link, and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub at: Instant,
    pub kind: MessageType,
    pub xid: u32,
    pub eth_dst: [u8; 6],
    pub ip_src: Ipv4Addr,
    pub ip_dst: Ipv4Addr,
    pub ciaddr: Ipv4Addr,
    pub broadcast_flag: bool,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub answer: Answer,
}

impl Seen {
    /// A REQUEST sent to this server alone, from the address it leased: RFC 2131's RENEWING.
    pub fn is_renewal(&self) -> bool {
        self.kind == MessageType::Request
            && self.eth_dst == SERVER_MAC
            && self.ip_dst == SERVER_IP
            && !self.ciaddr.is_unspecified()
            && self.ip_src == self.ciaddr
            && self.requested_ip.is_none()
            && self.server_id.is_none()
    }

    /// A REQUEST broadcast from the address held: REBINDING.
    pub fn is_rebinding(&self) -> bool {
        self.kind == MessageType::Request
            && self.eth_dst == [0xff; 6]
            && self.ip_dst == Ipv4Addr::BROADCAST
            && !self.ciaddr.is_unspecified()
            && self.requested_ip.is_none()
    }
}

impl std::fmt::Display for Seen {
    /// One line: `Request xid 1a2b3c4d 0.0.0.0 -> 255.255.255.255 (ff:ff:..) ciaddr .. -> Ack(..)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} xid {:08x} {} -> {} ({}) ciaddr {}",
            self.kind,
            self.xid,
            self.ip_src,
            self.ip_dst,
            EthernetAddress(self.eth_dst),
            self.ciaddr
        )?;
        if let Some(r) = self.requested_ip {
            write!(f, " requested {r}")?;
        }
        if let Some(s) = self.server_id {
            write!(f, " server {s}")?;
        }
        if self.broadcast_flag {
            write!(f, " broadcast-flag")?;
        }
        write!(f, " => {:?}", self.answer)
    }
}

/// The log as lines, for assertion messages.
pub fn show(seen: &[Seen]) -> String {
    seen.iter().map(|s| format!("{s}\n")).collect()
}

/// What the link's IPv6 router advertises when the box solicits (RFC 4861): a SLAAC prefix and
/// a DNS server (RFC 8106's RDNSS option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert {
    /// A /64.
    pub prefix: Ipv6Addr,
    pub dns: Ipv6Addr,
    pub dns_lifetime_secs: u32,
}

/// The server's state, without sockets: a frame in, the frames to send back out.
#[derive(Debug)]
pub struct Server {
    pub offer: Offer,
    pub silent: bool,
    /// Router advertisements, when the link has an IPv6 router.
    pub advert: Option<Advert>,
    /// Router solicitations answered.
    pub solicitations: usize,
    pub seen: Vec<Seen>,
    /// Frames that were not ARP, nor a DHCP message to port 67 with good checksums.
    pub ignored: usize,
}

impl Server {
    pub fn new(offer: Offer) -> Server {
        Server {
            offer,
            silent: false,
            advert: None,
            solicitations: 0,
            seen: Vec::new(),
            ignored: 0,
        }
    }

    /// Reads one Ethernet frame from the client; returns the answer to send, if any.
    pub fn handle(&mut self, frame: &[u8], now: Instant) -> Option<Vec<u8>> {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.ignored += 1;
            return None;
        };
        match eth.ethertype() {
            EthernetProtocol::Arp => self.arp(eth.payload()),
            EthernetProtocol::Ipv4 => match parse_dhcp(&eth) {
                Some((ip, request)) => self.dhcp(&eth, &ip, &request, now),
                None => {
                    self.ignored += 1;
                    None
                }
            },
            EthernetProtocol::Ipv6 => match (self.advert, router_solicitation(&eth)) {
                (Some(advert), Some(client)) if !self.silent => {
                    self.solicitations += 1;
                    Some(router_advertisement(&advert, client))
                }
                _ => {
                    self.ignored += 1;
                    None
                }
            },
            // The rest: no network here.
            _ => {
                self.ignored += 1;
                None
            }
        }
    }

    /// A reply for an ARP request about the server or the offer's router.
    fn arp(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let packet = ArpPacket::new_checked(payload).ok()?;
        let ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } = ArpRepr::parse(&packet).ok()?
        else {
            return None;
        };
        if target_protocol_addr != SERVER_IP && target_protocol_addr != self.offer.router {
            return None;
        }
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(SERVER_MAC),
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress(SERVER_MAC),
            dst_addr: source_hardware_addr,
            ethertype: EthernetProtocol::Arp,
        };
        let mut buf = vec![0u8; eth.buffer_len() + arp.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut frame);
        arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        Some(buf)
    }

    /// Answers a client's DHCP message and logs it.
    fn dhcp(
        &mut self,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv4Repr,
        request: &Request,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let answer = self.decide(request);
        self.seen.push(Seen {
            at: now,
            kind: request.kind,
            xid: request.xid,
            eth_dst: eth.dst_addr().0,
            ip_src: ip.src_addr,
            ip_dst: ip.dst_addr,
            ciaddr: request.ciaddr,
            broadcast_flag: request.broadcast_flag,
            requested_ip: request.requested_ip,
            server_id: request.server_id,
            answer,
        });
        self.reply(request, answer)
    }

    fn decide(&self, request: &Request) -> Answer {
        if self.silent {
            return Answer::Nothing;
        }
        match request.kind {
            DhcpMessageType::Discover => Answer::Offer(self.offer.address),
            // The client chose another server's offer.
            DhcpMessageType::Request if request.server_id.is_some_and(|s| s != SERVER_IP) => {
                Answer::Nothing
            }
            DhcpMessageType::Request => {
                let asked = request.requested_ip.unwrap_or(request.ciaddr);
                if asked == self.offer.address {
                    Answer::Ack(asked)
                } else {
                    Answer::Nak
                }
            }
            _ => Answer::Nothing,
        }
    }

    /// The frame for `answer`, addressed as RFC 2131 4.1 says: a NAK goes to everyone, an
    /// answer to a client with an address (ciaddr) there, one the client asked to be broadcast
    /// to everyone, the rest to yiaddr.
    fn reply(&self, request: &Request, answer: Answer) -> Option<Vec<u8>> {
        let (kind, your_ip) = match answer {
            Answer::Offer(a) => (DhcpMessageType::Offer, a),
            Answer::Ack(a) => (DhcpMessageType::Ack, a),
            Answer::Nak => (DhcpMessageType::Nak, Ipv4Addr::UNSPECIFIED),
            Answer::Nothing => return None,
        };
        let lease = kind != DhcpMessageType::Nak;
        let o = &self.offer;
        let dns = heapless::Vec::from_slice(&o.dns[..o.dns.len().min(MAX_DNS)]).ok()?;
        let dhcp = DhcpRepr {
            message_type: kind,
            transaction_id: request.xid,
            secs: 0,
            client_hardware_address: request.client_mac,
            client_ip: if lease {
                request.ciaddr
            } else {
                Ipv4Addr::UNSPECIFIED
            },
            your_ip,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: lease.then_some(o.router),
            subnet_mask: lease.then(|| netmask(o.prefix_len)),
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: request.broadcast_flag,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(SERVER_IP),
            parameter_request_list: None,
            dns_servers: lease.then_some(dns),
            max_size: None,
            lease_duration: lease.then_some(o.lease_secs),
            renew_duration: o.renew_secs.filter(|_| lease),
            rebind_duration: o.rebind_secs.filter(|_| lease),
            additional_options: &[],
        };
        let client_mac = request.client_mac;
        let (dst_ip, dst_mac) = if !lease {
            (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST)
        } else if !request.ciaddr.is_unspecified() {
            (request.ciaddr, client_mac)
        } else if request.broadcast_flag {
            (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST)
        } else {
            (your_ip, client_mac)
        };
        Some(frame(dst_ip, dst_mac, &dhcp))
    }
}

/// The DHCP message to port 67 in a client's frame, if it is one with good checksums (a real
/// server drops what fails them).
fn parse_dhcp(eth: &EthernetFrame<&[u8]>) -> Option<(Ipv4Repr, Request)> {
    let caps = ChecksumCapabilities::default();
    let packet = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip = Ipv4Repr::parse(&packet, &caps).ok()?;
    if ip.next_header != IpProtocol::Udp {
        return None;
    }
    let datagram = UdpPacket::new_checked(packet.payload()).ok()?;
    let (src, dst) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
    let udp = UdpRepr::parse(&datagram, &src, &dst, &caps).ok()?;
    if (udp.src_port, udp.dst_port) != (CLIENT_PORT, SERVER_PORT) {
        return None;
    }
    let packet = DhcpPacket::new_checked(datagram.payload()).ok()?;
    let r = DhcpRepr::parse(&packet).ok()?;
    Some((
        ip,
        Request {
            kind: r.message_type,
            xid: r.transaction_id,
            client_mac: r.client_hardware_address,
            ciaddr: r.client_ip,
            broadcast_flag: r.broadcast,
            requested_ip: r.requested_ip,
            server_id: r.server_identifier,
        },
    ))
}

/// The fields of a client's message the server reads.
#[derive(Debug, Clone, Copy)]
struct Request {
    kind: MessageType,
    xid: u32,
    client_mac: EthernetAddress,
    ciaddr: Ipv4Addr,
    broadcast_flag: bool,
    requested_ip: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
}

/// An Ethernet frame from the server's port 67 to the client's port 68.
fn frame(dst_ip: Ipv4Addr, dst_mac: EthernetAddress, dhcp: &DhcpRepr) -> Vec<u8> {
    let udp = UdpRepr {
        src_port: SERVER_PORT,
        dst_port: CLIENT_PORT,
    };
    let ip = Ipv4Repr {
        src_addr: SERVER_IP,
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

/// The sender's hardware address, when the frame is an ICMPv6 router solicitation.
fn router_solicitation(eth: &EthernetFrame<&[u8]>) -> Option<EthernetAddress> {
    let ip = eth.payload();
    // IPv6: next header ICMPv6 (58) at 6, hop limit 255 at 7; ICMPv6 type 133 after 40 bytes.
    (ip.len() >= 48 && ip[0] >> 4 == 6 && ip[6] == 58 && ip[7] == 255 && ip[40] == 133)
        .then(|| eth.src_addr())
}

/// The router's link-local address, from its hardware address (modified EUI-64).
fn router_link_local() -> Ipv6Addr {
    let m = SERVER_MAC;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// A router advertisement to `client`, framed by hand (smoltcp has no RDNSS option): the
/// router for 30 min, `advert`'s prefix for SLAAC, its DNS server.
fn router_advertisement(advert: &Advert, client: EthernetAddress) -> Vec<u8> {
    let mut icmp = vec![134, 0, 0, 0, 64, 0];
    icmp.extend_from_slice(&1800u16.to_be_bytes()); // router lifetime
    icmp.extend_from_slice(&[0; 8]); // reachable time, retransmission timer
    icmp.extend_from_slice(&[1, 1]); // source link-layer address
    icmp.extend_from_slice(&SERVER_MAC);
    icmp.extend_from_slice(&[3, 4, 64, 0xc0]); // prefix information: /64, on-link, autonomous
    icmp.extend_from_slice(&86_400u32.to_be_bytes()); // valid
    icmp.extend_from_slice(&14_400u32.to_be_bytes()); // preferred
    icmp.extend_from_slice(&[0; 4]);
    icmp.extend_from_slice(&advert.prefix.octets());
    icmp.extend_from_slice(&[25, 3, 0, 0]); // RDNSS, one server
    icmp.extend_from_slice(&advert.dns_lifetime_secs.to_be_bytes());
    icmp.extend_from_slice(&advert.dns.octets());
    let src = router_link_local();
    let dst: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let sum = icmpv6_checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut frame = Vec::with_capacity(14 + 40 + icmp.len());
    frame.extend_from_slice(&client.0);
    frame.extend_from_slice(&SERVER_MAC);
    frame.extend_from_slice(&0x86ddu16.to_be_bytes());
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[58, 255]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(&icmp);
    frame
}

/// RFC 4443's checksum: over the pseudo-header (addresses, length, next header) and the message.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut bytes = Vec::with_capacity(40 + message.len() + 1);
    bytes.extend_from_slice(&src.octets());
    bytes.extend_from_slice(&dst.octets());
    bytes.extend_from_slice(&(message.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 58]);
    bytes.extend_from_slice(message);
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = bytes
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn netmask(prefix_len: u8) -> Ipv4Addr {
    match prefix_len {
        0 => Ipv4Addr::UNSPECIFIED,
        n => Ipv4Addr::from(u32::MAX << (32 - u32::from(n.min(32)))),
    }
}

/// [`Server`] on the host end of a QEMU UDP link, answering from its own thread.
pub struct DhcpServer {
    server: Arc<Mutex<Server>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    qemu_port: u16,
    peer_port: u16,
}

impl DhcpServer {
    /// Binds the host's end of the link on loopback and starts answering.
    pub fn start(offer: Offer) -> std::io::Result<DhcpServer> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let peer_port = socket.local_addr()?.port();
        // QEMU binds this one: a port free a moment ago, below the range the kernel picks from.
        let qemu_port = crate::appliance::free_port();
        let server = Arc::new(Mutex::new(Server::new(offer)));
        let stop = Arc::new(AtomicBool::new(false));
        let qemu: SocketAddr = ([127, 0, 0, 1], qemu_port).into();
        let thread = {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::Builder::new()
                .name("dhcp-server".into())
                .spawn(move || serve(&socket, qemu, &server, &stop))?
        };
        Ok(DhcpServer {
            server,
            stop,
            thread: Some(thread),
            qemu_port,
            peer_port,
        })
    }

    /// The network for [`qemu::BootOptions::network`].
    pub fn network(&self) -> qemu::Network {
        qemu::Network::Udp {
            qemu_port: self.qemu_port,
            peer_port: self.peer_port,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Server> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lease given from now on (renewals of another address are refused).
    pub fn set_offer(&self, offer: Offer) {
        self.lock().offer = offer;
    }

    /// Answers router solicitations with `advert` from now on.
    pub fn set_advert(&self, advert: Advert) {
        self.lock().advert = Some(advert);
    }

    /// How many router solicitations were answered.
    pub fn solicitations(&self) -> usize {
        self.lock().solicitations
    }

    /// Whether to answer nothing at all from now on.
    pub fn set_silent(&self, silent: bool) {
        self.lock().silent = silent;
    }

    /// Every DHCP message read so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Waits until the log, from index `from` on, holds a message that `matches`; returns its
    /// index. On timeout the error shows the whole log.
    pub fn wait_for(
        &self,
        from: usize,
        limit: Duration,
        matches: impl Fn(&Seen) -> bool,
    ) -> Result<usize, String> {
        let start = Instant::now();
        loop {
            let seen = self.seen();
            if let Some(i) = seen.iter().skip(from).position(&matches) {
                return Ok(from + i);
            }
            if start.elapsed() >= limit {
                return Err(format!(
                    "no such DHCP message within {} s; the server saw:\n{}",
                    limit.as_secs(),
                    show(&seen)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(socket: &UdpSocket, qemu: SocketAddr, server: &Mutex<Server>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::SeqCst) {
        let n = match socket.recv_from(&mut buf) {
            Ok((n, _)) => n,
            // A timeout, or QEMU not listening yet for something we sent (ECONNREFUSED).
            Err(_) => continue,
        };
        let reply = {
            let mut s = server.lock().unwrap_or_else(|p| p.into_inner());
            s.handle(buf.get(..n).unwrap_or_default(), Instant::now())
        };
        if let Some(frame) = reply {
            // Lost like any frame on a wire if QEMU is gone; the client sends again.
            let _ = socket.send_to(&frame, qemu);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn offer(last: u8) -> Offer {
        Offer {
            address: Ipv4Addr::new(192, 168, 77, last),
            prefix_len: 24,
            router: SERVER_IP,
            dns: vec![Ipv4Addr::new(192, 168, 77, 53)],
            lease_secs: 20,
            renew_secs: Some(10),
            rebind_secs: None,
        }
    }

    /// A client's DHCP frame, built independently of the server's own builder's addressing.
    fn client_frame(
        kind: DhcpMessageType,
        ciaddr: Ipv4Addr,
        requested: Option<Ipv4Addr>,
        to: (Ipv4Addr, [u8; 6]),
    ) -> Vec<u8> {
        let dhcp = DhcpRepr {
            message_type: kind,
            transaction_id: 0x1234_5678,
            secs: 0,
            client_hardware_address: EthernetAddress(CLIENT_MAC),
            client_ip: ciaddr,
            your_ip: Ipv4Addr::UNSPECIFIED,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: None,
            subnet_mask: None,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: ciaddr.is_unspecified(),
            requested_ip: requested,
            client_identifier: None,
            server_identifier: None,
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: None,
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let mut f = frame(to.0, EthernetAddress(to.1), &dhcp);
        // Turn the server's frame around: from the client's port and address.
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_src_addr(EthernetAddress(CLIENT_MAC));
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.set_src_addr(ciaddr);
        ip.fill_checksum();
        let (src, dst) = (
            IpAddress::Ipv4(ip.src_addr()),
            IpAddress::Ipv4(ip.dst_addr()),
        );
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        udp.set_src_port(CLIENT_PORT);
        udp.set_dst_port(SERVER_PORT);
        udp.fill_checksum(&src, &dst);
        f
    }

    /// (kind, your address, IP destination, Ethernet destination) of a server frame.
    fn read(frame: &[u8]) -> (DhcpMessageType, Ipv4Addr, Ipv4Addr, [u8; 6], Option<u32>) {
        let caps = ChecksumCapabilities::default();
        let eth = EthernetFrame::new_checked(frame).unwrap();
        let packet = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let ip = Ipv4Repr::parse(&packet, &caps).unwrap();
        let udp = UdpPacket::new_checked(packet.payload()).unwrap();
        let (src, dst) = (IpAddress::Ipv4(ip.src_addr), IpAddress::Ipv4(ip.dst_addr));
        UdpRepr::parse(&udp, &src, &dst, &caps).unwrap();
        let dhcp = DhcpPacket::new_checked(udp.payload()).unwrap();
        let r = DhcpRepr::parse(&dhcp).unwrap();
        (
            r.message_type,
            r.your_ip,
            ip.dst_addr,
            eth.dst_addr().0,
            r.lease_duration,
        )
    }

    const EVERYONE: (Ipv4Addr, [u8; 6]) = (Ipv4Addr::BROADCAST, [0xff; 6]);
    const UNSPEC: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

    #[test]
    fn offers_and_acks_its_lease_and_naks_a_renewal_of_an_old_one() {
        let now = Instant::now();
        let mut s = Server::new(offer(50));
        let a = Ipv4Addr::new(192, 168, 77, 50);
        let f = s.handle(
            &client_frame(DhcpMessageType::Discover, UNSPEC, None, EVERYONE),
            now,
        );
        let (kind, yi, ip_dst, eth_dst, lease) = read(&f.unwrap());
        assert_eq!(kind, DhcpMessageType::Offer);
        assert_eq!((yi, ip_dst, eth_dst), (a, Ipv4Addr::BROADCAST, [0xff; 6]));
        assert_eq!(lease, Some(20));
        let f = s.handle(
            &client_frame(DhcpMessageType::Request, UNSPEC, Some(a), EVERYONE),
            now,
        );
        assert_eq!(read(&f.unwrap()).0, DhcpMessageType::Ack);

        // A renewal: unicast to the server from a, answered unicast to a.
        let to_server = (SERVER_IP, SERVER_MAC);
        let f = s.handle(
            &client_frame(DhcpMessageType::Request, a, None, to_server),
            now,
        );
        let (kind, yi, ip_dst, eth_dst, _) = read(&f.unwrap());
        assert_eq!(
            (kind, yi, ip_dst, eth_dst),
            (DhcpMessageType::Ack, a, a, CLIENT_MAC)
        );
        assert!(s.seen.last().unwrap().is_renewal());

        // The lease changed: the renewal of a is refused (broadcast), the new one offered.
        s.offer = offer(77);
        let f = s.handle(
            &client_frame(DhcpMessageType::Request, a, None, to_server),
            now,
        );
        let (kind, _, ip_dst, _, lease) = read(&f.unwrap());
        assert_eq!(
            (kind, ip_dst, lease),
            (DhcpMessageType::Nak, Ipv4Addr::BROADCAST, None)
        );
        let f = s.handle(
            &client_frame(DhcpMessageType::Discover, UNSPEC, Some(a), EVERYONE),
            now,
        );
        assert_eq!(read(&f.unwrap()).1, Ipv4Addr::new(192, 168, 77, 77));
        let answers: Vec<Answer> = s.seen.iter().map(|x| x.answer).collect();
        assert_eq!(
            answers,
            [
                Answer::Offer(a),
                Answer::Ack(a),
                Answer::Ack(a),
                Answer::Nak,
                Answer::Offer(Ipv4Addr::new(192, 168, 77, 77))
            ]
        );

        // Silent: logged, not answered. A broadcast REQUEST from a is a rebinding.
        s.silent = true;
        let f = s.handle(
            &client_frame(DhcpMessageType::Request, a, None, EVERYONE),
            now,
        );
        assert!(f.is_none());
        let last = s.seen.last().unwrap();
        assert!(last.is_rebinding() && !last.is_renewal(), "{last:?}");
        assert_eq!(last.answer, Answer::Nothing);
    }

    #[test]
    fn a_bad_checksum_is_not_a_message() {
        let mut s = Server::new(offer(50));
        let mut f = client_frame(DhcpMessageType::Discover, UNSPEC, None, EVERYONE);
        let last = f.len() - 1;
        f[last] ^= 0xff;
        assert!(s.handle(&f, Instant::now()).is_none());
        assert!(s.seen.is_empty());
        assert_eq!(s.ignored, 1);
    }

    #[test]
    fn answers_a_router_solicitation_with_a_prefix_and_a_dns_server() {
        let box_mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        // A solicitation as Linux sends it: from ::, hop limit 255, to all routers.
        let mut rs = Vec::new();
        rs.extend_from_slice(&[0x33, 0x33, 0, 0, 0, 2]);
        rs.extend_from_slice(&box_mac);
        rs.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 58, 255]);
        rs.extend_from_slice(&[0; 16]);
        rs.extend_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2).octets());
        rs.extend_from_slice(&[133, 0, 0, 0, 0, 0, 0, 0]);
        let mut server = Server::new(offer(50));
        assert_eq!(
            server.handle(&rs, Instant::now()),
            None,
            "no router: no answer"
        );
        let advert = Advert {
            prefix: "2001:db8:77::".parse().unwrap(),
            dns: "2001:db8:77::53".parse().unwrap(),
            dns_lifetime_secs: 1800,
        };
        server.advert = Some(advert);
        let ra = server
            .handle(&rs, Instant::now())
            .expect("an advertisement");
        assert_eq!(server.solicitations, 1);
        let eth = EthernetFrame::new_checked(&ra[..]).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress(box_mac));
        let ip = eth.payload();
        assert_eq!((ip[0] >> 4, ip[6], ip[7]), (6, 58, 255));
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
        assert_eq!(src, "fe80::5054:ff:fe77:1".parse::<Ipv6Addr>().unwrap());
        let body = &ip[40..];
        assert_eq!(usize::from(u16::from_be_bytes([ip[4], ip[5]])), body.len());
        assert_eq!(body[0], 134);
        // A message with its checksum in place sums to zero (RFC 1071's check).
        let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        assert_eq!(icmpv6_checksum(src, dst, body), 0);
        assert_eq!(&body[body.len() - 16..], &advert.dns.octets());
    }

    #[test]
    fn answers_arp_for_itself_and_the_router_only() {
        let mut s = Server::new(offer(50));
        s.offer.router = Ipv4Addr::new(192, 168, 77, 254);
        let ask = |target: Ipv4Addr| {
            let arp = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: EthernetAddress(CLIENT_MAC),
                source_protocol_addr: Ipv4Addr::new(192, 168, 77, 50),
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: target,
            };
            let eth = EthernetRepr {
                src_addr: EthernetAddress(CLIENT_MAC),
                dst_addr: EthernetAddress::BROADCAST,
                ethertype: EthernetProtocol::Arp,
            };
            let mut buf = vec![0u8; eth.buffer_len() + arp.buffer_len()];
            let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
            eth.emit(&mut frame);
            arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
            buf
        };
        for (target, answered) in [
            (SERVER_IP, true),
            (Ipv4Addr::new(192, 168, 77, 254), true),
            (Ipv4Addr::new(192, 168, 77, 9), false),
        ] {
            let reply = s.handle(&ask(target), Instant::now());
            assert_eq!(reply.is_some(), answered, "{target}");
            if let Some(r) = reply {
                let eth = EthernetFrame::new_checked(&r[..]).unwrap();
                let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
                let ArpRepr::EthernetIpv4 {
                    operation,
                    source_hardware_addr,
                    source_protocol_addr,
                    ..
                } = arp
                else {
                    unreachable!()
                };
                assert_eq!(operation, ArpOperation::Reply);
                assert_eq!(source_hardware_addr.0, SERVER_MAC);
                assert_eq!(source_protocol_addr, target);
            }
        }
    }
}
