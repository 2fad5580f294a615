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
/// free port (returned), QEMU exits when the guest reboots.
pub fn test_boot(dir: &std::path::Path) -> (BootOptions, u16) {
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
