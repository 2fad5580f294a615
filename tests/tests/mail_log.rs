//! The mail log kept on flash, end to end in host mode: a message deferred twice and then
//! delivered, tracked by queue id and by address; the lines still there after a kill -9;
//! `postern log` narrowing by queue id and words, and following new lines.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::host::{HostPostern, SmtpClient, postern_bin};
use tests::peers::{Sink, free_port};

fn send(addr: SocketAddr, to: &str) -> String {
    let mut c = SmtpClient::connect(addr);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@outside.example>").starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{to}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: tracked\r\n\r\nhello\r\n.\r\n");
    let reply = c.reply();
    c.cmd("QUIT");
    assert!(reply.starts_with("250 "), "{reply}");
    reply.rsplit(' ').next().unwrap().trim().to_string()
}

/// Waits until `log --qid` shows `n` lines containing `words`.
fn wait_for(p: &HostPostern, qid: &str, words: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = p.admin_ok(&["log", "--qid", qid]);
        if log.matches(words).count() >= n {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} × {words}:\n{log}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_message_deferred_twice_then_delivered_is_tracked_and_survives_kill_9() {
    let port = free_port();
    let mut p = HostPostern::start(&[]);
    let transport = format!("smtp:[127.0.0.1]:{port}");
    p.admin_ok(&[
        "prov",
        "cd",
        "example.com",
        "zimbraMailCatchAllAddress",
        "@example.com",
        "zimbraMailCatchAllForwardingAddress",
        "@example.com",
        "zimbraMailTransport",
        &transport,
    ]);
    let qid = send(p.listener("smtp"), "x@example.com");
    wait_for(&p, &qid, "status=deferred", 1);
    p.admin_ok(&["queue", "flush"]);
    wait_for(&p, &qid, "status=deferred", 2);
    let sink = Sink::start(port);
    p.admin_ok(&["queue", "flush"]);
    sink.wait_for(1, Duration::from_secs(30));
    wait_for(&p, &qid, ": removed", 1);

    let tracked = p.admin_ok(&["track", &qid]);
    let lines: Vec<&str> = tracked.lines().collect();
    assert_eq!(lines[0], format!("{qid}:"), "{tracked}");
    let pos = |words: &str| {
        lines
            .iter()
            .position(|l| l.contains(words))
            .unwrap_or_else(|| panic!("no {words} in\n{tracked}"))
    };
    assert_eq!(tracked.matches("status=deferred").count(), 2, "{tracked}");
    assert_eq!(tracked.matches("status=sent").count(), 1, "{tracked}");
    assert!(pos("(queue active)") < pos("status=deferred"));
    assert!(pos("status=deferred") < pos("status=sent"));
    assert!(pos("status=sent") < pos(": removed"));
    assert!(
        tracked.contains(&format!("relay=127.0.0.1[127.0.0.1]:{port}")),
        "{tracked}"
    );
    assert!(tracked.contains("Connection refused"), "{tracked}");
    assert!(
        tracked.ends_with("  now: gone from the queue\n"),
        "{tracked}"
    );
    // The syslog frame, as mail.log has it.
    assert!(
        lines[1].contains(" mx.test.example postern/smtpd[")
            && lines[2].contains(" mx.test.example postern/qmgr["),
        "{tracked}"
    );
    assert_eq!(p.admin_ok(&["track", "X@Example.com"]), tracked);

    let before = p.admin_ok(&["log", "--qid", &qid]);
    p.kill9();
    p.restart();
    let after = p.admin_ok(&["log", "--qid", &qid]);
    assert_eq!(after, before, "the kept log survives kill -9");
    let sent = p.admin_ok(&["log", "--grep", "status=sent", "-n", "1"]);
    assert_eq!(sent.lines().count(), 1);
    assert!(sent.contains(&qid));
    let missing = p.admin(&["track", "nobody@example.com"]);
    assert_eq!(missing.status.code(), Some(1));

    // --follow prints what is there, then what comes.
    let control = p.control.to_string_lossy().to_string();
    let mut child = Command::new(postern_bin())
        .args([
            "--control",
            &control,
            "log",
            "--follow",
            "--grep",
            "status=sent",
        ])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let second = send(p.listener("smtp"), "y@example.com");
    sink.wait_for(2, Duration::from_secs(30));
    wait_for(&p, &second, "status=sent", 1);
    std::thread::sleep(Duration::from_millis(1200));
    let _ = child.kill();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains(&qid) && out.contains(&second), "{out}");
}
