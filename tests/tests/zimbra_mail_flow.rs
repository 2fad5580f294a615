//! The mail flows of Zimbra's "Split Domain" page, end to end, with the page's own names and
//! commands: a private Postfix plays the existing mail system `mail.example.com` (port 25 of its
//! own loopback address), Dovecot LMTP plays the Zimbra mailbox server `zimbra.example.com:7025`,
//! and names resolve through a DNS server the test starts (`postern run --dns`) or the box's hosts
//! table, never the machine's resolver.
//!
//! Postfix and Dovecot private instances need root; without them (or not root) each test says
//! SKIPPED, and fails under `CI=true`, so a pass always means the flow ran.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tests::dns::{DnsServer, Record};
use tests::dovecot::MailboxServer;
use tests::host::{HostPostern, SmtpClient};
use tests::peers::own_loopback;
use tests::postfix::MailStore;

const WAIT: Duration = Duration::from_secs(60);

/// A peer the test cannot run without: None means SKIPPED (a failure under CI).
fn needed<T>(peer: Option<T>, what: &str) -> Option<T> {
    if peer.is_none() {
        let message = format!("{what} needs root and its package (make deps)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and {message}");
        }
        eprintln!("SKIPPED: {message}");
    }
    peer
}

/// The peers of a split domain: the existing system and the Zimbra mailbox server.
struct SplitDomain {
    store: MailStore,
    mailboxes: MailboxServer,
}

impl SplitDomain {
    fn start(on_store: &[&str], on_zimbra: &[&str]) -> Option<SplitDomain> {
        let store = needed(
            MailStore::start("mail.example.com", own_loopback(), on_store),
            "a private Postfix",
        )?;
        let mailboxes = needed(
            MailboxServer::start(own_loopback(), 7025, on_zimbra),
            "Dovecot LMTP",
        )?;
        Some(SplitDomain { store, mailboxes })
    }
}

fn prov(p: &HostPostern, line: &str) -> String {
    let mut args = vec!["prov"];
    args.extend(line.split_whitespace());
    p.admin_ok(&args)
}

/// One message over SMTP; returns the reply to RCPT and, when accepted, to the end of data.
fn send(addr: SocketAddr, from: &str, to: &str, subject: &str) -> (String, Option<String>) {
    let mut c = SmtpClient::connect(addr);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    let rcpt = c.cmd(&format!("RCPT TO:<{to}>"));
    if !rcpt.starts_with("250") {
        c.cmd("QUIT");
        return (rcpt, None);
    }
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(format!("Subject: {subject}\r\nFrom: <{from}>\r\n\r\n{subject}\r\n.\r\n").as_bytes());
    let end = c.reply();
    c.cmd("QUIT");
    (rcpt, Some(end))
}

fn delivered(addr: SocketAddr, from: &str, to: &str, subject: &str) {
    let (rcpt, end) = send(addr, from, to, subject);
    let end = end.unwrap_or_else(|| panic!("RCPT {to} refused: {rcpt}"));
    assert!(end.starts_with("250 2.0.0 Ok: queued as "), "{to}: {end}");
}

fn one_with(got: &[String], subject: &str) -> bool {
    got.iter()
        .filter(|m| m.contains(&format!("Subject: {subject}\n")))
        .count()
        == 1
}

fn relay(ip: Ipv4Addr, name: &str, port: u16) -> String {
    format!("relay={name}[{ip}]:{port}")
}

