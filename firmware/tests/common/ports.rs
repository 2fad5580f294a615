//! Ports for the test peers. A port picked by binding port 0 and letting go is in the kernel's
//! ephemeral range, where the next bind to port 0 (the daemon under test, another peer) or a
//! connection's source port may take it before the peer binds it. These ports come from below
//! that range (32768-60999 by default), where the kernel picks none by itself.
//!
//! `make test` runs two test binaries at once (the QEMU tests beside the rest), and a port that
//! one process has picked is free until its peer binds it: so each pick is also claimed with a
//! lock on a file named by the port, held until the process ends (the kernel lets go of it
//! then, whatever way the process ended, so no claim is ever left stale).
//!
//! One copy for both test crates: `tests/src` includes this file by path.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, OnceLock};

const FIRST: u16 = 20000;
const COUNT: u16 = 12000;

/// A TCP port on 127.0.0.1, free when picked and claimed by no other test process, and not
/// handed out before by this one.
pub fn free_port() -> u16 {
    // Each process walks the range from its own offset, so two at once seldom meet: the pid
    // times ~0.618 of the range puts nearby pids far apart.
    static NEXT: AtomicU16 = AtomicU16::new(u16::MAX);
    // Claims this process holds: dropped (and so let go) only when it exits.
    static CLAIMS: Mutex<Vec<File>> = Mutex::new(Vec::new());
    let _ = NEXT.compare_exchange(
        u16::MAX,
        (std::process::id().wrapping_mul(7417) % u32::from(COUNT)) as u16,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let dir = claims_dir();
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let port = FIRST + n;
        let Some(claim) = claim(dir, port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            CLAIMS
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(claim);
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + COUNT);
}

/// The directory of the claims' lock files, shared by every test process of this user; made
/// once per process.
fn claims_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("postern-test-ports");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("{}: {e}", dir.display());
        }
        dir
    })
}

/// The lock on `port`'s file, or None when another process (or this one) holds it.
fn claim(dir: &Path, port: u16) -> Option<File> {
    let path = dir.join(port.to_string());
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // A lock is per open file, so this process's own earlier claims refuse it too.
    file.try_lock().ok().map(|()| file)
}
