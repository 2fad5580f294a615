//! The appliance image under QEMU, for end-to-end tests and the boot benchmark.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use qemu::{Arch, BootOptions, ConsoleMode, Forward};

/// The x86_64 image directory: `$POSTERN_IMAGE`, else `build/x86_64` of the workspace.
pub fn image_dir() -> PathBuf {
    match std::env::var_os("POSTERN_IMAGE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/x86_64"),
    }
}

/// One QEMU at a time: two TCG guests on a 2-core box slow each other past any sensible timeout.
pub fn qemu_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Options for a test boot in `dir`: console on a socket there, flash there, SMTP forwarded from a
/// free port (returned), QEMU exits when the guest reboots. The console starts at the command line
/// (`postern.console=prompt`: no first-boot wizard, no login); [`setup_boot`] keeps the wizard.
pub fn test_boot(dir: &std::path::Path) -> (BootOptions, u16) {
    let (mut opts, smtp) = setup_boot(dir);
    opts.append.push("postern.console=prompt".to_string());
    (opts, smtp)
}

/// [`test_boot`] as a box in the field boots: the wizard on a blank flash, then login and menu.
pub fn setup_boot(dir: &std::path::Path) -> (BootOptions, u16) {
    let smtp = free_port();
    let mut opts = BootOptions::new(Arch::X86_64, image_dir(), dir.join("flash.img"));
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

/// Says QUIT and returns the reply line.
pub fn quit(mut stream: TcpStream) -> std::io::Result<String> {
    stream.write_all(b"QUIT\r\n")?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    Ok(line)
}

/// How long a guest may take to boot to its prompt under TCG on a loaded box.
pub const BOOT: Duration = Duration::from_secs(180);
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
    let mut c = crate::host::SmtpClient::connect(([127, 0, 0, 1], port).into());
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
