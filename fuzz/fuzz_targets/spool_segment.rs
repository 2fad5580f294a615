//! The superblock and segment headers from flash bytes, as `Spool::open` reads them.
//!
//! The first byte picks the decoder:
//! - superblock: any bytes; no panic, memory bounded, and a layout it accepts is written back as a
//!   superblock that reads to the same layout.
//! - part A: a header written for an erase count, then one bit flipped: it is still that
//!   segment's, with that count (a decayed segment of acknowledged mail is never taken for a dead
//!   one); any bytes classify without a panic, and what passes as sound is exactly what is written.
//! - part B: written and read back; bound to its segment; one bit off is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::spool::fuzz::{
    SEGMENT_A, classify_segment_a, decode_segment_a, decode_segment_b, encode_segment_a,
    encode_segment_b, reencode_superblock,
};
use postern_fuzz::{Counting, bounded, postcard_bound};

#[global_allocator]
static ALLOC: Counting = Counting;

const NONCE: u64 = 0x5EED_F1A5;

fn word<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut w = [0u8; N];
    for (d, s) in w.iter_mut().zip(bytes) {
        *d = *s;
    }
    w
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    match mode % 3 {
        0 => {
            let again = bounded(postcard_bound(rest.len()), "superblock", || {
                reencode_superblock(rest)
            });
            if let Ok(Some(bytes)) = again {
                assert_eq!(reencode_superblock(&bytes).ok(), Some(Some(bytes)));
            }
        }
        1 => {
            let segment = u32::from_le_bytes(word(rest));
            let count = u32::from_le_bytes(word(rest.get(4..).unwrap_or_default()));
            let bit = usize::from(rest.get(8).copied().unwrap_or(0)) % (SEGMENT_A * 8);
            let a = encode_segment_a(NONCE, segment, count);
            assert_eq!(
                classify_segment_a(NONCE, segment, &a),
                ("sound", Some(count))
            );
            assert_eq!(decode_segment_a(NONCE, segment.wrapping_add(1), &a), None);
            let mut bad = a.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                classify_segment_a(NONCE, segment, &bad),
                ("repaired", Some(count))
            );
            let raw = rest.get(9..).unwrap_or_default();
            let (label, n) = classify_segment_a(NONCE, segment, raw);
            if label == "sound" {
                assert_eq!(n, decode_segment_a(NONCE, segment, raw));
                assert_eq!(decode_segment_a(NONCE, segment.wrapping_add(1), raw), None);
            }
            assert!(raw.len() >= SEGMENT_A || label == "dead", "{label}");
        }
        _ => {
            let segment = u32::from_le_bytes(word(rest));
            let seq = u64::from_le_bytes(word(rest.get(4..).unwrap_or_default()));
            let floor = u64::from_le_bytes(word(rest.get(12..).unwrap_or_default()));
            let b = encode_segment_b(NONCE, segment, seq, floor);
            assert_eq!(decode_segment_b(NONCE, segment, &b), Some((seq, floor)));
            assert_eq!(decode_segment_b(NONCE, segment ^ 1, &b), None);
            let bit = usize::from(rest.get(20).copied().unwrap_or(0)) % (b.len() * 8);
            let mut bad = b.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_segment_b(NONCE, segment, &bad), None, "bit {bit}");
            let _ = decode_segment_b(NONCE, segment, rest.get(21..).unwrap_or_default());
        }
    }
});
