//! `zimbraMtaRestriction` and Zimbra's blocklist attributes through a real SMTP client (swaks)
//! against host mode, with DNS from a server the test starts on 127.0.0.1. The client is
//! 127.0.0.1, taken out of mynetworks so the restrictions apply to it.

use std::time::{Duration, Instant};

use tests::dns::{DnsServer, Record};
use tests::host::{HostPostern, SmtpClient};
use tests::peers::{Sink, swaks};
use tests::policy_server::PolicyServer;

fn prov(p: &HostPostern, args: &[&str]) -> String {
    let mut all = vec!["prov"];
    all.extend_from_slice(args);
    p.admin_ok(&all)
}

/// A box that is the final destination of example.com (user@example.com to a sink), with DNS
/// from `dns` and 127.0.0.1 outside mynetworks.
fn gateway(dns: &DnsServer, sink: &Sink) -> HostPostern {
    let p = HostPostern::start(&["--dns", &dns.flag(), "--dns-timeout", "2"]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    prov(
        &p,
        &["cd", "example.com", "zimbraMailTransport", &transport],
    );
    prov(&p, &["ca", "user@example.com", "pw"]);
    prov(&p, &["mcf", "zimbraMtaMyNetworks", "192.0.2.0/24"]);
    p
}

/// One swaks session up to RCPT; its whole transcript.
fn try_rcpt(p: &HostPostern, helo: &str, from: &str, to: &str) -> String {
    let port = p.listener("smtp").port().to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--helo",
        helo,
        "--from",
        from,
        "--to",
        to,
        "--quit-after",
        "RCPT",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn accepted(transcript: &str) -> bool {
    transcript.contains("<-  250 2.1.5")
}

fn dns_with_good_sender() -> DnsServer {
    let dns = DnsServer::start();
    dns.add("good.example", Record::Mx(10, "mx.good.example".into()))
        .add("mx.good.example", Record::A("192.0.2.10".parse().unwrap()))
        .servfail("broken.example");
    dns
}

/// The three restrictions the "Zimbra MTA" page says are enabled at installation, in the
/// page's (older Postfix) spelling, plus reject_unknown_sender_domain.
#[test]
fn helo_and_sender_restrictions_refuse_at_rcpt_with_postfix_codes() {
    let dns = dns_with_good_sender();
    let sink = Sink::start(0);
    let p = gateway(&dns, &sink);
    let to = "user@example.com";
    // Without restrictions everything below is accepted.
    assert!(accepted(&try_rcpt(&p, "workstation", "a@nx.example", to)));
    prov(
        &p,
        &[
            "mcf",
            "zimbraMtaRestriction",
            "reject_invalid_hostname",
            "zimbraMtaRestriction",
            "reject_non_fqdn_hostname",
            "zimbraMtaRestriction",
            "reject_non_fqdn_sender",
            "zimbraMtaRestriction",
            "reject_unknown_sender_domain",
        ],
    );
    let gacf = prov(&p, &["gacf", "zimbraMtaRestriction"]);
    assert!(gacf.contains("reject_non_fqdn_sender"), "{gacf}");

    let out = try_rcpt(&p, "workstation", "a@good.example", to);
    assert!(
        out.contains(
            "504 5.5.2 <workstation>: Helo command rejected: need fully-qualified hostname"
        ),
        "{out}"
    );
    let out = try_rcpt(&p, "bad..name", "a@good.example", to);
    assert!(
        out.contains("501 5.5.2 <bad..name>: Helo command rejected: Invalid name"),
        "{out}"
    );
    let out = try_rcpt(&p, "mx.client.example", "a@nx.example", to);
    assert!(
        out.contains("450 4.1.8 <a@nx.example>: Sender address rejected: Domain not found"),
        "{out}"
    );
    let out = try_rcpt(&p, "mx.client.example", "a@broken.example", to);
    assert!(
        out.contains("450 4.4.3 <a@broken.example>: Sender address rejected: Domain not found"),
        "{out}"
    );
    let out = try_rcpt(&p, "mx.client.example", "a@localhost", to);
    assert!(
        out.contains(
            "504 5.5.2 <a@localhost>: Sender address rejected: need fully-qualified address"
        ),
        "{out}"
    );
    assert!(accepted(&try_rcpt(
        &p,
        "mx.client.example",
        "a@good.example",
        to
    )));
    assert!(dns.queries().contains(&"nx.example/MX".to_string()));

    // mynetworks is exempt, as permit_mynetworks comes first.
    prov(&p, &["mcf", "zimbraMtaMyNetworks", "127.0.0.0/8"]);
    assert!(accepted(&try_rcpt(&p, "workstation", "a@nx.example", to)));
}

#[test]
fn blocklists_refuse_with_the_lists_reason_and_dead_lists_do_not_hang() {
    let dns = dns_with_good_sender();
    dns.add("1.0.0.127.bl.test", Record::A("127.0.0.2".parse().unwrap()))
        .add(
            "1.0.0.127.bl.test",
            Record::Txt("Blocked, see https://bl.test/lookup?ip=127.0.0.1".into()),
        )
        .add(
            "1.0.0.127.pattern.test",
            Record::A("127.0.0.20".parse().unwrap()),
        )
        .add(
            "good.example.dbl.test",
            Record::A("127.0.1.2".parse().unwrap()),
        )
        .servfail("1.0.0.127.servfail.test")
        .silent("1.0.0.127.silent.test");
    let sink = Sink::start(0);
    let p = gateway(&dns, &sink);
    let to = "user@example.com";
    let helo = "mx.client.example";

    assert!(accepted(&try_rcpt(&p, helo, "a@good.example", to)));
    prov(&p, &["mcf", "zimbraMtaRestrictionRBLs", "bl.test"]);
    let out = try_rcpt(&p, helo, "a@good.example", to);
    assert!(
        out.contains("554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using bl.test; Blocked, see https://bl.test/lookup?ip=127.0.0.1"),
        "{out}"
    );
    // Answers are cached for their TTL: a second session does not ask the list again.
    assert!(!accepted(&try_rcpt(&p, helo, "a@good.example", to)));
    let asked = |q: &str| dns.queries().iter().filter(|x| *x == q).count();
    assert_eq!(asked("1.0.0.127.bl.test/A"), 1, "{:?}", dns.queries());

    // An answer outside the list's pattern is no listing.
    prov(&p, &["mcf", "zimbraMtaRestrictionRBLs", ""]);
    prov(
        &p,
        &[
            "mcf",
            "zimbraMtaRestriction",
            "reject_rbl_client pattern.test=127.0.0.[2..11]",
        ],
    );
    assert!(accepted(&try_rcpt(&p, helo, "a@good.example", to)));

    prov(&p, &["mcf", "zimbraMtaRestriction", ""]);
    prov(&p, &["mcf", "zimbraMtaRestrictionRHSBLSs", "dbl.test"]);
    let out = try_rcpt(&p, helo, "a@good.example", to);
    assert!(
        out.contains(
            "554 5.7.1 Service unavailable; Sender address [good.example] blocked using dbl.test"
        ),
        "{out}"
    );

    // A list that fails or never answers does not list anyone, and the session goes on at once
    // after the deadline (2 s here).
    prov(&p, &["mcf", "zimbraMtaRestrictionRHSBLSs", ""]);
    prov(
        &p,
        &[
            "mcf",
            "zimbraMtaRestrictionRBLs",
            "servfail.test",
            "zimbraMtaRestrictionRBLs",
            "silent.test",
        ],
    );
    let started = Instant::now();
    assert!(accepted(&try_rcpt(&p, helo, "a@good.example", to)));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        dns.queries()
            .contains(&"1.0.0.127.silent.test/A".to_string())
    );
    assert!(
        p.log().contains(
            "postern/smtpd: warning: RBL lookup error for DNS query 1.0.0.127.servfail.test"
        ),
        "{}",
        p.log()
    );
}

/// The other HELO, recipient and client-name restrictions. (127.0.0.1's name is `localhost`,
/// answered by the resolver itself, RFC 6761: the client-name checks pass, the domain lists see
/// that name.)
#[test]
fn helo_recipient_and_client_name_restrictions() {
    let dns = dns_with_good_sender();
    dns.add(
        "localhost.dbl.test",
        Record::A("127.0.1.2".parse().unwrap()),
    );
    let sink = Sink::start(0);
    let p = gateway(&dns, &sink);
    let to = "user@example.com";
    assert!(accepted(&try_rcpt(&p, "nx.example", "a@good.example", to)));
    prov(
        &p,
        &["mcf", "zimbraMtaRestriction", "reject_unknown_hostname"],
    );
    let out = try_rcpt(&p, "nx.example", "a@good.example", to);
    assert!(
        out.contains("450 4.7.1 <nx.example>: Helo command rejected: Host not found"),
        "{out}"
    );
    assert!(accepted(&try_rcpt(
        &p,
        "mx.good.example",
        "a@good.example",
        to
    )));

    // From mynetworks (relaying), the recipient checks still apply.
    prov(
        &p,
        &[
            "mcf",
            "zimbraMtaMyNetworks",
            "127.0.0.0/8",
            "zimbraMtaRestriction",
            "reject_non_fqdn_recipient",
            "zimbraMtaRestriction",
            "reject_unknown_recipient_domain",
        ],
    );
    let helo = "mx.client.example";
    let out = try_rcpt(&p, helo, "a@good.example", "x@intranet");
    assert!(
        out.contains(
            "504 5.5.2 <x@intranet>: Recipient address rejected: need fully-qualified address"
        ),
        "{out}"
    );
    let out = try_rcpt(&p, helo, "a@good.example", "x@nx.example");
    assert!(
        out.contains("450 4.1.2 <x@nx.example>: Recipient address rejected: Domain not found"),
        "{out}"
    );
    assert!(accepted(&try_rcpt(
        &p,
        helo,
        "a@good.example",
        "x@good.example"
    )));

    prov(
        &p,
        &[
            "mcf",
            "zimbraMtaMyNetworks",
            "192.0.2.0/24",
            "zimbraMtaRestriction",
            "reject_unknown_client_hostname",
            "zimbraMtaRestriction",
            "reject_unknown_reverse_client_hostname",
        ],
    );
    assert!(accepted(&try_rcpt(&p, helo, "a@good.example", to)));
    for restriction in [
        "reject_rhsbl_client dbl.test",
        "reject_rhsbl_reverse_client dbl.test",
    ] {
        prov(&p, &["mcf", "zimbraMtaRestriction", restriction]);
        let out = try_rcpt(&p, helo, "a@good.example", to);
        assert!(
            out.contains("554 5.7.1 Service unavailable; ")
                && out.contains("[localhost] blocked using dbl.test"),
            "{restriction}: {out}"
        );
    }
}

/// A policy service started by the test (postgrey-style answers): DUNNO passes, REJECT and
/// DEFER_IF_PERMIT refuse with the service's text, a service that is gone gives 451 4.3.5.
#[test]
fn a_policy_service_decides_with_postfix_semantics() {
    let dns = DnsServer::start();
    let sink = Sink::start(0);
    let p = gateway(&dns, &sink);
    for user in ["grey", "bad"] {
        prov(&p, &["ca", &format!("{user}@example.com"), "pw"]);
    }
    let service = PolicyServer::start();
    service.answer("bad@example.com", "REJECT go away");
    service.answer(
        "grey@example.com",
        "DEFER_IF_PERMIT Greylisted, see http://postgrey.example/",
    );
    let helo = "mx.client.example";
    assert!(accepted(&try_rcpt(
        &p,
        helo,
        "a@b.example",
        "bad@example.com"
    )));
    prov(
        &p,
        &["mcf", "+zimbraMtaRestriction", &service.restriction()],
    );
    assert!(accepted(&try_rcpt(
        &p,
        helo,
        "a@b.example",
        "user@example.com"
    )));
    let out = try_rcpt(&p, helo, "a@b.example", "bad@example.com");
    assert!(
        out.contains("554 5.7.1 <bad@example.com>: Recipient address rejected: go away"),
        "{out}"
    );
    let out = try_rcpt(&p, helo, "a@b.example", "grey@example.com");
    assert!(
        out.contains("450 4.7.1 <grey@example.com>: Recipient address rejected: Greylisted, see http://postgrey.example/"),
        "{out}"
    );
    let asked = service.requests();
    let first = asked.first().expect("a request");
    assert_eq!(
        first.get("request").map(String::as_str),
        Some("smtpd_access_policy")
    );
    assert_eq!(
        first.get("protocol_state").map(String::as_str),
        Some("RCPT")
    );
    assert_eq!(first.get("sender").map(String::as_str), Some("a@b.example"));
    assert_eq!(first.get("helo_name").map(String::as_str), Some(helo));
    assert_eq!(
        first.get("client_address").map(String::as_str),
        Some("127.0.0.1")
    );

    // A service that is not there: Postfix's default action.
    let gone = tests::peers::free_port();
    prov(
        &p,
        &[
            "mcf",
            "zimbraMtaRestriction",
            &format!("check_policy_service inet:127.0.0.1:{gone}"),
        ],
    );
    let out = try_rcpt(&p, helo, "a@b.example", "user@example.com");
    assert!(
        out.contains("451 4.3.5 Server configuration problem"),
        "{out}"
    );
}

/// The Split Domain page's dual catch-all loop: with the recipe and `reject`, what exists in
/// neither system is refused at RCPT even though the domain has a catch-all; an account and an
/// alias still get through.
#[test]
fn split_domain_recipe_refuses_what_neither_system_has() {
    let dns = DnsServer::start();
    let sink = Sink::start(0);
    let p = gateway(&dns, &sink);
    prov(
        &p,
        &[
            "md",
            "example.com",
            "zimbraMailCatchAllAddress",
            "@example.com",
            "zimbraMailCatchAllForwardingAddress",
            "@example.com",
        ],
    );
    prov(&p, &["aaa", "user@example.com", "alias@example.com"]);
    let helo = "mx.client.example";
    assert!(accepted(&try_rcpt(
        &p,
        helo,
        "a@b.example",
        "nobody@example.com"
    )));
    prov(
        &p,
        &[
            "mcf",
            "+zimbraMtaRestriction",
            "check_recipient_access ldap:/opt/zimbra/conf/ldap-splitdomain.cf",
        ],
    );
    prov(&p, &["mcf", "+zimbraMtaRestriction", "reject"]);
    let out = try_rcpt(&p, helo, "a@b.example", "nobody@example.com");
    assert!(
        out.contains("554 5.7.1 <nobody@example.com>: Recipient address rejected: Access denied"),
        "{out}"
    );
    assert!(accepted(&try_rcpt(
        &p,
        helo,
        "a@b.example",
        "user@example.com"
    )));
    assert!(accepted(&try_rcpt(
        &p,
        helo,
        "a@b.example",
        "alias@example.com"
    )));
    let gacf = prov(&p, &["gacf", "zimbraMtaRestriction"]);
    assert!(
        gacf.contains(
            "zimbraMtaRestriction: check_recipient_access ldap:/opt/zimbra/conf/ldap-splitdomain.cf"
        ),
        "{gacf}"
    );
}

/// A 10 MB HELO, bytes that are not UTF-8, a HELO name of 200 labels, a HELO that is no host
/// name: each gets a clear reply,
/// and the box goes on serving.
#[test]
fn bad_input_gets_a_clear_reply_and_the_box_goes_on() {
    let dns = DnsServer::start();
    let sink = Sink::start(0);
    let p = gateway(&dns, &sink);
    prov(
        &p,
        &[
            "mcf",
            "zimbraMtaRestriction",
            "reject_invalid_helo_hostname",
            "zimbraMtaRestriction",
            "reject_unknown_helo_hostname",
        ],
    );
    let addr = p.listener("smtp");

    // The box reads past the long line (or hangs up) and says why; the writer may see the
    // connection close under it, so it runs on its own thread.
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut huge = b"HELO ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 10 << 20));
        huge.extend_from_slice(b"\r\nNOOP\r\n");
        let _ = std::io::Write::write_all(&mut writer, &huge);
    });
    let mut replies = String::new();
    let mut reader = std::io::BufReader::new(stream);
    while !replies.contains("line too long") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
            break;
        }
        replies.push_str(&line);
    }
    assert!(replies.contains("500 5.5.2 line too long"), "{replies}");
    let _ = sender.join();

    let mut c = SmtpClient::connect(addr);
    c.reply();
    c.send(b"EHLO caf\xe9\xff.example\r\n");
    let ehlo = c.reply();
    assert!(ehlo.starts_with("500 5.5.2"), "{ehlo}");
    assert!(c.cmd("EHLO café.example").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@b.example>").starts_with("250"));
    let rcpt = c.cmd("RCPT TO:<user@example.com>");
    assert!(rcpt.starts_with("501 5.5.2 <caf"), "{rcpt}");
    assert!(
        rcpt.ends_with("Helo command rejected: Invalid name"),
        "{rcpt}"
    );
    assert!(c.cmd("RSET").starts_with("250"));

    // A name longer than DNS allows is refused by the protocol core already.
    let long = format!("{}example", "a.".repeat(200));
    let ehlo = c.cmd(&format!("EHLO {long}"));
    assert!(ehlo.starts_with("501 5.5.4"), "{ehlo}");
    assert!(c.cmd("EHLO mx.client.example").starts_with("250"));
    assert!(c.cmd("QUIT").starts_with("221"));
    assert!(p.admin(&["status"]).status.success(), "{}", p.log());
    assert!(!p.log().contains("panicked"), "{}", p.log());
}

