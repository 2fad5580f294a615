//! The wall clock as the stages stamp mail with it: whole Unix seconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch now; 0 while the clock is set before it (a box without a
/// battery-backed clock before its first SNTP answer may be).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
