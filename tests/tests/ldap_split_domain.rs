//! The seed's split-domain primary driven entirely from LDAP, end to end: a real slapd (the
//! Zimbra-like test schema, no syncprov, as Zimbra's own LDAP runs without replication) holds the
//! domains, accounts, alias, list and forwarding; the daemon syncs from it only (no `prov`). Dovecot
//! LMTP is the Zimbra mailbox server, Postfix's smtp-sink the secondary system. Mail goes in with
//! swaks and is looked for where it must land.
//!
//! The LDAP server may be named by a host name: the box resolves it with its own resolver (the
//! static binary cannot use the C library's), here a DNS server the test starts.
//!
//! Without slapd, Dovecot or root a test says SKIPPED, and fails under `CI=true`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tests::dns::{DnsServer, Record};
use tests::dovecot::MailboxServer;
use tests::host::{HostPostern, SmtpClient};
use tests::peers::{Sink, free_port, own_loopback, swaks};

// The firmware tests' slapd and schema, shared rather than copied (slapd.rs reports a missing
// peer through `super::peers`).
#[allow(dead_code)]
#[path = "../../firmware/tests/common/peers.rs"]
mod peers;
#[allow(dead_code)]
#[path = "../../firmware/tests/common/slapd.rs"]
mod slapd;

/// slapd's ports from the same picker as the other peers': two pickers would hand out the same.
mod ports {
    pub use tests::peers::free_port;
}

use slapd::{Slapd, account_ldif, base_ldif, domain_ldif, require_slapd};

const WAIT: Duration = Duration::from_secs(60);

/// The primary's DIT: example.com is split (its catch-all and transport hand what the box does
/// not know to the secondary, as the seed's "ZCS 5.0.x/6.0.x As Primary"), example.org is not.
fn seed(ldap: &Slapd, lmtp: &str, secondary: &str) {
    let mut ldif = base_ldif();
    ldif += &domain_ldif(
        "example.com",
        "d-split",
        &format!(
            "zimbraMailCatchAllAddress: @example.com\n\
             zimbraMailCatchAllForwardingAddress: @example.com\n\
             zimbraMailTransport: {secondary}\n"
        ),
    );
    ldif += &domain_ldif("example.org", "d-plain", "");
    // Migrated to the box: its mailbox is on the Zimbra mailbox server.
    ldif += &account_ldif(
        "foo@example.com",
        "a-foo",
        &format!("zimbraMailTransport: {lmtp}\nzimbraMailAlias: info@example.com\n"),
    );
    // `zmprov aaa` also writes an alias entry beside zimbraMailAlias.
    ldif += "dn: uid=info,ou=people,dc=example,dc=com\nobjectClass: zimbraAlias\n\
             uid: info\nzimbraId: al-info\nzimbraAliasTargetId: a-foo\n\n";
    // Still on the existing system (the seed's step 2).
    ldif += &account_ldif(
        "bar@example.com",
        "a-bar",
        &format!("zimbraMailTransport: {secondary}\n"),
    );
    ldif += &account_ldif(
        "carol@example.org",
        "a-carol",
        &format!("zimbraMailTransport: {lmtp}\n"),
    );
    // An admin's forward (ldap-vam's zimbraMailForwardingAddress): the mailbox keeps its copy.
    ldif += &account_ldif(
        "dave@example.org",
        "a-dave",
        &format!("zimbraMailTransport: {lmtp}\nzimbraMailForwardingAddress: bar@example.com\n"),
    );
    ldif += "dn: uid=team,ou=people,dc=example,dc=com\nobjectClass: zimbraDistributionList\n\
             objectClass: zimbraMailRecipient\nuid: team\ncn: team\nzimbraId: l-team\n\
             zimbraMailDeliveryAddress: team@example.com\nzimbraMailStatus: enabled\n\
             zimbraMailForwardingAddress: foo@example.com\n\
             zimbraMailForwardingAddress: bar@example.com\n\n";
    ldap.ldapmodify(&ldif);
}

/// Dovecot needs root and its package; None means SKIPPED (a failure under CI).
fn mailbox_server(port: u16, users: &[&str]) -> Option<MailboxServer> {
    let server = MailboxServer::start(own_loopback(), port, users);
    if server.is_none() {
        peers::missing("Dovecot LMTP (run as root)", "dovecot-lmtpd");
    }
    server
}

