//! The mail flow end to end in host mode, against real peers on loopback: the split-domain
//! scenarios, relay control with AUTH, the queue's backup-MX behaviour across a kill -9, and the
//! queue admin commands.

use std::net::SocketAddr;
use std::time::Duration;

use tests::host::{HostPostern, SmtpClient};
use tests::peers::{Sink, free_port, swaks};

fn prov(p: &HostPostern, args: &[&str]) -> String {
    let mut all = vec!["prov"];
    all.extend_from_slice(args);
    p.admin_ok(&all)
}

/// Makes the box the seed's *secondary* for example.com: every address is accepted and forwarded
/// to `transport` (the primary).
fn secondary(p: &HostPostern, transport: &str) {
    prov(
        p,
        &[
            "cd",
            "example.com",
            "zimbraMailCatchAllAddress",
            "@example.com",
            "zimbraMailCatchAllForwardingAddress",
            "@example.com",
            "zimbraMailTransport",
            transport,
        ],
    );
}

/// One message over a raw SMTP session; returns the reply to the end of data.
fn send(addr: SocketAddr, from: &str, to: &str, subject: &str) -> String {
    let mut c = SmtpClient::connect(addr);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    let rcpt = c.cmd(&format!("RCPT TO:<{to}>"));
    assert!(rcpt.starts_with("250"), "RCPT {to}: {rcpt}");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(
        format!("Subject: {subject}\r\nFrom: <{from}>\r\n\r\nbody of {subject}\r\n.\r\n")
            .as_bytes(),
    );
    let reply = c.reply();
    c.cmd("QUIT");
    reply
}

