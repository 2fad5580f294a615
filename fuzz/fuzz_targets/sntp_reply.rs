//! The appliance's SNTP client on whatever comes back from port 123.
//!
//! Input: 8 bytes of the request's transmit timestamp, 8 of the receive time, then the reply.
//! Properties:
//! - no panic, whatever the bytes and times (timestamps from either NTP era);
//! - a reply that is taken answers our request (its originate timestamp is ours), comes from a
//!   synchronised server of stratum 1 to 15, and its delay is never negative;
//! - the offset of a reply taken is the same when the reply is handed over with bytes after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::appliance::sntp::{self, Timestamp};

fn stamp(b: &[u8]) -> Timestamp {
    let mut x = [0u8; 8];
    x.copy_from_slice(b);
    Timestamp(u64::from_be_bytes(x))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (t1, t4, reply) = (stamp(&data[..8]), stamp(&data[8..16]), &data[16..]);
    let Ok(answer) = sntp::answer(reply, t1, t4) else {
        return;
    };
    assert_eq!(&reply[24..32], &t1.0.to_be_bytes());
    assert!((1..=15).contains(&answer.stratum));
    assert_ne!(reply[0] >> 6, 3);
    let mut longer = reply.to_vec();
    longer.extend_from_slice(b"trailer");
    assert_eq!(sntp::answer(&longer, t1, t4), Ok(answer));
});
