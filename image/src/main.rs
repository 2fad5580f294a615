//! `mkimage`: builds a bootable Postern appliance image for one architecture.
//!
//! ```text
//! mkimage --arch x86_64 --firmware target/x86_64-unknown-linux-gnu/release/postern --out build/x86_64
//! ```
//!
//! Steps, each printed with sizes: fetch the pinned Debian kernel package (sha256 from
//! `kernel.lock`), unpack it, take the kernel (x86_64: the ELF vmlinux out of the bzImage, for PVH
//! boot), pick the virtio modules (and block2mtd on x86_64) and their load order, and write the initramfs: `/init` (the
//! firmware), the modules, a CA bundle, `/dev/console`, and nothing else.
//!
//! Then the flashable disk: slot A's unified kernel image (systemd's EFI stub + the kernel's own
//! EFI-stub image + the initramfs + the command line, [`uki`]) and the GPT disk with systemd-boot,
//! the slot and the flash partition ([`disk`]).
//!
//! Output in `--out`: `kernel` and `initramfs.cpio.zst` (QEMU's direct boot, the fastest for
//! tests), `slot.efi` (the UKI, what an update bundle carries), `postern-ARCH.img` (the disk to
//! `dd` onto a stick or eMMC) and `manifest.txt` (sizes, versions, for benchmarks and humans).

mod cpio;
mod deb;
mod disk;
mod kernel;
mod lock;
mod modules;
mod uki;

use clap::{Parser, ValueEnum};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where PID 1 finds the modules and their load order in the initramfs (firmware reads the same).
const MODULE_DIR: &str = "/lib/modules";
const MODULE_ORDER: &str = "/lib/modules/load-order";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "aarch64")]
    Aarch64,
}

impl Arch {
    fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The modules the guest needs that its kernel does not have built in. block2mtd (with mtd.ko,
    /// which carries /dev/mtdN) emulates raw NOR over the flash disk for `postern.flash=mtd:...`;
    /// the firmware loads it itself, with the disk as its parameter, after virtio_blk. vfat and
    /// its code pages mount the EFI system partition (the boot slots); there is no modprobe to
    /// load the code pages on demand. i6300esb is the PCI watchdog QEMU offers on both machines.
    fn modules(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &[
                "virtio_pci",
                "virtio_net",
                "virtio_blk",
                "vfat",
                "nls_cp437",
                "nls_ascii",
                "nls_utf8",
                "efivarfs",
                "block2mtd",
                "i6300esb",
            ],
            // No block2mtd in Debian's arm64 kernel; virtio_pci is a module there too.
            Arch::Aarch64 => &[
                "virtio_pci",
                "virtio_net",
                "virtio_blk",
                "vfat",
                "nls_cp437",
                "nls_ascii",
                "nls_utf8",
                "efivarfs",
                "i6300esb",
            ],
        }
    }

