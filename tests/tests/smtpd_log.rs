//! smtpd's lines in Postfix's shape, read back by pflogsumm (Debian's `pflogsumm`), the tool
//! admins point at a Postfix log.

use std::io::Write;
use std::process::{Command, Stdio};

use tests::host::{HostPostern, SmtpClient};
use tests::peers::{Sink, swaks};

fn prov(p: &HostPostern, args: &[&str]) -> String {
    let mut all = vec!["prov"];
    all.extend_from_slice(args);
    p.admin_ok(&all)
}

fn session(p: &HostPostern, helo: &str) -> String {
    let port = p.listener("smtp").port().to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--helo",
        helo,
        "--from",
        "sender@outside.example",
        "--to",
        "user@example.com",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The daemon's lines with the syslog frame a syslogd would add.
fn as_syslog(log: &str) -> String {
    log.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(prog, _)| prog.starts_with("postern"))
        .map(|(prog, rest)| format!("Dec  1 09:30:00 mx.test.example {prog}[4242]: {rest}\n"))
        .collect()
}

#[test]
fn smtpd_lines_are_postfix_shaped_and_pflogsumm_counts_them() {
    let sink = Sink::start(0);
    let p = HostPostern::start(&[]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    prov(
        &p,
        &["cd", "example.com", "zimbraMailTransport", &transport],
    );
    prov(&p, &["ca", "user@example.com", "pw"]);
    prov(
        &p,
        &[
            "mcf",
            "zimbraMtaMyNetworks",
            "192.0.2.0/24",
            "zimbraMtaRestriction",
            "reject_non_fqdn_helo_hostname",
        ],
    );
    let out = session(&p, "workstation");
    assert!(out.contains("504 5.5.2"), "{out}");
    let out = session(&p, "mx.client.example");
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    let mut c = SmtpClient::connect(p.listener("smtp"));
    c.reply();
    c.cmd("EHLO mx.client.example");
    c.cmd("MAIL FROM:<a@outside.example>");
    drop(c);
    sink.wait_for(1, std::time::Duration::from_secs(60));
    std::thread::sleep(std::time::Duration::from_millis(300));

    let log = p.log();
    let client = "localhost[127.0.0.1]";
    for expected in [
        format!("postern/smtpd: connect from {client}"),
        format!(
            "postern/smtpd: NOQUEUE: reject: RCPT from {client}: 504 5.5.2 <workstation>: Helo command rejected: need fully-qualified hostname; from=<sender@outside.example> to=<user@example.com> proto=ESMTP helo=<workstation>"
        ),
        format!(
            "postern/smtpd: disconnect from {client} ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"
        ),
        format!(
            "postern/smtpd: disconnect from {client} ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"
        ),
        format!("postern/smtpd: lost connection after MAIL from {client}"),
        format!("postern/smtpd: disconnect from {client} ehlo=1 mail=1 commands=2"),
    ] {
        assert!(log.contains(&expected), "missing {expected:?} in:\n{log}");
    }
    assert!(
        log.lines().any(|l| l.starts_with("postern/smtpd: ") && l.ends_with(&format!(": client={client}"))),
        "{log}"
    );

    let pflogsumm = "/usr/sbin/pflogsumm";
    assert!(
        std::path::Path::new(pflogsumm).exists(),
        "{pflogsumm} is missing: apt-get install pflogsumm"
    );
    let mut child = Command::new(pflogsumm)
        .args(["--syslog-name=postern", "--problems-first"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run pflogsumm");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(as_syslog(&log).as_bytes())
        .expect("feed pflogsumm");
    let report =
        String::from_utf8_lossy(&child.wait_with_output().expect("pflogsumm").stdout).into_owned();
    // "      1   rejected (50%)": one line per total.
    let total = |what: &str| {
        report.lines().map(str::split_whitespace).find_map(|mut w| {
            let n = w.next()?.parse::<u32>().ok()?;
            (w.next()? == what).then_some(n)
        })
    };
    assert_eq!(total("received"), Some(1), "{report}");
    assert_eq!(total("rejected"), Some(1), "{report}");
    assert!(report.contains("need fully-qualified hostname"), "{report}");
}
