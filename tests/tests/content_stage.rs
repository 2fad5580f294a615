//! The content stage end to end in host mode: attachment blocking, the virus scan and the spam
//! score (a real clamd, spamd and rspamd the tests start) as the admin sets them with `zmprov mcf`, answered at the end of data,
//! before anything is queued.

use std::io::{Cursor, Write};
use std::net::SocketAddr;

use base64::Engine;
use tests::host::{HostPostern, SmtpClient};
use tests::peers::free_port;
use tests::scanners::{Clamd, EICAR, GTUBE, Rspamd, Spamd};
use zip::write::{SimpleFileOptions, ZipWriter};

fn prov(p: &HostPostern, args: &[&str]) -> String {
    let mut all = vec!["prov"];
    all.extend_from_slice(args);
    p.admin_ok(&all)
}

/// A daemon that takes all of example.com and forwards it to a next hop nobody answers on (the
/// mail stays queued, where `postern queue` can count it).
fn gateway() -> HostPostern {
    gateway_with_env(&[])
}

/// [`gateway`] with `env` in the daemon's environment.
fn gateway_with_env(env: &[(&str, &str)]) -> HostPostern {
    let p = HostPostern::start_with_env(&[], env);
    let next_hop = format!("smtp:[127.0.0.1]:{}", free_port());
    prov(
        &p,
        &[
            "cd",
            "example.com",
            "zimbraMailCatchAllAddress",
            "@example.com",
            "zimbraMailCatchAllForwardingAddress",
            "@example.com",
            "zimbraMailTransport",
            &next_hop,
        ],
    );
    p
}

/// Sends `message` (headers and body, CRLF lines, no final dot) and returns the end-of-data reply.
pub fn send_message(addr: SocketAddr, message: &[u8]) -> String {
    let mut c = SmtpClient::connect(addr);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(
        c.cmd("MAIL FROM:<sender@outside.example>")
            .starts_with("250")
    );
    assert!(c.cmd("RCPT TO:<user@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    // Chunks of odd size, so MIME boundaries fall across the spool's writes.
    for piece in message.chunks(1009) {
        c.send(piece);
    }
    c.send(b"\r\n.\r\n");
    let reply = c.reply();
    c.cmd("QUIT");
    reply
}

/// A message with one text part and one attachment.
fn with_attachment(part_headers: &str, data: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|l| std::str::from_utf8(l).unwrap_or(""))
        .collect();
    format!(
        "From: <sender@outside.example>\r\nTo: <user@example.com>\r\nSubject: files\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain\r\n\r\nsee attached\r\n--b1\r\n{part_headers}\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--",
        lines.join("\r\n")
    )
    .into_bytes()
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(*name, SimpleFileOptions::default())
            .expect("zip member");
        w.write_all(data).expect("zip data");
    }
    w.finish().expect("zip").into_inner()
}

fn queued(p: &HostPostern) -> usize {
    p.admin_ok(&["queue", "list"])
        .lines()
        .filter(|l| l.contains("sender@outside.example"))
        .count()
}

#[test]
fn blocked_attachments_are_refused_at_end_of_data_naming_the_file() {
    let p = gateway();
    let smtp = p.listener("smtp");
    let exe = "Content-Type: application/octet-stream; name=\"setup.exe\"";
    assert_eq!(
        send_message(smtp, &with_attachment(exe, b"MZ\x90\x00")),
        "554 5.7.1 Message content rejected: blocked attachment \"setup.exe\""
    );
    let upper = "Content-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.EXE";
    assert_eq!(
        send_message(smtp, &with_attachment(upper, b"MZ")),
        "554 5.7.1 Message content rejected: blocked attachment \"Rechnung M?rz.EXE\""
    );
    let nested = zip_of(&[("inner.zip", &zip_of(&[("tools/run.vbs", b"x")]))]);
    let zipped = "Content-Type: application/zip; name=\"docs.zip\"";
    assert_eq!(
        send_message(smtp, &with_attachment(zipped, &nested)),
        "554 5.7.1 Message content rejected: blocked attachment \"docs.zip/inner.zip/tools/run.vbs\""
    );
    assert_eq!(queued(&p), 0, "a refused message is never queued");
    assert!(
        p.log().contains(" Blocked BANNED (setup.exe) {RejectedInbound}, [127.0.0.1] <sender@outside.example> -> <user@example.com>, Hits: -, size: "),
        "{}",
        p.log()
    );

    let pdf = "Content-Type: application/pdf; name=\"invoice.pdf\"";
    let ok = send_message(smtp, &with_attachment(pdf, b"%PDF-1.4"));
    assert!(ok.starts_with("250 2.0.0 Ok: queued as"), "{ok}");
    assert_eq!(queued(&p), 1);

    // The admin's own list joins Zimbra's; clearing Zimbra's lets .exe through.
    prov(&p, &["mcf", "zimbraMtaBlockedExtension", "pdf"]);
    assert!(send_message(smtp, &with_attachment(pdf, b"%PDF")).starts_with("554 5.7.1"));
    prov(&p, &["mcf", "zimbraMtaCommonBlockedExtension", ""]);
    assert!(send_message(smtp, &with_attachment(exe, b"MZ")).starts_with("250 "));
    let shown = prov(&p, &["gacf", "zimbraMtaBlockedExtension"]);
    assert!(shown.contains("zimbraMtaBlockedExtension: pdf"), "{shown}");
}

