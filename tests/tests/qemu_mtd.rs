//! The appliance on raw-flash semantics under QEMU: `postern.flash=mtd:/dev/vda` puts the Debian
//! kernel's block2mtd over the virtio flash disk and runs the spool on /dev/mtd0 through
//! `MtdFlash` (MEMGETINFO geometry, MEMERASE erases). `flash info` shows the MTD's geometry; a
//! message acknowledged for a relay that is down survives a SIGKILL of QEMU and is still queued
//! after booting again on the same flash file.
//!
//! Needs the image (`make image`) and qemu-system-x86.

use std::time::Instant;

use qemu::Machine;
use tests::appliance::{
    BOOT, COMMAND, boot_to_prompt, console_command, power_off, provision_secondary, qemu_lock,
    send_through, test_boot,
};
use tests::peers::free_port;

#[test]
fn spool_on_block2mtd_keeps_acknowledged_mail_across_sigkill() {
    let _one_at_a_time = qemu_lock();
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (mut opts, smtp_port) = test_boot(tmp.path());
    opts.flash_mtd = true;
    // Nothing listens here: the relay is down and the message stays queued.
    let dead_relay = free_port();

    let mut machine = boot_to_prompt(&opts);
    let boot_log = machine.console().unwrap().transcript().to_string();
    assert!(
        boot_log.contains("block2mtd: /dev/mtd0 over /dev/vda"),
        "{boot_log}"
    );
    assert!(
        boot_log.contains("synced through /dev/vda (block2mtd)"),
        "{boot_log}"
    );

    let info = console_command(&mut machine, "flash info");
    assert!(info.contains("path: /dev/mtd0"), "{info}");
    assert!(
        info.contains(&format!(
            "flash: {} bytes, erase block 65536 bytes",
            opts.flash_size
        )),
        "{info}"
    );

    provision_secondary(&mut machine, dead_relay);
    let reply = send_through(smtp_port, "through mtd");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let queue_id = reply
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let listing = console_command(&mut machine, "queue list");
    assert!(listing.contains(&queue_id), "{queue_id}: {listing}");

    // A power cut: no shutdown, no sync beyond what the 250 already waited for. The MTD's data
    // lives in the guest's page cache of /dev/vda until MtdFlash::sync writes it to the disk.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &machine.pid().to_string()])
        .status();
    let _ = machine.wait();

    let mut machine = boot_to_prompt(&opts);
    let boot_log = machine.console().unwrap().transcript().to_string();
    assert!(
        !boot_log.contains("was blank: formatted")
            && boot_log.contains("spool recovered: 1 messages queued"),
        "the second boot did not recover the spool: {boot_log}"
    );
    let listing = console_command(&mut machine, "queue list");
    assert!(
        listing.contains(&queue_id) && listing.contains("in 1 Request"),
        "after SIGKILL, {queue_id}: {listing}"
    );
    let info = console_command(&mut machine, "flash info");
    assert!(info.contains("path: /dev/mtd0"), "{info}");
    assert!(info.contains("1 messages"), "{info}");

    power_off(&mut machine);
    eprintln!(
        "qemu_mtd: two boots on block2mtd in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_missing_mtd_disk_is_reported_and_retried() {
    let _one_at_a_time = qemu_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (mut opts, _) = test_boot(tmp.path());
    // The last postern.flash word wins: block2mtd over a disk that is not attached.
    opts.append.push("postern.flash=mtd:/dev/vdb".to_string());
    let mut machine = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let console = machine.console().unwrap();

    let report = console
        .wait_for("retrying in 5 s", BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.contains(
            "block device /dev/vdb for the MTD flash not found (is the flash disk attached?)"
        ),
        "{report}"
    );
    // It tries again rather than giving up.
    console
        .wait_for("retrying in 5 s", COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    power_off(&mut machine);
    let transcript = machine.console().unwrap().transcript().to_string();
    assert!(!transcript.contains("Kernel panic"), "{transcript}");
}
