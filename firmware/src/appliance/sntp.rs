//! SNTP (RFC 4330), sans-IO: the client's request and what a server's reply says about our clock.
//! The exchange itself (one UDP datagram each way) and setting the clock are `hal::sys::clock`'s;
//! [`super::clock`] runs them. Replies come from the network: [`answer`] checks every field it
//! uses and never panics (fuzzed in `fuzz/fuzz_targets/sntp_reply.rs`).

use std::fmt;
use std::time::Duration;

/// The server's UDP port.
pub const PORT: u16 = 123;
/// An SNTP message without authentication.
pub const LEN: usize = 48;
/// Seconds from the NTP era 0 epoch (1900) to the Unix epoch (1970).
const UNIX_OFFSET: u64 = 2_208_988_800;

/// An NTP timestamp: seconds since 1900 (era 0, or era 1 after 2036) and a 32-bit fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From a time as a duration since the Unix epoch.
    pub fn from_unix(since_epoch: Duration) -> Timestamp {
        let secs = since_epoch.as_secs().wrapping_add(UNIX_OFFSET) & 0xffff_ffff;
        let frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
        Timestamp((secs << 32) | frac)
    }

    /// As a duration since the Unix epoch; seconds below 1970 in era 0 are era 1 (2036 on).
    pub fn to_unix(self) -> Duration {
        let secs = self.0 >> 32;
        let secs = match secs >= UNIX_OFFSET {
            true => secs - UNIX_OFFSET,
            false => secs + (1 << 32) - UNIX_OFFSET,
        };
        // Rounded to the nearest nanosecond, so a time survives a round trip exactly.
        let nanos = ((self.0 & 0xffff_ffff) * 1_000_000_000 + (1 << 31)) >> 32;
        Duration::new(secs, nanos as u32)
    }

    fn read(b: &[u8]) -> Timestamp {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[..8]);
        Timestamp(u64::from_be_bytes(x))
    }
}

/// The client's request: version 4, mode 3 (client), our time in the transmit timestamp (the
/// server copies it into its originate timestamp, which is how its reply is recognised).
pub fn request(transmit: Timestamp) -> [u8; LEN] {
    let mut m = [0u8; LEN];
    m[0] = (4 << 3) | 3;
    m[40..48].copy_from_slice(&transmit.0.to_be_bytes());
    m
}

/// What a good reply tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// How far our clock is behind the server's (negative: ahead), in nanoseconds.
    pub offset_ns: i128,
    /// The round trip, less the server's own time.
    pub delay: Duration,
    pub stratum: u8,
}

/// Why a reply is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SntpError {
    Length(usize),
    /// Not mode 4 (server) of version 3 or 4.
    NotServer {
        version: u8,
        mode: u8,
    },
    /// Leap indicator 3: the server's clock is not synchronised.
    Unsynchronised,
    /// Stratum 0: a kiss-o'-death (RFC 4330 §8), e.g. `RATE` or `DENY`.
    KissOfDeath(String),
    /// Stratum above 15.
    Stratum(u8),
    /// The originate timestamp is not our transmit timestamp: not the answer to our request.
    NotOurs,
    /// A zero transmit timestamp.
    NoTime,
}

impl fmt::Display for SntpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SntpError::Length(n) => write!(f, "a reply of {n} bytes (48 expected)"),
            SntpError::NotServer { version, mode } => {
                write!(f, "not a server reply (version {version}, mode {mode})")
            }
            SntpError::Unsynchronised => f.write_str("the server's clock is not synchronised"),
            SntpError::KissOfDeath(code) => write!(f, "the server refused: kiss code {code}"),
            SntpError::Stratum(s) => write!(f, "stratum {s}"),
            SntpError::NotOurs => f.write_str("a reply to another request"),
            SntpError::NoTime => f.write_str("a reply without a time"),
        }
    }
}

impl std::error::Error for SntpError {}

