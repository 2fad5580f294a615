//! Boot counting and rollback on the flashable disk image under UEFI, on both architectures:
//! a slot on trial (`+1` in its name) that passes its health check drops its counter; a newer
//! slot on trial that fails its health check (its flash partition is missing) reboots, the boot
//! loader counts its try out and boots the old slot again, which serves mail.
//!
//! The slots are put on the disk's ESP with mtools, as `postern update install` writes them.
//! Needs both images (`make image ARCH=...`), ovmf, qemu-efi-aarch64 and mtools.

use std::path::Path;
use std::process::Command;

use qemu::{Arch, Machine, POWEROFF_GRACE};
use tests::appliance::{
    COMMAND, DISK_BOOT, PROMPT, image_dir_for, qemu_lock_for, quit, test_disk_boot,
    wait_for_banner_reading_console,
};
use tests::per_arch;

/// The ESP starts 1 MiB into the disk (mkimage's layout); mtools addresses it as `disk@@1M`.
fn esp(disk: &Path) -> String {
    format!("{}@@1M", disk.display())
}

fn mtools(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install mtools)"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The slot file names on the disk's ESP, sorted.
fn slots(disk: &Path) -> Vec<String> {
    let listing = mtools("mdir", &["-b", "-i", &esp(disk), "::/EFI/Linux"]);
    let mut names: Vec<String> = listing
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .filter(|n| n.starts_with("postern-"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

fn version(arch: Arch) -> String {
    let manifest = std::fs::read_to_string(image_dir_for(arch).join("manifest.txt")).unwrap();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version "))
        .expect("manifest.txt has a version (make image)")
        .to_string()
}

/// Replaces the first `from` in `data` by `to` (same length: the UKI's sections keep their place).
fn patch(data: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let at = data
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in the slot image"));
    data[at..at + to.len()].copy_from_slice(to.as_bytes());
}

fn power_off(machine: &mut Machine) {
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

per_arch!(a_slot_on_trial_that_passes_its_health_check_is_marked_good);
fn a_slot_on_trial_that_passes_its_health_check_is_marked_good(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (opts, smtp_port) = test_disk_boot(arch, tmp.path());
    let disk = opts.disk.clone().unwrap();
    let v = version(arch);
    let good = format!("postern-{v}-a.efi");
    let on_trial = format!("postern-{v}-a+1.efi");
    mtools(
        "mren",
        &[
            "-i",
            &esp(&disk),
            &format!("::/EFI/Linux/{good}"),
            &format!("::/EFI/Linux/{on_trial}"),
        ],
    );

    let mut machine = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let log = machine
        .console()
        .unwrap()
        .wait_for("passed its health check: marked good", DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        log.contains(&format!("slot A (postern {v}) is on trial")),
        "{log}"
    );
    let (banner, stream) = wait_for_banner_reading_console(&mut machine, smtp_port, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(banner.starts_with("220 postern ESMTP"), "{banner:?}");
    let _ = quit(stream);
    machine
        .console()
        .unwrap()
        .wait_for(PROMPT, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    power_off(&mut machine);
    assert_eq!(slots(&disk), [good]);
}

per_arch!(a_new_slot_that_fails_its_health_check_rolls_back_to_the_old_one);
fn a_new_slot_that_fails_its_health_check_rolls_back_to_the_old_one(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (mut opts, smtp_port) = test_disk_boot(arch, tmp.path());
    // The guest reboots between the two slots: QEMU must restart it, not exit.
    opts.no_reboot = false;
    let disk = opts.disk.clone().unwrap();
    let v = version(arch);
    // Slot B: a newer version whose command line names a flash partition that is not there, so
    // its services never start.
    let mut slot_b = std::fs::read(image_dir_for(arch).join("slot.efi")).unwrap();
    patch(
        &mut slot_b,
        "PARTLABEL=postern-flash",
        "PARTLABEL=postern-flasX",
    );
    patch(
        &mut slot_b,
        &format!("IMAGE_VERSION={v}"),
        "IMAGE_VERSION=9.9.9",
    );
    let b_file = tmp.path().join("slot-b.efi");
    std::fs::write(&b_file, &slot_b).unwrap();
    let b_name = "postern-9.9.9-b+1.efi";
    mtools(
        "mcopy",
        &[
            "-i",
            &esp(&disk),
            &b_file.display().to_string(),
            &format!("::/EFI/Linux/{b_name}"),
        ],
    );

    let mut machine = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let console = machine.console().unwrap();
    let first = console
        .wait_for("rebooting to the previous slot", DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        first.contains("slot B (postern 9.9.9) is on trial"),
        "{first}"
    );
    assert!(
        first.contains("no partition named \"postern-flasX\""),
        "{first}"
    );
    // The boot loader now skips B: A comes up and serves.
    let (banner, stream) = wait_for_banner_reading_console(&mut machine, smtp_port, DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(banner.starts_with("220 postern ESMTP"), "{banner:?}");
    let _ = quit(stream);
    let console = machine.console().unwrap();
    console
        .wait_for(PROMPT, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    let transcript = console.transcript().to_string();
    let after = transcript
        .rsplit("rebooting to the previous slot")
        .next()
        .unwrap_or_default();
    assert!(!after.contains("is on trial"), "{after}");
    power_off(&mut machine);
    assert_eq!(
        slots(&disk),
        [
            format!("postern-{v}-a.efi"),
            "postern-9.9.9-b+0-1.efi".to_string()
        ]
    );
}
