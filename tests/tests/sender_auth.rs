//! Sender authentication end to end in host mode, as policyd-spf, OpenDKIM and OpenDMARC behave
//! beside Postfix: SPF at RCPT, DKIM and DMARC at the end of data, one Authentication-Results
//! field, and DKIM signing of outbound mail checked by dkimpy (python3-dkim). The SPF, DKIM and
//! DMARC records come from a DNS server the test starts on 127.0.0.1; the client is 127.0.0.1,
//! outside mynetworks unless a test puts it in.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tests::dkimpy;
use tests::dns::{DnsServer, Record};
use tests::host::{HostPostern, SmtpClient, auth_results, send_message};
use tests::peers::Sink;

const DEADLINE: &str = "2";

fn prov(p: &HostPostern, args: &[&str]) -> String {
    let mut all = vec!["prov"];
    all.extend_from_slice(args);
    p.admin_ok(&all)
}

/// A box that is the final destination of example.com (everything to `sink`), asking `dns`.
fn gateway(dns: &DnsServer, sink: &Sink) -> HostPostern {
    let p = HostPostern::start(&["--dns", &dns.flag(), "--dns-timeout", DEADLINE]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    prov(
        &p,
        &["cd", "example.com", "zimbraMailTransport", &transport],
    );
    prov(&p, &["ca", "user@example.com", "pw"]);
    prov(&p, &["mcf", "zimbraMtaMyNetworks", "192.0.2.0/24"]);
    p
}

fn records() -> DnsServer {
    let dns = DnsServer::start();
    let txt = |name: &str, text: &str| {
        dns.add(name, Record::Txt(text.into()));
    };
    txt("pass.example", "v=spf1 ip4:127.0.0.1 -all");
    txt("fail.example", "v=spf1 ip4:192.0.2.1 -all");
    txt("soft.example", "v=spf1 ip4:192.0.2.1 ~all");
    dns.silent("slow.example");
    dns
}

/// A session up to RCPT: the reply to RCPT TO.
fn rcpt(addr: SocketAddr, helo: &str, from: &str) -> String {
    let mut c = SmtpClient::connect(addr);
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd(&format!("EHLO {helo}")).starts_with("250"));
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    let reply = c.cmd("RCPT TO:<user@example.com>");
    c.cmd("QUIT");
    reply
}

/// A whole transaction to user@example.com; the reply to the end of data (or the refusal).
fn send(addr: SocketAddr, helo: &str, from: &str, message: &[u8]) -> String {
    send_message(addr, helo, from, "user@example.com", message)
}

/// A message as smtp-sink saved it (LF line ends) with the CRLF line ends it had on the wire.
fn crlf(saved: &str) -> String {
    saved.replace("\r\n", "\n").replace('\n', "\r\n")
}

