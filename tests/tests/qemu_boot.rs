//! The appliance image boots under QEMU, on x86_64 and on aarch64 (`NAME::x86_64`,
//! `NAME::aarch64`; the two architectures run side by side): console prompt, `status`, the SMTP
//! greeting through the forwarded port, and a clean `poweroff`; a flash of the wrong size gives a
//! message and a retry, not a panic. The flashable disk image boots under UEFI (OVMF / AAVMF),
//! through systemd-boot and slot A, to the SMTP greeting, with the spool on its flash partition.
//!
//! Needs the images (`make image ARCH=x86_64`, `make image ARCH=aarch64`), qemu-system-x86,
//! qemu-system-arm, ovmf and qemu-efi-aarch64. Timeouts are 5× the slowest boot measured under
//! load (TCG, no KVM).

use std::time::Duration;

use qemu::{Arch, Machine};
use tests::appliance::{
    DISK_BOOT, power_off, qemu_lock_for, quit, test_boot_on, test_disk_boot,
    wait_for_banner_reading_console,
};
use tests::per_arch;

const BOOT: Duration = Duration::from_secs(180);
const COMMAND: Duration = Duration::from_secs(30);
const PROMPT: &str = "postern> ";

per_arch!(boots_serves_smtp_reports_status_and_powers_off);
fn boots_serves_smtp_reports_status_and_powers_off(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (opts, smtp_port) = test_boot_on(arch, tmp.path());
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

    let (banner, stream) = wait_for_banner_reading_console(&mut machine, smtp_port, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(banner.starts_with("220 postern ESMTP"), "{banner:?}");
    let bye = quit(stream).unwrap();
    assert!(bye.starts_with("221"), "{bye:?}");

    power_off(&mut machine);
}

per_arch!(a_flash_of_the_wrong_size_is_reported_and_retried);
fn a_flash_of_the_wrong_size_is_reported_and_retried(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (opts, _) = test_boot_on(arch, tmp.path());
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
    power_off(&mut machine);
    let transcript = machine.console().unwrap().transcript().to_string();
    assert!(!transcript.contains("Kernel panic"), "{transcript}");
}

per_arch!(the_disk_image_boots_under_uefi_to_the_smtp_banner);
fn the_disk_image_boots_under_uefi_to_the_smtp_banner(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (opts, smtp_port) = test_disk_boot(arch, tmp.path());
    let mut machine = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let (banner, stream) = wait_for_banner_reading_console(&mut machine, smtp_port, DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    // Power-on to banner: UEFI, systemd-boot, the slot's kernel and initramfs, the services.
    let to_banner = machine.started().elapsed();
    assert!(banner.starts_with("220 postern ESMTP"), "{banner:?}");
    let _ = quit(stream);
    eprintln!(
        "{}: disk image power-on to SMTP banner in {:.1} s",
        arch.name(),
        to_banner.as_secs_f64()
    );

    // The prompt of the boot (it may come after the banner answers), then one command.
    let console = machine.console().unwrap();
    console
        .wait_for(PROMPT, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    console.send_line("status").unwrap();
    let status = console
        .wait_for(PROMPT, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    // The slot's command line names the flash partition; the partition table puts it second.
    assert!(
        status.contains("flash: /dev/vda2 (67108864 bytes, 64.0 MiB)"),
        "{status}"
    );
    let transcript = console.transcript().to_string();
    assert!(transcript.contains("appliance mode"), "{transcript}");

    power_off(&mut machine);
}
