//! Boot counting and rollback on the flashable disk image under UEFI, on both architectures:
//! a slot on trial (`+1` in its name) that passes its health check drops its counter; a newer
//! slot on trial that fails its health check (its flash partition is missing) reboots, the boot
//! loader counts its try out and boots the old slot again, which serves mail.
//!
//! The slots are put on the disk's ESP with mtools, as `postern update install` writes them.
//! Needs both images (`make image ARCH=...`), ovmf, qemu-efi-aarch64 and mtools.

use std::path::Path;
use std::process::Command;

use qemu::{Arch, Machine};
use tests::appliance::{
    COMMAND, DISK_BOOT, PROMPT, console_command, image_dir_for, power_off, qemu_lock_for, quit,
    test_disk_boot, wait_for_banner_reading_console,
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

/// The bundle tool `make image` builds beside this test's own build.
fn mkbundle() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // .../TRIPLE/debug/deps/qemu_update-HASH -> .../TRIPLE/release/mkbundle
    let triple_dir = exe.ancestors().nth(3).unwrap().to_path_buf();
    let tool = triple_dir.join("release/mkbundle");
    assert!(
        tool.exists(),
        "{} is missing (make image builds it)",
        tool.display()
    );
    tool
}

/// A signed bundle of this architecture's slot as version 9.9.9 (the same firmware, a newer
/// name), its console patched as the test disk's is.
fn newer_bundle(arch: Arch, dir: &Path) -> Vec<u8> {
    let v = version(arch);
    let image = dir.join("image");
    std::fs::create_dir_all(&image).unwrap();
    let mut slot = std::fs::read(image_dir_for(arch).join("slot.efi")).unwrap();
    patch(
        &mut slot,
        &format!("IMAGE_VERSION={v}"),
        "IMAGE_VERSION=9.9.9",
    );
    patch(
        &mut slot,
        "postern.console=wizard",
        "postern.console=prompt",
    );
    std::fs::write(image.join("slot.efi"), &slot).unwrap();
    std::fs::write(
        image.join("manifest.txt"),
        format!("arch {}\nversion 9.9.9\n", arch.name()),
    )
    .unwrap();
    let out = dir.join("new.bundle");
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/keys");
    let made = Command::new(mkbundle())
        .arg("--keys")
        .arg(&keys)
        .arg("--image")
        .arg(&image)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::read(out).unwrap()
}

/// Serves `files` (path → bytes) over HTTP on 127.0.0.1 (the guest's 10.0.2.2); the port.
fn serve(files: Vec<(&'static str, Vec<u8>)>) -> u16 {
    use std::io::{Read, Write};
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in server.incoming().flatten() {
            let mut head = [0u8; 2048];
            let n = s.read(&mut head).unwrap_or(0);
            let request = String::from_utf8_lossy(&head[..n]).into_owned();
            let path = request.split(' ').nth(1).unwrap_or("/").to_string();
            match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let _ = s.write_all(
                        format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                            .as_bytes(),
                    );
                    let _ = s.write_all(body);
                }
                None => {
                    let _ = s.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                }
            }
        }
    });
    port
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
    let mut bad_signature = good.clone();
    // The signature follows the 16-byte magic, the manifest's length and the manifest.
    let manifest_len = u32::from_le_bytes(good[16..20].try_into().unwrap()) as usize;
    bad_signature[20 + manifest_len] ^= 0x01;
    let truncated = good[..good.len() / 2].to_vec();
    let port = serve(vec![
        ("/new.bundle", good),
        ("/bad-signature.bundle", bad_signature),
        ("/truncated.bundle", truncated),
    ]);
    let url = |name: &str| format!("http://10.0.2.2:{port}/{name}");

    let sink_port = tests::appliance::free_port();
    let mut sink = tests::peers::Sink::start(sink_port);
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
    ] {
        let out = console_command(&mut machine, &format!("update install {}", url(name)));
        assert!(out.contains(why), "{name}: {out}");
        assert!(!out.contains("installed postern"), "{name}: {out}");
    }
    assert_eq!(slots(&disk).len(), 1, "a refused bundle wrote nothing");
    // Fetching and writing a slot under emulation takes longer than a console command.
    let console = machine.console().unwrap();
    console
        .send_line(&format!("update install {}", url("new.bundle")))
        .unwrap();
    let out = console
        .wait_for(PROMPT, DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("installed postern 9.9.9 into slot B"), "{out}");
    let status = console_command(&mut machine, "update status");
    assert!(status.contains("slot B: postern 9.9.9"), "{status}");

    let console = machine.console().unwrap();
    console.send_line("reboot").unwrap();
    let log = console
        .wait_for("passed its health check: marked good", DISK_BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(log.contains("slot B (postern 9.9.9) is on trial"), "{log}");
    console
        .wait_for(PROMPT, COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
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