    /// The EFI file name suffix (BOOTX64.EFI, linuxaa64.efi.stub).
    fn efi_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x64",
            Arch::Aarch64 => "aa64",
        }
    }

    /// binutils that can edit this architecture's PE files.
    fn objcopy(self) -> &'static str {
        match self {
            Arch::X86_64 => "objcopy",
            Arch::Aarch64 => "aarch64-linux-gnu-objcopy",
        }
    }

    fn serial_console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "mkimage",
    about = "Build a Postern appliance image (kernel + initramfs)"
)]
struct Args {
    /// Target architecture.
    #[arg(long, value_enum, default_value = "x86_64")]
    arch: Arch,
    /// The static postern binary to install as /init.
    #[arg(long)]
    firmware: PathBuf,
    /// Output directory (build/<arch>).
    #[arg(long)]
    out: PathBuf,
    /// Download and unpack cache.
    #[arg(long, default_value = "build/cache")]
    cache: PathBuf,
    /// The kernel lock file.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/kernel.lock"))]
    lock: PathBuf,
    /// CA bundle to ship for TLS.
    #[arg(long, default_value = CA_BUNDLE)]
    ca_bundle: PathBuf,
    /// The firmware's version, as the boot loader shows and sorts it.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    firmware_version: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match build(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkimage: {e}");
            ExitCode::FAILURE
        }
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, data: &[u8]) -> Result<(), String> {
    fs::write(path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn build(args: &Args) -> Result<(), String> {
    let arch = args.arch;
    let lock_text = fs::read_to_string(&args.lock)
        .map_err(|e| format!("cannot read {}: {e}", args.lock.display()))?;
    let pin = lock::parse(&lock_text, arch.name()).map_err(|e| e.to_string())?;
    let release = pin.release().to_string();

    println!(
        "[1/7] kernel package {} {} ({})",
        pin.package, pin.version, pin.deb_arch
    );
    let deb = deb::fetch(&pin, &args.cache)?;
    let deb_len = fs::metadata(&deb).map(|m| m.len()).unwrap_or(0);
    println!(
        "  {} ({}), sha256 {} matches kernel.lock",
        deb.display(),
        size(deb_len),
        pin.sha256
    );

    let unpacked = args.cache.join(&release);
    let root = unpacked.join("root");
    println!("[2/7] unpacking into {}", root.display());
    deb::extract(&deb, &root)?;

    fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let kernel_out = args.out.join("kernel");
    let vmlinuz = read(&root.join(format!("boot/vmlinuz-{release}")))?;
    let kernel = match arch {
        Arch::X86_64 => {
            let cached = unpacked.join("vmlinux");
            if !cached.exists() {
                let elf = kernel::vmlinux_from_bzimage(&vmlinuz)
                    .map_err(|e| format!("vmlinuz-{release}: {e}"))?;
                write(&cached, &elf)?;
            }
            println!(
                "[3/7] kernel: ELF vmlinux out of the {} bzImage (PVH boot, no decompression in the guest)",
                size(vmlinuz.len() as u64)
            );
            read(&cached)?
        }
        Arch::Aarch64 => {
            println!("[3/7] kernel: the package's compressed Image (QEMU unpacks it)");
            vmlinuz
        }
    };
    write(&kernel_out, &kernel)?;
    println!("  {} ({})", kernel_out.display(), size(kernel.len() as u64));

    println!("[4/7] modules: {}", arch.modules().join(", "));
    modules::depmod(&root, &release)?;
    let order = modules::load_order(&root, &release, arch.modules())?;
    let mut module_files = Vec::new();
    for path in &order {
        // modprobe prints absolute paths under the unpacked root.
        let data = read(path)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("odd module path {}", path.display()))?
            .to_string();
        println!("  {name} ({})", size(data.len() as u64));
        module_files.push((name, data));
    }

    println!("[5/7] initramfs");
    let firmware = read(&args.firmware)?;
    let ca = read(&args.ca_bundle)?;
    let mut ar = cpio::Archive::new();
    for dir in [
        "/dev",
        "/proc",
        "/sys",
        "/run",
        "/tmp",
        "/etc",
        "/etc/ssl",
        "/etc/ssl/certs",
        "/lib",
        MODULE_DIR,
    ] {
        ar.dir(dir, 0o755);
    }
    // The kernel opens /dev/console for PID 1 before devtmpfs exists; without the node the
    // firmware's first messages would go nowhere.
    ar.char_dev("/dev/console", 0o600, 5, 1);
    ar.file("/init", 0o755, &firmware);
    println!(
        "  /init <- {} ({})",
        args.firmware.display(),
        size(firmware.len() as u64)
    );
    ar.file(CA_BUNDLE, 0o644, &ca);
    println!(
        "  {CA_BUNDLE} <- {} ({})",
        args.ca_bundle.display(),
        size(ca.len() as u64)
    );
    let mut order_text = String::new();
    for (name, data) in &module_files {
        ar.file(&format!("{MODULE_DIR}/{name}"), 0o644, data);
        order_text.push_str(name);
        order_text.push('\n');
    }
    ar.file(MODULE_ORDER, 0o644, order_text.as_bytes());
    println!("  {MODULE_ORDER}: {} modules", module_files.len());
    let cpio = ar.finish();
    let zst =
        ruzstd::encoding::compress_to_vec(&cpio[..], ruzstd::encoding::CompressionLevel::Fastest);
    let initramfs_out = args.out.join("initramfs.cpio.zst");
    write(&initramfs_out, &zst)?;
    println!(
        "  {} ({} cpio, {} zstd)",
        initramfs_out.display(),
        size(cpio.len() as u64),
        size(zst.len() as u64)
    );

    // The slot boots the kernel through its own EFI stub: the x86 bzImage (not the vmlinux the
    // direct boot uses), the arm64 Image as packaged.
    let efi_kernel = root.join(format!("boot/vmlinuz-{release}"));
    // `postern.console=wizard` is the default, written out so tests can patch it to `prompt`.
    let cmdline = format!(
        "console={} quiet panic=-1 postern.flash=PARTLABEL={} postern.console=wizard",
        arch.serial_console(),
        disk::FLASH_PARTLABEL
    );
    let os_release = format!(
        "NAME=Postern\nID=postern\nPRETTY_NAME=\"Postern {v} ({a})\"\nIMAGE_ID=postern\nIMAGE_VERSION={v}\nVERSION_ID={v}\n",
        v = args.firmware_version,
        a = arch.name()
    );
    let slot_out = args.out.join("slot.efi");
    println!("[6/7] slot: unified kernel image, command line {cmdline:?}");
    uki::build(
        &uki::UkiParts {
            efi_arch: arch.efi_arch(),
            objcopy: arch.objcopy(),
            kernel: &efi_kernel,
            initramfs: &initramfs_out,
            cmdline: &cmdline,
            os_release: &os_release,
        },
        &args.out,
        &slot_out,
    )?;
    let slot_len = fs::metadata(&slot_out).map(|m| m.len()).unwrap_or(0);
    println!("  {} ({})", slot_out.display(), size(slot_len));

    let disk_out = args.out.join(format!("postern-{}.img", arch.name()));
    let slot_a_name = format!("postern-{}-a.efi", args.firmware_version);
    println!("[7/7] disk: GPT, ESP with systemd-boot and slot A ({slot_a_name}), flash partition");
    let layout = disk::build(
        &disk::DiskParts {
            efi_arch: arch.efi_arch(),
            slot_a: &slot_out,
            slot_a_name: &slot_a_name,
        },
        &args.out,
        &disk_out,
    )?;
    println!(
        "  {} ({}: ESP {} at {}, flash {} at {})",
        disk_out.display(),
        size(layout.total),
        size(disk::ESP_SIZE),
        size(layout.esp_offset),
        size(disk::FLASH_SIZE),
        size(layout.flash_offset)
    );

    let manifest = format!(
        "arch {}\nversion {}\nkernel_package {} {}\nkernel_bytes {}\ninitramfs_bytes {}\ninitramfs_cpio_bytes {}\nfirmware_bytes {}\nslot_bytes {}\ndisk_bytes {}\n",
        arch.name(),
        args.firmware_version,
        pin.package,
        pin.version,
        kernel.len(),
        zst.len(),
        cpio.len(),
        firmware.len(),
        slot_len,
        layout.total
    );
    write(&args.out.join("manifest.txt"), manifest.as_bytes())?;
    println!(
        "done: {} kernel {}, initramfs {}, firmware {}, slot {}, disk {}",
        args.out.display(),
        size(kernel.len() as u64),
        size(zst.len() as u64),
        size(firmware.len() as u64),
        size(slot_len),
        size(layout.total)
    );
    Ok(())
}
