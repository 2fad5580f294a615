//! A lease's life against a simulated server, on a clock the tests move.

use super::*;
use crate::sys::dhcp::tests::{Answer, MAC, SERVER, SERVER_MAC, sent};

const LEASED: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A client bound to QEMU's lease (a day, T1 12 h, T2 21 h) at `t0`.
fn bound(t0: Instant, answer: &Answer) -> DhcpClient {
    let mut c = DhcpClient::new(MAC, 0x1234_5678, None, t0);
    let discover = c.poll(t0).frame.unwrap();
    let offer = Answer {
        kind: MessageType::Offer,
        ..answer.clone()
    };
    let request = c.receive(t0, &offer.to(&discover)).frame.unwrap();
    let ack = Answer {
        kind: MessageType::Ack,
        ..answer.clone()
    };
    let out = c.receive(t0, &ack.to(&request));
    assert!(matches!(out.event, Some(Event::Bound(_))), "{out:?}");
    c
}

fn frame(out: Output) -> Vec<u8> {
    out.frame.expect("a frame to send")
}

#[test]
fn discover_offer_request_ack_all_broadcast() {
    let t0 = Instant::now();
    let mut c = DhcpClient::new(MAC, 7, None, t0);
    assert_eq!(c.poll_at(), Some(t0));
    let discover = frame(c.poll(t0));
    let d = sent(&discover);
    assert_eq!(d.kind, MessageType::Discover);
    assert_eq!((d.eth_dst, d.ip_dst), ([0xff; 6], Ipv4Addr::BROADCAST));
    assert_eq!(
        (d.ip_src, d.ciaddr),
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED)
    );
    assert!(
        d.broadcast_flag,
        "no address yet: the reply must be broadcast"
    );
    assert_eq!(d.client_mac, MAC);

    let request = frame(c.receive(t0, &Answer::qemu(MessageType::Offer).to(&discover)));
    let r = sent(&request);
    assert_eq!(r.kind, MessageType::Request);
    assert_eq!((r.requested_ip, r.server_id), (Some(LEASED), Some(SERVER)));
    assert_eq!((r.ip_dst, r.xid), (Ipv4Addr::BROADCAST, d.xid));
    assert_eq!(c.phase(), Phase::Requesting);
    assert_eq!(
        c.receive(t0, &Answer::qemu(MessageType::Offer).to(&discover)),
        Output::default(),
        "a second offer while requesting"
    );

    let out = c.receive(t0, &Answer::qemu(MessageType::Ack).to(&request));
    let Some(Event::Bound(lease)) = out.event else {
        panic!("{out:?}")
    };
    assert_eq!(
        lease,
        Lease {
            address: LEASED,
            prefix_len: 24,
            router: Some(SERVER),
            dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
            server: SERVER,
            lease_secs: 86_400,
            renew_secs: None,
            rebind_secs: None,
        }
    );
    assert_eq!(c.phase(), Phase::Bound);
    assert_eq!(c.poll_at(), Some(t0 + secs(43_200)));
    assert_eq!(c.poll(t0 + secs(43_199)), Output::default());
}

#[test]
fn discovers_are_retried_at_4_8_16_32_64_64_seconds() {
    let t0 = Instant::now();
    let mut c = DhcpClient::new(MAC, 7, None, t0);
    let mut t = t0;
    for wait in [4, 8, 16, 32, 64, 64] {
        assert!(c.poll(t).frame.is_some());
        assert_eq!(c.poll_at(), Some(t + secs(wait)));
        assert_eq!(
            c.poll(t + secs(wait) - Duration::from_millis(1)),
            Output::default()
        );
        t += secs(wait);
    }
}

