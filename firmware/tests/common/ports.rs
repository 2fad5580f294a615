//! Ports for the test peers. A port picked by binding port 0 and letting go is in the kernel's
//! ephemeral range, where the next bind to port 0 (the daemon under test, another peer) or a
//! connection's source port may take it before the peer binds it. These ports come from below
//! that range (32768-60999 by default), where the kernel picks none by itself.
//!
//! One copy for both test crates: `tests/src` includes this file by path.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

const FIRST: u16 = 20000;
const COUNT: u16 = 12000;

/// A TCP port on 127.0.0.1, free when picked, not handed out before by this process.
pub fn free_port() -> u16 {
    // Each process walks the range from its own offset: test binaries run one after another,
    // and a peer left over from one is skipped by the bind check.
    static NEXT: AtomicU16 = AtomicU16::new(u16::MAX);
    let _ = NEXT.compare_exchange(
        u16::MAX,
        (std::process::id() % u32::from(COUNT)) as u16,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let port = FIRST + n;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + COUNT);
}
