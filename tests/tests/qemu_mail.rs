//! The appliance relays mail under QEMU: provisioned at its console to forward example.com to a
//! sink on the host (QEMU's user network shows the host's loopback as 10.0.2.2), it delivers; with
//! the sink down, a message is acknowledged, QEMU is killed with SIGKILL, booted again on the same
//! flash, and the message arrives once the sink is back. Its clock comes from an SNTP server on
//! the host given at the console, and the Received header shows it.
//!
//! On x86_64 and aarch64 (`NAME::x86_64`, `NAME::aarch64`, side by side).
//!
//! Needs the images (`make image ARCH=...` for both), qemu-system-x86, qemu-system-arm and
//! Postfix's smtp-sink.

use std::time::Duration;

use qemu::Arch;
use tests::appliance::{
    COMMAND, boot_to_prompt, console_command, power_off, provision_secondary, qemu_lock_for,
    send_reading_console, test_boot_on, wait_for_banner_reading_console,
};
use tests::peers::{Sink, free_port};
use tests::per_arch;
use tests::sntp_server;

per_arch!(relays_to_the_host_and_keeps_acknowledged_mail_across_sigkill);
fn relays_to_the_host_and_keeps_acknowledged_mail_across_sigkill(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (opts, smtp_port) = test_boot_on(arch, tmp.path());
    let sink_port = free_port();
    let mut sink = Sink::start(sink_port);

    let mut machine = boot_to_prompt(&opts);
    provision_secondary(&mut machine, sink_port);
    // The clock from an SNTP server ten days ahead (the host's 127.0.0.1:123): the new servers
    // are used at once, not at the clock task's next look a minute later.
    sntp_server::start();
    let out = console_command(&mut machine, "setup ntp 10.0.2.2");
    assert!(out.contains("NTP servers saved: 10.0.2.2"), "{out}");
    // (Searched in the whole transcript: the line may come before the prompt did.)
    let c = machine.console().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !c.transcript().contains("clock set from 10.0.2.2") {
        assert!(std::time::Instant::now() < deadline, "{}", c.transcript());
        let _ = c.read_for(Duration::from_millis(200));
    }

    // Greets first (reading the console meanwhile, and showing it if the guest never answers).
    wait_for_banner_reading_console(&mut machine, smtp_port, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    let reply = send_reading_console(&mut machine, smtp_port, "first");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let got = sink.wait_for(1, COMMAND);
    assert_eq!(got.len(), 1, "{}", machine.console().unwrap().transcript());
    assert!(got[0].contains("Subject: first"), "{}", got[0]);
    // The box's Received header carries the time it took from the server (either side of a
    // midnight).
    let day = |shift: &str| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", shift, "+%-d %b %Y"])
            .output()
            .expect("date");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let ahead = [day("+10 days -10 min"), day("+10 days +10 min")];
    // The box's own Received header (the sink adds one above it); its date ends it, maybe on
    // a folded line.
    let mut headers: Vec<String> = Vec::new();
    for line in got[0].lines().take_while(|l| !l.is_empty()) {
        match (line.starts_with([' ', '\t']), headers.last_mut()) {
            (true, Some(h)) => h.push_str(line),
            _ => headers.push(line.to_string()),
        }
    }
    let received = headers
        .iter()
        .find(|h| h.starts_with("Received:") && !h.contains("by smtp-sink"))
        .unwrap_or_else(|| panic!("no Received header of the box in {}", got[0]));
    assert!(
        ahead.iter().any(|d| received.contains(d.as_str())),
        "{ahead:?} in {received}"
    );

    sink.stop();
    wait_for_banner_reading_console(&mut machine, smtp_port, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    let reply = send_reading_console(&mut machine, smtp_port, "second");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let listing = console_command(&mut machine, "queue list");
    assert!(listing.contains("in 1 Request"), "{listing}");

    // A power cut: no shutdown, no sync beyond what the 250 already waited for.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &machine.pid().to_string()])
        .status();
    let _ = machine.wait();

    let mut machine = boot_to_prompt(&opts);
    let listing = console_command(&mut machine, "queue list");
    assert!(listing.contains("in 1 Request"), "after SIGKILL: {listing}");
    sink.restart();
    console_command(&mut machine, "queue flush");
    // The sink keeps its directory across restarts: the first message is still there.
    let got = sink.wait_for(2, COMMAND);
    assert_eq!(got.len(), 2, "{}", machine.console().unwrap().transcript());
    for subject in ["first", "second"] {
        let n = got
            .iter()
            .filter(|m| m.contains(&format!("Subject: {subject}\n")))
            .count();
        assert_eq!(n, 1, "{subject} arrived {n} times");
    }

    power_off(&mut machine);
}