/// Set in the copy of this test binary that runs inside a network namespace of its own.
const IN_OWN_NETWORK: &str = "POSTERN_TEST_IN_OWN_NETWORK";

/// Runs `test` of this binary again inside a network namespace of its own (`unshare --net`),
/// whose loopback device also holds 192.0.2.1 (the box) and the clients 192.0.2.10-12: traffic
/// stays on that loopback. Needs CAP_SYS_ADMIN (root, as `make test` runs); without it the test
/// fails under CI=true and is skipped with a message elsewhere.
fn in_own_network(test: &str) {
    let probe = std::process::Command::new("unshare")
        .args(["--net", "true"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why = format!("cannot make a network namespace (unshare --net): {probe:?}");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let setup = "ip link set lo up && for a in 192.0.2.1 192.0.2.10 192.0.2.11 192.0.2.12; do \
                 ip addr add $a/32 dev lo || exit 1; done && exec \"$0\" \"$@\"";
    let out = std::process::Command::new("unshare")
        .args(["--net", "sh", "-c", setup])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(IN_OWN_NETWORK, "1")
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} in its own network: {}\n{stdout}\n{stderr}",
        out.status
    );
}

/// One swaks session up to RCPT from `client` to the box at 192.0.2.1.
fn try_rcpt_from(p: &HostPostern, client: &str, to: &str) -> String {
    let port = p.listener("smtp").port().to_string();
    let out = swaks(&[
        "--server",
        "192.0.2.1",
        "--port",
        &port,
        "--local-interface",
        client,
        "--helo",
        "mx.client.example",
        "--from",
        "a@good.example",
        "--to",
        to,
        "--quit-after",
        "RCPT",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The client-name restrictions and the client-name blocklists, from clients that are not
/// loopback (127.0.0.0/8's names are the resolver's own, RFC 6761): 192.0.2.10 has a name
/// that maps back to it, 192.0.2.11 has no PTR record, 192.0.2.12's PTR names a host with
/// another address. Each restriction refuses its client with Postfix's reply and lets the others
/// through, and the smtpd log names each client as Postfix does (`unknown` when unverified).
#[test]
fn client_name_restrictions_from_clients_outside_loopback() {
    if std::env::var_os(IN_OWN_NETWORK).is_none() {
        return in_own_network("client_name_restrictions_from_clients_outside_loopback");
    }
    let dns = dns_with_good_sender();
    dns.add(
        "10.2.0.192.in-addr.arpa",
        Record::Ptr("good.client.example".into()),
    )
    .add(
        "good.client.example",
        Record::A("192.0.2.10".parse().unwrap()),
    )
    .add(
        "12.2.0.192.in-addr.arpa",
        Record::Ptr("liar.client.example".into()),
    )
    .add(
        "liar.client.example",
        Record::A("198.51.100.99".parse().unwrap()),
    )
    .add(
        "good.client.example.dbl.test",
        Record::A("127.0.1.2".parse().unwrap()),
    )
    .add(
        "liar.client.example.dbl.test",
        Record::A("127.0.1.2".parse().unwrap()),
    );
    let sink = Sink::start(0);
    let p = HostPostern::start(&[
        "--dns",
        &dns.flag(),
        "--dns-timeout",
        "2",
        "--smtp",
        "192.0.2.1:0",
    ]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    prov(
        &p,
        &["cd", "example.com", "zimbraMailTransport", &transport],
    );
    prov(&p, &["ca", "user@example.com", "pw"]);
    prov(&p, &["mcf", "zimbraMtaMyNetworks", "127.0.0.0/8"]);
    let to = "user@example.com";
    let (good, nameless, liar) = ("192.0.2.10", "192.0.2.11", "192.0.2.12");
    for client in [good, nameless, liar] {
        assert!(accepted(&try_rcpt_from(&p, client, to)), "{client}");
    }

    // (restriction, clients it lets through, clients it refuses with their replies)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: [Case; 4] = [
        (
            "reject_unknown_reverse_client_hostname",
            &[good, liar],
            &[(
                nameless,
                "450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.11]",
            )],
        ),
        (
            "reject_unknown_client_hostname",
            &[good],
            &[
                (
                    nameless,
                    "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.11]",
                ),
                (
                    liar,
                    "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.12]",
                ),
            ],
        ),
        // The verified name: the liar's is `unknown`, so only the good client is listed.
        (
            "reject_rhsbl_client dbl.test",
            &[nameless, liar],
            &[(
                good,
                "554 5.7.1 Service unavailable; Client host [good.client.example] blocked using dbl.test",
            )],
        ),
        // The PTR name, verified or not (Postfix's "Unverified Client host").
        (
            "reject_rhsbl_reverse_client dbl.test",
            &[nameless],
            &[
                (
                    good,
                    "554 5.7.1 Service unavailable; Unverified Client host [good.client.example] blocked using dbl.test",
                ),
                (
                    liar,
                    "554 5.7.1 Service unavailable; Unverified Client host [liar.client.example] blocked using dbl.test",
                ),
            ],
        ),
    ];
    for (restriction, pass, refuse) in cases {
        prov(&p, &["mcf", "zimbraMtaRestriction", restriction]);
        for client in pass {
            let out = try_rcpt_from(&p, client, to);
            assert!(accepted(&out), "{restriction} from {client}: {out}");
        }
        for (client, reply) in refuse {
            let out = try_rcpt_from(&p, client, to);
            assert!(out.contains(reply), "{restriction} from {client}: {out}");
        }
    }
    let log = p.log();
    for line in [
        "connect from good.client.example[192.0.2.10]",
        "connect from unknown[192.0.2.11]",
        "connect from unknown[192.0.2.12]",
        "NOQUEUE: reject: RCPT from unknown[192.0.2.12]: 450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.12]",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
}
