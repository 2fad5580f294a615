//! smtpd's lines in Postfix's shape, read back by pflogsumm (Debian's `pflogsumm`), the tool
//! admins point at a Postfix log.

use std::io::Write;
use std::process::{Command, Stdio};

use tests::dns::DnsServer;
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
    let dns = DnsServer::start();
    let p = HostPostern::start(&["--dns", &dns.flag()]);
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

/// `posternSyslogTarget`: every line also goes to a remote syslog as an RFC 5424 frame, over
/// UDP or over TCP with octet counting.
#[test]
fn lines_go_to_a_remote_syslog_over_udp_and_tcp() {
    use std::io::Read;
    use std::net::{TcpListener, UdpSocket};
    use std::time::{Duration, Instant};

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let dns = DnsServer::start();
    let p = HostPostern::start(&["--dns", &dns.flag()]);
    // Set on the running daemon: no restart.
    p.mcf(&[
        "posternSyslogTarget",
        &format!("udp:{}", udp.local_addr().unwrap()),
    ]);
    let mut c = SmtpClient::connect(p.listener("smtp"));
    c.reply();
    c.cmd("QUIT");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline && !got.iter().any(|f: &String| f.contains("disconnect from")) {
        if let Ok(n) = udp.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let connect = got
        .iter()
        .find(|f| f.contains("connect from localhost[127.0.0.1]"))
        .unwrap_or_else(|| panic!("no connect line over UDP: {got:?}"));
    assert!(connect.starts_with("<22>1 20"), "{connect}");
    assert!(
        connect.contains(" mx.test.example postern/smtpd "),
        "{connect}"
    );

    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    p.mcf(&[
        "posternSyslogTarget",
        &format!("tcp:{}", tcp.local_addr().unwrap()),
    ]);
    let mut c = SmtpClient::connect(p.listener("smtp"));
    c.reply();
    c.cmd("QUIT");
    let (mut stream, _) = tcp.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    let mut chunk = [0u8; 4096];
    while !text.contains("disconnect from localhost[127.0.0.1]") {
        let n = stream.read(&mut chunk).unwrap_or(0);
        assert!(n > 0, "TCP syslog stream ended: {text}");
        text.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    // Octet counting: each frame is "LEN <22>1 ...".
    let first_len: usize = text.split(' ').next().unwrap().parse().unwrap();
    assert!(
        text[text.find(' ').unwrap() + 1..].starts_with("<22>1 "),
        "{text}"
    );
    assert!(first_len > 20, "{text}");
}
