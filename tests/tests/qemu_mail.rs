//! The appliance relays mail under QEMU: provisioned at its console to forward example.com to a
//! sink on the host (QEMU's user network shows the host's loopback as 10.0.2.2), it delivers; with
//! the sink down, a message is acknowledged, QEMU is killed with SIGKILL, booted again on the same
//! flash, and the message arrives once the sink is back.
//!
//! Needs the image (`make image`), qemu-system-x86 and Postfix's smtp-sink.

use std::time::Duration;

use qemu::{Machine, POWEROFF_GRACE};
use tests::appliance::{qemu_lock, quit, test_boot, wait_for_banner};
use tests::host::SmtpClient;
use tests::peers::{Sink, free_port};

const BOOT: Duration = Duration::from_secs(180);
const COMMAND: Duration = Duration::from_secs(60);
const PROMPT: &str = "postern> ";

fn send(port: u16, subject: &str) -> String {
    // QEMU accepts at once and reaches the guest later: first wait for a real greeting.
    let (_, s) = wait_for_banner(port, COMMAND).unwrap_or_else(|e| panic!("{e}"));
    let _ = quit(s);
    let mut c = SmtpClient::connect(([127, 0, 0, 1], port).into());
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO host.test").starts_with("250"));
    assert!(
        c.cmd("MAIL FROM:<sender@outside.example>")
            .starts_with("250")
    );
    let rcpt = c.cmd("RCPT TO:<anyone@example.com>");
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(format!("Subject: {subject}\r\n\r\nbody\r\n.\r\n").as_bytes());
    let reply = c.reply();
    c.cmd("QUIT");
    reply
}

fn boot(opts: &qemu::BootOptions) -> Machine {
    let mut machine = Machine::boot(opts).unwrap_or_else(|e| panic!("{e}"));
    machine
        .console()
        .unwrap()
        .wait_for(PROMPT, BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    machine
}

fn console(machine: &mut Machine, line: &str) -> String {
    let c = machine.console().unwrap();
    c.send_line(line).unwrap();
    c.wait_for(PROMPT, COMMAND)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn relays_to_the_host_and_keeps_acknowledged_mail_across_sigkill() {
    let _one_at_a_time = qemu_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (opts, smtp_port) = test_boot(tmp.path());
    let sink_port = free_port();
    let mut sink = Sink::start(sink_port);

    let mut machine = boot(&opts);
    let out = console(
        &mut machine,
        &format!(
            "prov cd example.com zimbraMailCatchAllAddress @example.com \
             zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:[10.0.2.2]:{sink_port}"
        ),
    );
    assert!(!out.contains("ERROR"), "{out}");

    let reply = send(smtp_port, "first");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let got = sink.wait_for(1, COMMAND);
    assert_eq!(got.len(), 1, "{}", machine.console().unwrap().transcript());
    assert!(got[0].contains("Subject: first"), "{}", got[0]);

    sink.stop();
    let reply = send(smtp_port, "second");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let listing = console(&mut machine, "queue list");
    assert!(listing.contains("in 1 Request"), "{listing}");

    // A power cut: no shutdown, no sync beyond what the 250 already waited for.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &machine.pid().to_string()])
        .status();
    let _ = machine.wait();

    let mut machine = boot(&opts);
    let listing = console(&mut machine, "queue list");
    assert!(listing.contains("in 1 Request"), "after SIGKILL: {listing}");
    sink.restart();
    console(&mut machine, "queue flush");
    // The sink's directory still holds "first": the redelivered message is the second file.
    let got = sink.wait_for(2, COMMAND);
    assert_eq!(got.len(), 2, "{}", machine.console().unwrap().transcript());
    assert!(got.iter().any(|m| m.contains("Subject: second")), "{got:?}");

    let c = machine.console().unwrap();
    c.send_line("poweroff").unwrap();
    c.wait_for("powering off", COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = machine
        .wait_exit(POWEROFF_GRACE * 2)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "QEMU exited with {status}");
}
