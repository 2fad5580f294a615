//! Starting QEMU for an image, and stopping it.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::Console;

/// The flash size a new flash file gets.
pub const DEFAULT_FLASH_SIZE: u64 = 64 << 20;
/// How long a guest may take to power off before QEMU is killed.
pub const POWEROFF_GRACE: Duration = Duration::from_secs(30);

/// Guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// Machine and CPU. TCG: there is no usable KVM on the machines this runs on.
    fn machine_args(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["-M", "q35", "-cpu", "max", "-accel", "tcg"],
            Arch::Aarch64 => &["-M", "virt", "-cpu", "max,pauth-impdef=on", "-accel", "tcg"],
        }
    }

    /// Guest RAM in MiB. The Debian x86 kernel needs >= 88 MB, arm64 boots in 64 MB; under UEFI
    /// the whole slot image (34 MiB on arm64, its sections placed up to ~70 MiB apart) is loaded
    /// in one piece, and AAVMF reports "Out of Resources" for it in 256 MB.
    fn memory_mib(disk: bool) -> u32 {
        if disk { 512 } else { 256 }
    }

    /// UEFI for the disk boot: (read-only code, template of the variable store). Debian's `ovmf`
    /// and `qemu-efi-aarch64` (AAVMF).
    pub fn uefi(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => (
                "/usr/share/OVMF/OVMF_CODE_4M.fd",
                "/usr/share/OVMF/OVMF_VARS_4M.fd",
            ),
            Arch::Aarch64 => (
                "/usr/share/AAVMF/AAVMF_CODE.fd",
                "/usr/share/AAVMF/AAVMF_VARS.fd",
            ),
        }
    }

    /// The serial console's kernel name (the disk image's slots carry it on their command line).
    pub fn serial_console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "x86_64" => Ok(Arch::X86_64),
            "aarch64" => Ok(Arch::Aarch64),
            other => Err(format!("unknown arch {other:?} (x86_64 or aarch64)")),
        }
    }
}

/// A host port forwarded to a guest port (TCP, host side on 127.0.0.1 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub host: u16,
    pub guest: u16,
}

impl Forward {
    /// SMTP on 2525, submission on 2587, smtps on 2465.
    pub fn defaults() -> Vec<Forward> {
        vec![
            Forward {
                host: 2525,
                guest: 25,
            },
            Forward {
                host: 2587,
                guest: 587,
            },
            Forward {
                host: 2465,
                guest: 465,
            },
        ]
    }
}

impl FromStr for Forward {
    type Err = String;
    /// `HOST:GUEST`, e.g. `2525:25`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("forward {s:?} is not HOSTPORT:GUESTPORT");
        let (h, g) = s.split_once(':').ok_or_else(bad)?;
        Ok(Forward {
            host: h.parse().map_err(|_| bad())?,
            guest: g.parse().map_err(|_| bad())?,
        })
    }
}

/// What the guest's NIC (virtio-net, `eth0`) is plugged into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// QEMU's user network (slirp): its own DHCP server, router and DNS; [`BootOptions::forwards`]
    /// reach the guest.
    #[default]
    User,
    /// A link to a process on this host: every Ethernet frame of the guest is one UDP datagram
    /// from 127.0.0.1:`qemu_port` to 127.0.0.1:`peer_port`, and every datagram the peer sends to
    /// `qemu_port` is one frame to the guest. The peer is the whole network (a test's own DHCP
    /// server); forwards do not apply.
    Udp { qemu_port: u16, peer_port: u16 },
}

/// Where the serial console goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleMode {
    /// QEMU's own terminal (stdin/stdout), multiplexed with its monitor: Ctrl-A X quits.
    Stdio,
    /// A Unix socket QEMU listens on; [`Machine::boot`] connects a [`Console`] to it.
    Socket(PathBuf),
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct BootOptions {
    pub arch: Arch,
    /// A `mkimage` output directory: `kernel` and `initramfs.cpio.zst`.
    pub image: PathBuf,
    /// Boot this disk image under UEFI instead (the flashed `postern-ARCH.img`: boot loader, slots
    /// and flash partition; `image`, `flash`, `flash_size`, `flash_mtd` and `append` are then
    /// unused, as the slot carries its own command line). The UEFI variable store lives beside it
    /// (`DISK.vars`), created from the firmware's template on first boot.
    pub disk: Option<PathBuf>,
    /// The flash file; created sparse at `flash_size` bytes if missing.
    pub flash: PathBuf,
    /// The size the guest requires of its flash (passed as `postern.flash_size`).
    pub flash_size: u64,
    /// Run the guest on raw-flash semantics: block2mtd over the flash disk, the spool on
    /// /dev/mtd0 (`postern.flash=mtd:/dev/vda`), as on a board with NOR flash.
    pub flash_mtd: bool,
    pub network: Network,
    /// Host ports forwarded to the guest (on the user network only).
    pub forwards: Vec<Forward>,
    pub console: ConsoleMode,
    /// More kernel command line words (e.g. `postern.hostname=mx1`).
    pub append: Vec<String>,
    /// Exit QEMU instead of restarting the guest when it reboots.
    pub no_reboot: bool,
}

