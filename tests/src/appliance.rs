//! The appliance image under QEMU, for end-to-end tests and the boot benchmark.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use qemu::{Arch, BootOptions, ConsoleMode, Forward};

/// The x86_64 image directory: `$POSTERN_IMAGE`, else `build/x86_64` of the workspace.
pub fn image_dir() -> PathBuf {
    match std::env::var_os("POSTERN_IMAGE") {
        Some(p) => PathBuf::from(p),
        None => image_dir_for(Arch::X86_64),
    }
}

/// An architecture's image directory (`make image ARCH=...`): `$POSTERN_BUILD/ARCH`, else
/// `build/ARCH` of the workspace.
pub fn image_dir_for(arch: Arch) -> PathBuf {
    let build = match std::env::var_os("POSTERN_BUILD") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build"),
    };
    build.join(arch.name())
}

/// One x86_64 QEMU at a time (see [`qemu_lock_for`]).
pub fn qemu_lock() -> MutexGuard<'static, ()> {
    qemu_lock_for(Arch::X86_64)
}

/// One QEMU per architecture at a time: a TCG guest takes one core, so the two architectures'
/// tests run side by side (halving the suite's time) and more would slow each other past any
/// sensible timeout on a 2-core box.
pub fn qemu_lock_for(arch: Arch) -> MutexGuard<'static, ()> {
    static X86_64: Mutex<()> = Mutex::new(());
    static AARCH64: Mutex<()> = Mutex::new(());
    let lock = match arch {
        Arch::X86_64 => &X86_64,
        Arch::Aarch64 => &AARCH64,
    };
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One test per architecture: `per_arch!(name)` after `fn name(arch: Arch)` makes the tests
/// `name::x86_64` and `name::aarch64`.
#[macro_export]
macro_rules! per_arch {
    ($name:ident) => {
        mod $name {
            #[test]
            fn x86_64() {
                super::$name(::qemu::Arch::X86_64)
            }
            #[test]
            fn aarch64() {
                super::$name(::qemu::Arch::Aarch64)
            }
        }
    };
}

#[path = "../../firmware/tests/common/ports.rs"]
mod ports;
pub use ports::free_port;

/// Options for a test boot in `dir`: console on a socket there, flash there, SMTP forwarded from a
/// free port (returned), QEMU exits when the guest reboots. The console starts at the command line
/// (`postern.console=prompt`: no first-boot wizard, no login); [`setup_boot`] keeps the wizard.
pub fn test_boot(dir: &std::path::Path) -> (BootOptions, u16) {
    let (mut opts, smtp) = test_boot_on(Arch::X86_64, dir);
    opts.image = image_dir();
    (opts, smtp)
}

/// [`test_boot`] as a box in the field boots: the wizard on a blank flash, then login and menu.
pub fn setup_boot(dir: &std::path::Path) -> (BootOptions, u16) {
    let (mut opts, smtp) = setup_boot_on(Arch::X86_64, dir);
    opts.image = image_dir();
    (opts, smtp)
}

/// [`setup_boot`] for `arch`.
pub fn setup_boot_on(arch: Arch, dir: &std::path::Path) -> (BootOptions, u16) {
    let opts = BootOptions::new(arch, image_dir_for(arch), dir.join("flash.img"));
    for_test(opts, dir)
}

/// [`test_boot`] for `arch`: the console starts at the command line.
pub fn test_boot_on(arch: Arch, dir: &std::path::Path) -> (BootOptions, u16) {
    let mut opts = BootOptions::new(arch, image_dir_for(arch), dir.join("flash.img"));
    opts.append.push("postern.console=prompt".to_string());
    for_test(opts, dir)
}

/// Options to boot a fresh copy (in `dir`) of `arch`'s flashable disk image under UEFI, as if just
/// written to a box's disk; console and forwards as in [`test_boot`]. Slot A's command line is
/// patched from `postern.console=wizard` to `prompt`, so the console starts at the command line.
pub fn test_disk_boot(arch: Arch, dir: &std::path::Path) -> (BootOptions, u16) {
    let image = image_dir_for(arch).join(format!("postern-{}.img", arch.name()));
    let disk = dir.join("disk.img");
    let status = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(&image)
        .arg(&disk)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "cannot copy {} (make image ARCH={})",
        image.display(),
        arch.name()
    );
    skip_wizard_on_disk(&disk);
    for_test(BootOptions::disk(arch, disk), dir)
}

/// Rewrites `postern.console=wizard` as `postern.console=prompt` (same length) in the disk's
/// slots, where the EFI system partition holds them as written: whole, one after the other.
fn skip_wizard_on_disk(disk: &std::path::Path) {
    let (from, to) = (b"postern.console=wizard", b"postern.console=prompt");
    use std::os::unix::fs::FileExt;
    let bytes = std::fs::read(disk).expect("read the disk image");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(disk)
        .expect("open the disk image");
    let mut patched = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(from.len()).position(|w| w == from) {
        // In place, so the copy stays sparse.
        file.write_all_at(to, (at + i) as u64)
            .expect("patch the disk image");
        at += i + from.len();
        patched += 1;
    }
    assert!(
        patched > 0,
        "no postern.console=wizard in {}",
        disk.display()
    );
}

fn for_test(mut opts: BootOptions, dir: &std::path::Path) -> (BootOptions, u16) {
    let smtp = free_port();
    opts.console = ConsoleMode::Socket(dir.join("console.sock"));
    opts.forwards = vec![Forward {
        host: smtp,
        guest: 25,
    }];
    opts.no_reboot = true;
    (opts, smtp)
}