fn swaks_to(addr: SocketAddr, to: &str, extra: &[&str]) -> String {
    let port = addr.port().to_string();
    let mut args = vec![
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "sender@outside.example",
        "--to",
        to,
    ];
    args.extend_from_slice(extra);
    let out = swaks(&args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn secondary_forwards_every_address_of_the_domain_intact() {
    let sink = Sink::start(0);
    let p = HostPostern::start(&[]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    secondary(&p, &transport);
    let body = "first line\n.a line that starts with a dot\nlast line";
    let out = swaks_to(
        p.listener("smtp"),
        "anyone@example.com",
        &["--h-Subject", "split domain", "--body", body],
    );
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    let got = sink.wait_for(1, Duration::from_secs(60));
    assert_eq!(got.len(), 1, "postern log:\n{}", p.log());
    let m = &got[0];
    assert!(m.contains("X-Rcpt-Args: <anyone@example.com>"), "{m}");
    assert!(m.contains("Subject: split domain"), "{m}");
    assert!(
        m.contains("\n.a line that starts with a dot"),
        "dot-stuffing must round-trip: {m}"
    );
    assert!(m.contains("by mx.test.example (Postern) with ESMTP"), "{m}");
    assert!(p.log().contains("status=sent"), "{}", p.log());
}

#[test]
fn primary_rejects_unknown_and_disabled_at_rcpt_and_delivers_aliases_to_the_account() {
    let sink = Sink::start(0);
    let p = HostPostern::start(&[]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    prov(
        &p,
        &["cd", "example.com", "zimbraMailTransport", &transport],
    );
    prov(&p, &["ca", "foo@example.com", "secret"]);
    prov(&p, &["aaa", "foo@example.com", "info@example.com"]);
    prov(
        &p,
        &[
            "ca",
            "gone@example.com",
            "secret",
            "zimbraMailStatus",
            "disabled",
        ],
    );

    let mut c = SmtpClient::connect(p.listener("smtp"));
    c.reply();
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<x@outside.example>").starts_with("250"));
    let unknown = c.cmd("RCPT TO:<nobody@example.com>");
    assert_eq!(
        unknown,
        "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
    );
    assert!(
        c.cmd("RCPT TO:<gone@example.com>")
            .starts_with("550 5.2.1 ")
    );
    assert!(c.cmd("RCPT TO:<INFO@Example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: alias\r\n\r\nhello\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as "));
    let got = sink.wait_for(1, Duration::from_secs(60));
    assert_eq!(got.len(), 1, "{}", p.log());
    assert!(
        got[0].contains("X-Rcpt-Args: <foo@example.com>"),
        "an alias goes to its account: {}",
        got[0]
    );
}

#[test]
fn relay_is_refused_outside_mynetworks_and_allowed_after_auth() {
    let sink = Sink::start(0);
    let p = HostPostern::start(&["--submission", "127.0.0.1:0"]);
    prov(
        &p,
        &[
            "cd",
            "example.com",
            "zimbraMailTransport",
            "smtp:[127.0.0.1]:9",
        ],
    );
    prov(&p, &["ca", "foo@example.com", "s3cret pass"]);
    prov(&p, &["mcf", "zimbraMtaMyNetworks", "192.0.2.0/24"]);
    prov(
        &p,
        &[
            "mcf",
            "zimbraMtaRelayHost",
            &format!("[127.0.0.1]:{}", sink.port),
        ],
    );

    let out = swaks_to(p.listener("smtp"), "someone@elsewhere.example", &[]);
    assert!(
        out.contains("554 5.7.1 <someone@elsewhere.example>: Relay access denied"),
        "{out}"
    );

    let sub = p.listener("submission");
    let auth = [
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "foo@example.com",
        "--auth-password",
    ];
    let mut args = auth.to_vec();
    args.push("wrong");
    let out = swaks_to(sub, "someone@elsewhere.example", &args);
    assert!(out.contains("535 5.7.8"), "{out}");
    let mut args = auth.to_vec();
    args.push("s3cret pass");
    let out = swaks_to(sub, "someone@elsewhere.example", &args);
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    let got = sink.wait_for(1, Duration::from_secs(60));
    assert_eq!(got.len(), 1, "{}", p.log());
    assert!(
        got[0].contains("X-Rcpt-Args: <someone@elsewhere.example>"),
        "{}",
        got[0]
    );
}

#[test]
fn backup_mx_keeps_mail_across_kill_9_and_delivers_each_message_once() {
    let port = free_port();
    let mut p = HostPostern::start(&[]);
    secondary(&p, &format!("smtp:[127.0.0.1]:{port}"));
    for i in 0..3 {
        let reply = send(
            p.listener("smtp"),
            "a@outside.example",
            &format!("user{i}@example.com"),
            &format!("msg {i}"),
        );
        assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    }
    // The next hop is down: the mail waits.
    std::thread::sleep(Duration::from_millis(500));
    let listing = p.admin_ok(&["queue", "list"]);
    assert!(listing.contains("in 3 Requests"), "{listing}");

    p.kill9();
    p.restart();
    let listing = p.admin_ok(&["queue", "list"]);
    assert!(
        listing.contains("in 3 Requests"),
        "after kill -9: {listing}\n{}",
        p.log()
    );

    let sink = Sink::start(port);
    let flushed = p.admin_ok(&["queue", "flush"]);
    assert!(flushed.contains("being tried now"), "{flushed}");
    let got = sink.wait_for(3, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let got_after = sink.messages();
    assert_eq!(got.len(), 3, "{}", p.log());
    assert_eq!(got_after.len(), 3, "each message arrives exactly once");
    for i in 0..3 {
        assert_eq!(
            got_after
                .iter()
                .filter(|m| m.contains(&format!("Subject: msg {i}\n")))
                .count(),
            1
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !p
        .admin_ok(&["queue", "list"])
        .contains("Mail queue is empty")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never emptied"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn queue_admin_holds_shows_and_deletes() {
    let port = free_port();
    let p = HostPostern::start(&[]);
    secondary(&p, &format!("smtp:[127.0.0.1]:{port}"));
    let reply = send(
        p.listener("smtp"),
        "a@outside.example",
        "x@example.com",
        "held",
    );
    let qid = reply.rsplit(' ').next().unwrap().trim().to_string();
    assert_eq!(
        p.admin_ok(&["queue", "hold", &qid]).trim(),
        format!("{qid}: held")
    );
    let listing = p.admin_ok(&["queue", "list"]);
    assert!(listing.contains(&format!("{qid}!")), "{listing}");
    let json = p.admin_ok(&["queue", "list", "--json"]);
    assert!(
        json.contains("\"queue_name\": \"hold\"")
            && json.contains("\"address\": \"x@example.com\""),
        "{json}"
    );
    // The same selection through the command line's flags, and qshape's table.
    let held = p.admin_ok(&[
        "queue",
        "list",
        "--json",
        "--queue",
        "hold",
        "--sender",
        "*@outside.example",
    ]);
    assert_eq!(held.lines().count(), 1, "{held}");
    let none = p.admin_ok(&["queue", "list", "--json", "--domain", "elsewhere.example"]);
    assert_eq!(none, "");
    let shape = p.admin_ok(&["queue", "shape", "hold"]);
    assert!(
        shape
            .lines()
            .any(|l| l.split_whitespace().take(3).eq(["example.com", "1", "1"])),
        "{shape}"
    );
    let shown = p.admin_ok(&["queue", "show", &qid, "--body"]);
    assert!(
        shown.contains("sender: <a@outside.example>") && shown.contains("body of held"),
        "{shown}"
    );
    // Each record with its time, through the control socket: the arrival, then the hold.
    let history: Vec<&str> = shown
        .lines()
        .skip_while(|l| !l.starts_with("*** HISTORY hold/"))
        .skip(1)
        .take_while(|l| !l.starts_with("*** "))
        .collect();
    assert!(
        history
            .first()
            .is_some_and(|l| l.contains(" from=<a@outside.example>, size=")
                && l.ends_with(", nrcpt=1 (queued)")),
        "{shown}"
    );
    let hold = history.iter().find(|l| l.ends_with(" placed on hold"));
    assert!(
        hold.is_some_and(|l| l.len() > 25 && l[..25].ends_with("+00:00")),
        "{shown}"
    );
    let json = p.admin_ok(&["queue", "show", &qid, "--json"]);
    assert!(json.contains("\"type\": \"hold\""), "{json}");
    let refused = p.admin(&["queue", "delete", &qid]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "delete without a terminal or --yes is refused"
    );
    assert_eq!(
        p.admin_ok(&["queue", "delete", &qid, "--yes"]).trim(),
        format!("{qid}: deleted")
    );
    assert!(
        p.admin_ok(&["queue", "list"])
            .contains("Mail queue is empty")
    );
    let status = p.admin_ok(&["status"]);
    assert!(
        status.contains("queue: active 0, deferred 0, hold 0"),
        "{status}"
    );
}

#[test]
fn moving_a_user_to_another_store_changes_the_next_hop_of_new_mail() {
    // Next hops nobody answers on, so the mail stays queued and can be looked at.
    let (old_store, new_store, domain_store) = (free_port(), free_port(), free_port());
    let p = HostPostern::start(&[]);
    let domain = format!("smtp:[127.0.0.1]:{domain_store}");
    let old = format!("smtp:[127.0.0.1]:{old_store}");
    let new = format!("lmtp:[127.0.0.1]:{new_store}");
    prov(&p, &["cd", "example.com", "zimbraMailTransport", &domain]);
    prov(
        &p,
        &[
            "ca",
            "bar@example.com",
            "secret",
            "zimbraMailTransport",
            &old,
        ],
    );
    prov(&p, &["ca", "foo@example.com", "secret"]);
    let next_hop = |qid: &str| {
        let shown = p.admin_ok(&["queue", "show", qid]);
        shown
            .lines()
            .find(|l| l.starts_with("recipient:"))
            .unwrap_or_default()
            .to_string()
    };
    let qid_of = |reply: String| reply.rsplit(' ').next().unwrap().trim().to_string();
    let smtp = p.listener("smtp");
    let before = qid_of(send(smtp, "a@outside.example", "bar@example.com", "before"));
    assert!(
        next_hop(&before).contains(&format!("next_hop={old} ")),
        "{}",
        next_hop(&before)
    );
    let local = qid_of(send(smtp, "a@outside.example", "foo@example.com", "local"));
    assert!(
        next_hop(&local).contains(&format!("next_hop={domain} ")),
        "the domain's transport: {}",
        next_hop(&local)
    );

    // The move: bar's mailbox is now on another store, over LMTP.
    prov(&p, &["ma", "bar@example.com", "zimbraMailTransport", &new]);
    let after = qid_of(send(smtp, "a@outside.example", "bar@example.com", "after"));
    assert!(
        next_hop(&after).contains(&format!("next_hop={new} ")),
        "{}",
        next_hop(&after)
    );

    let bad = p.admin(&[
        "prov",
        "ma",
        "bar@example.com",
        "zimbraMailTransport",
        "lmtp:zimbra.example.com",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("zimbraMailTransport"),
        "the error names the attribute"
    );
}

#[test]
fn too_many_received_headers_is_refused_as_a_loop() {
    let p = HostPostern::start(&[]);
    secondary(&p, &format!("smtp:[127.0.0.1]:{}", free_port()));
    let attempt = |hops: usize| {
        let mut c = SmtpClient::connect(p.listener("smtp"));
        c.reply();
        c.cmd("EHLO client.test");
        c.cmd("MAIL FROM:<a@outside.example>");
        assert!(c.cmd("RCPT TO:<x@example.com>").starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        let mut msg = String::new();
        for i in 0..hops {
            msg.push_str(&format!("Received: from hop{i}.example by hop{}.example; Sat, 21 Nov 2026 10:00:00 +0000\r\n", i + 1));
        }
        msg.push_str("Subject: loop\r\n\r\nbody\r\n.\r\n");
        // Small writes, so the end of the headers may fall across chunks.
        for piece in msg.as_bytes().chunks(7) {
            c.send(piece);
        }
        c.reply()
    };
    // Postern adds its own Received line: 49 + 1 is at the limit of 50, 50 + 1 is over it.
    assert!(attempt(49).starts_with("250 2.0.0 Ok: queued as"));
    assert_eq!(
        attempt(50),
        "554 5.4.6 Error: too many hops (mail forwarding loop)"
    );
}