impl BootOptions {
    pub fn new(arch: Arch, image: impl Into<PathBuf>, flash: impl Into<PathBuf>) -> BootOptions {
        BootOptions {
            arch,
            image: image.into(),
            disk: None,
            flash: flash.into(),
            flash_size: DEFAULT_FLASH_SIZE,
            flash_mtd: false,
            network: Network::User,
            forwards: Forward::defaults(),
            console: ConsoleMode::Stdio,
            append: Vec::new(),
            no_reboot: false,
        }
    }

    /// Options to boot a disk image under UEFI (the image is written to: boot counting, the spool).
    pub fn disk(arch: Arch, disk: impl Into<PathBuf>) -> BootOptions {
        let disk = disk.into();
        let mut o = BootOptions::new(arch, "", &disk);
        o.disk = Some(disk);
        o
    }

    /// The UEFI variable store of a disk boot.
    pub fn uefi_vars(&self) -> Option<PathBuf> {
        self.disk.as_ref().map(|d| {
            let mut name = d.as_os_str().to_owned();
            name.push(".vars");
            PathBuf::from(name)
        })
    }

    pub fn kernel(&self) -> PathBuf {
        self.image.join("kernel")
    }

    pub fn initramfs(&self) -> PathBuf {
        self.image.join("initramfs.cpio.zst")
    }

    /// The kernel command line.
    pub fn cmdline(&self) -> String {
        let mut words = vec![
            format!("console={}", self.arch.serial_console()),
            "quiet".to_string(),
            // A kernel panic reboots at once rather than hanging (with no_reboot: QEMU exits).
            "panic=-1".to_string(),
            if self.flash_mtd {
                "postern.flash=mtd:/dev/vda".to_string()
            } else {
                "postern.flash=/dev/vda".to_string()
            },
            format!("postern.flash_size={}", self.flash_size),
        ];
        words.extend(self.append.iter().cloned());
        words.join(" ")
    }

    /// The full QEMU argument list.
    pub fn qemu_args(&self) -> Vec<String> {
        let mut a: Vec<String> = self
            .arch
            .machine_args()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = |v: &str| v.to_string();
        a.extend([s("-m"), Arch::memory_mib(self.disk.is_some()).to_string()]);
        a.extend([
            s("-nodefaults"),
            s("-no-user-config"),
            s("-display"),
            s("none"),
        ]);
        let drive = match (&self.disk, self.uefi_vars()) {
            (Some(disk), Some(vars)) => {
                let (code, _) = self.arch.uefi();
                a.extend([
                    s("-drive"),
                    format!("if=pflash,format=raw,unit=0,readonly=on,file={code}"),
                    s("-drive"),
                    format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
                ]);
                disk
            }
            _ => {
                a.extend([s("-kernel"), self.kernel().display().to_string()]);
                a.extend([s("-initrd"), self.initramfs().display().to_string()]);
                a.extend([s("-append"), self.cmdline()]);
                &self.flash
            }
        };
        // PCI on both: AAVMF finds the disk there, and the images load virtio_pci on both.
        a.extend([
            s("-drive"),
            format!(
                "file={},format=raw,if=none,id=flash,cache=writeback",
                drive.display()
            ),
            s("-device"),
            s("virtio-blk-pci,drive=flash"),
        ]);
        // The hardware watchdog the firmware pets (reset on expiry, QEMU's default action): a
        // PCI card, so the same on both machines.
        a.extend([s("-device"), s("i6300esb")]);
        let netdev = match self.network {
            Network::User => {
                let mut netdev = s("user,id=n0");
                for f in &self.forwards {
                    netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest));
                }
                netdev
            }
            // QEMU 7.2's dgram netdev: one frame per datagram, no encapsulation.
            Network::Udp {
                qemu_port,
                peer_port,
            } => format!(
                "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={qemu_port},\
                 remote.type=inet,remote.host=127.0.0.1,remote.port={peer_port}"
            ),
        };
        a.extend([
            s("-netdev"),
            netdev,
            s("-device"),
            s("virtio-net-pci,netdev=n0"),
        ]);
        match &self.console {
            ConsoleMode::Stdio => a.extend([s("-serial"), s("mon:stdio")]),
            ConsoleMode::Socket(path) => a.extend([
                s("-chardev"),
                format!("socket,id=s0,path={},server=on,wait=on", path.display()),
                s("-serial"),
                s("chardev:s0"),
            ]),
        }
        if self.no_reboot {
            a.push(s("-no-reboot"));
        }
        a
    }
}

