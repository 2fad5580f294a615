//! Records: the unit of the spool log. Each is a 24-byte header (type, body length, queue id, body
//! CRC, header CRC) and a body, padded to 4 bytes.
//!
//! ```text
//! 0      1      4        8          16         20         24
//! | kind | 0xFF | len u32 | qid u64  | body crc | hdr crc  | body ... | pad to 4 |
//! ```
//!
//! The header has its own CRC so that a damaged body still tells which message it belonged to (the
//! damage then costs that message only) and where the next record starts. Bodies are postcard,
//! except chunk bodies, which are a little-endian chunk index followed by the raw message bytes.
//! Recipient and state bodies are followed by a stamp (when, and a state change's history; see
//! `stamp.rs`) that a reader without stamps leaves alone.

use serde::{Deserialize, Serialize};

use crate::mail::{QueueState, RecipientOutcome};

use super::format::{align4, keyed_crc, le32, le64};

pub(crate) const HEADER: u32 = 24;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A message begins: its envelope.
    Begin = 1,
    /// Some bytes of its body.
    Chunk = 2,
    /// The whole body is on flash: the message exists once this record is synced.
    Commit = 3,
    /// One recipient reached its final outcome.
    Recipient = 4,
    /// Queue state change (hold, release, deferred until).
    State = 5,
    /// The message is gone from the queue.
    End = 6,
}

impl Kind {
    pub(crate) fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Begin,
            2 => Kind::Chunk,
            3 => Kind::Commit,
            4 => Kind::Recipient,
            5 => Kind::State,
            6 => Kind::End,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommitBody {
    pub chunks: u32,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecipientBody {
    pub index: u32,
    pub outcome: RecipientOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateBody {
    /// Counts state changes of this message, so that the newest wins wherever compaction put the
    /// records.
    pub version: u32,
    pub state: QueueState,
}

/// Bytes a record of `body_len` takes on flash.
pub(crate) fn record_size(body_len: u32) -> u32 {
    align4(HEADER + body_len)
}

/// A record ready to write: header and body (without padding; the pad stays erased).
pub(crate) fn encode(nonce: u64, kind: Kind, qid: u64, body: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, nonce, kind, qid, body);
    out
}

/// [`encode`] into `out` (emptied first), with room left for the pad: the spool writer encodes
/// every record into one buffer it keeps.
pub(crate) fn encode_into(out: &mut Vec<u8>, nonce: u64, kind: Kind, qid: u64, body: &[&[u8]]) {
    let len: usize = body.iter().map(|b| b.len()).sum();
    out.clear();
    out.reserve(record_size(len as u32) as usize);
    out.push(kind as u8);
    out.extend_from_slice(&[0xFF; 3]);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&qid.to_le_bytes());
    let body_crc = keyed_crc(nonce, body);
    out.extend_from_slice(&body_crc.to_le_bytes());
    let hdr_crc = keyed_crc(nonce, &[&out[..20]]);
    out.extend_from_slice(&hdr_crc.to_le_bytes());
    for b in body {
        out.extend_from_slice(b);
    }
}

/// A header that passed its CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: Kind,
    pub len: u32,
    pub qid: u64,
    pub body_crc: u32,
}

/// Parses a header; `None` if its CRC, kind or length is wrong. `room` is how many bytes follow
/// the header in the segment.
pub(crate) fn decode_header(nonce: u64, h: &[u8], room: usize) -> Option<Header> {
    let h = h.get(..HEADER as usize)?;
    if keyed_crc(nonce, &[&h[..20]]) != le32(&h[20..24]) {
        return None;
    }
    let kind = Kind::from_u8(h[0])?;
    let len = le32(&h[4..8]);
    if len as usize > room {
        return None;
    }
    Some(Header {
        kind,
        len,
        qid: le64(&h[8..16]),
        body_crc: le32(&h[16..20]),
    })
}

pub(crate) fn body_ok(nonce: u64, header: &Header, body: &[u8]) -> bool {
    keyed_crc(nonce, &[body]) == header.body_crc
}

/// One record found by a segment scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    /// Offset in the segment.
    pub offset: u32,
    pub header: Header,
    /// False if the header was sound but the body failed its CRC.
    pub body_ok: bool,
}

