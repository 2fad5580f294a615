//! A boot slot's contents: a unified kernel image (UKI), systemd's EFI stub with the kernel, the
//! initramfs, the command line and an os-release added as PE sections.
//!
//! The stub (Debian's `systemd-boot-efi`, `linux{x64,aa64}.efi.stub`, systemd 252) finds its
//! payload by section name. Sections go in with binutils' `objcopy` at fixed addresses above the
//! stub, as systemd 252's documentation does it (ukify is not packaged in Debian 12): `.osrel` at
//! 0x20000, `.cmdline` at 0x30000, `.linux` at 0x2000000 and `.initrd` after the kernel on a
//! 1 MiB boundary (the arm64 Image is ~32 MiB, more than the documented 16 MiB gap).
//!
//! One file per slot means a slot is written, read back and verified as one unit, and its sha256
//! in an update manifest covers kernel, initramfs and command line together.

use std::fs;
use std::path::Path;
use std::process::Command;

/// Where the stubs live (Debian's systemd-boot-efi, with `:arm64` for aarch64).
const STUB_DIR: &str = "/usr/lib/systemd/boot/efi";
const LINUX_VMA: u64 = 0x0200_0000;
const SECTION_ALIGN: u64 = 0x10_0000;

/// What goes into one UKI.
pub struct UkiParts<'a> {
    /// `x64` or `aa64` (the EFI file name suffix).
    pub efi_arch: &'a str,
    /// binutils for the target (`objcopy` or `aarch64-linux-gnu-objcopy`).
    pub objcopy: &'a str,
    /// A kernel with an EFI stub of its own: the x86 bzImage, the uncompressed arm64 Image.
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub cmdline: &'a str,
    /// os-release lines: systemd-boot shows the name and sorts entries by IMAGE_VERSION.
    pub os_release: &'a str,
}

/// Where each added section starts: `.initrd` after the kernel, so any kernel size fits.
fn initrd_vma(kernel_len: u64) -> u64 {
    (LINUX_VMA + kernel_len).div_ceil(SECTION_ALIGN) * SECTION_ALIGN
}

/// Builds the UKI at `out`, using `work` for the small section files.
pub fn build(parts: &UkiParts, work: &Path, out: &Path) -> Result<(), String> {
    let stub = Path::new(STUB_DIR).join(format!("linux{}.efi.stub", parts.efi_arch));
    if !stub.exists() {
        return Err(format!(
            "{} is missing: install systemd-boot-efi{}",
            stub.display(),
            if parts.efi_arch == "aa64" {
                ":arm64"
            } else {
                ""
            }
        ));
    }
    let kernel_len = fs::metadata(parts.kernel)
        .map_err(|e| format!("cannot read {}: {e}", parts.kernel.display()))?
        .len();
    let osrel = work.join("uki.osrel");
    let cmdline = work.join("uki.cmdline");
    fs::write(&osrel, parts.os_release)
        .map_err(|e| format!("cannot write {}: {e}", osrel.display()))?;
    fs::write(&cmdline, parts.cmdline)
        .map_err(|e| format!("cannot write {}: {e}", cmdline.display()))?;
    let sections = [
        (".osrel", osrel.as_path(), 0x2_0000),
        (".cmdline", cmdline.as_path(), 0x3_0000),
        (".linux", parts.kernel, LINUX_VMA),
        (".initrd", parts.initramfs, initrd_vma(kernel_len)),
    ];
    let mut cmd = Command::new(parts.objcopy);
    for (name, file, vma) in sections {
        cmd.arg("--add-section")
            .arg(format!("{name}={}", file.display()))
            .arg("--change-section-vma")
            .arg(format!("{name}={vma:#x}"));
    }
    cmd.arg(&stub).arg(out);
    let result = cmd.output();
    let _ = fs::remove_file(&osrel);
    let _ = fs::remove_file(&cmdline);
    let result =
        result.map_err(|e| format!("cannot run {} (install binutils): {e}", parts.objcopy))?;
    if !result.status.success() {
        return Err(format!(
            "{} failed making {}: {}",
            parts.objcopy,
            out.display(),
            String::from_utf8_lossy(&result.stderr).trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initrd_starts_after_the_kernel_on_a_mebibyte() {
        assert_eq!(initrd_vma(1), 0x0210_0000);
        assert_eq!(initrd_vma(0x10_0000), 0x0210_0000);
        assert_eq!(initrd_vma(32_956_352), 0x0400_0000);
    }
}
