//! Spool records from flash bytes, as recovery reads them after a power cut or decay.
//!
//! The first byte picks a mode:
//! - raw: any bytes as a segment. No panic, memory bounded by the input; every record reported
//!   lies inside the segment, in order; the append point is followed by erased bytes only; a
//!   sound record "repairs" to itself and its body reads back as it is written.
//! - built: records the spool would write, laid out as in a segment, then one bit flipped or the
//!   last record torn. Undamaged, the scan finds exactly them; one bit off, the record is repaired
//!   to what was written and the scan still finds every other record; torn, the records before it
//!   stay sound and the torn one is never taken as sound.
//! - body: any bytes as the body of a record of the second byte's kind: read back as written;
//!   a recipient or state body reads the same base whether or not the reader knows stamps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::spool::fuzz::{
    RECORD_HEADER, RecordScan, encode_record, read_both_ways, record_size, reencode_record_body,
    repair_record, scan_records,
};
use postern_fuzz::{Counting, bounded, postcard_bound};

#[global_allocator]
static ALLOC: Counting = Counting;

const NONCE: u64 = 0x5EED_F1A5;

fn scan(buf: &[u8], start: u32) -> RecordScan {
    bounded(16 * buf.len() + (64 << 10), "scan", || {
        scan_records(NONCE, buf, start)
    })
}

fn raw(buf: &[u8], start: u32) {
    let s = scan(buf, start);
    let mut end = start as usize;
    for &(off, h, body_ok) in &s.records {
        let off = off as usize;
        assert!(off >= end, "records overlap or go back: {s:?}");
        end = off + RECORD_HEADER + h.len as usize;
        assert!(end <= buf.len(), "record past the segment: {s:?}");
        if body_ok {
            let room = buf.len() - off - RECORD_HEADER;
            assert_eq!(
                repair_record(NONCE, buf, off, room).as_deref(),
                buf.get(off..end),
                "a sound record repairs to itself"
            );
            let body = &buf[off + RECORD_HEADER..end];
            if let Some(again) = reencode_record_body(h.kind, body) {
                assert_eq!(reencode_record_body(h.kind, &again), Some(again));
            }
        }
    }
    for &(off, _) in &s.damaged {
        assert!(off >= start && (off as usize) < buf.len(), "{s:?}");
    }
    if let Some(at) = s.append_at {
        let at = at as usize;
        assert!(
            at >= end && at <= buf.len(),
            "append point inside a record: {s:?}"
        );
        assert!(
            buf[at..].iter().all(|&b| b == 0xFF),
            "append point before written bytes: {s:?}"
        );
    }
}

struct Built {
    buf: Vec<u8>,
    /// (offset, kind, qid, encoded bytes)
    records: Vec<(usize, u8, u64, Vec<u8>)>,
    end: usize,
}

/// Records from `spec`: (kind, qid, body length, body) each, then `erased` erased bytes.
fn build(spec: &[u8], erased: usize) -> Built {
    let mut buf = Vec::new();
    let mut records = Vec::new();
    let mut rest = spec;
    while let [kind, qid, len, more @ ..] = rest {
        let kind = kind % 6 + 1;
        let len = usize::from(*len % 64).min(more.len());
        let (body, more) = more.split_at(len);
        rest = more;
        let Some(bytes) = encode_record(NONCE, kind, u64::from(*qid), body) else {
            continue;
        };
        let off = buf.len();
        buf.extend_from_slice(&bytes);
        // The pad to 4 bytes stays erased.
        buf.resize(off + record_size(body.len() as u32) as usize, 0xFF);
        records.push((off, kind, u64::from(*qid), bytes));
    }
    let end = buf.len();
    buf.resize(end + erased, 0xFF);
    Built { buf, records, end }
}

fn found(b: &Built, s: &RecordScan, skip: Option<usize>) {
    let want: Vec<_> = b
        .records
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(_, (off, kind, qid, _))| (*off as u32, *kind, *qid))
        .collect();
    let got: Vec<_> = s
        .records
        .iter()
        .filter(|(_, _, ok)| *ok)
        .map(|(off, h, _)| (*off, h.kind, h.qid))
        .collect();
    assert_eq!(got, want, "{s:?}");
}

fn built(spec: &[u8], erased: usize, damage: Option<(bool, usize)>) {
    let b = build(spec, erased);
    let s = scan(&b.buf, 0);
    found(&b, &s, None);
    assert!(s.damaged.is_empty(), "{s:?}");
    // Room for less than a header is a full segment; otherwise the next record goes at the end.
    assert!(s.append_at.is_none_or(|a| a as usize == b.end), "{s:?}");
    if erased == 0 || erased >= RECORD_HEADER {
        assert_eq!(s.append_at, Some(b.end as u32), "{s:?}");
    }
    let Some((tear, at)) = damage else { return };
    let Some(last) = b.records.len().checked_sub(1) else {
        return;
    };
    if tear {
        // The power went while the last record was written: its tail is still erased.
        let (off, _, _, ref bytes) = b.records[last];
        let cut = off + at % bytes.len();
        let mut torn = b.buf.clone();
        torn[cut..].fill(0xFF);
        if torn == b.buf {
            return;
        }
        let s = scan(&torn, 0);
        found(&b, &s, Some(last));
        raw(&torn, 0);
        return;
    }
    // One bit of decay somewhere in the written records.
    let bit = at % (b.end * 8).max(1);
    let byte = bit / 8;
    let Some(i) = b
        .records
        .iter()
        .position(|(off, _, _, bytes)| (*off..off + bytes.len()).contains(&byte))
    else {
        return; // in a pad byte, which nothing reads
    };
    let mut bad = b.buf.clone();
    bad[byte] ^= 1 << (bit % 8);
    let (off, kind, qid, ref bytes) = b.records[i];
    let room = bad.len() - off - RECORD_HEADER;
    assert_eq!(
        repair_record(NONCE, &bad, off, room).as_ref(),
        Some(bytes),
        "one bit off is repaired to what was written"
    );
    let s = scan(&bad, 0);
    found(&b, &s, Some(i));
    if byte - off < RECORD_HEADER {
        let named = s
            .damaged
            .iter()
            .any(|(o, h)| *o as usize == off && h.is_some_and(|h| (h.kind, h.qid) == (kind, qid)));
        assert!(named, "a header one bit off still names its message: {s:?}");
    }
    raw(&bad, 0);
}

fuzz_target!(|data: &[u8]| {
    let [mode, arg, rest @ ..] = data else { return };
    match mode % 3 {
        0 => raw(rest, u32::from(*arg) * 4 % (rest.len() as u32 + 1)),
        1 => {
            let [how, at0, at1, spec @ ..] = rest else {
                return;
            };
            let at = usize::from(u16::from_le_bytes([*at0, *at1]));
            let damage = match how % 3 {
                0 => None,
                1 => Some((false, at)),
                _ => Some((true, at)),
            };
            built(spec, usize::from(*arg % 64), damage);
        }
        _ => {
            // Bodies are postcard: its decoders pre-allocate from a length prefix (serde's
            // cautious hint, up to 1 MiB a collection) before the elements arrive.
            let body = bounded(postcard_bound(rest.len()), "record body", || {
                reencode_record_body(arg % 6 + 1, rest)
            });
            if let Some(body) = body {
                assert_eq!(reencode_record_body(arg % 6 + 1, &body), Some(body));
            }
            if let Some((old, new, _)) = read_both_ways(arg % 6 + 1, rest) {
                assert_eq!(old, new, "firmware with and without stamps read one base");
            }
        }
    }
});