/// What a scan of one segment's bytes found.
#[derive(Debug, Default)]
pub(crate) struct SegmentScan {
    pub records: Vec<Found>,
    /// Offsets of damaged headers, with what a one-bit correction could still read of them (the
    /// record itself is never trusted, but its message can be named and reported).
    pub damaged: Vec<(u32, Option<Header>)>,
    /// Where the next record can go, if everything after it is erased.
    pub append_at: Option<u32>,
}

/// Walks the records of a segment whose bytes are `buf`, starting at `start`. A damaged header
/// makes the scan look for the next sound record (header and body CRCs both good) at every 4-byte
/// offset; keyed CRCs make a false match practically impossible.
pub(crate) fn scan(nonce: u64, buf: &[u8], start: u32) -> SegmentScan {
    let mut out = SegmentScan::default();
    let mut off = start as usize;
    while off + HEADER as usize <= buf.len() {
        let h = &buf[off..off + HEADER as usize];
        if h.iter().all(|&b| b == 0xFF) && buf[off..].iter().all(|&b| b == 0xFF) {
            out.append_at = Some(off as u32);
            return out;
        }
        let room = buf.len() - off - HEADER as usize;
        match decode_header(nonce, h, room) {
            Some(header) => {
                let body = &buf[off + HEADER as usize..off + HEADER as usize + header.len as usize];
                out.records.push(Found {
                    offset: off as u32,
                    header,
                    body_ok: body_ok(nonce, &header, body),
                });
                off += record_size(header.len) as usize;
            }
            None => match repair_header(nonce, h, room) {
                Some((header, _)) => {
                    out.damaged.push((off as u32, Some(header)));
                    off += record_size(header.len) as usize;
                }
                None => {
                    out.damaged.push((off as u32, None));
                    match resync(nonce, buf, off + 4) {
                        Some(next) => off = next,
                        None => return out,
                    }
                }
            },
        }
    }
    if off >= buf.len() {
        out.append_at = Some(buf.len() as u32);
    }
    out
}

/// A header with one flipped bit still names its message: try every single-bit correction.
/// Returns it with its bytes as corrected.
fn repair_header(nonce: u64, h: &[u8], room: usize) -> Option<(Header, [u8; HEADER as usize])> {
    if h.iter().all(|&b| b == 0xFF) {
        return None;
    }
    let mut fixed = [0u8; HEADER as usize];
    fixed.copy_from_slice(h.get(..HEADER as usize)?);
    for bit in 0..HEADER as usize * 8 {
        fixed[bit / 8] ^= 1 << (bit % 8);
        if let Some(header) = decode_header(nonce, &fixed, room) {
            return Some((header, fixed));
        }
        fixed[bit / 8] ^= 1 << (bit % 8);
    }
    None
}

/// The record at `off` in `buf` as it was written, if it is at most one bit away from a sound
/// record (header and body CRCs both hold after the correction). `room` is how many bytes follow
/// the header in the segment.
///
/// A power cut that tears a write leaves a record whose end is still erased, many bits away;
/// decay flips one bit of a record that was whole. One bit off is the one case where the two look
/// alike (a tear just before the last bit), and either way the corrected record is what was
/// written, so it may be trusted.
pub(crate) fn repair_record(
    nonce: u64,
    buf: &[u8],
    off: usize,
    room: usize,
) -> Option<(Header, Vec<u8>)> {
    let h = buf.get(off..off.checked_add(HEADER as usize)?)?;
    let mut header_bytes = [0u8; HEADER as usize];
    header_bytes.copy_from_slice(h);
    let (header, header_fixed) = match decode_header(nonce, h, room) {
        Some(header) => (header, false),
        None => {
            let (header, fixed) = repair_header(nonce, h, room)?;
            header_bytes = fixed;
            (header, true)
        }
    };
    let start = off + HEADER as usize;
    let mut body = buf.get(start..start + header.len as usize)?.to_vec();
    if !body_ok(nonce, &header, &body) {
        // One bit in all: a header that needed a correction must come with a sound body.
        if header_fixed {
            return None;
        }
        let bit = repair_body_bit(nonce, &header, &body)?;
        body[bit / 8] ^= 1 << (bit % 8);
    }
    // The header's bytes as they are (or as corrected), not as this firmware would write them:
    // its CRC covers bytes a later format may use.
    let mut out = Vec::with_capacity(HEADER as usize + body.len());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(&body);
    Some((header, out))
}