/// Connects to a forwarded port until the guest answers with a greeting line; returns the line.
/// QEMU's user networking accepts every connection at once and only then tries the guest, so an
/// empty or slow read means "not yet": each try waits half a second, then a new connection goes in.
pub fn wait_for_banner(port: u16, limit: Duration) -> Result<(String, TcpStream), String> {
    let start = Instant::now();
    let mut last = String::from("nothing tried");
    while start.elapsed() < limit {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut line = String::new();
                match BufReader::new(&stream).read_line(&mut line) {
                    Ok(n) if n > 0 => return Ok((line, stream)),
                    Ok(_) => last = "connection closed without a greeting".into(),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "no SMTP greeting on 127.0.0.1:{port} within {} s: {last}",
        limit.as_secs()
    ))
}

/// [`wait_for_banner`] while reading the guest's console: a console nobody reads fills QEMU's
/// socket and stalls the guest on its serial writes (UEFI firmware is chatty there). On failure
/// the message carries the console transcript.
pub fn wait_for_banner_reading_console(
    machine: &mut qemu::Machine,
    port: u16,
    limit: Duration,
) -> Result<(String, TcpStream), String> {
    let start = Instant::now();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match wait_for_banner(port, left.min(Duration::from_secs(1))) {
            Ok(found) => return Ok(found),
            Err(e) if left.is_zero() => {
                let transcript = machine
                    .console()
                    .map(|c| c.transcript().to_string())
                    .unwrap_or_default();
                return Err(format!("{e}\n--- console ---\n{transcript}"));
            }
            Err(_) => {
                if let Some(c) = machine.console() {
                    c.read_for(Duration::from_millis(200))
                        .map_err(|e| format!("console: {e}"))?;
                }
            }
        }
    }
}

/// Says QUIT and returns the reply line.
pub fn quit(mut stream: TcpStream) -> std::io::Result<String> {
    stream.write_all(b"QUIT\r\n")?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    Ok(line)
}

/// How long a guest may take to boot to its prompt under TCG on a loaded box.
pub const BOOT: Duration = Duration::from_secs(180);
/// The same through UEFI, the boot loader and the x86 bzImage's own decompression (~15 s more
/// when idle), 5× as for [`BOOT`].
pub const DISK_BOOT: Duration = Duration::from_secs(300);
/// How long one console command or SMTP exchange with the guest may take.
pub const COMMAND: Duration = Duration::from_secs(60);
/// The console prompt.
pub const PROMPT: &str = "postern> ";

/// Boots `opts` and waits for the console prompt.
pub fn boot_to_prompt(opts: &qemu::BootOptions) -> qemu::Machine {
    let mut machine = qemu::Machine::boot(opts).unwrap_or_else(|e| panic!("{e}"));
    let console = machine.console().expect("console");
    console
        .wait_for(PROMPT, BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    machine
}

/// Runs one command at the console prompt and returns what it printed up to the next prompt.
pub fn console_command(machine: &mut qemu::Machine, line: &str) -> String {
    let c = machine.console().expect("console");
    c.send_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    c.wait_for(PROMPT, COMMAND)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Sends one message to anyone@example.com through the forwarded SMTP port; returns the reply to
/// the end of data.
pub fn send_through(port: u16, subject: &str) -> String {
    // QEMU accepts at once and reaches the guest later: first wait for a real greeting.
    let (_, s) = wait_for_banner(port, COMMAND).unwrap_or_else(|e| panic!("{e}"));
    let _ = quit(s);
    let mut c = crate::host::SmtpClient::connect_waiting(([127, 0, 0, 1], port).into(), COMMAND);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO host.test").starts_with("250"));
    assert!(
        c.cmd("MAIL FROM:<sender@outside.example>")
            .starts_with("250")
    );
    let rcpt = c.cmd("RCPT TO:<anyone@example.com>");
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(format!("Subject: {subject}\r\n\r\nbody\r\n.\r\n").as_bytes());
    let reply = c.reply();
    c.cmd("QUIT");
    reply
}

/// Provisions example.com at the console as the seed's secondary, forwarding every address to
/// `relay_port` on the host (QEMU's user network shows the host's loopback as 10.0.2.2).
pub fn provision_secondary(machine: &mut qemu::Machine, relay_port: u16) {
    let out = console_command(
        machine,
        &format!(
            "prov cd example.com zimbraMailCatchAllAddress @example.com \
             zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:[10.0.2.2]:{relay_port}"
        ),
    );
    assert!(!out.contains("ERROR"), "{out}");
}

/// [`send_through`] while the console is read (as a terminal attached to it would be), showing
/// what the guest printed when the exchange fails.
pub fn send_reading_console(machine: &mut qemu::Machine, port: u16, subject: &str) -> String {
    let subject = subject.to_string();
    let exchange = std::thread::spawn(move || send_through(port, &subject));
    let console = machine.console().expect("console");
    while !exchange.is_finished() {
        let _ = console.read_for(std::time::Duration::from_millis(200));
    }
    match exchange.join() {
        Ok(reply) => reply,
        Err(e) => {
            let _ = console.read_for(std::time::Duration::from_secs(5));
            let what = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}\n--- console ---\n{}", console.transcript())
        }
    }
}

/// Powers the guest off from its console and waits for QEMU to exit cleanly.
pub fn power_off(machine: &mut qemu::Machine) {
    let console = machine.console().unwrap();
    console.send_line("poweroff").unwrap();
    console
        .wait_for("powering off", COMMAND)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = machine
        .wait_exit(qemu::POWEROFF_GRACE * 2)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "QEMU exited with {status}");
}
