//! Boot counting and rollback on the flashable disk image under UEFI, on both architectures:
//! a slot on trial (`+1` in its name) that passes its health check drops its counter; a newer
//! slot on trial that fails its health check (its flash partition is missing) reboots, the boot
//! loader counts its try out and boots the old slot again, which serves mail. A bundle fetched
//! over HTTP installs from the console menu and boots with the queue kept; a power cut (kill -9
//! of QEMU) in the middle of writing the slot leaves the old slot booting and the queue intact.
//!
//! The slots are put on the disk's ESP with mtools, as `postern update install` writes them.
//! Needs both images (`make image ARCH=...`), ovmf, qemu-efi-aarch64 and mtools.

use std::process::Command;

use qemu::{Arch, Machine};
use tests::appliance::{
    COMMAND, DISK_BOOT, PROMPT, console_command, image_dir_for, power_off, qemu_lock_for, quit,
    test_disk_boot, wait_for_banner_reading_console,
};
use tests::peers::Sink;
use tests::per_arch;
use tests::update::{bundle_claiming, esp, mtools, newer_bundle, patch, serve, slots, version};

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

per_arch!(a_bundle_fetched_at_the_console_installs_boots_and_keeps_the_queue);
fn a_bundle_fetched_at_the_console_installs_boots_and_keeps_the_queue(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (mut opts, smtp_port) = test_disk_boot(arch, tmp.path());
    // The guest reboots into the new slot: QEMU must restart it, not exit.
    opts.no_reboot = false;
    let disk = opts.disk.clone().unwrap();
    let v = version(arch);
    let good = newer_bundle(arch, tmp.path());
    let other = match arch {
        Arch::X86_64 => "aarch64",
        Arch::Aarch64 => "x86_64",
    };
    let wrong_arch = bundle_claiming(arch, other, tmp.path());
    let mut bad_signature = good.clone();
    // The signature follows the 16-byte magic, the manifest's length and the manifest.
    let manifest_len = u32::from_le_bytes(good[16..20].try_into().unwrap()) as usize;
    bad_signature[20 + manifest_len] ^= 0x01;
    let truncated = good[..good.len() / 2].to_vec();
    let port = serve(vec![
        ("/new.bundle", good),
        ("/bad-signature.bundle", bad_signature),
        ("/truncated.bundle", truncated),
        ("/wrong-arch.bundle", wrong_arch),
    ]);
    let url = |name: &str| format!("http://10.0.2.2:{port}/{name}");

    let sink_port = tests::appliance::free_port();
    let mut sink = Sink::start(sink_port);
    sink.stop();
    let mut machine = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    machine
        .console()
        .unwrap()
        .wait_for(PROMPT, DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    tests::appliance::provision_secondary(&mut machine, sink_port);
    // Mail queued before the update, for a next hop that is down.
    let (_, s) = wait_for_banner_reading_console(&mut machine, smtp_port, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = quit(s);
    let reply =
        tests::appliance::send_reading_console(&mut machine, smtp_port, "before the update");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");

    for (name, why) in [
        ("bad-signature.bundle", "signature"),
        ("truncated.bundle", "refused, nothing written"),
        ("missing.bundle", "404"),
        (
            "wrong-arch.bundle",
            format!("bundle is for {other}, this box is {}", arch.name()).as_str(),
        ),
    ] {
        let out = console_command(&mut machine, &format!("update install {}", url(name)));
        assert!(out.contains(why), "{name}: {out}");
        assert!(!out.contains("installed postern"), "{name}: {out}");
    }
    assert_eq!(slots(&disk).len(), 1, "a refused bundle wrote nothing");

    // The good one from the console menu, as an admin at the serial line: the slots, a bundle
    // refused and asked again, the check's verdict, yes, and the box reboots into it.
    let console = machine.console().unwrap();
    console.send_line("menu").unwrap();
    answer(console, MENU, "8");
    let status = answer(console, BUNDLE_QUESTION, &url("bad-signature.bundle"));
    assert!(
        status.contains(&format!("slot A: postern {v}, good, booted")),
        "{status}"
    );
    assert!(status.contains("slot B: empty"), "{status}");
    let refused = answer(console, BUNDLE_QUESTION, &url("new.bundle"));
    assert!(refused.contains("refused, nothing written"), "{refused}");
    let checked = answer(console, "reboot into it? (yes/no) [no]: ", "yes");
    assert!(
        checked.contains(&format!(
            "good: signature by the update key, postern 9.9.9 for {}",
            arch.name()
        )),
        "{checked}"
    );
    // Fetching and writing a slot under emulation takes longer than a console command.
    let log = console
        .wait_for("passed its health check: marked good", DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(log.contains("update: slot B: 4.0 of"), "{log}");
    assert!(log.contains("installed postern 9.9.9 into slot B"), "{log}");
    assert!(
        log.contains("The box reboots into the new firmware now"),
        "{log}"
    );
    assert!(log.contains("slot B (postern 9.9.9) is on trial"), "{log}");
    console
        .wait_for(PROMPT, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = console_command(&mut machine, "update status");
    assert!(
        status.contains("slot B: postern 9.9.9, good, booted"),
        "{status}"
    );
    // The queue came through the update: the message goes once the next hop is back.
    sink.restart();
    console_command(&mut machine, "queue flush");
    let got = sink.wait_for(1, COMMAND);
    assert_eq!(got.len(), 1, "{}", machine.console().unwrap().transcript());
    assert!(got[0].contains("Subject: before the update"), "{}", got[0]);
    power_off(&mut machine);
    assert_eq!(
        slots(&disk),
        [
            format!("postern-{v}-a.efi"),
            "postern-9.9.9-b.efi".to_string()
        ]
    );
}

/// The main menu's prompt and the firmware update's question for a bundle.
const MENU: &str = "Choose 1-13: ";
const BUNDLE_QUESTION: &str = "(Enter: menu): ";

/// Types `line` once `prompt` has appeared; returns what came before the prompt.
fn answer(console: &mut qemu::Console, prompt: &str, line: &str) -> String {
    let before = console
        .wait_for(prompt, COMMAND)
        .unwrap_or_else(|e| panic!("waiting for {prompt:?}: {e}"));
    console
        .send_line(line)
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    before
}

per_arch!(a_power_cut_while_the_slot_is_written_boots_the_old_slot_with_the_queue);
fn a_power_cut_while_the_slot_is_written_boots_the_old_slot_with_the_queue(arch: Arch) {
    let _one_at_a_time = qemu_lock_for(arch);
    let tmp = tempfile::tempdir().unwrap();
    let (opts, smtp_port) = test_disk_boot(arch, tmp.path());
    let disk = opts.disk.clone().unwrap();
    let v = version(arch);
    let port = serve(vec![("/new.bundle", newer_bundle(arch, tmp.path()))]);

    let sink_port = tests::appliance::free_port();
    let mut sink = Sink::start(sink_port);
    sink.stop();
    let mut machine = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    machine
        .console()
        .unwrap()
        .wait_for(PROMPT, DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    tests::appliance::provision_secondary(&mut machine, sink_port);
    let (_, s) = wait_for_banner_reading_console(&mut machine, smtp_port, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = quit(s);
    let reply =
        tests::appliance::send_reading_console(&mut machine, smtp_port, "before the power cut");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");

    // The power goes as the install reports its first written MiBs: the slot is half on disk.
    let console = machine.console().unwrap();
    console
        .send_line(&format!("update install http://10.0.2.2:{port}/new.bundle"))
        .unwrap();
    let out = console
        .wait_for("update: slot B: 2.0 of", DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = Command::new("kill")
        .args(["-KILL", &machine.pid().to_string()])
        .status();
    let _ = machine.wait();
    assert!(
        out.contains("update: writing postern 9.9.9 into slot B"),
        "{out}"
    );
    let transcript = machine.console().unwrap().transcript().to_string();
    assert!(
        !transcript.contains("read back intact"),
        "the install finished before the power cut: {transcript}"
    );
    drop(machine);
    let entries: Vec<String> = slots(&disk)
        .into_iter()
        .filter(|n| n.ends_with(".efi"))
        .collect();
    assert_eq!(entries, [format!("postern-{v}-a.efi")], "no new boot entry");

    // The old slot boots, as it was, and delivers what it acknowledged before the cut.
    let mut machine = Machine::boot(&opts).unwrap_or_else(|e| panic!("{e}"));
    let log = machine
        .console()
        .unwrap()
        .wait_for(PROMPT, DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        log.contains(&format!("postern {v}: appliance mode")),
        "{log}"
    );
    assert!(!log.contains("is on trial"), "{log}");
    let status = console_command(&mut machine, "update status");
    assert!(
        status.contains(&format!("slot A: postern {v}, good, booted")),
        "{status}"
    );
    assert!(status.contains("slot B: empty"), "{status}");
    sink.restart();
    console_command(&mut machine, "queue flush");
    let got = sink.wait_for(1, COMMAND);
    assert_eq!(got.len(), 1, "{}", machine.console().unwrap().transcript());
    assert!(
        got[0].contains("Subject: before the power cut"),
        "{}",
        got[0]
    );
    power_off(&mut machine);
}