/// CRC-32C as `hal::crc32c` computes it (reflected): the polynomial in reflected form.
const CRC32C_REFLECTED: u32 = 0x82F6_3B78;

/// The bit (byte × 8 + bit) whose flip makes `body` match its CRC, if one does.
///
/// A CRC is linear: flipping bit `k` of byte `j` changes the CRC by a value that depends only on
/// how far that bit is from the end of the body (the bit's shift-register state after every later
/// byte), whatever the nonce and the other bytes. So instead of recomputing the CRC for every
/// candidate bit, walk back from the end, one byte at a time, and compare each bit's effect with
/// the difference actually found.
fn repair_body_bit(nonce: u64, header: &Header, body: &[u8]) -> Option<usize> {
    let syndrome = keyed_crc(nonce, &[body]) ^ header.body_crc;
    if syndrome == 0 {
        return None;
    }
    let step = |mut r: u32| {
        for _ in 0..8 {
            r = if r & 1 == 1 {
                (r >> 1) ^ CRC32C_REFLECTED
            } else {
                r >> 1
            };
        }
        r
    };
    // effect[k]: what flipping bit k of the byte `back` bytes from the end does to the CRC.
    let mut effect: [u32; 8] = std::array::from_fn(|k| step(1 << k));
    for back in 0..body.len() {
        if let Some(k) = effect.iter().position(|&e| e == syndrome) {
            return Some((body.len() - 1 - back) * 8 + k);
        }
        for e in &mut effect {
            *e = step(*e);
        }
    }
    None
}