#[test]
fn viruses_are_refused_naming_the_signature_and_clamd_down_is_a_tempfail() {
    let Some(mut clamd) = Clamd::start() else {
        return;
    };
    let p = gateway();
    let smtp = p.listener("smtp");
    prov(
        &p,
        &[
            "mcf",
            "posternClamdAddress",
            &clamd.address(),
            "zimbraVirusCheckEnabled",
            "TRUE",
            "posternClamdTimeout",
            "10s",
        ],
    );
    let infected =
        "554 5.7.1 Message content rejected: virus found: \"Eicar-Test-Signature.UNOFFICIAL\"";
    let mut plain = b"Subject: test\r\n\r\n".to_vec();
    plain.extend_from_slice(EICAR);
    assert_eq!(send_message(smtp, &plain), infected);
    let zipped = "Content-Type: application/zip; name=\"eicar.zip\"";
    let zip = zip_of(&[("eicar.com.txt", EICAR)]);
    assert_eq!(send_message(smtp, &with_attachment(zipped, &zip)), infected);
    let nested = zip_of(&[("inner.zip", &zip), ("readme.txt", b"hi")]);
    assert_eq!(
        send_message(smtp, &with_attachment(zipped, &nested)),
        infected
    );
    let clean = send_message(
        smtp,
        &with_attachment(zipped, &zip_of(&[("a.txt", b"hello")])),
    );
    assert!(clean.starts_with("250 2.0.0 Ok: queued as"), "{clean}");
    assert_eq!(queued(&p), 1);
    let log = p.log();
    assert_eq!(
        log.matches(" Blocked INFECTED (Eicar-Test-Signature.UNOFFICIAL) {RejectedInbound}, ")
            .count(),
        3,
        "{log}"
    );
    assert!(log.contains(" Passed CLEAN {RelayedInbound}, "), "{log}");

    clamd.stop();
    assert_eq!(
        send_message(smtp, b"Subject: hi\r\n\r\nhello"),
        "451 4.7.1 Message content could not be scanned, try again later"
    );
    assert_eq!(queued(&p), 1);

    // Set to accept: the mail goes through, saying on top that it was not scanned.
    prov(&p, &["mcf", "posternClamdFailAction", "accept"]);
    let reply = send_message(smtp, b"Subject: unscanned\r\n\r\nhello");
    let body = queued_body(&p, &reply);
    assert!(
        body.starts_with("X-Virus-Scanned: no, clamd: cannot connect: connection refused\n"),
        "{body}"
    );
    assert!(body.contains("Subject: unscanned\n\nhello"), "{body}");
}

/// The virus scan sees the whole message, not its first piece: EICAR after 3 MB of text (many
/// spool chunks and delivery pieces) is still found, and the same message without it passes.
#[test]
fn a_virus_at_the_end_of_a_big_message_is_found() {
    let Some(clamd) = Clamd::start() else {
        return;
    };
    let p = gateway();
    let smtp = p.listener("smtp");
    prov(
        &p,
        &[
            "mcf",
            "posternClamdAddress",
            &clamd.address(),
            "zimbraVirusCheckEnabled",
            "TRUE",
            "posternClamdTimeout",
            "20s",
        ],
    );
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    let line = b"the quarterly figures, again and again, and once more for the record";
    while big.len() < 3_000_000 {
        big.extend_from_slice(line);
        big.extend_from_slice(b"\r\n");
    }
    let clean = send_message(smtp, &big);
    assert!(clean.starts_with("250 2.0.0 Ok: queued as"), "{clean}");
    big.extend_from_slice(EICAR);
    big.extend_from_slice(b"\r\n");
    assert_eq!(
        send_message(smtp, &big),
        "554 5.7.1 Message content rejected: virus found: \"Eicar-Test-Signature.UNOFFICIAL\""
    );
    // A header section too long to hold for edits goes to flash first: read back all the same.
    let mut long_head = b"Subject: long head\r\n".to_vec();
    for i in 0..1000 {
        long_head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(70)).as_bytes());
    }
    long_head.extend_from_slice(b"\r\n");
    long_head.extend_from_slice(EICAR);
    long_head.extend_from_slice(b"\r\n");
    assert!(long_head.len() > 64 * 1024);
    assert!(send_message(smtp, &long_head).starts_with("554 5.7.1"));
    assert_eq!(queued(&p), 1, "only the clean one is queued");
}

