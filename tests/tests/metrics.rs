//! The Prometheus endpoint of `postern run --metrics`, scraped over HTTP before and after real
//! traffic: every series there from the start, counters moving by what happened, the exposition
//! valid for Prometheus (`promtool check metrics` when Debian's prometheus package is installed,
//! and this file's parser always), and clients outside the allow-list getting nothing.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::host::{HostPostern, SmtpClient};
use tests::peers::{Sink, free_port, swaks};

/// `GET /metrics`; the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A refused client may find the connection closed before it has written.
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// Series → value, from the text exposition format (0.0.4). Panics on a line Prometheus would
/// refuse: the test's own check of the format.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let mut typed = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split("\",") {
                let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                assert!(!v.contains('\n'), "{line}");
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample before its TYPE: {line}");
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "series twice: {line}"
        );
    }
    out
}

fn promtool(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!(
            "promtool not installed (Debian package prometheus): only this test's parser checked the format"
        );
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scrape(addr: SocketAddr) -> (String, HashMap<String, f64>) {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let parsed = parse(&body);
    (body, parsed)
}

fn at(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no series {series} in the scrape"))
}

fn send(addr: SocketAddr, to: &[&str]) -> Vec<String> {
    let mut c = SmtpClient::connect(addr);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@outside.example>").starts_with("250"));
    let mut replies: Vec<String> = to
        .iter()
        .map(|t| c.cmd(&format!("RCPT TO:<{t}>")))
        .collect();
    if replies.iter().any(|r| r.starts_with("250")) {
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(b"Subject: metrics\r\n\r\nhello\r\n.\r\n");
        replies.push(c.reply());
    }
    c.cmd("QUIT");
    replies
}

#[test]
fn scrapes_before_and_after_traffic() {
    let sink = Sink::start(0);
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let p = HostPostern::start(&["--metrics", &metrics]);
    let addr: SocketAddr = metrics.parse().unwrap();
    let (text, before) = scrape(addr);
    promtool(&text);
    // An idle box: every series there, at zero.
    for series in [
        "postfix_smtpd_connects_total",
        "postfix_smtpd_messages_processed_total",
        "postfix_showq_message_size_bytes_count{queue=\"deferred\"}",
        "postfix_showq_message_age_seconds_count{queue=\"hold\"}",
        "postfix_smtpd_tls_connections_total{protocol=\"TLSv1.3\"}",
        "postfix_smtp_delivery_delay_seconds_count{delay_type=\"transmission\"}",
        "postern_directory_entries{kind=\"account\"}",
        "postern_spool_messages",
        "postern_content_verdicts_total{action=\"Passed\",category=\"CLEAN\"}",
        "postern_content_verdicts_total{action=\"Blocked\",category=\"INFECTED\"}",
        "postern_directory_syncs_total{kind=\"full\",result=\"failure\"}",
        "postern_directory_last_sync_success_timestamp_seconds",
        "postern_directory_last_sync_failed",
        "postern_directory_skipped_entries",
    ] {
        assert_eq!(at(&before, series), 0.0, "{series}");
    }
    assert_eq!(at(&before, "postern_flash_size_bytes"), (64 << 20) as f64);
    assert!(at(&before, "postern_spool_segments{state=\"free\"}") > 0.0);

    let forward = format!("smtp:[127.0.0.1]:{}", sink.port);
    p.admin_ok(&[
        "prov",
        "cd",
        "example.com",
        "zimbraMailCatchAllAddress",
        "@example.com",
        "zimbraMailCatchAllForwardingAddress",
        "@example.com",
        "zimbraMailTransport",
        &forward,
    ]);
    p.admin_ok(&["prov", "cd", "primary.example"]);
    p.admin_ok(&["prov", "ca", "known@primary.example", "secret"]);
    let smtp = p.listener("smtp");
    let first = send(smtp, &["a@example.com", "nobody@primary.example"]);
    assert!(first[1].starts_with("550"), "{first:?}");
    assert!(first[2].starts_with("250"), "{first:?}");
    let second = send(smtp, &["b@example.com"]);
    assert!(second[1].starts_with("250"), "{second:?}");
    sink.wait_for(2, Duration::from_secs(30));
    // One STARTTLS session, ended once TLS is up.
    let tls = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &smtp.port().to_string(),
        "--to",
        "a@example.com",
        "--tls",
        "--quit-after",
        "TLS",
    ]);
    assert!(
        tls.status.success(),
        "{}",
        String::from_utf8_lossy(&tls.stdout)
    );

    // The deliveries are logged and counted once the queue manager has their results.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let (text, after) = scrape(addr);
        if at(&after, "postfix_qmgr_messages_removed_total") >= 2.0 {
            promtool(&text);
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never counted:\n{text}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let moved = |s: &str| at(&after, s) - before.get(s).copied().unwrap_or(0.0);
    assert!(moved("postfix_smtpd_connects_total") >= 2.0);
    assert_eq!(moved("postfix_smtpd_messages_processed_total"), 2.0);
    assert_eq!(
        moved("postfix_smtpd_messages_rejected_total{code=\"550\"}"),
        1.0
    );
    assert_eq!(
        moved("postern_delivery_recipients_total{status=\"sent\"}"),
        2.0
    );
    assert_eq!(
        moved("postfix_smtp_delivery_delay_seconds_count{delay_type=\"transmission\"}"),
        2.0
    );
    assert_eq!(
        moved(
            "postfix_smtp_delivery_delay_seconds_bucket{delay_type=\"queue_manager\",le=\"+Inf\"}"
        ),
        2.0
    );
    assert!(moved("postern_spool_syncs_total") >= 2.0);
    assert_eq!(
        moved("postfix_smtpd_tls_connections_total{protocol=\"TLSv1.3\"}"),
        1.0
    );
    assert!(moved("postern_spool_group_commit_batch_requests_count") >= 2.0);
    assert_eq!(
        moved("postern_content_verdicts_total{action=\"Passed\",category=\"CLEAN\"}"),
        2.0
    );
    assert_eq!(
        at(&after, "postern_directory_entries{kind=\"account\"}"),
        1.0
    );
    assert_eq!(
        at(&after, "postern_directory_entries{kind=\"domain\"}"),
        2.0
    );
    assert_eq!(
        at(
            &after,
            "postfix_showq_message_size_bytes_count{queue=\"active\"}"
        ),
        0.0
    );

    // Something waiting shows in showq's histograms.
    p.admin_ok(&[
        "prov",
        "md",
        "example.com",
        "zimbraMailTransport",
        &format!("smtp:[127.0.0.1]:{}", free_port()),
    ]);
    send(smtp, &["c@example.com"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, now) = scrape(addr);
        let queued: f64 = ["active", "deferred"]
            .iter()
            .map(|q| {
                at(
                    &now,
                    &format!("postfix_showq_message_size_bytes_count{{queue=\"{q}\"}}"),
                )
            })
            .sum();
        if queued == 1.0 {
            assert_eq!(at(&now, "postern_spool_messages"), 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "the queued message never showed");
        std::thread::sleep(Duration::from_millis(100));
    }

    let (status, _) = get(addr, "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn clients_outside_the_allow_list_get_nothing() {
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let p = HostPostern::start(&["--metrics", &metrics, "--metrics-allow", "192.0.2.0/24"]);
    let (status, body) = get(metrics.parse().unwrap(), "/metrics");
    assert_eq!((status.as_str(), body.as_str()), ("", ""));
    // `--metrics` holds the endpoint while these services run: a stored change says so.
    let other = format!("127.0.0.1:{}", free_port());
    let set = p.admin_ok(&["metrics", "set", &other, "--allow", "127.0.0.1/32"]);
    assert!(
        set.contains(&format!("keep http://{metrics}/metrics")),
        "{set}"
    );
    assert!(TcpStream::connect(&other).is_err());
}

#[test]
fn the_stored_setting_is_off_by_default_and_served_once_set() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut p = HostPostern::start(&[]);
    assert_eq!(p.admin_ok(&["metrics", "show"]), "metrics: off\n");
    assert!(TcpStream::connect(addr).is_err(), "no endpoint unless set");
    // The console's way to look without an endpoint: one scrape over the control socket.
    let scraped = p.admin_ok(&["metrics", "scrape"]);
    assert!(parse(&scraped).contains_key("postfix_smtpd_connects_total"));

    let bad = p.admin(&[
        "metrics",
        "set",
        &addr.to_string(),
        "--allow",
        "10.0.0.300/8",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    // An address the box cannot listen on is refused before anything is stored.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let refused = p.admin(&["metrics", "set", &busy, "--allow", "127.0.0.1/32"]);
    assert_eq!(refused.status.code(), Some(1));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("cannot listen on"), "{why}");
    assert_eq!(p.admin_ok(&["metrics", "show"]), "metrics: off\n");

    // Served at once, no restart.
    let set = p.admin_ok(&[
        "metrics",
        "set",
        &addr.to_string(),
        "--allow",
        "127.0.0.1/32",
    ]);
    assert_eq!(
        set,
        format!("metrics: http://{addr}/metrics for 127.0.0.1/32\n")
    );
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    promtool(&body);
    // The allow-list changes live too: 127.0.0.1 is now outside it, and gets nothing.
    p.admin_ok(&["metrics", "set", &addr.to_string(), "--allow", "10.0.0.0/8"]);
    let (status, body) = get(addr, "/metrics");
    assert_eq!((status.as_str(), body.as_str()), ("", ""));
    p.admin_ok(&[
        "metrics",
        "set",
        &addr.to_string(),
        "--allow",
        "127.0.0.1/32",
    ]);
    // And survives a restart.
    p.restart();
    let (status, _) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        p.admin_ok(&["metrics", "show"]),
        format!("metrics: http://{addr}/metrics for 127.0.0.1/32\n")
    );

    assert_eq!(p.admin_ok(&["metrics", "off"]), "metrics: off\n");
    assert!(TcpStream::connect(addr).is_err(), "off at once");
    p.restart();
    assert!(
        TcpStream::connect(addr).is_err(),
        "off again after a restart"
    );
}
