//! An SNTP server (RFC 4330) on the host's 127.0.0.1:123 for the QEMU tests: QEMU's user network
//! shows the host's loopback to the guest as 10.0.2.2, and the box asks its NTP servers on port
//! 123 only. It answers every request as a stratum 2 server whose clock is [`AHEAD`] of the
//! host's, so a box that took its time shows it plainly. One per test process (the port is
//! fixed), shared by the architectures' tests; it frames its packets itself rather than with the
//! product's codec, so a bug there cannot hide in both.

use std::net::UdpSocket;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far the server's clock is ahead of the host's: ten days.
pub const AHEAD: Duration = Duration::from_secs(10 * 86_400);
/// Seconds from 1900 (NTP's era 0) to 1970.
const NTP_TO_UNIX: u64 = 2_208_988_800;

/// Requests answered so far.
static ANSWERED: AtomicUsize = AtomicUsize::new(0);

/// Starts the server once (binding 127.0.0.1:123 needs root, as the QEMU tests run); panics with
/// the reason when it cannot.
pub fn start() {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        let socket = UdpSocket::bind("127.0.0.1:123")
            .map_err(|e| format!("the test SNTP server cannot bind 127.0.0.1:123: {e}"))?;
        std::thread::Builder::new()
            .name("sntp-server".into())
            .spawn(move || serve(&socket))
            .map_err(|e| e.to_string())?;
        Ok(())
    });
    if let Err(e) = started {
        panic!("{e}");
    }
}

/// How many requests were answered.
pub fn answered() -> usize {
    ANSWERED.load(Ordering::SeqCst)
}

fn serve(socket: &UdpSocket) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        // A client request: 48 bytes at least, mode 3.
        if n < 48 || buf[0] & 7 != 3 {
            continue;
        }
        let now = ntp_time(SystemTime::now() + AHEAD);
        let mut reply = [0u8; 48];
        reply[0] = 4 << 3 | 4; // no leap warning, version 4, server
        reply[1] = 2; // stratum
        reply[2] = buf[2]; // poll, as asked
        reply[3] = 0xEC; // precision 2^-20
        reply[12..16].copy_from_slice(b"TEST");
        reply[16..24].copy_from_slice(&now.to_be_bytes()); // reference
        reply[24..32].copy_from_slice(&buf[40..48]); // originate: the client's transmit
        reply[32..40].copy_from_slice(&now.to_be_bytes()); // receive
        reply[40..48].copy_from_slice(&now.to_be_bytes()); // transmit
        if socket.send_to(&reply, peer).is_ok() {
            ANSWERED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `at` as a 64-bit NTP timestamp.
fn ntp_time(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + NTP_TO_UNIX;
    let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_count_from_1900_with_a_binary_fraction() {
        let t = ntp_time(UNIX_EPOCH + Duration::from_millis(1500));
        assert_eq!(t >> 32, NTP_TO_UNIX + 1);
        assert_eq!(t & 0xFFFF_FFFF, 1 << 31);
    }
}
