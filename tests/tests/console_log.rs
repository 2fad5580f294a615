//! A console nobody reads (stderr a full pipe, as a serial line held by flow control) never holds
//! mail: sessions keep getting their replies, and the lines are still in the mail log on flash.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::host::{SmtpClient, postern, postern_bin};
use tests::peers::free_port;

#[test]
fn sessions_do_not_wait_for_a_console_nobody_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let (flash, control) = (
        tmp.path().join("flash.img"),
        tmp.path().join("control.sock"),
    );
    let port = free_port();
    let mut child = Command::new(postern_bin())
        .arg("run")
        .arg("--flash")
        .arg(&flash)
        .arg("--control")
        .arg(&control)
        .args(["--flash-size", "64M", "--hostname", "mx.test.example"])
        .args(["--smtp", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Held open and never read: once its 64 KiB are full, a write to it blocks.
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn postern run");
    let admin = |args: &[&str]| {
        let control = control.to_string_lossy().to_string();
        let mut all = vec!["--control", control.as_str()];
        all.extend_from_slice(args);
        postern(&all)
    };
    let up = Instant::now() + Duration::from_secs(30);
    while !(control.exists() && admin(&["status"]).status.success()) {
        assert!(Instant::now() < up, "postern did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let made = admin(&["prov", "cd", "example.com"]);
    assert!(made.status.success(), "{made:?}");
    // Each refused RCPT is a ~150-byte smtpd line: 200 sessions × 15 write ~450 KiB, far more
    // than the pipe holds. A session whose log write blocked would never answer (the client's
    // read times out and names the command).
    for session in 0..200 {
        let mut c = SmtpClient::connect(([127, 0, 0, 1], port).into());
        assert!(c.reply().starts_with("220 "));
        assert!(c.cmd("EHLO client.test").starts_with("250"));
        assert!(c.cmd("MAIL FROM:<a@outside.example>").starts_with("250"));
        for n in 0..15 {
            let r = c.cmd(&format!("RCPT TO:<nobody{n}.{session}@example.com>"));
            assert!(r.starts_with("550"), "{r}");
        }
        c.cmd("QUIT");
    }
    let log = admin(&["log", "--grep", "nobody14.199@example.com"]);
    let text = String::from_utf8_lossy(&log.stdout);
    assert!(text.contains("NOQUEUE: reject: RCPT"), "{text}");
    let _ = child.kill();
    let _ = child.wait();
}
