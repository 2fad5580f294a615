//! The running daemon with its directory synced from a real slapd, as an admin drives it:
//! `localconfig -e` to point it at LDAP, `ldap sync` and `ldap status`, RCPT TO answered from the
//! cache (known accepted, unknown 550, new accounts seen at the next poll), `prov` refusing LDAP's
//! entries, LDAP down (the cache keeps answering; past `ldap_cache_max_age` unknowns get 451) and
//! a restart with LDAP still down (the snapshot on flash answers).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::slapd::{self, Slapd, account_ldif, base_ldif, domain_ldif, require_slapd};
use postern::admin::{AdminCommand, LdapCommand, Reply};
use postern::daemon::{Daemon, FlashSpec, Options};

/// Every Zimbra account names its mailbox server.
const LMTP: &str = "zimbraMailTransport: lmtp:mail.example.com:7025\n";

fn start(dir: &std::path::Path, rt: &tokio::runtime::Runtime) -> Daemon {
    let opts = Options {
        flash: FlashSpec {
            path: dir.join("flash"),
            size: Some(8 << 20),
        },
        smtp: vec!["127.0.0.1:0".parse().unwrap()],
        submission: vec![],
        smtps: vec![],
        control: dir.join("control.sock"),
        hostname: "mx.ldap.test".into(),
        dns_servers: vec![],
        dns_timeout: Duration::from_secs(10),
        metrics: None,
    };
    rt.block_on(Daemon::start(opts)).unwrap()
}

fn admin(rt: &tokio::runtime::Runtime, d: &Daemon, cmd: AdminCommand) -> Reply {
    rt.block_on(d.admin().execute(cmd))
}

fn localconfig(rt: &tokio::runtime::Runtime, d: &Daemon, pairs: &[String]) {
    let r = admin(
        rt,
        d,
        AdminCommand::Localconfig {
            show_secrets: false,
            edit: true,
            args: pairs.to_vec(),
        },
    );
    assert_eq!(r.exit, 0, "{}", r.text);
}

/// The SMTP listener, as `postern status` shows it.
fn smtp_addr(rt: &tokio::runtime::Runtime, d: &Daemon) -> SocketAddr {
    let status = admin(rt, d, AdminCommand::Status).text;
    status
        .lines()
        .find_map(|l| l.strip_prefix("listener: smtp "))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no smtp listener in {status}"))
}

/// The reply to RCPT TO for `rcpt` in a fresh session from 127.0.0.1.
fn rcpt(addr: SocketAddr, rcpt: &str) -> String {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    };
    reply();
    for cmd in ["EHLO client.test", "MAIL FROM:<sender@client.test>"] {
        writeln!(w, "{cmd}\r").unwrap();
        reply();
    }
    writeln!(w, "RCPT TO:<{rcpt}>\r").unwrap();
    let answer = reply();
    let _ = writeln!(w, "QUIT\r");
    answer
}

fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_daemon_serves_mail_from_the_ldap_cache_up_down_and_across_a_restart() {
    if require_slapd().is_none() {
        return;
    }
    let mut ldap = Slapd::start(false);
    let mut seed = base_ldif();
    seed += &domain_ldif("example.com", "d-1", "");
    seed += &account_ldif("alice@example.com", "a-1", LMTP);
    ldap.ldapmodify(&seed);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let d = start(dir.path(), &rt);
    let smtp = smtp_addr(&rt, &d);

    localconfig(
        &rt,
        &d,
        &[
            format!("ldap_url={}", ldap.url()),
            format!("zimbra_ldap_userdn={}", slapd::ROOT_DN),
            format!("zimbra_ldap_password={}", slapd::ROOT_PW),
            "ldap_sync_interval=1s".into(),
            "ldap_connect_timeout=2s".into(),
        ],
    );
    let shown = admin(
        &rt,
        &d,
        AdminCommand::Localconfig {
            show_secrets: false,
            edit: false,
            args: vec![],
        },
    );
    assert!(
        shown.text.contains("zimbra_ldap_password = ********"),
        "{}",
        shown.text
    );
    assert!(!shown.text.contains(slapd::ROOT_PW));
    // Setting it starts a sync at once.
    eventually("the first sync", || {
        rcpt(smtp, "alice@example.com").starts_with("250")
    });
    assert!(rcpt(smtp, "nobody@example.com").starts_with("550 5.1.1"));

    let r = admin(
        &rt,
        &d,
        AdminCommand::Ldap(LdapCommand::Sync { incremental: false }),
    );
    assert_eq!(r.exit, 0, "{}", r.text);
    assert!(
        r.text.starts_with("full sync from ldap://127.0.0.1:"),
        "{}",
        r.text
    );
    let r = admin(&rt, &d, AdminCommand::Ldap(LdapCommand::Status));
    assert!(
        r.text.contains("from LDAP: 1 domains, 1 accounts"),
        "{}",
        r.text
    );
    assert!(r.text.contains("skipped entries: 0"), "{}", r.text);
    let status = admin(&rt, &d, AdminCommand::Status).text;
    assert!(
        status.contains("directory cache: synced from LDAP"),
        "{status}"
    );

    // LDAP owns its entries.
    let r = admin(
        &rt,
        &d,
        AdminCommand::Prov {
            args: ["ma", "alice@example.com", "zimbraMailStatus", "disabled"]
                .map(String::from)
                .to_vec(),
        },
    );
    assert_eq!(r.exit, 1);
    assert!(r.text.contains("synced from LDAP"), "{}", r.text);

    // A new account is seen at the next poll.
    ldap.ldapmodify(&account_ldif("bob@example.com", "a-2", LMTP));
    eventually("the poll", || {
        rcpt(smtp, "bob@example.com").starts_with("250")
    });

    // LDAP down: the cache answers; past ldap_cache_max_age, unknowns wait.
    ldap.stop();
    let r = admin(
        &rt,
        &d,
        AdminCommand::Ldap(LdapCommand::Sync { incremental: true }),
    );
    assert_eq!(r.exit, 1, "{}", r.text);
    assert!(
        r.text.contains("the directory served is unchanged"),
        "{}",
        r.text
    );
    assert!(rcpt(smtp, "alice@example.com").starts_with("250"));
    assert!(rcpt(smtp, "nobody@example.com").starts_with("550 5.1.1"));
    localconfig(&rt, &d, &["ldap_cache_max_age=1s".into()]);
    std::thread::sleep(Duration::from_millis(2100));
    assert!(rcpt(smtp, "nobody@example.com").starts_with("451 4.3.0"));
    assert!(rcpt(smtp, "bob@example.com").starts_with("250"));
    let r = admin(&rt, &d, AdminCommand::Ldap(LdapCommand::Status));
    assert!(r.text.contains("last error:"), "{}", r.text);
    assert!(r.text.contains("past ldap_cache_max_age"), "{}", r.text);

    // A restart with LDAP still down serves the snapshot from flash.
    rt.block_on(d.shutdown());
    let d = start(dir.path(), &rt);
    let smtp = smtp_addr(&rt, &d);
    localconfig(&rt, &d, &["ldap_cache_max_age=0".into()]);
    assert!(rcpt(smtp, "bob@example.com").starts_with("250"));
    assert!(rcpt(smtp, "nobody@example.com").starts_with("550 5.1.1"));

    // LDAP back: it catches up.
    ldap.restart();
    ldap.ldapmodify(&account_ldif("carol@example.com", "a-3", LMTP));
    eventually("catching up", || {
        rcpt(smtp, "carol@example.com").starts_with("250")
    });
    rt.block_on(d.shutdown());
}

/// The sync's state is on flash with the directory: after a restart the first sync is a poll
/// that goes on from it (shown as resumed), and with syncprov it sees what was added and what
/// was deleted while the daemon was down.
#[test]
fn a_restart_resumes_the_sync_from_flash() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(true);
    let mut seed = base_ldif();
    seed += &domain_ldif("example.com", "d-1", "");
    seed += &account_ldif("alice@example.com", "a-1", LMTP);
    seed += &account_ldif("bob@example.com", "a-2", LMTP);
    ldap.ldapmodify(&seed);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let d = start(dir.path(), &rt);
    let smtp = smtp_addr(&rt, &d);
    localconfig(
        &rt,
        &d,
        &[
            format!("ldap_url={}", ldap.url()),
            format!("zimbra_ldap_userdn={}", slapd::ROOT_DN),
            format!("zimbra_ldap_password={}", slapd::ROOT_PW),
            "ldap_sync_interval=1h".into(),
            "ldap_connect_timeout=2s".into(),
        ],
    );
    eventually("the first sync", || {
        rcpt(smtp, "bob@example.com").starts_with("250")
    });
    rt.block_on(d.shutdown());

    ldap.ldapmodify(&format!(
        "{}dn: uid=bob,ou=people,dc=example,dc=com\nchangetype: delete\n\n",
        account_ldif("carol@example.com", "a-3", LMTP)
    ));
    let d = start(dir.path(), &rt);
    let smtp = smtp_addr(&rt, &d);
    let status = || admin(&rt, &d, AdminCommand::Ldap(LdapCommand::Status)).text;
    eventually("the sync at start", || {
        !status().contains("last sync: none yet")
    });
    let shown = status();
    assert!(
        shown.contains("incremental (resumed from flash)"),
        "{shown}"
    );
    assert!(
        shown.contains("last changes: 1 added, 0 modified, 1 deleted"),
        "{shown}"
    );
    assert!(rcpt(smtp, "carol@example.com").starts_with("250"));
    assert!(rcpt(smtp, "bob@example.com").starts_with("550 5.1.1"));
    assert!(rcpt(smtp, "alice@example.com").starts_with("250"));
    rt.block_on(d.shutdown());
}