/// Case 1 of the page: the box is the primary; bar@example.com still lives on the existing
/// system, so its transport (the page's `smtp:mail.example.com:25`) hands mail from the internet
/// to it, found through DNS as Postfix finds it (MX first, the host's address without one).
/// Unknown addresses are refused at RCPT. Then the page's "move a user": `ma ...
/// lmtp:zimbra.example.com:7025`, and new mail goes to the Zimbra mailbox server instead.
#[test]
fn case_1_primary_hands_an_old_system_account_to_it_until_the_user_moves() {
    let Some(peers) = SplitDomain::start(&["bar@example.com"], &["bar@example.com"]) else {
        return;
    };
    let (store_ip, zimbra_ip) = (peers.store.ip, peers.mailboxes.ip);
    let dns = DnsServer::with_zone(&[
        ("mail.example.com", Record::A(store_ip.into())),
        ("zimbra.example.com", Record::A(zimbra_ip.into())),
    ]);
    let p = HostPostern::start(&["--dns", &dns.addr.to_string()]);
    prov(&p, "cd example.com");
    prov(&p, "ca bar@example.com Gh7-rand0m-pass");
    prov(
        &p,
        "ma bar@example.com zimbraMailTransport smtp:mail.example.com:25",
    );
    let smtp = p.listener("smtp");

    let (unknown, _) = send(smtp, "a@internet.example", "nobody@example.com", "x");
    assert!(unknown.starts_with("550 5.1.1 "), "{unknown}");
    delivered(smtp, "a@internet.example", "bar@example.com", "case 1");
    let got = peers.store.wait_for("bar@example.com", 1, WAIT);
    assert!(
        one_with(&got, "case 1"),
        "{got:?}\npostern:\n{}\npostfix:\n{}",
        p.log(),
        peers.store.log()
    );
    assert!(
        got[0].contains("by mx.test.example (Postern) with ESMTP"),
        "{}",
        got[0]
    );
    assert!(
        p.log().contains(&relay(store_ip, "mail.example.com", 25)),
        "{}",
        p.log()
    );
    assert!(
        dns.mx_questions().contains(&"mail.example.com".to_string()),
        "with DNS lookups on, smtp:mail.example.com:25 is a mail domain: {:?}",
        dns.queries()
    );

    // The move.
    prov(
        &p,
        "ma bar@example.com zimbraMailTransport lmtp:zimbra.example.com:7025",
    );
    delivered(
        smtp,
        "a@internet.example",
        "bar@example.com",
        "after the move",
    );
    let moved = peers.mailboxes.wait_for("bar@example.com", 1, WAIT);
    assert!(one_with(&moved, "after the move"), "{moved:?}\n{}", p.log());
    assert!(
        p.log()
            .contains(&relay(zimbra_ip, "zimbra.example.com", 7025)),
        "{}",
        p.log()
    );
    assert_eq!(
        peers.store.messages("bar@example.com").len(),
        1,
        "nothing new reaches the old system"
    );
}

/// Case 2 of the page: the box is the secondary. foo@example.com is hosted here (its mail goes to
/// the mailbox server over LMTP); every other address of the domain is accepted through the
/// catch-all and handed to the primary by the domain's transport (`smtp:mail.example.com`),
/// including mail foo sends to bar.
#[test]
fn case_2_secondary_keeps_its_own_accounts_and_hands_the_rest_to_the_primary() {
    let Some(peers) = SplitDomain::start(
        &["bar@example.com", "baz@example.com"],
        &["foo@example.com"],
    ) else {
        return;
    };
    let (store_ip, zimbra_ip) = (peers.store.ip, peers.mailboxes.ip);
    let dns = DnsServer::with_zone(&[
        ("mail.example.com", Record::A(store_ip.into())),
        ("zimbra.example.com", Record::A(zimbra_ip.into())),
    ]);
    let p = HostPostern::start(&["--dns", &dns.addr.to_string()]);
    prov(&p, "cd example.com");
    for page_line in [
        "md example.com zimbraMailCatchAllAddress @example.com",
        "md example.com zimbraMailCatchAllForwardingAddress @example.com",
        "md example.com zimbraMailTransport smtp:mail.example.com",
    ] {
        prov(&p, page_line);
    }
    prov(
        &p,
        "ca foo@example.com pw-of-foo zimbraMailTransport lmtp:zimbra.example.com:7025",
    );
    let smtp = p.listener("smtp");

    delivered(smtp, "foo@example.com", "bar@example.com", "foo to bar");
    delivered(smtp, "a@internet.example", "baz@example.com", "to baz");
    delivered(smtp, "a@internet.example", "foo@example.com", "to foo");
    let bar = peers.store.wait_for("bar@example.com", 1, WAIT);
    let baz = peers.store.wait_for("baz@example.com", 1, WAIT);
    let foo = peers.mailboxes.wait_for("foo@example.com", 1, WAIT);
    let logs = || format!("postern:\n{}\npostfix:\n{}", p.log(), peers.store.log());
    assert!(one_with(&bar, "foo to bar"), "{bar:?}\n{}", logs());
    assert!(one_with(&baz, "to baz"), "{baz:?}\n{}", logs());
    assert!(one_with(&foo, "to foo"), "{foo:?}\n{}", logs());
    assert!(
        peers.mailboxes.messages("bar@example.com").is_empty(),
        "bar is not hosted here"
    );
}

