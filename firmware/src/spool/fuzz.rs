//! The spool's decoders of flash bytes, opened to the fuzz targets in `fuzz/` (a separate crate, so
//! `pub(crate)` is out of its reach). Flash is outside input: after a power cut or decay anything
//! may be there. These are thin wrappers: the checks live in the targets, the code under test is
//! the very code recovery runs.

use super::Region;
use super::error::SpoolError;
use super::format::{self, Layout};
use super::record::{self, CommitBody, Kind, RecipientBody, StateBody};
use super::slots;
use super::stamp::{self, RecipientStamp, StateStamp};
use crate::mail::Envelope;

/// Bytes of a record header.
pub const RECORD_HEADER: usize = record::HEADER as usize;
/// Bytes of a segment header (parts A and B).
pub const SEGMENT_HEADER: usize = format::SEG_HEADER as usize;
/// Bytes of part A of a segment header.
pub const SEGMENT_A: usize = format::SEG_A;
/// Bytes of a config or directory slot header.
pub const SLOT_HEADER: usize = slots::SLOT_HEADER;

/// A record header a scan read (its kind as the byte on flash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: u8,
    pub len: u32,
    pub qid: u64,
}

fn header(h: &record::Header) -> RecordHeader {
    RecordHeader {
        kind: h.kind as u8,
        len: h.len,
        qid: h.qid,
    }
}

/// What [`scan_records`] found: `(offset, header, body CRC holds)` per record, damaged headers
/// with what a one-bit correction read of them, and the append point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordScan {
    pub records: Vec<(u32, RecordHeader, bool)>,
    pub damaged: Vec<(u32, Option<RecordHeader>)>,
    pub append_at: Option<u32>,
}

/// The recovery scan of one segment's bytes from `start`.
pub fn scan_records(nonce: u64, segment: &[u8], start: u32) -> RecordScan {
    let s = record::scan(nonce, segment, start);
    RecordScan {
        records: s
            .records
            .iter()
            .map(|f| (f.offset, header(&f.header), f.body_ok))
            .collect(),
        damaged: s
            .damaged
            .iter()
            .map(|(off, h)| (*off, h.as_ref().map(header)))
            .collect(),
        append_at: s.append_at,
    }
}

/// A record as the spool writes it; `None` for a kind byte no record has.
pub fn encode_record(nonce: u64, kind: u8, qid: u64, body: &[u8]) -> Option<Vec<u8>> {
    Some(record::encode(nonce, Kind::from_u8(kind)?, qid, &[body]))
}

/// Flash bytes a record of `body_len` takes (header, body, padding).
pub fn record_size(body_len: u32) -> u32 {
    record::record_size(body_len)
}

/// The record at `off` as it was written, if it is at most one bit away from a sound one.
pub fn repair_record(nonce: u64, segment: &[u8], off: usize, room: usize) -> Option<Vec<u8>> {
    record::repair_record(nonce, segment, off, room).map(|(_, bytes)| bytes)
}

/// A record body read as recovery reads it, written back as the spool writes it: `None` where
/// recovery would skip it. Recipient and state bodies keep their stamp when they have one this
/// firmware reads (see `stamp.rs`).
pub fn reencode_record_body(kind: u8, body: &[u8]) -> Option<Vec<u8>> {
    fn again<T: serde::Serialize + serde::de::DeserializeOwned>(body: &[u8]) -> Option<Vec<u8>> {
        postcard::to_allocvec(&postcard::from_bytes::<T>(body).ok()?).ok()
    }
    fn stamped<B, S>(body: &[u8]) -> Option<Vec<u8>>
    where
        B: serde::Serialize + serde::de::DeserializeOwned,
        S: stamp::Stamp,
    {
        match stamp::decode::<B, S>(body).ok()? {
            (base, Some(s)) => stamp::encode(&base, &s).ok(),
            (base, None) => postcard::to_allocvec(&base).ok(),
        }
    }
    match Kind::from_u8(kind)? {
        Kind::Begin => again::<Envelope>(body),
        Kind::Commit => again::<CommitBody>(body),
        Kind::Recipient => stamped::<RecipientBody, RecipientStamp>(body),
        Kind::State => stamped::<StateBody, StateStamp>(body),
        // A chunk is its index and raw bytes; an end has no body to read.
        Kind::Chunk => (body.len() >= 4).then(|| body.to_vec()),
        Kind::End => Some(Vec::new()),
    }
}

