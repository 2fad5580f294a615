//! The flashable disk image: GPT, an EFI system partition (ESP) with systemd-boot and the boot
//! slots, and the flash partition the spool lives on. Built as an ordinary file, without root or
//! loop devices: `mkfs.vfat -C` makes the ESP as a file, mtools fills it, `sgdisk` writes the
//! partition table, and the ESP is copied into place (zero blocks skipped, so the image is sparse).
//!
//! ```text
//! LBA 0..2047      protective MBR + GPT
//! 1 MiB            ESP, FAT32, "EFI system partition"
//!                    /EFI/BOOT/BOOT{X64,AA64}.EFI   systemd-boot (the removable-media path:
//!                                                   no NVRAM entry needed)
//!                    /loader/loader.conf            timeout 0, no editor
//!                    /EFI/Linux/postern-VERSION-a.efi   slot A (a UKI); slot B is absent
//! 1 MiB + ESP      "postern-flash": the spool (zeroes; the firmware formats it on first boot)
//! end              backup GPT
//! ```
//!
//! Boot counting is systemd-boot's: a slot written by an update is named
//! `postern-VERSION-b+3.efi`; systemd-boot renames it on each try (`+2-1`, `+1-2`, `+0-3`) and
//! sorts an entry with no tries left after the others, so the old slot boots again. The
//! firmware drops the counter (`postern-VERSION-b.efi`) once its health check passed. Entries
//! sort newest `IMAGE_VERSION` first, so the newest good slot is the default.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

const MIB: u64 = 1 << 20;
/// Two arm64 UKIs (~36 MiB each) and room to grow.
pub const ESP_SIZE: u64 = 128 * MIB;
/// The spool's flash: the appliance's default flash size.
pub const FLASH_SIZE: u64 = 64 * MIB;
/// The GPT partition name the firmware finds its flash by (`postern.flash=PARTLABEL=...`).
pub const FLASH_PARTLABEL: &str = "postern-flash";
const FIRST_PARTITION: u64 = MIB;

/// The boot loader configuration: boot the default entry at once, no command line editing (the
/// command line is part of the signed slot).
const LOADER_CONF: &str = "timeout 0\neditor no\nauto-entries no\nauto-firmware no\n";

/// What goes on the disk.
pub struct DiskParts<'a> {
    /// `x64` or `aa64`.
    pub efi_arch: &'a str,
    /// Slot A's UKI and its file name under /EFI/Linux.
    pub slot_a: &'a Path,
    pub slot_a_name: &'a str,
}

/// The sizes of the finished image, for the manifest.
pub struct DiskLayout {
    pub total: u64,
    pub esp_offset: u64,
    pub flash_offset: u64,
}

fn run(cmd: &mut Command, what: &str, package: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what} (install {package}): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Copies `src` into the ESP image at `dest` (an mtools `::/path`).
fn mcopy(esp: &Path, src: &Path, dest: &str) -> Result<(), String> {
    run(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-o")
            .arg("-i")
            .arg(esp)
            .arg(src)
            .arg(dest),
        &format!("mcopy {} {dest}", src.display()),
        "mtools",
    )
}