#[test]
fn spf_fail_is_refused_at_rcpt_temperror_deferred_and_the_rest_recorded() {
    let dns = records();
    let sink = Sink::start(0);
    let mut seen = Vec::new();
    let p = gateway(&dns, &sink);
    let smtp = p.listener("smtp");
    // Off by default: an SPF fail goes through unchecked.
    assert!(rcpt(smtp, "client.test", "a@fail.example").starts_with("250"));
    prov(&p, &["mcf", "posternSpfAction", "reject"]);
    assert_eq!(
        prov(&p, &["gacf", "posternSpfAction"]).trim(),
        "posternSpfAction: reject"
    );

    let refused = rcpt(smtp, "client.test", "a@fail.example");
    assert!(
        refused.starts_with(
            "550 5.7.23 <user@example.com>: Recipient address rejected: Message rejected due to: SPF fail - not authorized (mailfrom)"
        ),
        "{refused}"
    );
    // The null sender is judged by its HELO name.
    let bounce = rcpt(smtp, "fail.example", "");
    assert!(
        bounce.starts_with("550 5.7.23") && bounce.contains("(helo)"),
        "{bounce}"
    );
    assert!(rcpt(smtp, "client.test", "a@pass.example").starts_with("250"));
    assert!(rcpt(smtp, "client.test", "a@soft.example").starts_with("250"));
    // A dead DNS server defers within the deadline instead of holding the session.
    let started = Instant::now();
    let deferred = rcpt(smtp, "client.test", "a@slow.example");
    assert!(deferred.starts_with("451 4.7.24"), "{deferred}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let log = p.log();
    assert!(
        log.contains("NOQUEUE: reject: RCPT from") && log.contains("550 5.7.23"),
        "{log}"
    );

    // What passes carries its result: softfail recorded, not refused.
    prov(&p, &["mcf", "posternSpfAction", "record"]);
    let msg = b"From: a@soft.example\r\nTo: user@example.com\r\nSubject: hi\r\n\r\nhello\r\n";
    let reply = send(smtp, "client.test", "a@soft.example", msg);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let fields = auth_results(&sink.next_unseen(&mut seen));
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert!(
        fields[0].starts_with("Authentication-Results: mx.test.example;")
            && fields[0].contains("spf=softfail")
            && fields[0].contains("smtp.mailfrom=a@soft.example"),
        "{fields:?}"
    );
}

/// Messages signed by dkimpy for good.example, checked by the box.
#[test]
fn dkim_and_dmarc_at_the_end_of_data() {
    if !dkimpy::available() {
        return;
    }
    let dns = records();
    let (key, record) = dkimpy::rsa_key();
    dns.add("sel._domainkey.good.example", Record::Txt(record));
    // good.example sends from elsewhere (SPF fails): only an aligned signature passes DMARC.
    dns.add(
        "good.example",
        Record::Txt("v=spf1 ip4:192.0.2.1 -all".into()),
    );
    dns.add(
        "_dmarc.good.example",
        Record::Txt("v=DMARC1; p=reject".into()),
    );
    dns.add(
        "lax.example",
        Record::Txt("v=spf1 ip4:192.0.2.1 -all".into()),
    );
    dns.add("_dmarc.lax.example", Record::Txt("v=DMARC1; p=none".into()));
    dns.add(
        "held.example",
        Record::Txt("v=spf1 ip4:192.0.2.1 -all".into()),
    );
    dns.add(
        "_dmarc.held.example",
        Record::Txt("v=DMARC1; p=quarantine".into()),
    );
    // RFC 9989's test mode: the policy acts one level lower. pct is historic there, not read.
    dns.add(
        "trial.example",
        Record::Txt("v=spf1 ip4:192.0.2.1 -all".into()),
    );
    dns.add(
        "_dmarc.trial.example",
        Record::Txt("v=DMARC1; p=reject; pct=0; t=y".into()),
    );
    dns.silent("sel._domainkey.slow.example");
    let sink = Sink::start(0);
    let mut seen = Vec::new();
    let p = gateway(&dns, &sink);
    let smtp = p.listener("smtp");
    prov(
        &p,
        &[
            "mcf",
            "posternSpfAction",
            "record",
            "posternDkimVerify",
            "TRUE",
            "posternDmarcEnforce",
            "TRUE",
        ],
    );
    let plain = b"From: a@good.example\r\nTo: user@example.com\r\nSubject: signed\r\n\
Authentication-Results: mx.test.example; dkim=pass header.d=bank.example\r\n\r\nthe body\r\n";
    let signed = dkimpy::sign(plain, "good.example", "sel", &key);

    // Signed and intact: DKIM passes, aligned, so DMARC passes although SPF failed.
    let reply = send(smtp, "client.test", "a@good.example", &signed);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let message = sink.next_unseen(&mut seen);
    let fields = auth_results(&message);
    // The forged field with the box's name is gone; the box's own is the only one.
    assert_eq!(fields.len(), 1, "{fields:?}");
    let ours = &fields[0];
    assert!(ours.contains("spf=fail"), "{ours}");
    assert!(
        ours.contains("dkim=pass header.i=@good.example header.s=sel"),
        "{ours}"
    );
    assert!(
        ours.contains("dmarc=pass header.from=good.example"),
        "{ours}"
    );
    assert!(!message.contains("bank.example"), "{message}");

    // A message far bigger than what the content stage may hold in RAM is verified as well:
    // its body is hashed as it is read back from the spool, in several pieces.
    prov(&p, &["mcf", "posternContentScanLimit", "1000"]);
    let mut big = b"From: a@good.example\r\nTo: user@example.com\r\nSubject: big\r\n\r\n".to_vec();
    for n in 0..6000 {
        big.extend_from_slice(format!("line {n} of a long  body\t \r\n").as_bytes());
    }
    let signed_big = dkimpy::sign(&big, "good.example", "sel", &key);
    let reply = send(smtp, "client.test", "a@good.example", &signed_big);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let fields = auth_results(&sink.next_unseen(&mut seen));
    assert!(
        fields[0].contains("dkim=pass header.i=@good.example"),
        "{fields:?}"
    );
    // Not a test that cannot fail: one byte changed at its end, and the body hash fails.
    let mut altered_big = signed_big.clone();
    let at = altered_big.len() - 5;
    altered_big[at] = b'X';
    let reply = send(smtp, "client.test", "a@good.example", &altered_big);
    assert_eq!(reply, "550 5.7.1 rejected by DMARC policy for good.example");
    // And policyd-spf's field, for filters that read it rather than Authentication-Results.
    assert!(
        message.contains(
            "Received-SPF: fail (mx.test.example: domain of a@good.example does not designate 127.0.0.1 as permitted sender)"
        ) && message.contains(
            "\treceiver=mx.test.example; client-ip=127.0.0.1; envelope-from=\"a@good.example\"; helo=client.test;"
        ),
        "{message}"
    );

    // The body changed on the way: the signature fails, and p=reject is refused.
    let altered = String::from_utf8_lossy(&signed).replace("the body", "the b0dy");
    let reply = send(smtp, "client.test", "a@good.example", altered.as_bytes());
    assert_eq!(reply, "550 5.7.1 rejected by DMARC policy for good.example");
    // Not enforced: the same message is delivered with the failure recorded.
    prov(
        &p,
        &[
            "mcf",
            "posternDmarcEnforce",
            "FALSE",
            "posternDmarcVerify",
            "TRUE",
        ],
    );
    let reply = send(smtp, "client.test", "a@good.example", altered.as_bytes());
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let fields = auth_results(&sink.next_unseen(&mut seen));
    // mail-auth words a body hash mismatch as `neutral`, with the reason (RFC 6376 6.1.3).
    assert!(
        fields[0].contains("dkim=neutral (body hash did not verify) header.i=@good.example")
            && fields[0].contains("dmarc=fail"),
        "{fields:?}"
    );
    assert!(fields[0].contains("policy.dmarc=reject"), "{fields:?}");
    prov(&p, &["mcf", "posternDmarcEnforce", "TRUE"]);

    // p=none: unsigned and SPF failing, still delivered, the failure recorded.
    let lax = b"From: a@lax.example\r\nTo: user@example.com\r\nSubject: x\r\n\r\nbody\r\n";
    let reply = send(smtp, "client.test", "a@lax.example", lax);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let fields = auth_results(&sink.next_unseen(&mut seen));
    assert!(
        fields[0].contains("dkim=none")
            && fields[0].contains("dmarc=fail")
            && fields[0].contains("policy.dmarc=none"),
        "{fields:?}"
    );

    // p=quarantine: accepted, then held for the admin instead of delivered.
    let held = b"From: a@held.example\r\nTo: user@example.com\r\nSubject: q\r\n\r\nbody\r\n";
    let reply = send(smtp, "client.test", "a@held.example", held);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let qid = reply.rsplit(' ').next().unwrap_or("").to_string();
    let list = p.admin_ok(&["queue", "list"]);
    assert!(list.contains(&format!("{qid}!")), "{list}");
    assert!(
        p.log()
            .contains("held: DMARC policy quarantine of held.example")
    );

    // p=reject with t=y: held as quarantine would be, not refused.
    let trial = b"From: a@trial.example\r\nTo: user@example.com\r\nSubject: t\r\n\r\nbody\r\n";
    let reply = send(smtp, "client.test", "a@trial.example", trial);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let qid = reply.rsplit(' ').next().unwrap_or("").to_string();
    let list = p.admin_ok(&["queue", "list"]);
    assert!(list.contains(&format!("{qid}!")), "{list}");
    assert!(
        p.log()
            .contains("held: DMARC policy quarantine of trial.example"),
        "{}",
        p.log()
    );

    // A key server that never answers: the message is not held up past the deadline.
    let slow = dkimpy::sign(lax, "slow.example", "sel", &key);
    let started = Instant::now();
    let reply = send(smtp, "client.test", "a@lax.example", &slow);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let fields = auth_results(&sink.next_unseen(&mut seen));
    assert!(fields[0].contains("dkim=temperror"), "{fields:?}");
}

/// Mail from mynetworks is signed with its From domain's key, and dkimpy verifies it.
#[test]
fn outbound_mail_is_signed_and_dkimpy_verifies_it() {
    if !dkimpy::available() {
        return;
    }
    let dns = DnsServer::start();
    let sink = Sink::start(0);
    let mut seen = Vec::new();
    let p = gateway(&dns, &sink);
    let smtp = p.listener("smtp");
    prov(&p, &["mcf", "zimbraMtaMyNetworks", "127.0.0.0/8"]);
    let out = p.admin_ok(&["dkim", "keygen", "example.org", "--selector", "s1"]);
    assert!(
        out.contains("s1._domainkey.example.org. IN TXT ( \"v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{out}"
    );
    p.admin_ok(&[
        "dkim",
        "keygen",
        "ed.example",
        "--selector",
        "e1",
        "--type",
        "ed25519",
    ]);
    let list = p.admin_ok(&["dkim", "list"]);
    assert!(list.contains("example.org s1 rsa signing"), "{list}");
    assert!(list.contains("ed.example e1 ed25519 signing"), "{list}");
    let bad = p.admin(&["dkim", "keygen", "localhost"]);
    assert!(!bad.status.success());

    for (n, (domain, selector)) in [("example.org", "s1"), ("ed.example", "e1")]
        .iter()
        .enumerate()
    {
        let msg = format!(
            "From: Ann <ann@{domain}>\r\nTo: user@example.com\r\nSubject: signed {n}\r\n\
Message-ID: <{n}@{domain}>\r\n\r\nLine one\r\n..dot-stuffed line\r\n"
        );
        let reply = send(
            smtp,
            "client.test",
            &format!("ann@{domain}"),
            msg.as_bytes(),
        );
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
        let delivered = crlf(&sink.next_unseen(&mut seen));
        assert!(delivered.contains("DKIM-Signature: v=1;"), "{delivered}");
        assert!(
            delivered.contains("\r\n.dot-stuffed line\r\n"),
            "{delivered}"
        );
        let show = p.admin_ok(&["dkim", "show", domain]);
        let txt: String = show.split('"').skip(1).step_by(2).collect();
        let name = format!("{selector}._domainkey.{domain}");
        assert!(
            dkimpy::verify(delivered.as_bytes(), &name, &txt),
            "{delivered}"
        );
        // Not a test that cannot fail: the same message altered does not verify.
        let altered = delivered.replace("Line one", "Line 0ne");
        assert!(!dkimpy::verify(altered.as_bytes(), &name, &txt));
    }

    // A message far bigger than what the content stage may hold in RAM is signed as well: its
    // body is hashed as it is read back from the spool.
    prov(&p, &["mcf", "posternContentScanLimit", "1000"]);
    let mut big =
        "From: ann@example.org\r\nTo: user@example.com\r\nSubject: big\r\n\r\n".to_string();
    for n in 0..6000 {
        big.push_str(&format!("line {n} of a long  body\t \r\n"));
    }
    let reply = send(smtp, "client.test", "ann@example.org", big.as_bytes());
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let delivered = crlf(&sink.next_unseen(&mut seen));
    let show = p.admin_ok(&["dkim", "show", "example.org"]);
    let txt: String = show.split('"').skip(1).step_by(2).collect();
    assert!(
        dkimpy::verify(delivered.as_bytes(), "s1._domainkey.example.org", &txt),
        "{}",
        &delivered[..2000.min(delivered.len())]
    );
    let altered = delivered.replace("line 5999 of", "line 5990 of");
    assert!(!dkimpy::verify(
        altered.as_bytes(),
        "s1._domainkey.example.org",
        &txt
    ));

    // Without a key for its domain, or after the key is deleted, mail goes unsigned.
    p.admin_ok(&["dkim", "delete", "example.org"]);
    let msg = b"From: ann@example.org\r\nTo: user@example.com\r\nSubject: x\r\n\r\nx\r\n";
    let reply = send(smtp, "client.test", "ann@example.org", msg);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    assert!(!sink.next_unseen(&mut seen).contains("DKIM-Signature"));
}

/// A domain whose directory entry holds a DKIM key (as Zimbra's LDAP does, put there by
/// `zmdkimkeyutil` in the PKCS#1 PEM `opendkim-genkey` writes) gets its mail signed with it, with
/// no key made on the box; dkimpy verifies the signature. `gd` does not show the key.
#[test]
fn a_key_the_directory_holds_signs_the_domains_mail() {
    if !dkimpy::available() {
        return;
    }
    let dns = DnsServer::start();
    let sink = Sink::start(0);
    let mut seen = Vec::new();
    let p = gateway(&dns, &sink);
    let smtp = p.listener("smtp");
    let (pkcs8, record) = dkimpy::rsa_key();
    let mut convert = std::process::Command::new("openssl")
        .args(["rsa", "-traditional"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl rsa");
    std::io::Write::write_all(&mut convert.stdin.take().expect("stdin"), pkcs8.as_bytes())
        .expect("key to openssl");
    let pkcs1 =
        String::from_utf8(convert.wait_with_output().expect("openssl").stdout).expect("PEM text");
    assert!(
        pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "{pkcs1}"
    );
    prov(&p, &["mcf", "zimbraMtaMyNetworks", "127.0.0.0/8"]);
    prov(&p, &["cd", "zimbra.example"]);
    let bad = p.admin(&[
        "prov",
        "md",
        "zimbra.example",
        "zimbraDKIMPrivateKey",
        "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0\n-----END RSA PRIVATE KEY-----\n",
    ]);
    let said = String::from_utf8_lossy(&bad.stderr).to_string();
    assert!(
        !bad.status.success()
            && said.contains("zimbraDKIMPrivateKey")
            && !said.contains("c2VjcmV0"),
        "{said}"
    );
    prov(
        &p,
        &[
            "md",
            "zimbra.example",
            "zimbraDKIMSelector",
            "zm1",
            "zimbraDKIMPrivateKey",
            &pkcs1,
        ],
    );
    let shown = prov(&p, &["gd", "zimbra.example"]);
    assert!(
        shown.contains("zimbraDKIMPrivateKey: (private key, not shown)")
            && !shown.contains("BEGIN"),
        "{shown}"
    );
    let msg = b"From: Ann <ann@zimbra.example>\r\nTo: user@example.com\r\nSubject: from ldap\r\n\
Message-ID: <l1@zimbra.example>\r\n\r\nsigned with the directory's key\r\n";
    let reply = send(smtp, "client.test", "ann@zimbra.example", msg);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let delivered = crlf(&sink.next_unseen(&mut seen));
    assert!(delivered.contains("DKIM-Signature: v=1;"), "{delivered}");
    assert!(
        dkimpy::verify(
            delivered.as_bytes(),
            "zm1._domainkey.zimbra.example",
            &record
        ),
        "{delivered}"
    );
    let altered = delivered.replace("signed with", "signed w1th");
    assert!(!dkimpy::verify(
        altered.as_bytes(),
        "zm1._domainkey.zimbra.example",
        &record
    ));
}
