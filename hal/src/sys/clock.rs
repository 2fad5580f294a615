//! The wall clock: one SNTP exchange over UDP (the packets are the firmware's, sans-IO) and
//! setting the system time. rustix wraps `clock_settime`: no `unsafe` here.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The time now, as a duration since the Unix epoch (zero if the clock is before it).
pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Sends the request `build` makes from the send time to `server` and waits up to `wait` for a
/// datagram from it. Returns the reply and the times (since the Unix epoch) it was sent and
/// received.
pub fn exchange(
    server: SocketAddr,
    wait: Duration,
    build: impl FnOnce(Duration) -> Vec<u8>,
) -> io::Result<(Vec<u8>, Duration, Duration)> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect(server)?;
    let sent_at = now();
    socket.send(&build(sent_at))?;
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?;
        socket.set_read_timeout(Some(left))?;
        match socket.recv(&mut buf) {
            Ok(n) => return Ok((buf[..n].to_vec(), sent_at, now())),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sets the system's wall clock (CLOCK_REALTIME) to `since_epoch`. Needs CAP_SYS_TIME (PID 1 on
/// the appliance has it).
pub fn set(since_epoch: Duration) -> io::Result<()> {
    let timespec = rustix::time::Timespec {
        tv_sec: i64::try_from(since_epoch.as_secs())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "time out of range"))?,
        tv_nsec: since_epoch.subsec_nanos().into(),
    };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, timespec)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_answered_and_one_not() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, peer) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], peer).unwrap();
        });
        let (reply, sent, received) =
            exchange(addr, Duration::from_secs(2), |_| b"ping".to_vec()).unwrap();
        echo.join().unwrap();
        assert_eq!(reply, b"ping");
        assert!(received >= sent);
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = exchange(
            silent.local_addr().unwrap(),
            Duration::from_millis(200),
            |_| vec![0],
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