/// The queued message a `250 ... queued as QID` reply names, as `postern queue show --body`
/// prints it (from the first header line on).
fn queued_body(p: &HostPostern, reply: &str) -> String {
    let qid = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not queued: {reply}"));
    let shown = p
        .admin_ok(&["queue", "show", qid, "--body"])
        .replace("\r\n", "\n");
    let start = shown
        .find("X-")
        .or_else(|| shown.find("Received:"))
        .unwrap_or(0);
    shown[start..].to_string()
}

#[test]
fn spam_is_refused_or_tagged_by_zimbra_percentages_and_a_slow_spamd_is_a_tempfail() {
    let Some(spamd) = Spamd::start() else {
        return;
    };
    let p = gateway();
    let smtp = p.listener("smtp");
    prov(
        &p,
        &[
            "mcf",
            "posternSpamdAddress",
            &spamd.address(),
            "zimbraSpamSubjectTag",
            "[SPAM]",
            "posternSpamdTimeout",
            "20s",
        ],
    );
    let gtube = format!("Subject: buy now\r\n\r\n{GTUBE}\r\n");
    assert_eq!(
        send_message(smtp, gtube.as_bytes()),
        "554 5.7.1 Message content rejected as spam"
    );
    let ham = "From: Alice <alice@outside.example>\r\nTo: <user@example.com>\r\n\
Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <ham-1@outside.example>\r\n\
Subject: minutes of the meeting\r\n\r\nHi, the minutes of today's meeting are below.\r\n\
We agreed to meet again next week to go over the budget.\r\n";
    let body = queued_body(&p, &send_message(smtp, ham.as_bytes()));
    assert!(body.contains("\nX-Spam-Status: No, score="), "{body}");
    assert!(body.contains("Subject: minutes of the meeting\n"), "{body}");
    assert!(!body.contains("X-Spam-Flag"), "{body}");

    // Tag everything from 0 points: a sloppy message (no Date, no Message-ID) is tagged.
    prov(&p, &["mcf", "zimbraSpamTagPercent", "0"]);
    let sloppy = "Subject: hello\r\n\r\nhello\r\n";
    let body = queued_body(&p, &send_message(smtp, sloppy.as_bytes()));
    assert!(body.starts_with("X-Spam-Flag: YES\n"), "{body}");
    assert!(body.contains("\nX-Spam-Status: Yes, score="), "{body}");
    assert!(body.contains("Subject: [SPAM] hello\n"), "{body}");

    // A frozen spamd still accepts connections: only the deadline ends the wait.
    prov(&p, &["mcf", "posternSpamdTimeout", "3s"]);
    spamd.signal("STOP");
    let started = std::time::Instant::now();
    let reply = send_message(smtp, sloppy.as_bytes());
    let waited = started.elapsed();
    spamd.signal("CONT");
    assert_eq!(
        reply,
        "451 4.7.1 Message content could not be scanned, try again later"
    );
    let log = p.log();
    for verdict in [
        " Blocked SPAM {RejectedInbound}, [127.0.0.1] <sender@outside.example> -> <user@example.com>, Hits: 10",
        " Passed CLEAN {RelayedInbound}, ",
        " Passed SPAMMY {RelayedTaggedInbound}, ",
        " Deferred UNCHECKED (spamd: timed out) {TempFailedInbound}, ",
    ] {
        assert!(log.contains(verdict), "{verdict} in\n{log}");
    }
    assert!(
        waited >= std::time::Duration::from_secs(3) && waited < std::time::Duration::from_secs(10),
        "{waited:?}"
    );
}