#[test]
fn renewing_is_unicast_to_the_server_with_ciaddr_at_t1() {
    let t0 = Instant::now();
    let mut c = bound(t0, &Answer::qemu(MessageType::Ack));
    let t1 = t0 + secs(43_200);
    let renew = frame(c.poll(t1));
    let r = sent(&renew);
    assert_eq!(c.phase(), Phase::Renewing);
    assert_eq!(r.kind, MessageType::Request);
    assert_eq!(
        (r.eth_dst, r.ip_dst),
        (SERVER_MAC, SERVER),
        "unicast to the server"
    );
    assert_eq!((r.ip_src, r.ciaddr), (LEASED, LEASED));
    assert!(!r.broadcast_flag);
    assert_eq!(
        (r.requested_ip, r.server_id),
        (None, None),
        "RFC 2131 table 5"
    );

    // Retried after half the time left until T2 (21 h): 4.5 h, then 2.25 h ...
    assert_eq!(c.poll(t1 + secs(16_199)), Output::default());
    let again = sent(&frame(c.poll(t1 + secs(16_200))));
    assert_eq!((again.ip_dst, again.xid), (SERVER, r.xid));
    assert_eq!(c.poll_at(), Some(t1 + secs(16_200 + 8_100)));

    // The server's unicast ACK extends the lease from when this renewal began.
    let out = c.receive(
        t1 + secs(16_201),
        &Answer::qemu(MessageType::Ack).to(&renew),
    );
    assert!(matches!(out.event, Some(Event::Extended(_))), "{out:?}");
    assert_eq!(c.phase(), Phase::Bound);
    assert_eq!(c.poll_at(), Some(t1 + secs(43_200)));
}

#[test]
fn rebinding_broadcasts_at_t2_and_the_lease_is_lost_at_its_end() {
    let t0 = Instant::now();
    let mut c = bound(t0, &Answer::qemu(MessageType::Ack));
    let renew = sent(&frame(c.poll(t0 + secs(43_200))));
    let t2 = t0 + secs(75_600);
    let rebind = sent(&frame(c.poll(t2)));
    assert_eq!(c.phase(), Phase::Rebinding);
    assert_eq!(
        (rebind.eth_dst, rebind.ip_dst),
        ([0xff; 6], Ipv4Addr::BROADCAST)
    );
    assert_eq!((rebind.ip_src, rebind.ciaddr), (LEASED, LEASED));
    assert!(!rebind.broadcast_flag);
    assert_ne!(rebind.xid, renew.xid, "a new transaction");
    // Half the 3 h left, then half of what is left, never under a minute.
    assert_eq!(c.poll_at(), Some(t2 + secs(5_400)));
    assert!(c.poll(t2 + secs(5_400)).frame.is_some());
    assert_eq!(c.poll_at(), Some(t2 + secs(5_400 + 2_700)));

    let end = t0 + secs(86_400);
    let out = c.poll(end);
    assert_eq!(out.event, Some(Event::Lost(Loss::Expired)));
    let d = sent(&out.frame.unwrap());
    assert_eq!(d.kind, MessageType::Discover);
    assert_eq!(
        d.requested_ip,
        Some(LEASED),
        "asks for its old address again"
    );
    assert_eq!(d.ip_src, Ipv4Addr::UNSPECIFIED);
    assert_eq!(c.phase(), Phase::Selecting);
    assert_eq!(c.lease(), None);
}

#[test]
fn short_leases_retry_a_minute_apart_but_never_past_t2_or_the_end() {
    let t0 = Instant::now();
    let answer = Answer {
        lease_secs: Some(120),
        ..Answer::qemu(MessageType::Ack)
    };
    let mut c = bound(t0, &answer);
    assert!(c.poll(t0 + secs(60)).frame.is_some());
    // T2 is at 105 s, sooner than a minute after T1.
    assert_eq!(c.poll_at(), Some(t0 + secs(105)));
    assert!(c.poll(t0 + secs(105)).frame.is_some());
    assert_eq!(c.phase(), Phase::Rebinding);
    assert_eq!(c.poll_at(), Some(t0 + secs(120)));
}

