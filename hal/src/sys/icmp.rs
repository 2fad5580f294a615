//! ICMP echo (ping) for the diagnostics. The packets are smoltcp's wire types; they go out on an
//! ICMP datagram socket where `net.ipv4.ping_group_range` lets this user have one, else on a raw
//! socket (root, as PID 1 on the appliance is). rustix wraps every call: no `unsafe` here.
//!
//! The codec ([`echo_request`], [`answer`]) is sans-IO, so what is taken as an answer is tested
//! without a network.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketType, ipproto, recvfrom, sendto, sockopt,
};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
};

/// What came back for one echo request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The echo reply, from this address.
    Reply(Ipv4Addr),
    /// A router or the host said the destination cannot be reached.
    Unreachable {
        from: Ipv4Addr,
        reason: Icmpv4DstUnreachable,
    },
}

/// An echo request, checksum and all.
pub fn echo_request(ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    let repr = Icmpv4Repr::EchoRequest {
        ident,
        seq_no,
        data,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
        &ChecksumCapabilities::default(),
    );
    buf
}

/// Whether `bytes` (as a raw socket reads them, IPv4 header first, or as a datagram socket
/// does, ICMP only) answer the request `ident`/`seq_no`. Anything else (another ping's reply,
/// noise, a truncated packet) is `None`.
pub fn answer(bytes: &[u8], with_ip_header: bool, ident: u16, seq_no: u16) -> Option<Answer> {
    let (from, icmp) = match with_ip_header {
        true => {
            let ip = Ipv4Packet::new_checked(bytes).ok()?;
            if ip.next_header() != IpProtocol::Icmp {
                return None;
            }
            let header = usize::from(ip.header_len());
            (Some(ip.src_addr()), bytes.get(header..)?)
        }
        false => (None, bytes),
    };
    let packet = Icmpv4Packet::new_checked(icmp).ok()?;
    // The kernel checked what a datagram socket hands up and rewrote its ident.
    let checksums = match with_ip_header {
        true => ChecksumCapabilities::default(),
        false => ChecksumCapabilities::ignored(),
    };
    match Icmpv4Repr::parse(&packet, &checksums).ok()? {
        Icmpv4Repr::EchoReply {
            ident: i,
            seq_no: s,
            ..
        } if s == seq_no && (i == ident || !with_ip_header) => {
            Some(Answer::Reply(from.unwrap_or(Ipv4Addr::UNSPECIFIED)))
        }
        Icmpv4Repr::DstUnreachable {
            reason,
            header: Ipv4Repr { .. },
            data,
        } => {
            // The first 8 bytes of our request come back: its ident and sequence number.
            let ours = Icmpv4Packet::new_checked(data).ok()?;
            let mine =
                ours.echo_seq_no() == seq_no && (ours.echo_ident() == ident || !with_ip_header);
            mine.then_some(Answer::Unreachable {
                from: from.unwrap_or(Ipv4Addr::UNSPECIFIED),
                reason,
            })
        }
        _ => None,
    }
}

/// A socket that sends echo requests and reads the answers.
pub struct Pinger {
    fd: OwnedFd,
    /// A raw socket reads IPv4 headers too.
    raw: bool,
    ident: u16,
}

impl Pinger {
    /// A datagram ICMP socket if this user may have one, else a raw one.
    pub fn open() -> io::Result<Pinger> {
        let (fd, raw) = match rustix::net::socket(
            AddressFamily::INET,
            SocketType::DGRAM,
            Some(ipproto::ICMP),
        ) {
            Ok(fd) => (fd, false),
            Err(_) => (
                rustix::net::socket(AddressFamily::INET, SocketType::RAW, Some(ipproto::ICMP))?,
                true,
            ),
        };
        // Tells this ping's answers from another's on a raw socket (a datagram socket's ident is
        // the kernel's).
        let ident = (std::process::id() as u16) ^ 0x5053;
        Ok(Pinger { fd, raw, ident })
    }

