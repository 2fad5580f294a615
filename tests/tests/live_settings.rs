//! MTA settings reach the running services without a restart: an `mcf` of a session limit
//! applies to the next session (a session already open keeps its own), a queue timing to the
//! queue's next decision.

use tests::host::{HostPostern, SmtpClient};
use tests::peers::free_port;

fn prov(p: &HostPostern, args: &[&str]) -> String {
    let mut all = vec!["prov"];
    all.extend_from_slice(args);
    p.admin_ok(&all)
}

#[test]
fn a_new_message_size_limit_holds_for_the_next_session() {
    let p = HostPostern::start(&[]);
    let down = format!("smtp:[127.0.0.1]:{}", free_port());
    prov(&p, &["cd", "example.com", "zimbraMailTransport", &down]);
    prov(&p, &["ca", "user@example.com", "pw"]);
    let addr = p.listener("smtp");

    let mut before = SmtpClient::connect(addr);
    assert!(before.reply().starts_with("220 "));
    assert!(before.cmd("EHLO client.test").contains("SIZE 10240000"));

    p.mcf(&["zimbraMtaMaxMessageSize", "2000"]);
    let mut after = SmtpClient::connect(addr);
    assert!(after.reply().starts_with("220 "));
    let ehlo = after.cmd("EHLO client.test");
    assert!(ehlo.contains("SIZE 2000"), "{ehlo}");
    assert_eq!(
        after.cmd("MAIL FROM:<a@outside.example> SIZE=3000"),
        "552 5.3.4 Message size exceeds fixed limit"
    );
    // The session that began before the change keeps the limits it began with.
    assert!(
        before
            .cmd("MAIL FROM:<a@outside.example> SIZE=3000")
            .starts_with("250")
    );
}

#[test]
fn a_shorter_queue_lifetime_returns_waiting_mail_without_a_restart() {
    let p = HostPostern::start(&[]);
    let down = format!("smtp:[127.0.0.1]:{}", free_port());
    prov(&p, &["cd", "example.com", "zimbraMailTransport", &down]);
    prov(&p, &["ca", "user@example.com", "pw"]);
    let mut c = SmtpClient::connect(p.listener("smtp"));
    assert!(c.reply().starts_with("220 "));
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<a@outside.example>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<user@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: waits\r\n\r\nx\r\n.\r\n");
    let queued = c.reply();
    let qid = queued
        .rsplit(' ')
        .next()
        .unwrap_or_else(|| panic!("{queued}"))
        .to_string();
    let deferred = p.wait_log(&format!("{qid}: to=<user@example.com>"), 1);
    assert!(deferred.contains("status=deferred"), "{deferred}");

    // Five days by default; now one second, and the next attempt ends it.
    p.mcf(&["zimbraMtaMaximalQueueLifetime", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.admin_ok(&["queue", "flush"]);
    let expired = format!("{qid}: from=<a@outside.example>, status=expired, returned to sender");
    let log = p.wait_log(&expired, 1);
    assert!(log.contains(&expired), "{log}");
}
