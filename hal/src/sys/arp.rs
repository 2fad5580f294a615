//! Whether a neighbour (the default gateway) is on the link: one ARP request for its address on a
//! packet socket and its reply, built and read with smoltcp's wire types. A gateway that does not
//! answer is a wrong address or prefix, a wrong VLAN or a cable, which an admin wants to hear
//! about before mail starts to wait in the queue.

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

use super::packet::{ETH_P_ARP, PacketSocket, link_identity};

/// The request is sent again after this long without an answer (one lost frame is no verdict).
const RESEND: Duration = Duration::from_millis(400);

/// The broadcast ARP request from `mac`/`sender` for `target`. A sender of 0.0.0.0 (no address
/// yet) makes it an RFC 5227 probe, which hosts answer too.
pub fn request(mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: sender,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    // Ethernet's minimum frame (60 bytes before the FCS); the tail stays zero padding.
    let mut buf = vec![0u8; (eth.buffer_len() + arp.buffer_len()).max(60)];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    buf
}

/// The hardware address in `frame` if it is `target`'s ARP reply to `mac`.
pub fn reply_from(frame: &[u8], mac: [u8; 6], target: Ipv4Addr) -> Option<[u8; 6]> {
    let frame = EthernetFrame::new_checked(frame).ok()?;
    if frame.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let packet = ArpPacket::new_checked(frame.payload()).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr,
        source_protocol_addr,
        target_hardware_addr,
        ..
    } = ArpRepr::parse(&packet).ok()?
    else {
        return None;
    };
    let answered = operation == ArpOperation::Reply
        && source_protocol_addr == target
        && target_hardware_addr == EthernetAddress(mac)
        && source_hardware_addr.is_unicast();
    answered.then_some(source_hardware_addr.0)
}

/// Asks `target` for its hardware address on `ifname` (which must be up), from `sender` (the
/// interface's address, or 0.0.0.0); None when no reply came within `limit`.
pub fn probe(
    ifname: &str,
    sender: Ipv4Addr,
    target: Ipv4Addr,
    limit: Duration,
) -> io::Result<Option<[u8; 6]>> {
    let (mac, index) = link_identity(ifname)?;
    let socket = PacketSocket::bind(index, ETH_P_ARP, None)?;
    let question = request(mac, sender, target);
    let end = Instant::now() + limit;
    let mut buf = [0u8; 128];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        socket.send(&question)?;
        let resend = Instant::now() + RESEND.min(left);
        while let Some(wait) = resend.checked_duration_since(Instant::now()) {
            let got = socket.recv(&mut buf, wait)?;
            let frame = got.and_then(|n| buf.get(..n));
            if let Some(answer) = frame.and_then(|f| reply_from(f, mac, target)) {
                return Ok(Some(answer));
            }
        }
    }
    Ok(None)
}

/// `52:55:0a:00:02:02`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const GW_MAC: [u8; 6] = [0x52, 0x55, 10, 0, 2, 2];
    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
    const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

    fn arp(op: ArpOperation, from: ([u8; 6], Ipv4Addr), to: ([u8; 6], Ipv4Addr)) -> Vec<u8> {
        let repr = ArpRepr::EthernetIpv4 {
            operation: op,
            source_hardware_addr: EthernetAddress(from.0),
            source_protocol_addr: from.1,
            target_hardware_addr: EthernetAddress(to.0),
            target_protocol_addr: to.1,
        };
        let mut buf = vec![0u8; 14 + repr.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: EthernetAddress(from.0),
            dst_addr: EthernetAddress(to.0),
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut frame);
        repr.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        buf
    }

    #[test]
    fn the_request_is_a_broadcast_who_has_from_the_box() {
        let frame = request(MAC, ME, GW);
        assert_eq!(frame.len(), 60);
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(eth.ethertype(), EthernetProtocol::Arp);
        let repr = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(
            repr,
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: EthernetAddress(MAC),
                source_protocol_addr: ME,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: GW,
            }
        );
    }

    #[test]
    fn only_the_targets_reply_to_us_counts() {
        let reply = arp(ArpOperation::Reply, (GW_MAC, GW), (MAC, ME));
        assert_eq!(reply_from(&reply, MAC, GW), Some(GW_MAC));
        assert_eq!(reply_from(&reply, MAC, Ipv4Addr::new(10, 0, 2, 3)), None);
        assert_eq!(
            reply_from(&reply, [2, 0, 0, 0, 0, 9], GW),
            None,
            "to another host"
        );
        let asks = arp(ArpOperation::Request, (GW_MAC, GW), ([0; 6], ME));
        assert_eq!(reply_from(&asks, MAC, GW), None, "a request is no answer");
        assert_eq!(reply_from(&request(MAC, ME, GW), MAC, GW), None);
        assert_eq!(reply_from(&reply[..20], MAC, GW), None);
        assert_eq!(reply_from(&[], MAC, GW), None);
    }

    #[test]
    fn macs_print_as_admins_read_them() {
        assert_eq!(format_mac(GW_MAC), "52:55:0a:00:02:02");
    }
}