/// Checks `reply` against our request sent at `t1` and received at `t4` (both our clock), and
/// computes our clock's offset: ((T2 − T1) + (T3 − T4)) / 2 (RFC 4330 §5).
pub fn answer(reply: &[u8], t1: Timestamp, t4: Timestamp) -> Result<Answer, SntpError> {
    if reply.len() < LEN {
        return Err(SntpError::Length(reply.len()));
    }
    let (leap, version, mode) = (reply[0] >> 6, (reply[0] >> 3) & 7, reply[0] & 7);
    if !(3..=4).contains(&version) || mode != 4 {
        return Err(SntpError::NotServer { version, mode });
    }
    let stratum = reply[1];
    if stratum == 0 {
        let code = reply[12..16]
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
            .collect();
        return Err(SntpError::KissOfDeath(code));
    }
    if leap == 3 {
        return Err(SntpError::Unsynchronised);
    }
    if stratum > 15 {
        return Err(SntpError::Stratum(stratum));
    }
    if Timestamp::read(&reply[24..32]) != t1 {
        return Err(SntpError::NotOurs);
    }
    let (t2, t3) = (
        Timestamp::read(&reply[32..40]),
        Timestamp::read(&reply[40..48]),
    );
    if t3.0 == 0 {
        return Err(SntpError::NoTime);
    }
    let ns = |t: Timestamp| t.to_unix().as_nanos() as i128;
    let (t1, t2, t3, t4) = (ns(t1), ns(t2), ns(t3), ns(t4));
    let offset_ns = ((t2 - t1) + (t3 - t4)) / 2;
    let delay = ((t4 - t1) - (t3 - t2)).max(0);
    Ok(Answer {
        offset_ns,
        delay: Duration::from_nanos(u64::try_from(delay).unwrap_or(u64::MAX)),
        stratum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, ms: u32) -> Timestamp {
        Timestamp::from_unix(Duration::new(secs, ms * 1_000_000))
    }

    /// A server reply to a request sent at `t1`: received at `t2`, sent at `t3`.
    fn reply(t1: Timestamp, t2: Timestamp, t3: Timestamp) -> [u8; LEN] {
        let mut m = [0u8; LEN];
        m[0] = (4 << 3) | 4;
        m[1] = 2;
        m[24..32].copy_from_slice(&t1.0.to_be_bytes());
        m[32..40].copy_from_slice(&t2.0.to_be_bytes());
        m[40..48].copy_from_slice(&t3.0.to_be_bytes());
        m
    }

    #[test]
    fn timestamps_round_trip_across_the_2036_era() {
        for unix in [
            0,
            1_764_547_200,
            2_085_978_495,
            2_085_978_497,
            3_000_000_000,
        ] {
            let t = Duration::new(unix, 250_000_000);
            let back = Timestamp::from_unix(t).to_unix();
            assert!(
                back.abs_diff(t) < Duration::from_nanos(2),
                "{unix}: {back:?}"
            );
        }
        let req = request(at(1_764_547_200, 0));
        assert_eq!(req[0], 0x23, "version 4, mode 3");
        assert_eq!(Timestamp::read(&req[40..48]), at(1_764_547_200, 0));
    }

    #[test]
    fn the_offset_of_a_clock_ten_seconds_slow() {
        // We send at 1000.000 (our clock), the server (10 s ahead) receives at 1010.050 and
        // answers at 1010.060; we receive at 1000.110.
        let t1 = at(1_764_547_000, 0);
        let r = reply(t1, at(1_764_547_010, 50), at(1_764_547_010, 60));
        let a = answer(&r, t1, at(1_764_547_000, 110)).unwrap();
        assert_eq!(a.offset_ns, 10_000_000_000);
        assert_eq!(a.delay, Duration::from_millis(100));
        assert_eq!(a.stratum, 2);
    }

    #[test]
    fn replies_that_must_not_set_the_clock() {
        let t1 = at(1_764_547_000, 0);
        let t4 = at(1_764_547_000, 10);
        let good = reply(t1, at(1_764_547_000, 5), at(1_764_547_000, 6));
        assert!(answer(&good, t1, t4).is_ok());
        assert_eq!(answer(&good[..47], t1, t4), Err(SntpError::Length(47)));
        let mut m = good;
        m[0] = (4 << 3) | 3;
        assert!(matches!(
            answer(&m, t1, t4),
            Err(SntpError::NotServer { .. })
        ));
        let mut m = good;
        m[0] |= 3 << 6;
        assert_eq!(answer(&m, t1, t4), Err(SntpError::Unsynchronised));
        let mut m = good;
        m[1] = 0;
        m[12..16].copy_from_slice(b"RATE");
        assert_eq!(
            answer(&m, t1, t4),
            Err(SntpError::KissOfDeath("RATE".into()))
        );
        let mut m = good;
        m[1] = 16;
        assert_eq!(answer(&m, t1, t4), Err(SntpError::Stratum(16)));
        assert_eq!(answer(&good, at(1, 0), t4), Err(SntpError::NotOurs));
        let mut m = good;
        m[40..48].fill(0);
        assert_eq!(answer(&m, t1, t4), Err(SntpError::NoTime));
    }
}
