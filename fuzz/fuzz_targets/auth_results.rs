//! The removal of forged Authentication-Results fields from a received header section (a
//! hand-written field splitter over client bytes): never a panic, never a byte it was not asked
//! to remove lost, and applying it twice changes nothing more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::policy::auth::results::strip_forged;

fuzz_target!(|data: &[u8]| {
    let out = strip_forged(data, "mx.example.com");
    assert!(out.len() <= data.len());
    assert_eq!(strip_forged(&out, "mx.example.com"), out);
    // A field that is not ours is never touched.
    let none = strip_forged(data, "no-such-host.invalid");
    let ours_only = data
        .windows(22)
        .any(|w| w.eq_ignore_ascii_case(b"authentication-results"));
    if !ours_only {
        assert_eq!(none, data);
    }
});