fn swaks_to(smtp: SocketAddr, to: &str, subject: &str) -> String {
    let port = smtp.port().to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "sender@outside.example",
        "--to",
        to,
        "--h-Subject",
        subject,
        "--body",
        subject,
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn accepted(p: &HostPostern, to: &str, subject: &str) {
    let out = swaks_to(p.listener("smtp"), to, subject);
    assert!(
        out.contains("250 2.0.0 Ok: queued as"),
        "{to}: {out}\n{}",
        p.log()
    );
}

fn with_subject<'a>(got: &'a [String], subject: &str) -> Vec<&'a String> {
    got.iter()
        .filter(|m| m.contains(&format!("Subject: {subject}\n")))
        .collect()
}

/// Waits until a message with `subject` is in `messages()`, and returns it.
fn arrival(what: &str, messages: impl Fn() -> Vec<String>, subject: &str, log: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(m) = with_subject(&messages(), subject).first() {
            return m.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{subject:?} never reached {what}\npostern:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sink_arrival(sink: &Sink, subject: &str, p: &HostPostern) -> String {
    arrival("the secondary", || sink.messages(), subject, &p.log())
}

fn mailbox_arrival(box_: &MailboxServer, user: &str, subject: &str, p: &HostPostern) -> String {
    arrival(user, || box_.messages(user), subject, &p.log())
}

#[test]
fn split_domain_primary_routes_from_ldap_alone_and_follows_a_moved_account() {
    if require_slapd().is_none() {
        return;
    }
    let lmtp_port = free_port();
    let Some(mailboxes) = mailbox_server(
        lmtp_port,
        &[
            "foo@example.com",
            "bar@example.com",
            "carol@example.org",
            "dave@example.org",
        ],
    ) else {
        return;
    };
    let sink = Sink::start(0);
    let lmtp = format!("lmtp:{}:{lmtp_port}", mailboxes.ip);
    let secondary = format!("smtp:[127.0.0.1]:{}", sink.port);
    let ldap = Slapd::start(false);
    seed(&ldap, &lmtp, &secondary);

    // Every name the box looks up (a bounce's MX, should one happen) stays on loopback.
    let dns = DnsServer::start();
    let p = HostPostern::start(&["--dns", &dns.addr.to_string()]);
    let url = format!("ldap_url={}", ldap.url());
    let dn = format!("zimbra_ldap_userdn={}", slapd::ROOT_DN);
    let pw = format!("zimbra_ldap_password={}", slapd::ROOT_PW);
    p.admin_ok(&["localconfig", "-e", &url, &dn, &pw, "ldap_sync_interval=1s"]);
    let synced = p.admin_ok(&["ldap", "sync"]);
    assert!(
        synced.starts_with("full sync from ldap://127.0.0.1:"),
        "{synced}"
    );
    let status = p.admin_ok(&["ldap", "status"]);
    assert!(status.contains("skipped entries: 0"), "{status}");
    assert!(
        p.admin_ok(&["prov", "gaa"]).contains("foo@example.com"),
        "the directory came from LDAP"
    );

    // An account on the box lands in its mailbox; so does mail to its alias.
    accepted(&p, "foo@example.com", "to foo");
    accepted(&p, "info@example.com", "to info");
    let m = mailbox_arrival(&mailboxes, "foo@example.com", "to foo", &p);
    assert!(m.contains("by mx.test.example (Postern) with ESMTP"), "{m}");
    mailbox_arrival(&mailboxes, "foo@example.com", "to info", &p);

    // An account still on the secondary goes there, by its own transport.
    accepted(&p, "bar@example.com", "to bar");
    let m = sink_arrival(&sink, "to bar", &p);
    assert!(m.contains("X-Rcpt-Args: <bar@example.com>"), "{m}");

    // An address the box does not know: in the split domain the catch-all hands it to the
    // secondary; in a domain that is not split it is refused at RCPT.
    accepted(&p, "nobody@example.com", "to nobody");
    let m = sink_arrival(&sink, "to nobody", &p);
    assert!(m.contains("X-Rcpt-Args: <nobody@example.com>"), "{m}");
    let refused = swaks_to(p.listener("smtp"), "nobody@example.org", "refused");
    assert!(refused.contains("550 5.1.1"), "{refused}");

    // The list reaches both systems.
    accepted(&p, "team@example.com", "to the team");
    mailbox_arrival(&mailboxes, "foo@example.com", "to the team", &p);
    let m = sink_arrival(&sink, "to the team", &p);
    assert!(m.contains("X-Rcpt-Args: <bar@example.com>"), "{m}");
    assert!(!m.contains("foo@example.com"), "{m}");

    // The forward: dave keeps a copy, bar (on the secondary) gets one.
    accepted(&p, "dave@example.org", "to dave");
    mailbox_arrival(&mailboxes, "dave@example.org", "to dave", &p);
    let m = sink_arrival(&sink, "to dave", &p);
    assert!(m.contains("X-Rcpt-Args: <bar@example.com>"), "{m}");

    // The seed's dual catch-all loop: a message that went round between the two systems carries
    // a Received header per lap and is refused, not forwarded again.
    let mut c = SmtpClient::connect(p.listener("smtp"));
    c.reply();
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<sender@outside.example>");
    let rcpt = c.cmd("RCPT TO:<lost@example.com>");
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(c.cmd("DATA").starts_with("354"));
    let laps: String = (0..51)
        .map(|i| format!("Received: from lap{i}.example.com by mail.example.com\r\n"))
        .collect();
    c.send(format!("{laps}Subject: looped\r\n\r\nround and round\r\n.\r\n").as_bytes());
    let end = c.reply();
    assert!(end.starts_with("554 5.4.6"), "{end}");
    c.cmd("QUIT");

    // The seed's "move a user": bar's transport changes in LDAP; after the next poll (no sync
    // asked for), bar's mail goes to the mailbox server.
    let before = sink.messages().len();
    ldap.ldapmodify(&format!(
        "dn: uid=bar,ou=people,dc=example,dc=com\nchangetype: modify\n\
         replace: zimbraMailTransport\nzimbraMailTransport: {lmtp}\n"
    ));
    let deadline = Instant::now() + WAIT;
    while !p
        .admin_ok(&["prov", "ga", "bar@example.com", "zimbraMailTransport"])
        .contains(&lmtp)
    {
        assert!(
            Instant::now() < deadline,
            "the poll never saw the move: {}\n{}",
            p.admin_ok(&["prov", "ga", "bar@example.com"]),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    accepted(&p, "bar@example.com", "after the move");
    mailbox_arrival(&mailboxes, "bar@example.com", "after the move", &p);
    // Time for a stray copy to reach the secondary, had one been sent.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        with_subject(&sink.messages(), "after the move").is_empty(),
        "nothing for bar goes to the secondary any more"
    );
    assert_eq!(
        with_subject(&sink.messages(), "looped").len(),
        0,
        "the looping message never left"
    );
    assert_eq!(sink.messages().len(), before);
}

/// `ldap_url` names the server by a name only the box's DNS server (`run --dns`) knows: the
/// daemon finds it there, syncs, and `ldap test` binds.
#[test]
fn an_ldap_server_named_in_the_boxs_dns_is_synced_from() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(false);
    let mut ldif = base_ldif();
    ldif += &domain_ldif("example.org", "d-plain", "");
    ldif += &account_ldif(
        "carol@example.org",
        "a-carol",
        "zimbraMailTransport: lmtp:127.0.0.1:7025\n",
    );
    ldap.ldapmodify(&ldif);
    let name = "directory.split.test";
    let dns = DnsServer::with_zone(&[(name, Record::A([127, 0, 0, 1].into()))]);
    let p = HostPostern::start(&["--dns", &dns.addr.to_string()]);
    let url = format!("ldap://{name}:{}", ldap.port);
    p.admin_ok(&[
        "localconfig",
        "-e",
        &format!("ldap_url={url}"),
        &format!("zimbra_ldap_userdn={}", slapd::ROOT_DN),
        &format!("zimbra_ldap_password={}", slapd::ROOT_PW),
    ]);
    let synced = p.admin_ok(&["ldap", "sync"]);
    assert!(
        synced.starts_with(&format!("full sync from {url}")),
        "{synced}"
    );
    assert!(
        p.admin_ok(&["prov", "gaa"]).contains("carol@example.org"),
        "{}",
        p.log()
    );
    let tested = p.admin_ok(&["ldap", "test"]);
    assert!(tested.starts_with(&format!("{url}: bind OK")), "{tested}");
    assert!(
        dns.queries().iter().any(|q| q.contains(name)),
        "the box's DNS server was asked: {:?}",
        dns.queries()
    );
}