/// Why a machine could not be booted.
#[derive(Debug)]
pub enum BootError {
    MissingImage(PathBuf),
    Flash(PathBuf, io::Error),
    Spawn(&'static str, io::Error),
    /// QEMU exited before its console socket appeared.
    Exited(ExitStatus),
    ConsoleSocket(PathBuf, io::Error),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::MissingImage(p) => write!(
                f,
                "{} is missing: build the image first (make image), and for a disk boot install \
                 ovmf / qemu-efi-aarch64",
                p.display()
            ),
            BootError::Flash(p, e) => write!(f, "cannot create flash file {}: {e}", p.display()),
            BootError::Spawn(bin, e) => write!(f, "cannot start {bin} (install qemu-system): {e}"),
            BootError::Exited(s) => write!(f, "QEMU exited at once ({s})"),
            BootError::ConsoleSocket(p, e) => write!(
                f,
                "cannot connect to the console socket {}: {e}",
                p.display()
            ),
        }
    }
}

impl std::error::Error for BootError {}

impl From<BootError> for io::Error {
    fn from(e: BootError) -> io::Error {
        io::Error::other(e.to_string())
    }
}

/// A running QEMU. Dropping it kills QEMU.
pub struct Machine {
    child: Child,
    console: Option<Console>,
    started: Instant,
}