/// What firmware from before stamps reads of a record body (the base body alone, re-encoded),
/// and what this firmware reads of it: `(old, new base, stamp time)`. `None` where recovery would
/// skip the record. Both firmwares must agree on the base, whatever follows it.
pub fn read_both_ways(kind: u8, body: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Option<u64>)> {
    fn both<B, S>(body: &[u8], at: impl Fn(&S) -> u64) -> Option<(Vec<u8>, Vec<u8>, Option<u64>)>
    where
        B: serde::Serialize + serde::de::DeserializeOwned,
        S: stamp::Stamp,
    {
        let old = postcard::to_allocvec(&postcard::from_bytes::<B>(body).ok()?).ok()?;
        let (base, s) = stamp::decode::<B, S>(body).ok()?;
        Some((old, postcard::to_allocvec(&base).ok()?, s.as_ref().map(at)))
    }
    match Kind::from_u8(kind)? {
        Kind::Recipient => both::<RecipientBody, RecipientStamp>(body, |s| s.at),
        Kind::State => both::<StateBody, StateStamp>(body, |s| s.at),
        _ => None,
    }
}

/// A superblock copy read back and written again; `Ok(None)` if it is erased.
pub fn reencode_superblock(bytes: &[u8]) -> Result<Option<Vec<u8>>, SpoolError> {
    Layout::decode(bytes)?.map(|l| l.encode()).transpose()
}

/// Part A of a segment header: the erase count, if sound.
pub fn decode_segment_a(nonce: u64, segment: u32, a: &[u8]) -> Option<u32> {
    format::decode_seg_a(nonce, segment, a)
}

/// Part A as written after an erase.
pub fn encode_segment_a(nonce: u64, segment: u32, erase_count: u32) -> Vec<u8> {
    format::encode_seg_a(nonce, segment, erase_count).to_vec()
}

/// How recovery classifies part A: `(label, erase count)`, the label one of `sound`,
/// `repaired`, `damaged`, `absent`, `dead`.
pub fn classify_segment_a(nonce: u64, segment: u32, a: &[u8]) -> (&'static str, Option<u32>) {
    match format::classify_seg_a(nonce, segment, a) {
        format::SegA::Sound(n) => ("sound", Some(n)),
        format::SegA::Repaired(n) => ("repaired", Some(n)),
        format::SegA::Damaged => ("damaged", None),
        format::SegA::Absent => ("absent", None),
        format::SegA::Dead => ("dead", None),
    }
}

/// Part B of a segment header: `(seq, qid floor)`, if sound.
pub fn decode_segment_b(nonce: u64, segment: u32, b: &[u8]) -> Option<(u64, u64)> {
    format::decode_seg_b(nonce, segment, b)
}

/// Part B as written when the segment is taken into use.
pub fn encode_segment_b(nonce: u64, segment: u32, seq: u64, qid_floor: u64) -> Vec<u8> {
    format::encode_seg_b(nonce, segment, seq, qid_floor).to_vec()
}

/// The region a slot target picks by a bit.
pub fn region(directory: bool) -> Region {
    if directory {
        Region::Directory
    } else {
        Region::Config
    }
}

/// A slot's `(seq, data)` as `Spool::read_slot` takes it from `bytes` (the slot's flash, header
/// first), if it holds a sound write.
pub fn decode_slot(nonce: u64, region: Region, slot: u32, bytes: &[u8]) -> Option<(u64, &[u8])> {
    let capacity = bytes.len().saturating_sub(SLOT_HEADER);
    let (seq, len) = slots::decode_slot_header(bytes, capacity)?;
    let data = bytes.get(SLOT_HEADER..SLOT_HEADER + len)?;
    slots::slot_data_ok(nonce, region, slot, bytes, data).then_some((seq, data))
}

/// A slot as `Spool::write_slot` writes it.
pub fn encode_slot(nonce: u64, region: Region, slot: u32, seq: u64, data: &[u8]) -> Vec<u8> {
    slots::encode_slot(nonce, region, slot, seq, data)
}

/// The journal records after a slot's data as `Spool::read_slot_journaled` walks them in
/// `bytes` (the flash after the data, as far as the journal may reach): the records, the bytes
/// they take, and whether what follows is erased.
pub fn decode_journal(
    nonce: u64,
    region: Region,
    slot: u32,
    seq: u64,
    bytes: &[u8],
) -> (Vec<Vec<u8>>, usize, bool) {
    let walked = slots::walk_journal(
        seq,
        bytes.len(),
        |at, buf: &mut [u8]| {
            let from = bytes.get(at..at + buf.len()).ok_or(())?;
            buf.copy_from_slice(from);
            Ok::<(), ()>(())
        },
        |header, data| slots::journal_data_ok(nonce, region, slot, header, data),
    );
    match walked {
        Ok(w) => (w.records, w.len, w.open),
        // The walk reads only inside `bytes`: not reached.
        Err(()) => (Vec::new(), 0, false),
    }
}

/// A journal record as `Spool::append_slot` writes it.
pub fn encode_journal(
    nonce: u64,
    region: Region,
    slot: u32,
    seq: u64,
    index: u32,
    data: &[u8],
) -> Vec<u8> {
    slots::encode_journal(nonce, region, slot, seq, index, data)
}
