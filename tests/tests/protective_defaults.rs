//! Defaults that protect the box, through real clients against host mode: mail to the box's own
//! name, NUL bytes in the body.

use std::time::Duration;

use tests::host::{HostPostern, SmtpClient};
use tests::peers::{Sink, swaks};

fn prov(p: &HostPostern, args: &[&str]) -> String {
    let mut all = vec!["prov"];
    all.extend_from_slice(args);
    p.admin_ok(&all)
}

fn swaks_to(p: &HostPostern, to: &str, quit_after: Option<&str>) -> String {
    let port = p.listener("smtp").port().to_string();
    let mut args = vec![
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "someone@outside.example",
        "--to",
        to,
    ];
    if let Some(step) = quit_after {
        args.extend_from_slice(&["--quit-after", step]);
    }
    String::from_utf8_lossy(&swaks(&args).stdout).into_owned()
}

/// Only postmaster@ and abuse@ of the box's own name are taken, for the admin; anything else
/// there is refused at RCPT, even from mynetworks, so nothing is accepted and bounced later and
/// nothing is relayed to the box itself.
#[test]
fn mail_to_the_box_itself_reaches_the_admin_or_is_refused_at_rcpt() {
    let sink = Sink::start(0);
    let p = HostPostern::start(&[]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    prov(
        &p,
        &["cd", "example.com", "zimbraMailTransport", &transport],
    );
    prov(&p, &["ca", "admin@example.com", "pw"]);

    let out = swaks_to(&p, "postmaster@mx.test.example", Some("RCPT"));
    assert!(
        out.contains("550 5.1.1 <postmaster@mx.test.example>: Recipient address rejected: User unknown in local recipient table"),
        "no admin address yet: {out}"
    );
    prov(
        &p,
        &["mcf", "posternPostmasterAddress", "admin@example.com"],
    );
    for role in ["postmaster@mx.test.example", "Abuse@MX.test.example"] {
        let out = swaks_to(&p, role, None);
        assert!(out.contains("250 2.0.0 Ok: queued as"), "{role}: {out}");
    }
    let out = swaks_to(&p, "root@mx.test.example", Some("RCPT"));
    assert!(
        out.contains("550 5.1.1 <root@mx.test.example>: Recipient address rejected: User unknown in local recipient table"),
        "{out}"
    );
    let got = sink.wait_for(2, Duration::from_secs(60));
    assert_eq!(got.len(), 2, "{}", p.log());
    for message in &got {
        assert!(
            message.contains("X-Rcpt-Args: <admin@example.com>"),
            "{message}"
        );
    }
}

/// `\r\n\0.\r\n` would end the data for some servers behind the box: refused, nothing relayed.
#[test]
fn a_nul_byte_in_the_body_is_refused_and_nothing_is_relayed() {
    let sink = Sink::start(0);
    let p = HostPostern::start(&[]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    prov(
        &p,
        &["cd", "example.com", "zimbraMailTransport", &transport],
    );
    prov(&p, &["ca", "user@example.com", "pw"]);

    let mut c = SmtpClient::connect(p.listener("smtp"));
    c.reply();
    c.cmd("EHLO client.example");
    assert!(c.cmd("MAIL FROM:<a@outside.example>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<user@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: smuggle\r\n\r\nhello\r\n\0.\r\nMAIL FROM:<evil@example.com>\r\n.\r\n");
    let reply = c.reply();
    assert_eq!(
        reply,
        "550 5.6.0 Error: message content rejected: NUL character in message"
    );
    // The session goes on; a clean message still goes through.
    assert!(c.cmd("MAIL FROM:<a@outside.example>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<user@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: clean\r\n\r\nhello\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as"));
    let got = sink.wait_for(1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let all = sink.messages();
    assert_eq!(all.len(), 1, "{}", p.log());
    assert!(got[0].contains("Subject: clean") && !all[0].contains("smuggle"));
}

/// `smtpd_client_connection_rate_limit` and `smtpd_client_message_rate_limit`, per client and
/// minute, with mynetworks exempt; an `mcf` of them applies at once, without a restart.
#[test]
fn client_rate_limits_refuse_the_excess_and_spare_mynetworks() {
    let sink = Sink::start(0);
    let p = HostPostern::start(&[]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    prov(
        &p,
        &["cd", "example.com", "zimbraMailTransport", &transport],
    );
    prov(&p, &["ca", "user@example.com", "pw"]);
    p.mcf(&[
        "smtpd_client_connection_rate_limit",
        "3",
        "smtpd_client_message_rate_limit",
        "1",
        "zimbraMtaMyNetworks",
        "192.0.2.0/24",
    ]);
    let addr = p.listener("smtp");
    // status itself does not connect over SMTP: the first three connections are ours.
    let mut first = SmtpClient::connect(addr);
    assert!(first.reply().starts_with("220 "));
    first.cmd("EHLO client.example");
    first.cmd("MAIL FROM:<a@outside.example>");
    first.cmd("RCPT TO:<user@example.com>");
    assert!(first.cmd("DATA").starts_with("354"));
    first.send(b"Subject: one\r\n\r\nx\r\n.\r\n");
    assert!(first.reply().starts_with("250 2.0.0 Ok: queued"));
    // Refused at MAIL FROM, as Postfix does; the RCPT that follows has no transaction.
    assert_eq!(
        first.cmd("MAIL FROM:<a@outside.example>"),
        "450 4.7.1 Error: too much mail from 127.0.0.1"
    );
    assert!(
        first
            .cmd("RCPT TO:<user@example.com>")
            .starts_with("503 5.5.1")
    );
    assert!(p.log().contains(
        "warning: Message delivery request rate limit exceeded: 2 from localhost[127.0.0.1] for service smtp"
    ), "{}", p.log());
    for _ in 0..2 {
        let mut c = SmtpClient::connect(addr);
        assert!(c.reply().starts_with("220 "));
    }
    let mut over = SmtpClient::connect(addr);
    assert_eq!(
        over.reply(),
        "421 4.7.0 mx.test.example Error: too many connections from 127.0.0.1"
    );

    p.mcf(&["zimbraMtaMyNetworks", "127.0.0.0/8"]);
    for _ in 0..5 {
        let mut c = SmtpClient::connect(addr);
        assert!(c.reply().starts_with("220 "));
    }
}

/// postscreen's pregreet test (`postscreen_greet_action drop`) and unannounced pipelining.
#[test]
fn clients_that_talk_first_or_pipeline_unannounced_are_dropped() {
    let sink = Sink::start(0);
    let p = HostPostern::start(&["--submission", "127.0.0.1:0"]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    prov(
        &p,
        &["cd", "example.com", "zimbraMailTransport", &transport],
    );
    prov(&p, &["ca", "user@example.com", "pw"]);

    // Pipelining after HELO, where PIPELINING was never offered.
    let mut c = SmtpClient::connect(p.listener("smtp"));
    c.reply();
    c.send(b"HELO bot.example\r\nMAIL FROM:<a@outside.example>\r\n");
    assert_eq!(c.reply(), "554 5.5.0 Error: SMTP protocol synchronization");

    p.mcf(&[
        "postscreen_greet_action",
        "drop",
        "postscreen_greet_wait",
        "1s",
    ]);
    let mut bot = SmtpClient::connect(p.listener("smtp"));
    // SmtpClient reads a multi-line reply whole: the 220- line, then what ends it.
    bot.send(b"EHLO bot.example\r\n");
    assert_eq!(
        bot.reply(),
        "220-mx.test.example ESMTP Postern\n521 5.5.1 Protocol error"
    );
    // postscreen guards the MX port only: submission greets at once.
    let mut user = SmtpClient::connect(p.listener("submission"));
    assert_eq!(user.reply(), "220 mx.test.example ESMTP Postern");
    // A client that waits for the whole greeting is served (swaks does).
    let out = swaks_to(&p, "user@example.com", None);
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
}