#[test]
fn a_renewal_that_changes_the_network_is_applied() {
    let t0 = Instant::now();
    let mut c = bound(t0, &Answer::qemu(MessageType::Ack));
    let renew = frame(c.poll(t0 + secs(43_200)));
    let moved = Answer {
        your_ip: Ipv4Addr::new(10, 0, 2, 16),
        router: Some(Ipv4Addr::new(10, 0, 2, 1)),
        dns: vec![Ipv4Addr::new(10, 0, 2, 53)],
        ..Answer::qemu(MessageType::Ack)
    };
    let out = c.receive(t0 + secs(43_201), &moved.to(&renew));
    let Some(Event::Bound(lease)) = out.event else {
        panic!("{out:?}")
    };
    assert_eq!(lease.address, Ipv4Addr::new(10, 0, 2, 16));
    assert_eq!(lease.router, Some(Ipv4Addr::new(10, 0, 2, 1)));
    assert_eq!(lease.dns, [Ipv4Addr::new(10, 0, 2, 53)]);
    // The next renewal comes from the new address.
    let next = sent(&frame(c.poll(t0 + secs(43_200 * 2))));
    assert_eq!(next.ciaddr, Ipv4Addr::new(10, 0, 2, 16));
}

#[test]
fn a_nak_on_renewal_loses_the_lease_and_starts_over() {
    let t0 = Instant::now();
    let mut c = bound(t0, &Answer::qemu(MessageType::Ack));
    let renew = frame(c.poll(t0 + secs(43_200)));
    let nak = Answer {
        your_ip: Ipv4Addr::UNSPECIFIED,
        ..Answer::qemu(MessageType::Nak)
    };
    let later = t0 + secs(43_201);
    let out = c.receive(later, &nak.to(&renew));
    assert_eq!(out.event, Some(Event::Lost(Loss::Refused)));
    assert_eq!(c.poll_at(), Some(later));
    let d = sent(&frame(c.poll(later)));
    assert_eq!((d.kind, d.requested_ip), (MessageType::Discover, None));
}

#[test]
fn other_transactions_other_clients_and_noise_are_ignored() {
    let t0 = Instant::now();
    let mut c = DhcpClient::new(MAC, 7, None, t0);
    let discover = frame(c.poll(t0));
    let stray = Answer {
        xid_delta: 1,
        ..Answer::qemu(MessageType::Offer)
    };
    assert_eq!(c.receive(t0, &stray.to(&discover)), Output::default());
    assert_eq!(c.receive(t0, &[0u8; 10]), Output::default());
    assert_eq!(
        c.receive(t0, &discover),
        Output::default(),
        "our own broadcast"
    );
    let mut other = DhcpClient::new([2, 0, 0, 0, 0, 1], 7, None, t0);
    let theirs = frame(other.poll(t0));
    assert_eq!(
        c.receive(t0, &Answer::qemu(MessageType::Offer).to(&theirs)),
        Output::default()
    );
    assert_eq!(c.phase(), Phase::Selecting);
}

#[test]
fn an_unanswered_request_or_a_nak_goes_back_to_discovering() {
    let t0 = Instant::now();
    let mut c = DhcpClient::new(MAC, 7, None, t0);
    let discover = frame(c.poll(t0));
    let request = frame(c.receive(t0, &Answer::qemu(MessageType::Offer).to(&discover)));
    let mut t = t0;
    for wait in [4, 8, 16] {
        t += secs(wait);
        assert_eq!(sent(&frame(c.poll(t))).kind, MessageType::Request);
    }
    t += secs(32);
    assert_eq!(sent(&frame(c.poll(t))).kind, MessageType::Discover);
    assert_eq!(c.phase(), Phase::Selecting);

    let mut c = DhcpClient::new(MAC, 7, None, t0);
    let discover = frame(c.poll(t0));
    let request2 = frame(c.receive(t0, &Answer::qemu(MessageType::Offer).to(&discover)));
    assert_eq!(
        sent(&request2).xid,
        sent(&request).xid,
        "same seed, same ids"
    );
    let out = c.receive(t0, &Answer::qemu(MessageType::Nak).to(&request2));
    assert_eq!(out, Output::default(), "nothing was held, nothing is lost");
    assert_eq!(sent(&frame(c.poll(t0))).kind, MessageType::Discover);
}

#[test]
fn an_infinite_lease_is_never_renewed() {
    let t0 = Instant::now();
    let answer = Answer {
        lease_secs: Some(u32::MAX),
        ..Answer::qemu(MessageType::Ack)
    };
    let mut c = bound(t0, &answer);
    assert_eq!(c.poll_at(), None);
    assert_eq!(c.poll(t0 + secs(10 * 365 * 86_400)), Output::default());
}