/// The page's advice for a secondary: `zimbraMtaRelayHost mail.example.com` and
/// `zimbraMtaDnsLookupsEnabled FALSE`. Every message leaves through the relay host or the
/// domain's transport, found by address only: the DNS server's MX records (which point at a
/// host nobody answers on) are never asked for. First the hosts table gives the addresses, then,
/// with mail.example.com taken out of it, DNS address records do.
#[test]
fn secondary_with_relay_host_and_dns_lookups_off_sends_through_the_relay_host() {
    let Some(peers) = SplitDomain::start(
        &["bar@example.com", "someone@elsewhere.example"],
        &["foo@example.com"],
    ) else {
        return;
    };
    let (store_ip, zimbra_ip) = (peers.store.ip, peers.mailboxes.ip);
    let trap = Record::Mx(10, "trap.example.net".into());
    let dns = DnsServer::with_zone(&[
        ("mail.example.com", trap.clone()),
        ("mail.example.com", Record::A(store_ip.into())),
        ("elsewhere.example", trap),
        (
            "trap.example.net",
            Record::A(Ipv4Addr::new(127, 77, 254, 254).into()),
        ),
    ]);
    let p = HostPostern::start(&["--dns", &dns.addr.to_string()]);
    prov(
        &p,
        "cd example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:mail.example.com",
    );
    prov(
        &p,
        "ca foo@example.com pw-of-foo zimbraMailTransport lmtp:zimbra.example.com:7025",
    );
    prov(&p, "mcf zimbraMtaRelayHost mail.example.com");
    prov(&p, "mcf zimbraMtaDnsLookupsEnabled FALSE");
    prov(
        &p,
        &format!(
            "mcf posternHostsTable mail.example.com={store_ip} posternHostsTable zimbra.example.com={zimbra_ip}"
        ),
    );
    let smtp = p.listener("smtp");

    delivered(
        smtp,
        "foo@example.com",
        "someone@elsewhere.example",
        "out 1",
    );
    delivered(smtp, "a@internet.example", "bar@example.com", "to bar");
    delivered(smtp, "a@internet.example", "foo@example.com", "to foo");
    let out = peers.store.wait_for("someone@elsewhere.example", 1, WAIT);
    let bar = peers.store.wait_for("bar@example.com", 1, WAIT);
    let foo = peers.mailboxes.wait_for("foo@example.com", 1, WAIT);
    let logs = || format!("postern:\n{}\npostfix:\n{}", p.log(), peers.store.log());
    assert!(one_with(&out, "out 1"), "{out:?}\n{}", logs());
    assert!(one_with(&bar, "to bar"), "{bar:?}\n{}", logs());
    assert!(one_with(&foo, "to foo"), "{foo:?}\n{}", logs());
    assert!(
        dns.queries().is_empty(),
        "the hosts table answers; DNS is not asked: {:?}",
        dns.queries()
    );

    // Without the hosts table entry, the relay host is found by its address records, still
    // without an MX lookup. Wait out connection reuse (2 s), so the name is resolved again.
    prov(
        &p,
        &format!("mcf posternHostsTable zimbra.example.com={zimbra_ip}"),
    );
    std::thread::sleep(Duration::from_secs(3));
    delivered(
        smtp,
        "foo@example.com",
        "someone@elsewhere.example",
        "out 2",
    );
    let out = peers.store.wait_for("someone@elsewhere.example", 2, WAIT);
    assert!(one_with(&out, "out 2"), "{out:?}\n{}", logs());
    assert!(
        dns.queries().contains(&"mail.example.com/A".to_string()),
        "{:?}",
        dns.queries()
    );
    assert!(
        dns.mx_questions().is_empty(),
        "DNS lookups off: no MX lookup anywhere: {:?}",
        dns.queries()
    );
}
