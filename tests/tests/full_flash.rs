//! A full flash in host mode (issue 17): with the next hop down, mail piles up until the spool is
//! full; then the box answers `452 4.3.1` and keeps what it acknowledged; once the mail drains to
//! the next hop, new mail is accepted again.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tests::host::{HostPostern, SmtpClient};
use tests::peers::{Sink, free_port};

/// One message of about `size` bytes; the first reply that is not a go-ahead, or the reply to
/// the end of data.
fn send(addr: SocketAddr, n: usize, size: usize) -> String {
    let mut c = SmtpClient::connect(addr);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let mail = c.cmd("MAIL FROM:<load@client.test>");
    if !mail.starts_with("250") {
        return mail;
    }
    let rcpt = c.cmd("RCPT TO:<full@example.net>");
    if !rcpt.starts_with("250") {
        return rcpt;
    }
    let data = c.cmd("DATA");
    if !data.starts_with("354") {
        return data;
    }
    let mut body = format!("Subject: full {n}\r\nX-Full-Id: {n}\r\n\r\n").into_bytes();
    while body.len() < size {
        body.extend_from_slice(&[b'x'; 78]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b".\r\n");
    c.send(&body);
    let reply = c.reply();
    c.cmd("QUIT");
    reply
}

fn copies(messages: &[String], n: usize) -> usize {
    let id = format!("X-Full-Id: {n}\n");
    messages.iter().filter(|m| m.contains(&id)).count()
}

/// What the sink holds once every message of `ids` is in (smtp-sink writes a file as the
/// message comes, so a file may be there before its message is).
fn all_in(sink: &Sink, ids: &[usize]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = sink.messages();
        if ids.iter().all(|&n| copies(&got, n) > 0) || Instant::now() > deadline {
            // A second copy would show up about now.
            std::thread::sleep(Duration::from_millis(300));
            return sink.messages();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_full_flash_answers_452_keeps_what_it_took_and_takes_mail_again_once_drained() {
    let port = free_port();
    let p = HostPostern::start_on("16M", &[]);
    p.admin_ok(&[
        "prov",
        "mcf",
        "zimbraMtaRelayHost",
        &format!("[127.0.0.1]:{port}"),
    ]);
    p.admin_ok(&["prov", "mcf", "zimbraMtaMyNetworks", "127.0.0.0/8"]);
    let addr = p.listener("smtp");

    // The next hop is down: 500 kB messages pile up until the flash is full.
    let mut acked = Vec::new();
    let mut refusal = None;
    for n in 0..200 {
        let reply = send(addr, n, 500_000);
        if reply.starts_with("250 ") {
            acked.push(n);
        } else {
            refusal = Some(reply);
            break;
        }
    }
    let refusal = refusal.expect("a 16 MiB flash never filled up");
    assert!(
        refusal.starts_with("452 4.3.1 Insufficient system storage"),
        "{refusal}"
    );
    assert!(acked.len() >= 5, "only {} messages fit", acked.len());
    // Still full: refused again, and nothing acknowledged was dropped to make room.
    let again = send(addr, 1000, 500_000);
    assert!(again.starts_with("452 4.3.1"), "{again}");
    let listing = p.admin_ok(&["queue", "list"]);
    assert!(
        listing.contains(&format!("in {} Requests", acked.len())),
        "{} acknowledged: {listing}",
        acked.len()
    );

    // The next hop comes back: everything acknowledged arrives, once each.
    let sink = Sink::start(port);
    p.admin_ok(&["queue", "flush"]);
    let got = all_in(&sink, &acked);
    for &n in &acked {
        assert_eq!(copies(&got, n), 1, "message {n}\n{}", p.log());
    }

    // Space comes back as deliveries complete: new mail is taken again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = send(addr, 2000, 500_000);
        if reply.starts_with("250 ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the flash never freed up: {reply}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(copies(&all_in(&sink, &[2000]), 2000), 1);
}