/// Builds the ESP as a file in `work`.
fn build_esp(parts: &DiskParts, work: &Path) -> Result<std::path::PathBuf, String> {
    let esp = work.join("esp.img");
    let _ = fs::remove_file(&esp);
    run(
        Command::new("mkfs.vfat")
            .args(["-F", "32", "-n", "POSTERN", "-i", "50535452", "-C"])
            .arg(&esp)
            .arg((ESP_SIZE / 1024).to_string()),
        "mkfs.vfat",
        "dosfstools",
    )?;
    run(
        Command::new("mmd")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&esp)
            .args(["::/EFI", "::/EFI/BOOT", "::/EFI/Linux", "::/loader"]),
        "mmd",
        "mtools",
    )?;
    let loader =
        Path::new("/usr/lib/systemd/boot/efi").join(format!("systemd-boot{}.efi", parts.efi_arch));
    if !loader.exists() {
        return Err(format!(
            "{} is missing: install systemd-boot-efi{}",
            loader.display(),
            if parts.efi_arch == "aa64" {
                ":arm64"
            } else {
                ""
            }
        ));
    }
    mcopy(
        &esp,
        &loader,
        &format!("::/EFI/BOOT/BOOT{}.EFI", parts.efi_arch.to_uppercase()),
    )?;
    let conf = work.join("loader.conf");
    fs::write(&conf, LOADER_CONF).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    let copied = mcopy(&esp, &conf, "::/loader/loader.conf");
    let _ = fs::remove_file(&conf);
    copied?;
    mcopy(
        &esp,
        parts.slot_a,
        &format!("::/EFI/Linux/{}", parts.slot_a_name),
    )?;
    Ok(esp)
}

/// Writes the disk image at `out`.
pub fn build(parts: &DiskParts, work: &Path, out: &Path) -> Result<DiskLayout, String> {
    let esp = build_esp(parts, work)?;
    let layout = DiskLayout {
        // The backup GPT takes the last 33 sectors; a whole MiB keeps the size round.
        total: FIRST_PARTITION + ESP_SIZE + FLASH_SIZE + MIB,
        esp_offset: FIRST_PARTITION,
        flash_offset: FIRST_PARTITION + ESP_SIZE,
    };
    let _ = fs::remove_file(out);
    File::create(out)
        .and_then(|f| f.set_len(layout.total))
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let sector = |bytes: u64| bytes / 512;
    run(
        Command::new("sgdisk")
            .arg("--clear")
            .arg(format!(
                "--new=1:{}:{}",
                sector(layout.esp_offset),
                sector(layout.flash_offset) - 1
            ))
            .args(["--typecode=1:ef00", "--change-name=1:EFI system partition"])
            .arg(format!(
                "--new=2:{}:{}",
                sector(layout.flash_offset),
                sector(layout.flash_offset + FLASH_SIZE) - 1
            ))
            .args(["--typecode=2:8300"])
            .arg(format!("--change-name=2:{FLASH_PARTLABEL}"))
            .arg(out),
        "sgdisk",
        "gdisk",
    )?;
    copy_sparse(&esp, out, layout.esp_offset)?;
    let _ = fs::remove_file(&esp);
    Ok(layout)
}

/// Copies `src` into `dest` at `offset`, leaving all-zero blocks as holes.
fn copy_sparse(src: &Path, dest: &Path, offset: u64) -> Result<(), String> {
    let err = |e: std::io::Error| format!("copying {} into {}: {e}", src.display(), dest.display());
    let mut input = File::open(src).map_err(err)?;
    let mut output = OpenOptions::new().write(true).open(dest).map_err(err)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = offset;
    loop {
        let n = read_full(&mut input, &mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            output.seek(SeekFrom::Start(at)).map_err(err)?;
            output.write_all(&buf[..n]).map_err(err)?;
        }
        at += n as u64;
    }
    output.sync_all().map_err(err)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_copy_lands_at_the_offset_and_keeps_data() {
        let dir = tempdir();
        let src = dir.join("src");
        let dest = dir.join("dest");
        let mut data = vec![0u8; 200 * 1024];
        data[5] = 1;
        data[150 * 1024] = 2;
        fs::write(&src, &data).unwrap();
        File::create(&dest).unwrap().set_len(MIB).unwrap();
        copy_sparse(&src, &dest, 4096).unwrap();
        let out = fs::read(&dest).unwrap();
        assert_eq!(out.len() as u64, MIB);
        assert_eq!(&out[4096..4096 + data.len()], &data[..]);
        assert!(out[..4096].iter().all(|&b| b == 0));
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mkimage-disk-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        d
    }
}