#[test]
fn mail_to_the_spam_training_account_teaches_spamd_each_attached_message() {
    let Some(spamd) = Spamd::start() else {
        return;
    };
    let p = gateway();
    let smtp = p.listener("smtp");
    prov(
        &p,
        &[
            "mcf",
            "posternSpamdAddress",
            &spamd.address(),
            "zimbraSpamIsSpamAccount",
            "spam.train@example.com",
            "zimbraSpamIsNotSpamAccount",
            "ham.train@example.com",
            "posternSpamTrainingDeliver",
            "TRUE",
        ],
    );
    let attached = |i: usize| {
        format!(
            "From: <shop{i}@spam.example>\r\nSubject: cheap offer {i}\r\nMessage-ID: <{i}@spam.example>\r\n\r\n\
Buy cheap replica watches number {i} now, limited offer, click here.\r\n"
        )
    };
    let report = |to: &str| {
        format!(
            "From: <user@example.com>\r\nTo: <{to}>\r\nSubject: junk report\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: message/rfc822\r\n\r\n{}\r\n\
--r\r\nContent-Type: message/rfc822\r\n\r\n{}\r\n--r--",
            attached(1),
            attached(2)
        )
    };
    let send_to = |to: &str, message: &str| {
        let mut c = SmtpClient::connect(smtp);
        c.reply();
        c.cmd("EHLO client.test");
        c.cmd("MAIL FROM:<user@example.com>");
        assert!(c.cmd(&format!("RCPT TO:<{to}>")).starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(message.as_bytes());
        c.send(b"\r\n.\r\n");
        c.reply()
    };
    let body = queued_body(
        &p,
        &send_to("spam.train@example.com", &report("spam.train@example.com")),
    );
    assert!(
        body.starts_with("X-Spam-Training: 2 learned as spam\n"),
        "{body}"
    );
    // Learned already: spamd has nothing more to learn from the same two messages.
    let body = queued_body(
        &p,
        &send_to("spam.train@example.com", &report("spam.train@example.com")),
    );
    assert!(
        body.starts_with("X-Spam-Training: 0 learned as spam\n"),
        "{body}"
    );
    let body = queued_body(&p, &send_to("Ham.Train@example.com", &attached(3)));
    assert!(
        body.starts_with("X-Spam-Training: 1 learned as ham\n"),
        "{body}"
    );

    // A training mail far bigger than what the content stage may hold: each attached message
    // is read back from the spool as spamd is told it, one base64-encoded (against RFC 2046)
    // decoded on its own, small enough to hold.
    use base64::Engine;
    prov(&p, &["mcf", "posternContentScanLimit", "1000"]);
    let encoded = base64::engine::general_purpose::STANDARD.encode(attached(5));
    let filler = "All the messages below were marked as junk by the user.\r\n".repeat(2000);
    let big = format!(
        "From: <user@example.com>\r\nTo: <spam.train@example.com>\r\nSubject: junk report\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"r\"\r\n\r\n\
--r\r\nContent-Type: text/plain\r\n\r\n{filler}\r\n\
--r\r\nContent-Type: message/rfc822\r\n\r\n{}\r\n\
--r\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--r--",
        attached(4)
    );
    let body = queued_body(&p, &send_to("spam.train@example.com", &big));
    assert!(
        body.starts_with("X-Spam-Training: 2 learned as spam\n"),
        "{}",
        &body[..300.min(body.len())]
    );
}

/// Whether the queue still holds `qid` after a moment for the queue manager to finish it.
fn still_queued(p: &HostPostern, qid: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = p.admin_ok(&["queue", "list"]).contains(qid);
        if !listed || std::time::Instant::now() > deadline {
            return listed;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn rspamd_is_judged_by_zimbra_percentages_and_a_stopped_rspamd_is_a_tempfail() {
    let Some(mut rspamd) = Rspamd::start() else {
        return;
    };
    let p = gateway();
    let smtp = p.listener("smtp");
    // One spam scanner at a time.
    prov(&p, &["mcf", "posternSpamdAddress", "127.0.0.1:783"]);
    let both = p.admin(&["prov", "mcf", "posternRspamdUrl", &rspamd.url()]);
    let said =
        String::from_utf8_lossy(&both.stderr).to_string() + &String::from_utf8_lossy(&both.stdout);
    assert!(
        !both.status.success() && said.contains("one spam scanner at a time"),
        "{said}"
    );
    let named = p.admin(&[
        "prov",
        "mcf",
        "posternRspamdUrl",
        "https://rspamd.example:11334",
    ]);
    assert!(String::from_utf8_lossy(&named.stderr).contains("an address, not a name"));
    prov(
        &p,
        &[
            "mcf",
            "posternSpamdAddress",
            "",
            "posternRspamdUrl",
            &rspamd.url(),
            "zimbraSpamSubjectTag",
            "[SPAM]",
            "posternSpamdTimeout",
            "20s",
        ],
    );
    // rspamd scores GTUBE at its reject threshold, 15: Zimbra's 75 % of 20.
    let gtube = format!("Subject: buy now\r\n\r\n{GTUBE}\r\n");
    assert_eq!(
        send_message(smtp, gtube.as_bytes()),
        "554 5.7.1 Message content rejected as spam"
    );
    let ham = "From: Alice <alice@outside.example>\r\nTo: <user@example.com>\r\n\
Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <ham-1@outside.example>\r\n\
Subject: minutes of the meeting\r\n\r\nHi, the minutes of today's meeting are below.\r\n\
We agreed to meet again next week to go over the budget.\r\n";
    let body = queued_body(&p, &send_message(smtp, ham.as_bytes()));
    assert!(body.contains("\nX-Spam-Status: No, score="), "{body}");
    assert!(body.contains("X-Spam-Score: "), "{body}");
    assert!(body.contains("Subject: minutes of the meeting\n"), "{body}");
    assert!(!body.contains("X-Spam-Flag"), "{body}");

    // Tag everything from 0 points: rspamd finds something to count against a bare message.
    prov(&p, &["mcf", "zimbraSpamTagPercent", "0"]);
    let sloppy = "Subject: hello\r\n\r\nhello\r\n";
    let body = queued_body(&p, &send_message(smtp, sloppy.as_bytes()));
    assert!(body.starts_with("X-Spam-Flag: YES\n"), "{body}");
    assert!(body.contains("Subject: [SPAM] hello\n"), "{body}");

    // Frozen, it still accepts connections: only the deadline ends the wait.
    prov(&p, &["mcf", "posternSpamdTimeout", "3s"]);
    rspamd.signal("STOP");
    let started = std::time::Instant::now();
    let reply = send_message(smtp, sloppy.as_bytes());
    let waited = started.elapsed();
    rspamd.signal("CONT");
    let tempfail = "451 4.7.1 Message content could not be scanned, try again later";
    assert_eq!(reply, tempfail);
    assert!(
        waited >= std::time::Duration::from_secs(3) && waited < std::time::Duration::from_secs(10),
        "{waited:?}"
    );
    rspamd.stop();
    assert_eq!(send_message(smtp, sloppy.as_bytes()), tempfail);
    let log = p.log();
    for verdict in [
        " Blocked SPAM {RejectedInbound}, [127.0.0.1] <sender@outside.example> -> <user@example.com>, Hits: 15",
        " Passed CLEAN {RelayedInbound}, ",
        " Passed SPAMMY {RelayedTaggedInbound}, ",
        " Deferred UNCHECKED (rspamd: timed out) {TempFailedInbound}, ",
        " Deferred UNCHECKED (rspamd: cannot connect: connection refused) {TempFailedInbound}, ",
    ] {
        assert!(log.contains(verdict), "{verdict} in\n{log}");
    }
}

#[test]
fn training_mail_teaches_rspamd_and_is_not_delivered_unless_set() {
    let Some(rspamd) = Rspamd::start() else {
        return;
    };
    let p = gateway();
    let smtp = p.listener("smtp");
    prov(
        &p,
        &[
            "mcf",
            "posternRspamdUrl",
            &rspamd.url(),
            "zimbraSpamIsSpamAccount",
            "spam.train@example.com",
            "zimbraSpamIsNotSpamAccount",
            "ham.train@example.com",
        ],
    );
    // Enough words for rspamd's Bayes classifier (it wants 11 tokens or more).
    let attached = |i: usize| {
        format!(
            "From: <shop{i}@spam.example>\r\nSubject: cheap offer {i}\r\nMessage-ID: <{i}@spam.example>\r\n\r\n\
Buy cheap replica watches number {i} now, limited offer, click here for the best prices in \
the world, only today, free shipping to every country.\r\n"
        )
    };
    let report = format!(
        "From: <user@example.com>\r\nTo: <spam.train@example.com>\r\nSubject: junk report\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"r\"\r\n\r\n--r\r\n\
Content-Type: message/rfc822\r\n\r\n{}\r\n--r\r\nContent-Type: message/rfc822\r\n\r\n{}\r\n--r--",
        attached(1),
        attached(2)
    );
    let send_to = |to: &[&str], message: &str| {
        let mut c = SmtpClient::connect(smtp);
        c.reply();
        c.cmd("EHLO client.test");
        c.cmd("MAIL FROM:<user@example.com>");
        for rcpt in to {
            assert!(c.cmd(&format!("RCPT TO:<{rcpt}>")).starts_with("250"));
        }
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(message.as_bytes());
        c.send(b"\r\n.\r\n");
        c.reply()
    };
    let qid_of = |reply: &str| {
        reply
            .strip_prefix("250 2.0.0 Ok: queued as ")
            .unwrap_or_else(|| panic!("not accepted: {reply}"))
            .to_string()
    };
    // Learned, then done: no delivery to the training account, no bounce.
    let first = qid_of(&send_to(&["spam.train@example.com"], &report));
    assert!(
        !still_queued(&p, &first),
        "{}",
        p.admin_ok(&["queue", "list"])
    );
    // Logged once the spool has written the removal, a moment after the queue let it go.
    let log = p.wait_log(&format!("{first}: removed"), 1);
    for line in [
        format!("{first}: spam training: 2 learned as spam by rspamd"),
        format!("{first}: to=<spam.train@example.com>, relay=none, "),
        "dsn=2.0.0, status=sent (delivered to spam training)".to_string(),
        format!("{first}: removed"),
    ] {
        assert!(log.contains(&line), "{line} in\n{log}");
    }
    assert!(
        !log.contains(&format!("{first}: sender non-delivery")),
        "{log}"
    );
    // rspamd says it knows them already: nothing more learned, still not delivered.
    let again = qid_of(&send_to(&["spam.train@example.com"], &report));
    assert!(!still_queued(&p, &again));
    assert!(p.log().contains(&format!(
        "{again}: spam training: 0 learned as spam by rspamd"
    )));

    // Another recipient of the same message is delivered as usual.
    let mixed = qid_of(&send_to(
        &["user@example.com", "ham.train@example.com"],
        &attached(3),
    ));
    assert!(still_queued(&p, &mixed));
    let shown = p.admin_ok(&["queue", "show", &mixed]);
    assert!(shown.contains("user@example.com"), "{shown}");

    // Set to deliver, the training account gets its copy with what was learned.
    prov(&p, &["mcf", "posternSpamTrainingDeliver", "TRUE"]);
    let body = queued_body(&p, &send_to(&["ham.train@example.com"], &attached(4)));
    assert!(
        body.starts_with("X-Spam-Training: 1 learned as ham\n"),
        "{body}"
    );
}

#[test]
fn a_refused_virus_is_reported_to_the_admin_and_the_recipients_never_the_sender() {
    let Some(clamd) = Clamd::start() else {
        return;
    };
    let p = gateway();
    let smtp = p.listener("smtp");
    // The admin needs an address first.
    let early = p.admin(&["prov", "mcf", "zimbraVirusWarnAdmin", "TRUE"]);
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("posternVirusAdminAddress"),
        "{early:?}"
    );
    prov(
        &p,
        &[
            "mcf",
            "posternClamdAddress",
            &clamd.address(),
            "zimbraVirusCheckEnabled",
            "TRUE",
            "posternVirusAdminAddress",
            "virus-admin@example.com",
            "zimbraVirusWarnAdmin",
            "TRUE",
            "zimbraVirusWarnRecipient",
            "TRUE",
            // The test's client is an outsider: recipients are told of inbound mail only.
            "zimbraMtaMyNetworks",
            "192.0.2.0/24",
        ],
    );
    let zipped = "Content-Type: application/zip; name=\"eicar.zip\"";
    let message = with_attachment(zipped, &zip_of(&[("eicar.com.txt", EICAR)]));
    assert_eq!(
        send_message(smtp, &message),
        "554 5.7.1 Message content rejected: virus found: \"Eicar-Test-Signature.UNOFFICIAL\""
    );
    // Two notices in the queue, from the null sender: none to sender@outside.example.
    let list = p.admin_ok(&["queue", "list"]);
    let notices: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        // As in `mailq`: `*` marks a message being delivered, `!` one on hold.
        .map(|id| id.trim_end_matches(['*', '!']))
        .filter(|id| id.len() > 8 && id.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    assert_eq!(notices.len(), 2, "{list}");
    assert!(!list.contains("sender@outside.example"), "{list}");
    let mut bodies = String::new();
    for qid in notices {
        let shown = p.admin_ok(&["queue", "show", qid, "--body"]);
        // Unfolded: long Subject fields are folded onto a second line.
        bodies.push_str(&shown.replace("\r\n", "\n").replace("\n ", " "));
    }
    for expected in [
        "Subject: VIRUS (Eicar-Test-Signature.UNOFFICIAL) in mail FROM [127.0.0.1] <sender@outside.example>",
        "Subject: VIRUS (Eicar-Test-Signature.UNOFFICIAL) IN MAIL TO YOU (from <sender@outside.example>)",
        "To: <virus-admin@example.com>",
        "To: <user@example.com>",
        "Subject:    files",
        "Virus:      Eicar-Test-Signature.UNOFFICIAL",
    ] {
        assert!(bodies.contains(expected), "{expected} in\n{bodies}");
    }
    let log = p.log();
    assert!(
        log.contains("virus notification to <virus-admin@example.com>: "),
        "{log}"
    );
    assert!(
        log.contains("virus notification to <user@example.com>: "),
        "{log}"
    );
}

/// `zimbraMtaBlockedExtensionWarnRecipient`: the recipient of inbound mail refused for blocked
/// attachments is told, from the null sender, which files; the sender is not; mail from
/// `zimbraMtaMyNetworks` is refused without a notice.
#[test]
fn a_blocked_attachment_is_reported_to_the_recipient_naming_every_file() {
    let sink = tests::peers::Sink::start(0);
    let p = HostPostern::start(&[]);
    let next_hop = format!("smtp:[127.0.0.1]:{}", sink.port);
    prov(
        &p,
        &[
            "cd",
            "example.com",
            "zimbraMailCatchAllAddress",
            "@example.com",
            "zimbraMailCatchAllForwardingAddress",
            "@example.com",
            "zimbraMailTransport",
            &next_hop,
        ],
    );
    prov(
        &p,
        &[
            "mcf",
            "zimbraMtaBlockedExtensionWarnRecipient",
            "TRUE",
            // The test's client is an outsider: recipients are told of inbound mail only.
            "zimbraMtaMyNetworks",
            "192.0.2.0/24",
        ],
    );
    let shown = prov(&p, &["gacf", "zimbraMtaBlockedExtensionWarnRecipient"]);
    assert!(
        shown.contains("zimbraMtaBlockedExtensionWarnRecipient: TRUE"),
        "{shown}"
    );
    let files = tempfile::tempdir().expect("temp dir");
    let (exe, scr) = (files.path().join("setup.exe"), files.path().join("Run.SCR"));
    std::fs::write(&exe, b"MZ\x90\x00").expect("exe");
    std::fs::write(&scr, b"MZ").expect("scr");
    let port = p.listener("smtp").port().to_string();
    let send = |from: &str| {
        let out = tests::peers::swaks(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--from",
            from,
            "--to",
            "user@example.com",
            "--h-Subject",
            "the files you asked for",
            "--attach",
            &format!("@{}", exe.display()),
            "--attach",
            &format!("@{}", scr.display()),
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = send("sender@outside.example");
    assert!(
        said.contains(
            "<** 554 5.7.1 Message content rejected: blocked attachment \"setup.exe\" and 1 more"
        ),
        "{said}"
    );
    let notices = sink.wait_for(1, std::time::Duration::from_secs(30));
    assert_eq!(notices.len(), 1, "{notices:?}");
    let notice = notices[0].replace("\r\n", "\n").replace("\n ", " ");
    for expected in [
        "X-Mail-Args: <>",
        "X-Rcpt-Args: <user@example.com>",
        "Subject: BANNED FILENAME (setup.exe, Run.SCR) IN MAIL TO YOU (from <sender@outside.example>)",
        "Blocked:    setup.exe, Run.SCR",
        "Subject:    the files you asked for",
        "Auto-Submitted: auto-generated",
    ] {
        assert!(notice.contains(expected), "{expected} in\n{notice}");
    }
    let log = p.log();
    assert!(
        log.contains(" Blocked BANNED (setup.exe,Run.SCR) {RejectedInbound}"),
        "{log}"
    );
    assert!(
        log.contains("blocked attachment notification to <user@example.com>: "),
        "{log}"
    );

    // The box's own users: refused all the same, and no notice to their correspondents.
    prov(&p, &["mcf", "zimbraMtaMyNetworks", "127.0.0.0/8"]);
    let said = send("user@example.com");
    assert!(said.contains("<** 554 5.7.1 "), "{said}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(sink.messages().len(), 1, "{:?}", sink.messages());
}

/// `posternRspamdPassword` against an rspamd whose controller has a `password` (it answers 401
/// otherwise): without it or with a wrong one the scan fails (`451`) and the log says which
/// setting to fix; with the right one rspamd scores and learns. Then the same rspamd behind a TLS
/// front (`https://`), trusted through `SSL_CERT_FILE`, and one the box does not trust.
#[test]
fn rspamd_with_a_password_is_asked_with_posternrspamdpassword() {
    let Some(rspamd) = Rspamd::start_with_password("q1w2e3") else {
        return;
    };
    let front = tests::tls_front::TlsFront::start(rspamd.port);
    let stranger = tests::tls_front::TlsFront::start(rspamd.port);
    let bundle = front.ca_bundle.display().to_string();
    let p = gateway_with_env(&[("SSL_CERT_FILE", &bundle)]);
    let smtp = p.listener("smtp");
    prov(
        &p,
        &[
            "mcf",
            "posternRspamdUrl",
            &rspamd.url(),
            "posternSpamdTimeout",
            "20s",
        ],
    );
    let hello = "Subject: hello\r\n\r\nhello\r\n";
    let tempfail = "451 4.7.1 Message content could not be scanned, try again later";
    assert_eq!(send_message(smtp, hello.as_bytes()), tempfail);
    prov(&p, &["mcf", "posternRspamdPassword", "wrong"]);
    assert_eq!(send_message(smtp, hello.as_bytes()), tempfail);
    let log = p.log();
    for told in [
        " Deferred UNCHECKED (rspamd: a password is required: set posternRspamdPassword) {TempFailedInbound}",
        " Deferred UNCHECKED (rspamd: password refused: check posternRspamdPassword) {TempFailedInbound}",
    ] {
        assert!(log.contains(told), "{told} in\n{log}");
    }
    assert!(
        !log.contains("wrong"),
        "the password is never logged:\n{log}"
    );

    prov(&p, &["mcf", "posternRspamdPassword", "q1w2e3"]);
    let body = queued_body(&p, &send_message(smtp, hello.as_bytes()));
    assert!(body.contains("X-Spam-Score: "), "{body}");
    let gtube = format!("Subject: buy now\r\n\r\n{GTUBE}\r\n");
    assert_eq!(
        send_message(smtp, gtube.as_bytes()),
        "554 5.7.1 Message content rejected as spam"
    );
    // The learn endpoints want it too.
    prov(
        &p,
        &["mcf", "zimbraSpamIsSpamAccount", "spam.train@example.com"],
    );
    let lesson = "From: <shop@spam.example>\r\nSubject: cheap offer\r\nMessage-ID: <pw-1@spam.example>\r\n\r\n\
Buy cheap replica watches now, limited offer, click here for the best prices in the world, only \
today, free shipping to every country.\r\n";
    let mut c = SmtpClient::connect(smtp);
    c.reply();
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<user@example.com>");
    assert!(c.cmd("RCPT TO:<spam.train@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(lesson.as_bytes());
    c.send(b"\r\n.\r\n");
    let learned = c.reply();
    assert!(learned.starts_with("250 "), "{learned}");
    let qid = learned.trim_start_matches("250 2.0.0 Ok: queued as ");
    // The queue manager finishes it: then its log lines are all written.
    assert!(!still_queued(&p, qid));
    assert!(
        p.log().contains(&format!(
            "{qid}: spam training: 1 learned as spam by rspamd"
        )),
        "{}",
        p.log()
    );

    // https://: the password travels inside TLS; a front the box does not trust is a tempfail.
    let https = format!("https://127.0.0.1:{}", front.port);
    prov(&p, &["mcf", "posternRspamdUrl", &https]);
    let body = queued_body(&p, &send_message(smtp, hello.as_bytes()));
    assert!(body.contains("X-Spam-Score: "), "{body}");
    let untrusted = format!("https://127.0.0.1:{}", stranger.port);
    prov(&p, &["mcf", "posternRspamdUrl", &untrusted]);
    assert_eq!(send_message(smtp, hello.as_bytes()), tempfail);
    let log = p.log();
    assert!(
        log.contains(" Deferred UNCHECKED (rspamd: TLS: invalid peer certificate: "),
        "{log}"
    );
}
