//! Figures of the flashable image, per architecture, for the note: the disk image's size (as
//! `dd` writes it, as allocated, and compressed for download) with its slot and partitions; then,
//! booting the disk image under UEFI (OVMF / AAVMF) and TCG, seconds from power-on to the SMTP
//! banner through the forwarded port, and how long `update install` takes to fetch, check, write
//! and read back a bundle of the same slot. Prints figures, never fails the build.
//!
//! `cargo bench -p tests --bench image` (or `tests/bench/image.sh`); needs `make images`.
//! `POSTERN_FIGURES_ARCH=x86_64` (or aarch64) measures one architecture only.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qemu::{Arch, Machine, POWEROFF_GRACE};
use tests::appliance::{image_dir_for, quit, test_disk_boot, wait_for_banner};
use tests::update::{newer_bundle, serve};

const LIMIT: Duration = Duration::from_secs(600);
const MIB: f64 = (1u64 << 20) as f64;

fn main() {
    let only = std::env::var("POSTERN_FIGURES_ARCH").ok();
    for arch in [Arch::X86_64, Arch::Aarch64] {
        if only.as_deref().is_some_and(|a| a != arch.name()) {
            continue;
        }
        let name = arch.name();
        let image = image_dir_for(arch).join(format!("postern-{name}.img"));
        if !image.exists() {
            println!("{name}: no {} (make image ARCH={name})", image.display());
            continue;
        }
        sizes(arch, &image);
        // A helper that panics (no mkbundle, no mtools) costs this architecture's figures only.
        match std::panic::catch_unwind(|| boot_and_update(arch)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => println!("{name}: not measured: {e}"),
            Err(_) => println!("{name}: not measured (see the panic above)"),
        }
    }
}

fn sizes(arch: Arch, image: &std::path::Path) {
    let name = arch.name();
    let manifest =
        std::fs::read_to_string(image_dir_for(arch).join("manifest.txt")).unwrap_or_default();
    let field = |key: &str| {
        manifest
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    if let Ok(meta) = std::fs::metadata(image) {
        println!(
            "{name}: disk image {:.1} MiB as written, {:.1} MiB allocated, {} zstd -19",
            meta.len() as f64 / MIB,
            (meta.blocks() * 512) as f64 / MIB,
            zstd_size(image).map_or("?".into(), |n| format!("{:.1} MiB", n as f64 / MIB))
        );
    }
    let line: Vec<String> = [
        ("slot (UKI)", "slot_bytes"),
        ("kernel", "kernel_bytes"),
        ("initramfs", "initramfs_bytes"),
        ("firmware", "firmware_bytes"),
    ]
    .iter()
    .filter_map(|(label, key)| field(key).map(|v| format!("{label} {:.1} MiB", v / MIB)))
    .collect();
    println!("{name}: {}", line.join(", "));
    if let Ok(out) = Command::new("sgdisk").arg("-p").arg(image).output() {
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            // The partition table's rows: number, start, end, size, code, name.
            if l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
            {
                println!("{name}: partition {}", l.trim());
            }
        }
    }
}

/// The image compressed as a vendor would ship it for download.
fn zstd_size(image: &std::path::Path) -> Option<u64> {
    let mut child = Command::new("zstd")
        .args(["-q", "-19", "-T0", "-c"])
        .arg(image)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut out = child.stdout.take()?;
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(_) => return None,
        }
    }
    child.wait().ok()?.success().then_some(n)
}

fn boot_and_update(arch: Arch) -> Result<(), String> {
    let name = arch.name();
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (opts, smtp_port) = test_disk_boot(arch, tmp.path());
    let bundle = newer_bundle(arch, tmp.path());
    let bundle_mib = bundle.len() as f64 / MIB;
    let port = serve(vec![("/new.bundle", bundle)]);

    let mut machine = Machine::boot(&opts).map_err(|e| e.to_string())?;
    let started = machine.started();
    // The greeting is probed from another thread while this one reads the console (a console
    // nobody reads stalls the guest).
    let smtp = std::thread::spawn(move || {
        wait_for_banner(smtp_port, LIMIT).map(|(_, stream)| {
            let at = Instant::now();
            let _ = quit(stream);
            at
        })
    });
    let console = machine.console().ok_or("no console")?;
    let log = console
        .wait_for("postern> ", LIMIT)
        .map_err(|e| e.to_string())?;
    let smtp_at = smtp.join().map_err(|_| "probe thread died".to_string())??;
    let services = log
        .lines()
        .find_map(|l| l.split("services up, ").nth(1))
        .unwrap_or("?");
    println!(
        "{name}: power-on to SMTP 220 {:.1} s (disk image, UEFI, TCG); services up {}",
        smtp_at.duration_since(started).as_secs_f64(),
        services.trim()
    );

    let asked = Instant::now();
    console
        .send_line(&format!("update install http://10.0.2.2:{port}/new.bundle"))
        .map_err(|e| e.to_string())?;
    console
        .wait_for("update: writing", LIMIT)
        .map_err(|e| e.to_string())?;
    let writing = Instant::now();
    let out = console
        .wait_for("postern> ", LIMIT)
        .map_err(|e| e.to_string())?;
    let done = Instant::now();
    if !out.contains("installed postern") {
        return Err(format!("update install failed: {out}"));
    }
    println!(
        "{name}: update install of a {bundle_mib:.1} MiB bundle {:.1} s: fetch and check {:.1} s, \
         write and read back {:.1} s",
        done.duration_since(asked).as_secs_f64(),
        writing.duration_since(asked).as_secs_f64(),
        done.duration_since(writing).as_secs_f64()
    );
    console.send_line("poweroff").map_err(|e| e.to_string())?;
    machine
        .wait_exit(POWEROFF_GRACE)
        .map_err(|e| e.to_string())?;
    Ok(())
}
