//! Queue ids: sortable by arrival, unique within a box, shown as Postfix shows its long queue ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A queue id: the time of arrival in milliseconds and a counter, so ids sort by arrival and stay
/// unique within a box. Shown as 13 characters of Crockford base 32, like Postfix's long queue ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(pub u64);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const QID_LEN: usize = 13;

impl QueueId {
    /// Bits given to the per-millisecond counter.
    pub const COUNTER_BITS: u32 = 20;

    /// The id for the `counter`th message of millisecond `unix_millis`.
    pub fn new(unix_millis: u64, counter: u32) -> QueueId {
        let counter = u64::from(counter) & ((1 << Self::COUNTER_BITS) - 1);
        QueueId((unix_millis << Self::COUNTER_BITS) | counter)
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    pub fn unix_millis(self) -> u64 {
        self.0 >> Self::COUNTER_BITS
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; QID_LEN];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = CROCKFORD[(v & 31) as usize];
            v >>= 5;
        }
        // Only ASCII from the alphabet above was written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// A string that is not a queue id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQueueId(pub String);

impl fmt::Display for BadQueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a queue id (13 characters of 0-9 A-Z)",
            self.0
        )
    }
}

impl std::error::Error for BadQueueId {}

impl FromStr for QueueId {
    type Err = BadQueueId;

    fn from_str(s: &str) -> Result<QueueId, BadQueueId> {
        let bad = || BadQueueId(s.to_string());
        if s.len() != QID_LEN {
            return Err(bad());
        }
        let mut v: u64 = 0;
        for (i, c) in s.bytes().enumerate() {
            let c = c.to_ascii_uppercase();
            let digit = CROCKFORD.iter().position(|&d| d == c).ok_or_else(bad)? as u64;
            // 13 digits of 5 bits is 65 bits: the first digit may only carry 4.
            if i == 0 && digit > 15 {
                return Err(bad());
            }
            v = (v << 5) | digit;
        }
        Ok(QueueId(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids_round_trip_and_sort_as_text() {
        let a = QueueId::new(1_795_000_000_000, 1);
        let b = QueueId::new(1_795_000_000_000, 2);
        let c = QueueId::new(1_795_000_000_001, 0);
        for id in [a, b, c, QueueId(0), QueueId(u64::MAX)] {
            assert_eq!(id.to_string().parse::<QueueId>(), Ok(id));
            assert_eq!(id.to_string().len(), 13);
        }
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
        assert_eq!(c.unix_millis(), 1_795_000_000_001);
    }

    #[test]
    fn bad_queue_ids_are_refused() {
        for s in [
            "",
            "ABC",
            "GZZZZZZZZZZZZ",
            "0000000000-00",
            "00000000000000",
        ] {
            assert!(s.parse::<QueueId>().is_err(), "{s}");
        }
    }
}