impl Machine {
    /// Creates the flash file if needed and starts QEMU; with a socket console, connects to it
    /// (QEMU starts the guest only then).
    pub fn boot(opts: &BootOptions) -> Result<Machine, BootError> {
        match (&opts.disk, opts.uefi_vars()) {
            (Some(disk), Some(vars)) => {
                let (code, template) = opts.arch.uefi();
                for p in [disk.as_path(), Path::new(code), Path::new(template)] {
                    if !p.exists() {
                        return Err(BootError::MissingImage(p.to_path_buf()));
                    }
                }
                if !vars.exists() {
                    std::fs::copy(template, &vars)
                        .map_err(|e| BootError::Flash(vars.clone(), e))?;
                }
            }
            _ => {
                for p in [opts.kernel(), opts.initramfs()] {
                    if !p.exists() {
                        return Err(BootError::MissingImage(p));
                    }
                }
                create_flash(&opts.flash, opts.flash_size)
                    .map_err(|e| BootError::Flash(opts.flash.clone(), e))?;
            }
        }
        if let ConsoleMode::Socket(path) = &opts.console {
            let _ = std::fs::remove_file(path);
        }
        let bin = opts.arch.qemu_binary();
        let mut cmd = Command::new(bin);
        cmd.args(opts.qemu_args());
        if let ConsoleMode::Socket(_) = opts.console {
            cmd.stdin(Stdio::null());
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| BootError::Spawn(bin, e))?;
        let console = match &opts.console {
            ConsoleMode::Stdio => None,
            ConsoleMode::Socket(path) => match connect(&mut child, path) {
                Ok(stream) => Some(Console::new(stream)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
            },
        };
        Ok(Machine {
            child,
            console,
            started,
        })
    }

    /// The serial console (socket mode only).
    pub fn console(&mut self) -> Option<&mut Console> {
        self.console.as_mut()
    }

    /// When QEMU was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for QEMU to exit; kills it after `limit` (a guest hung in poweroff) and says so.
    pub fn wait_exit(&mut self, limit: Duration) -> io::Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() >= limit {
                self.child.kill()?;
                let status = self.child.wait()?;
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "guest did not stop within {} s; QEMU killed ({status})",
                        limit.as_secs()
                    ),
                ));
            }
            if let Some(c) = self.console.as_mut() {
                // Keep draining the console so QEMU never blocks on a full socket.
                c.read_for(Duration::from_millis(50))?;
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Waits for QEMU to exit on its own, with no limit (the terminal console of `make run`).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A sparse file of `size` bytes, unless the file exists (its size is then the guest's to check).
fn create_flash(path: &Path, size: u64) -> io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.set_len(size)
}

/// Connects to QEMU's console socket once it listens (QEMU creates it within a second or so).
fn connect(child: &mut Child, path: &Path) -> Result<UnixStream, BootError> {
    let start = Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(BootError::Exited(status));
                }
                if start.elapsed() > Duration::from_secs(30) {
                    return Err(BootError::ConsoleSocket(path.to_path_buf(), e));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse_and_reach_the_netdev() {
        assert_eq!(
            "2525:25".parse::<Forward>(),
            Ok(Forward {
                host: 2525,
                guest: 25
            })
        );
        assert!("2525".parse::<Forward>().is_err());
        assert!("a:25".parse::<Forward>().is_err());
        let mut o = BootOptions::new(Arch::X86_64, "build/x86_64", "build/x86_64/flash.img");
        o.forwards = vec![Forward {
            host: 3025,
            guest: 25,
        }];
        o.console = ConsoleMode::Socket("/tmp/s.sock".into());
        let args = o.qemu_args().join(" ");
        assert!(
            args.contains("user,id=n0,hostfwd=tcp:127.0.0.1:3025-:25"),
            "{args}"
        );
        assert!(
            args.contains("socket,id=s0,path=/tmp/s.sock,server=on,wait=on"),
            "{args}"
        );
        assert!(args.contains("-kernel build/x86_64/kernel"), "{args}");
        assert!(
            args.contains("file=build/x86_64/flash.img,format=raw"),
            "{args}"
        );
        assert!(o.cmdline().contains("console=ttyS0"));
        assert!(
            o.cmdline()
                .contains(&format!("postern.flash_size={DEFAULT_FLASH_SIZE}"))
        );
        assert!(o.cmdline().contains("postern.flash=/dev/vda"));
        o.flash_mtd = true;
        assert!(o.cmdline().contains("postern.flash=mtd:/dev/vda"));
        assert!(!o.cmdline().contains("postern.flash=/dev/vda"));
    }

    #[test]
    fn a_udp_network_replaces_the_user_network_and_its_forwards() {
        let mut o = BootOptions::new(Arch::Aarch64, "build/aarch64", "/tmp/f.img");
        o.network = Network::Udp {
            qemu_port: 40001,
            peer_port: 40002,
        };
        let args = o.qemu_args().join(" ");
        assert!(
            args.contains(
                "-netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=40001,\
                 remote.type=inet,remote.host=127.0.0.1,remote.port=40002 \
                 -device virtio-net-pci,netdev=n0"
            ),
            "{args}"
        );
        assert!(!args.contains("hostfwd"), "{args}");
        assert!(!args.contains("user,id=n0"), "{args}");
    }

    #[test]
    fn a_disk_boots_under_uefi_with_its_own_command_line() {
        let o = BootOptions::disk(Arch::Aarch64, "/tmp/d/postern-aarch64.img");
        let args = o.qemu_args().join(" ");
        assert!(!args.contains("-kernel"), "{args}");
        assert!(!args.contains("-append"), "{args}");
        assert!(
            args.contains("unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd"),
            "{args}"
        );
        assert!(
            args.contains("unit=1,file=/tmp/d/postern-aarch64.img.vars"),
            "{args}"
        );
        assert!(
            args.contains("file=/tmp/d/postern-aarch64.img,format=raw"),
            "{args}"
        );
        assert!(args.contains("virtio-blk-pci,drive=flash"), "{args}");
        assert!(args.contains("-m 512"), "{args}");
    }

    #[test]
    fn a_new_flash_is_sparse_and_an_old_one_is_kept() {
        let dir = std::env::temp_dir().join(format!("qemu-flash-{}", std::process::id()));
        let f = dir.join("flash.img");
        create_flash(&f, 1 << 20).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().len(), 1 << 20);
        create_flash(&f, 2 << 20).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().len(), 1 << 20);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
