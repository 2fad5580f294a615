//! The x86_64 appliance image boots under QEMU: console prompt, `status`, the SMTP greeting through
//! the forwarded port, and a clean `poweroff`; a flash of the wrong size gives a message and a
//! retry, not a panic.
//!
//! Needs the image (`make image`) and qemu-system-x86. Timeouts are 5× the slowest boot measured
//! under load (TCG, no KVM).

use std::time::Duration;

use qemu::{Machine, POWEROFF_GRACE};
use tests::appliance::{qemu_lock, quit, test_boot, wait_for_banner};

const BOOT: Duration = Duration::from_secs(180);
const COMMAND: Duration = Duration::from_secs(30);
const PROMPT: &str = "postern> ";

#[test]
fn boots_serves_smtp_reports_status_and_powers_off() {
    let _one_at_a_time = qemu_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (opts, smtp_port) = test_boot(tmp.path());
    let mut machine = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let console = machine.console().unwrap();

    let boot_log = console
        .wait_for(PROMPT, BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(boot_log.contains("appliance mode"), "{boot_log}");
    assert!(boot_log.contains("eth0 10.0.2.15/24"), "{boot_log}");

    console.send_line("status").unwrap();
    let status = console
        .wait_for(PROMPT, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.contains("hostname: postern"), "{status}");
    assert!(
        status.contains("flash: /dev/vda (67108864 bytes, 64.0 MiB)"),
        "{status}"
    );
    assert!(status.contains("listener: smtp 0.0.0.0:25"), "{status}");
    assert!(
        status.contains("listener: submission 0.0.0.0:587"),
        "{status}"
    );

    let (banner, stream) = wait_for_banner(smtp_port, COMMAND).unwrap_or_else(|e| panic!("{e}"));
    assert!(banner.starts_with("220 postern ESMTP"), "{banner:?}");
    let bye = quit(stream).unwrap();
    assert!(bye.starts_with("221"), "{bye:?}");

    let console = machine.console().unwrap();
    console.send_line("poweroff").unwrap();
    console
        .wait_for("powering off", COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = machine
        .wait_exit(POWEROFF_GRACE * 2)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "QEMU exited with {status}");
}

#[test]
fn a_flash_of_the_wrong_size_is_reported_and_retried() {
    let _one_at_a_time = qemu_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (opts, _) = test_boot(tmp.path());
    std::fs::File::create(&opts.flash)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let mut machine = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let console = machine.console().unwrap();

    let report = console
        .wait_for("retrying in 5 s", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.contains("flash /dev/vda is 1048576 bytes, not the 67108864 bytes"),
        "{report}"
    );
    // It tries again rather than giving up.
    console
        .wait_for("retrying in 5 s", COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));

    console.send_line("status").unwrap();
    console
        .wait_for("services are not running", COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    console.send_line("poweroff").unwrap();
    console
        .wait_for("powering off", COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = machine
        .wait_exit(POWEROFF_GRACE * 2)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "QEMU exited with {status}");
    let transcript = machine.console().unwrap().transcript().to_string();
    assert!(!transcript.contains("Kernel panic"), "{transcript}");
}