    /// Sends one echo request to `to` and waits up to `wait` for its answer; `None` when none
    /// came. The time is the round trip.
    pub fn echo(
        &self,
        to: Ipv4Addr,
        seq_no: u16,
        data: &[u8],
        wait: Duration,
    ) -> io::Result<Option<(Answer, Duration)>> {
        let request = echo_request(self.ident, seq_no, data);
        let sent = Instant::now();
        sendto(
            &self.fd,
            &request,
            SendFlags::empty(),
            &SocketAddrV4::new(to, 0),
        )?;
        let mut buf = [0u8; 1500];
        loop {
            let Some(left) = (sent + wait).checked_duration_since(Instant::now()) else {
                return Ok(None);
            };
            sockopt::set_socket_timeout(
                &self.fd,
                sockopt::Timeout::Recv,
                Some(left.max(Duration::from_millis(1))),
            )?;
            let n = match recvfrom(&self.fd, &mut buf, RecvFlags::empty()) {
                Ok((_, n, _)) => n.min(buf.len()),
                Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(mut answer) = answer(&buf[..n], self.raw, self.ident, seq_no) {
                if let Answer::Reply(from) = &mut answer
                    && from.is_unspecified()
                {
                    *from = to;
                }
                return Ok(Some((answer, sent.elapsed())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `icmp` behind an IPv4 header from `src`.
    fn in_ip(src: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: Ipv4Addr::new(192, 0, 2, 10),
            next_header: IpProtocol::Icmp,
            payload_len: icmp.len(),
            hop_limit: 64,
        };
        let mut buf = vec![0u8; repr.buffer_len() + icmp.len()];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p, &ChecksumCapabilities::default());
        p.payload_mut().copy_from_slice(icmp);
        buf
    }

    fn reply(ident: u16, seq_no: u16) -> Vec<u8> {
        let repr = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data: b"postern",
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCapabilities::default(),
        );
        buf
    }

    #[test]
    fn only_the_answer_to_this_request_counts() {
        let host = Ipv4Addr::new(192, 0, 2, 1);
        let raw = in_ip(host, &reply(7, 3));
        assert_eq!(answer(&raw, true, 7, 3), Some(Answer::Reply(host)));
        // Another ping's reply, a later sequence number, noise, a cut packet.
        assert_eq!(answer(&raw, true, 8, 3), None);
        assert_eq!(answer(&raw, true, 7, 4), None);
        assert_eq!(answer(b"\x45\x00garbage", true, 7, 3), None);
        assert_eq!(answer(&raw[..raw.len() - 3], true, 7, 3), None);
        // A bad checksum on a raw socket is not an answer.
        let mut bad = raw.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(answer(&bad, true, 7, 3), None);
        // A datagram socket: ICMP only, the ident is the kernel's.
        assert_eq!(
            answer(&reply(999, 3), false, 7, 3),
            Some(Answer::Reply(Ipv4Addr::UNSPECIFIED))
        );
    }

    #[test]
    fn an_unreachable_that_quotes_this_request() {
        let router = Ipv4Addr::new(192, 0, 2, 254);
        let request = echo_request(7, 3, b"postern");
        let quoted = in_ip(Ipv4Addr::new(192, 0, 2, 10), &request);
        let repr = Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::HostUnreachable,
            header: Ipv4Repr {
                src_addr: Ipv4Addr::new(192, 0, 2, 10),
                dst_addr: Ipv4Addr::new(198, 51, 100, 1),
                next_header: IpProtocol::Icmp,
                payload_len: 8,
                hop_limit: 64,
            },
            data: &quoted[20..28],
        };
        let mut icmp = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(&mut icmp[..]),
            &ChecksumCapabilities::default(),
        );
        let raw = in_ip(router, &icmp);
        assert_eq!(
            answer(&raw, true, 7, 3),
            Some(Answer::Unreachable {
                from: router,
                reason: Icmpv4DstUnreachable::HostUnreachable
            })
        );
        assert_eq!(answer(&raw, true, 7, 4), None);
    }

    /// Needs root or a ping_group_range that includes this user; skipped otherwise.
    #[test]
    fn loopback_answers() {
        let Ok(pinger) = Pinger::open() else {
            eprintln!("no ICMP socket for this user: skipped");
            return;
        };
        let got = pinger
            .echo(Ipv4Addr::LOCALHOST, 1, b"postern", Duration::from_secs(2))
            .unwrap();
        assert!(
            matches!(got, Some((Answer::Reply(ip), _)) if ip == Ipv4Addr::LOCALHOST),
            "{got:?}"
        );
    }
}
