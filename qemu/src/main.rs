//! `qemu`: boots a Postern image with the serial console on this terminal (`make run`).
//!
//! ```text
//! qemu --arch x86_64 --image build/x86_64 --flash build/x86_64/flash.img \
//!      --console stdio --forward 2525:25 --forward 2587:587 --forward 2465:465
//! ```
//! or, as a flashed box under UEFI, `qemu --arch aarch64 --disk build/aarch64/disk.img`.
//! Ctrl-A X quits QEMU; `poweroff` at the prompt stops the guest cleanly.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use qemu::{Arch, BootOptions, ConsoleMode, DEFAULT_FLASH_SIZE, Forward, Machine, Network};

#[derive(Parser, Debug)]
#[command(name = "qemu", about = "Boot a Postern image under QEMU")]
struct Args {
    /// x86_64 or aarch64.
    #[arg(long, default_value = "x86_64")]
    arch: Arch,
    /// The mkimage output directory.
    #[arg(long, default_value = "build/x86_64")]
    image: PathBuf,
    /// The flash file (created if missing; it persists across runs).
    #[arg(long, required_unless_present = "disk")]
    flash: Option<PathBuf>,
    /// Boot this disk image under UEFI (OVMF/AAVMF) instead of the kernel directly; the guest
    /// writes to it (boot counting, the spool), as to a flashed box.
    #[arg(long)]
    disk: Option<PathBuf>,
    /// The flash size the guest requires, in bytes.
    #[arg(long, default_value_t = DEFAULT_FLASH_SIZE)]
    flash_size: u64,
    /// Run the spool on MTD raw flash: block2mtd over the flash disk (/dev/mtd0 in the guest).
    #[arg(long)]
    mtd: bool,
    /// `stdio` (this terminal) or `socket:PATH`.
    #[arg(long, default_value = "stdio")]
    console: String,
    /// HOSTPORT:GUESTPORT, repeatable (default 2525:25, 2587:587, 2465:465).
    #[arg(long)]
    forward: Vec<Forward>,
    /// QEMUPORT:PEERPORT: instead of QEMU's user network, eth0's frames go as UDP datagrams
    /// from 127.0.0.1:QEMUPORT to 127.0.0.1:PEERPORT, and back (a DHCP server of your own).
    #[arg(long, value_parser = udp_link)]
    udp_link: Option<Network>,
    /// Extra kernel command line words.
    #[arg(long)]
    append: Vec<String>,
    /// Exit when the guest reboots.
    #[arg(long)]
    no_reboot: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut opts = match (&args.disk, &args.flash) {
        (Some(disk), _) => BootOptions::disk(args.arch, disk),
        (None, Some(flash)) => BootOptions::new(args.arch, &args.image, flash),
        (None, None) => {
            eprintln!("qemu: --flash or --disk is needed");
            return ExitCode::FAILURE;
        }
    };
    opts.flash_size = args.flash_size;
    opts.flash_mtd = args.mtd;
    if !args.forward.is_empty() {
        opts.forwards = args.forward;
    }
    if let Some(link) = args.udp_link {
        opts.network = link;
        opts.forwards.clear();
    }
    opts.append = args.append;
    opts.no_reboot = args.no_reboot;
    opts.console = match args.console.as_str() {
        "stdio" => ConsoleMode::Stdio,
        other => match other.strip_prefix("socket:") {
            Some(path) => ConsoleMode::Socket(PathBuf::from(path)),
            None => {
                eprintln!("qemu: --console is stdio or socket:PATH, not {other:?}");
                return ExitCode::FAILURE;
            }
        },
    };
    if let ConsoleMode::Socket(_) = opts.console {
        eprintln!("qemu: with a socket console, connect to it to start the guest");
    }
    for f in &opts.forwards {
        eprintln!("qemu: 127.0.0.1:{} -> guest port {}", f.host, f.guest);
    }
    eprintln!("qemu: Ctrl-A X quits; 'poweroff' at the prompt stops the guest cleanly");
    let mut machine = match Machine::boot(&opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("qemu: {e}");
            return ExitCode::FAILURE;
        }
    };
    match machine.wait() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("qemu: QEMU exited with {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("qemu: {e}");
            ExitCode::FAILURE
        }
    }
}

fn udp_link(s: &str) -> Result<Network, String> {
    let bad = || format!("{s:?} is not QEMUPORT:PEERPORT");
    let (q, p) = s.split_once(':').ok_or_else(bad)?;
    Ok(Network::Udp {
        qemu_port: q.parse().map_err(|_| bad())?,
        peer_port: p.parse().map_err(|_| bad())?,
    })
}