fn resync(nonce: u64, buf: &[u8], from: usize) -> Option<usize> {
    let mut off = from;
    while off + HEADER as usize <= buf.len() {
        let room = buf.len() - off - HEADER as usize;
        if let Some(h) = decode_header(nonce, &buf[off..], room) {
            let body = &buf[off + HEADER as usize..off + HEADER as usize + h.len as usize];
            if body_ok(nonce, &h, body) {
                return Some(off);
            }
        }
        off += 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_with(records: &[Vec<u8>], size: usize) -> Vec<u8> {
        let mut buf = vec![0xFF; size];
        let mut off = 0;
        for r in records {
            buf[off..off + r.len()].copy_from_slice(r);
            off += align4(r.len() as u32) as usize;
        }
        buf
    }

    #[test]
    fn scan_finds_records_and_the_append_point() {
        let a = encode(7, Kind::Begin, 1, &[b"envelope"]);
        let b = encode(7, Kind::Chunk, 1, &[&0u32.to_le_bytes(), b"hello"]);
        let buf = segment_with(&[a.clone(), b.clone()], 256);
        let s = scan(7, &buf, 0);
        assert_eq!(s.records.len(), 2);
        assert!(s.records.iter().all(|r| r.body_ok));
        assert_eq!(s.records[1].header.kind, Kind::Chunk);
        assert_eq!(s.records[1].offset, align4(a.len() as u32));
        assert_eq!(
            s.append_at,
            Some(align4(a.len() as u32) + align4(b.len() as u32))
        );
    }

    #[test]
    fn damaged_body_keeps_its_header_and_the_scan_goes_on() {
        let a = encode(7, Kind::Begin, 1, &[b"envelope"]);
        let b = encode(7, Kind::End, 2, &[]);
        let mut buf = segment_with(&[a.clone(), b], 256);
        buf[HEADER as usize + 2] ^= 0x10;
        let s = scan(7, &buf, 0);
        assert_eq!(s.records.len(), 2);
        assert!(!s.records[0].body_ok);
        assert_eq!(s.records[0].header.qid, 1);
        assert!(s.records[1].body_ok);
    }

    #[test]
    fn damaged_header_resyncs_to_the_next_record() {
        let a = encode(7, Kind::Begin, 1, &[b"envelope"]);
        let b = encode(7, Kind::End, 2, &[]);
        let mut buf = segment_with(&[a, b], 256);
        buf[9] ^= 0x01;
        buf[10] ^= 0x01;
        let s = scan(7, &buf, 0);
        assert_eq!(s.damaged, vec![(0, None)]);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.records[0].header.qid, 2);
        assert!(s.append_at.is_some());
    }

    #[test]
    fn one_bit_in_a_header_still_names_the_message() {
        let a = encode(7, Kind::Commit, 0x1234, &[b"commit"]);
        let b = encode(7, Kind::End, 2, &[]);
        let mut buf = segment_with(&[a, b], 256);
        buf[9] ^= 0x40;
        let s = scan(7, &buf, 0);
        assert_eq!(s.damaged.len(), 1);
        let h = s.damaged[0].1.unwrap();
        assert_eq!((h.kind, h.qid), (Kind::Commit, 0x1234));
        assert_eq!(s.records.len(), 1, "the scan goes on after it");
    }

    #[test]
    fn torn_tail_leaves_no_append_point() {
        let a = encode(7, Kind::Begin, 1, &[b"envelope"]);
        let b = encode(7, Kind::Chunk, 1, &[&0u32.to_le_bytes(), b"hello world"]);
        let mut buf = segment_with(&[a, b.clone()], 256);
        let start = 32;
        for x in &mut buf[start + 10..start + b.len()] {
            *x = 0xFF;
        }
        let s = scan(7, &buf, 0);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.append_at, None, "never append after half-written bytes");
    }

    #[test]
    fn one_bit_anywhere_in_a_record_is_repaired_to_what_was_written() {
        let body: Vec<u8> = (0..300u32).map(|i| (i * 31) as u8).collect();
        let rec = encode(7, Kind::Chunk, 0x55, &[&0u32.to_le_bytes(), &body]);
        let buf = segment_with(std::slice::from_ref(&rec), 512);
        let room = 512 - HEADER as usize;
        assert_eq!(
            repair_record(7, &buf, 0, room).map(|r| r.1),
            Some(rec.clone())
        );
        for bit in 0..rec.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                repair_record(7, &bad, 0, room).map(|r| r.1).as_deref(),
                Some(&rec[..]),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn a_repaired_record_keeps_the_header_bytes_it_was_written_with() {
        // A header whose reserved bytes a later format filled in, under a good CRC.
        let mut rec = encode(7, Kind::End, 3, &[b"x"]);
        rec[1] = 0x00;
        let crc = keyed_crc(7, &[&rec[..20]]);
        rec[20..24].copy_from_slice(&crc.to_le_bytes());
        let buf = segment_with(std::slice::from_ref(&rec), 64);
        let room = 64 - HEADER as usize;
        assert_eq!(
            repair_record(7, &buf, 0, room).map(|r| r.1),
            Some(rec.clone())
        );
        let mut bad = buf.clone();
        bad[2] ^= 0x04;
        assert_eq!(repair_record(7, &bad, 0, room).map(|r| r.1), Some(rec));
    }

    #[test]
    fn a_torn_record_is_not_repaired() {
        let body: Vec<u8> = (0..300u32).map(|i| (i * 31) as u8).collect();
        let rec = encode(7, Kind::Commit, 0x55, &[&body]);
        let mut buf = segment_with(std::slice::from_ref(&rec), 512);
        // The write stopped half way: the rest of the record is still erased.
        for b in &mut buf[HEADER as usize + 100..rec.len()] {
            *b = 0xFF;
        }
        assert!(repair_record(7, &buf, 0, 512 - HEADER as usize).is_none());
        let mut two = segment_with(&[rec], 512);
        two[HEADER as usize + 3] ^= 0x01;
        two[3] ^= 0x10;
        assert!(
            repair_record(7, &two, 0, 512 - HEADER as usize).is_none(),
            "two bits, one in the header and one in the body, are not one bit"
        );
    }

    #[test]
    fn a_record_forged_in_a_body_needs_the_nonce() {
        let forged = encode(1, Kind::End, 99, &[]);
        let mut buf = vec![0u8; 64];
        buf[8..8 + forged.len()].copy_from_slice(&forged);
        let s = scan(2, &buf, 0);
        assert!(s.records.is_empty());
    }
}
