//! The config and directory slots from flash bytes, as `Spool::read_slot` reads them, and what is
//! in them: the box config and the directory snapshot.
//!
//! The first byte picks the region, the slot and the mode:
//! - raw: any bytes as a slot. No panic; what passes is exactly what `write_slot` writes for its
//!   sequence number and data.
//! - written: a slot written with data from the input reads back as written; in the other slot
//!   or region it is refused (its CRC binds it to its place); one bit flipped or a write torn part
//!   way (the tail still erased) is refused, so the other slot stays in force.
//!
//! - journal: in raw mode, the bytes after a sound slot's data are walked as its journal (no
//!   panic, every record found is exactly what `append_slot` writes there); in written mode, two
//!   records made from the input follow the slot and read back in order, and one bit flipped in
//!   the second or the second torn part way leaves the first alone.
//!
//! Data that passes goes on to the region's decoder, which must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::config::stored::BoxConfig;
use postern::directory::Directory;
use postern::spool::fuzz::{
    SLOT_HEADER, decode_journal, decode_slot, encode_journal, encode_slot, region,
};
use postern_fuzz::{Counting, bounded, postcard_bound};

#[global_allocator]
static ALLOC: Counting = Counting;

const NONCE: u64 = 0x5EED_F1A5;

fn contents(directory: bool, data: &[u8]) {
    bounded(postcard_bound(data.len()), "slot contents", || {
        if directory {
            let _ = Directory::decode(data);
        } else {
            let _ = BoxConfig::decode(data);
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let [flags, at0, at1, rest @ ..] = data else {
        return;
    };
    let directory = flags & 1 != 0;
    let slot = u32::from(flags >> 1 & 1);
    let r = region(directory);
    let at = usize::from(u16::from_le_bytes([*at0, *at1]));
    if flags & 4 == 0 {
        if let Some((seq, payload)) = decode_slot(NONCE, r, slot, rest) {
            let written = encode_slot(NONCE, r, slot, seq, payload);
            assert_eq!(rest.get(..written.len()), Some(&written[..]));
            let tail = &rest[written.len()..];
            let (records, len, _) = decode_journal(NONCE, r, slot, seq, tail);
            let mut again = Vec::new();
            for (i, rec) in records.iter().enumerate() {
                again.extend(encode_journal(NONCE, r, slot, seq, i as u32, rec));
            }
            assert_eq!(&tail[..len], &again[..]);
            contents(directory, payload);
        }
        return;
    }
    let seq = u64::from(*at0) << 8 | u64::from(flags >> 3);
    let mut flash = encode_slot(NONCE, r, slot, seq, rest);
    let written = flash.len();
    // The slot's erase blocks are larger than what was written.
    flash.resize(written + usize::from(*at1 % 32), 0xFF);
    assert_eq!(decode_slot(NONCE, r, slot, &flash), Some((seq, rest)));
    assert_eq!(decode_slot(NONCE, r, slot ^ 1, &flash), None);
    assert_eq!(decode_slot(NONCE, region(!directory), slot, &flash), None);
    let bit = at % (written * 8);
    let mut bad = flash.clone();
    bad[bit / 8] ^= 1 << (bit % 8);
    assert_eq!(decode_slot(NONCE, r, slot, &bad), None, "bit {bit}");
    let cut = SLOT_HEADER.min(written) + at % (written - SLOT_HEADER + 1);
    let mut torn = flash.clone();
    torn[cut..written].fill(0xFF);
    if torn != flash {
        assert_eq!(decode_slot(NONCE, r, slot, &torn), None, "torn at {cut}");
    }
    journal(r, slot, seq, rest, at);
    contents(directory, rest);
});

/// Two records from `data` after a slot, read back; the second damaged or torn.
fn journal(r: postern::spool::Region, slot: u32, seq: u64, data: &[u8], at: usize) {
    let (one, two) = data.split_at(at % (data.len() + 1));
    let first = encode_journal(NONCE, r, slot, seq, 0, one);
    let second = encode_journal(NONCE, r, slot, seq, 1, two);
    let mut tail = [first.clone(), second.clone()].concat();
    let whole = tail.len();
    tail.resize(whole + at % 40, 0xFF);
    let (records, len, open) = decode_journal(NONCE, r, slot, seq, &tail);
    assert_eq!(records, [one.to_vec(), two.to_vec()]);
    assert_eq!((len, open), (whole, true));
    // Read as another slot's, or after another write of this one, nothing is taken.
    assert!(decode_journal(NONCE, r, slot ^ 1, seq, &tail).0.is_empty());
    assert!(decode_journal(NONCE, r, slot, seq + 1, &tail).0.is_empty());
    let bit = at % (second.len() * 8);
    let mut bad = tail.clone();
    bad[first.len() + bit / 8] ^= 1 << (bit % 8);
    let (records, len, open) = decode_journal(NONCE, r, slot, seq, &bad);
    assert_eq!(records, [one.to_vec()], "bit {bit}");
    assert_eq!((len, open), (first.len(), false));
    let cut = first.len() + at % second.len();
    let mut torn = tail.clone();
    torn[cut..whole].fill(0xFF);
    if torn == tail {
        // The second record's bytes from the cut on were 0xFF already: it is whole.
        return;
    }
    let (records, len, open) = decode_journal(NONCE, r, slot, seq, &torn);
    assert_eq!(records, [one.to_vec()], "torn at {cut}");
    assert_eq!(len, first.len());
    // Only a cut before any byte of the second leaves the tail open to appends.
    assert_eq!(open, cut == first.len());
}
