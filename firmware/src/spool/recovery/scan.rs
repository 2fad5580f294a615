//! Recovery step 1: read every segment's header and tell what each segment is: in the log (and
//! where in its order), free, or to be erased before use.

use hal::flash::Flash;

use super::super::format::{Layout, SEG_A, SEG_HEADER, SegA, classify_seg_a, decode_seg_b};
use super::super::record;
use super::super::store::{Seg, SegState};
use super::super::{DamagedRecord, RecoveryReport, SpoolError};

/// The segments as their headers describe them.
pub(super) struct Segments {
    pub segs: Vec<Seg>,
    /// Segments in the log, by sequence number (orphans first, as 0): the order records are read.
    pub log: Vec<(u64, u32)>,
    /// The highest queue id a segment header says was handed out before it.
    pub qid_floor: u64,
}

impl Segments {
    /// The newest segment with a known sequence number: where a power cut may have torn a write.
    pub fn newest(&self) -> Option<u32> {
        self.log
            .iter()
            .rev()
            .find(|(_, s)| !self.segs[*s as usize].orphan)
            .map(|(_, s)| *s)
    }
}

/// What one segment's header makes of it.
struct Found {
    seg: Seg,
    /// Its place in the log, when it holds records.
    seq: Option<u64>,
    /// The queue id floor from a sound header B.
    qid_floor: u64,
    /// Its erase count could be read (part A sound, or one bit off).
    count_known: bool,
}

/// Reads every segment header. `buf` is one segment long.
pub(super) fn scan_segments<F: Flash>(
    flash: &mut F,
    layout: &Layout,
    buf: &mut [u8],
    report: &mut RecoveryReport,
) -> Result<Segments, SpoolError> {
    let mut out = Segments {
        segs: Vec::with_capacity(layout.segments as usize),
        log: Vec::new(),
        qid_floor: 0,
    };
    let mut unknown = Vec::new();
    for s in 0..layout.segments {
        let found = scan_segment(flash, layout, s, buf, report)?;
        if !found.count_known {
            unknown.push(s);
        }
        if let Some(seq) = found.seq {
            out.log.push((seq, s));
        }
        out.qid_floor = out.qid_floor.max(found.qid_floor);
        out.segs.push(found.seg);
    }
    estimate_erase_counts(&mut out.segs, &unknown);
    report.erase_counts_estimated = unknown.len() as u32;
    out.log.sort_unstable();
    Ok(out)
}

/// A segment whose erase count is unreadable is taken to be as worn as the most worn one known.
fn estimate_erase_counts(segs: &mut [Seg], unknown: &[u32]) {
    let known_max = segs
        .iter()
        .enumerate()
        .filter(|(i, _)| !unknown.contains(&(*i as u32)))
        .map(|(_, s)| s.erase_count)
        .max()
        .unwrap_or(0);
    for &s in unknown {
        segs[s as usize].erase_count = known_max;
    }
}

fn scan_segment<F: Flash>(
    flash: &mut F,
    layout: &Layout,
    s: u32,
    buf: &mut [u8],
    report: &mut RecoveryReport,
) -> Result<Found, SpoolError> {
    let mut head = [0u8; SEG_HEADER as usize];
    flash.read(layout.segment_addr(s), &mut head)?;
    let mut found = Found {
        seg: Seg {
            state: SegState::Free,
            erase_count: 0,
            has_a: false,
            needs_erase: false,
            seq: 0,
            used: 0,
            live: 0,
            orphan: false,
        },
        seq: None,
        qid_floor: 0,
        count_known: true,
    };
    let a = classify_seg_a(layout.nonce, s, &head);
    match a {
        SegA::Sound(count) => found.seg.erase_count = count,
        SegA::Repaired(count) => {
            found.seg.erase_count = count;
            report.damaged.push(DamagedRecord {
                segment: s,
                offset: 0,
                qid: None,
                at_tail: false,
                repaired: true,
            });
        }
        _ => found.count_known = false,
    }
    match (a, decode_seg_b(layout.nonce, s, &head[SEG_A..])) {
        // Dead, or erased from the start while its erase was cut short.
        (SegA::Dead, _) | (SegA::Absent, Some(_)) => found.seg.needs_erase = true,
        (SegA::Sound(_) | SegA::Repaired(_) | SegA::Damaged, Some((seq, floor))) => {
            found.seg.has_a = true;
            found.seg.state = SegState::Used;
            found.seg.seq = seq;
            found.seq = Some(seq);
            found.qid_floor = floor;
        }
        (a, None) => {
            if without_header_b(flash, layout, s, a, buf, &mut found.seg, report)? {
                found.seq = Some(0);
            }
        }
    }
    Ok(found)
}

/// A segment with no sound header B: erased, torn while it was taken into use, or holding records
/// after a header B that decayed (kept as an orphan, see `Seg::orphan`). True when it is kept.
fn without_header_b<F: Flash>(
    flash: &mut F,
    layout: &Layout,
    s: u32,
    a: SegA,
    buf: &mut [u8],
    seg: &mut Seg,
    report: &mut RecoveryReport,
) -> Result<bool, SpoolError> {
    flash.read(layout.segment_addr(s), buf)?;
    report.scanned_bytes += buf.len() as u64;
    let from = if a == SegA::Absent { 0 } else { SEG_A };
    let erased = buf[from..].iter().all(|&b| b == 0xFF);
    let b_written = buf[SEG_A..SEG_HEADER as usize].iter().any(|&b| b != 0xFF);
    if erased {
        seg.has_a = matches!(a, SegA::Sound(_));
        // A part A that is not sound cannot be written over: erase first.
        seg.needs_erase = matches!(a, SegA::Damaged | SegA::Repaired(_));
        return Ok(false);
    }
    let header_b_damaged = a != SegA::Absent && b_written;
    let has_sound_record = || {
        record::scan(layout.nonce, buf, SEG_HEADER)
            .records
            .iter()
            .any(|f| f.body_ok)
    };
    if header_b_damaged && has_sound_record() {
        seg.has_a = true;
        seg.state = SegState::Used;
        seg.orphan = true;
    } else {
        seg.needs_erase = true;
    }
    if header_b_damaged {
        // Without a sound record after it, a header B was torn while the segment was taken into
        // use, or decayed in a segment that held nothing yet.
        report.damaged.push(DamagedRecord {
            segment: s,
            offset: SEG_A as u32,
            qid: None,
            at_tail: !seg.orphan,
            repaired: false,
        });
    }
    Ok(seg.orphan)
}
