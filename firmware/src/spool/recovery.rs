//! Opening a spool: read the superblock, scan every segment, check every CRC, rebuild the index.
//!
//! Records are gathered per queue id, whatever segment and order they are in (compaction copies
//! records forward, so a begin may sit after its commit). A message is queued again only if its
//! begin, every body chunk and its commit are sound and no end record exists. Damage costs only the
//! message it hits, and is reported.
//!
//! Damage after the last sound record of the newest segment is taken for a write the power cut
//! tore, except when the record is one bit off: decay in the last commit synced looks just like
//! that, so such a record is taken back as written and a sound copy is written at open. A segment
//! header one bit off still counts, so that decay in its magic cannot pass for the dead mark.

use std::collections::{BTreeMap, HashMap};

use hal::flash::Flash;

use crate::mail::{Envelope, QueueId, QueueState, RecipientOutcome};

use super::format::{
    Layout, SEG_A, SEG_HEADER, SegA, SpoolGeometry, classify_seg_a, decode_seg_b, le32,
};
use super::index::{Entry, Loc};
use super::record::{self, CommitBody, HEADER, Header, Kind, RecipientBody, StateBody};
use super::slots::SlotView;
use super::store::{Purpose, Seg, SegState, Spool, Stats};
use super::{DamagedRecord, LostMessage, RecoveryReport, Region, SpoolError, SpoolSettings};

/// Everything found for one queue id.
#[derive(Default)]
struct Seen {
    begin: Option<(Loc, Envelope)>,
    /// (chunk index, location), in log order.
    chunks: Vec<(u32, Loc)>,
    commit: Option<(Loc, CommitBody)>,
    /// (recipient index, location, outcome), in log order.
    outcomes: Vec<(u32, Loc, RecipientOutcome)>,
    state: Option<(u32, Loc, QueueState)>,
    end: bool,
    /// A damaged commit record not explained by a torn write at the log's end.
    commit_damaged: bool,
}

impl<F: Flash> Spool<F> {
    /// Opens a formatted flash: recovery scans the whole spool and rebuilds the index.
    pub fn open(
        mut flash: F,
        mut settings: SpoolSettings,
    ) -> Result<(Spool<F>, RecoveryReport), SpoolError> {
        let layout = read_superblock(&mut flash)?;
        let capacity = layout.segment_size() - SEG_HEADER - HEADER - 4;
        settings.chunk_size = settings.chunk_size.clamp(64, (capacity / 2).max(64));
        settings.reserve_segments = settings.reserve_segments.max(2);

        let mut report = RecoveryReport::default();
        let mut segs = Vec::with_capacity(layout.segments as usize);
        // Segments with a sound header B, by sequence number: scanned in log order below.
        let mut used: Vec<(u64, u32)> = Vec::new();
        let mut max_qid = 0u64;
        let mut buf = vec![0u8; layout.segment_size() as usize];
        let mut head_bytes = [0u8; SEG_HEADER as usize];
        let mut unknown = Vec::new();
        for s in 0..layout.segments {
            let base = layout.segment_addr(s);
            flash.read(base, &mut head_bytes)?;
            let mut seg = Seg {
                state: SegState::Free,
                erase_count: 0,
                has_a: false,
                needs_erase: false,
                seq: 0,
                used: 0,
                live: 0,
                orphan: false,
            };
            let a = classify_seg_a(layout.nonce, s, &head_bytes);
            match a {
                SegA::Sound(count) => seg.erase_count = count,
                SegA::Repaired(count) => {
                    seg.erase_count = count;
                    report.damaged.push(DamagedRecord {
                        segment: s,
                        offset: 0,
                        qid: None,
                        at_tail: false,
                        repaired: true,
                    });
                }
                _ => unknown.push(s),
            }
            let b = decode_seg_b(layout.nonce, s, &head_bytes[SEG_A..]);
            match (a, b) {
                // Dead, or erased from the start while its erase was cut short.
                (SegA::Dead, _) | (SegA::Absent, Some(_)) => seg.needs_erase = true,
                (SegA::Sound(_) | SegA::Repaired(_) | SegA::Damaged, Some((seq, floor))) => {
                    seg.has_a = true;
                    seg.state = SegState::Used;
                    seg.seq = seq;
                    max_qid = max_qid.max(floor);
                    used.push((seq, s));
                }
                (a, None) => {
                    flash.read(base, &mut buf)?;
                    report.scanned_bytes += buf.len() as u64;
                    let from = if a == SegA::Absent { 0 } else { SEG_A };
                    let erased = buf[from..].iter().all(|&b| b == 0xFF);
                    let b_written = buf[SEG_A..SEG_HEADER as usize].iter().any(|&b| b != 0xFF);
                    if erased {
                        seg.has_a = matches!(a, SegA::Sound(_));
                        // A part A that is not sound cannot be written over: erase first.
                        seg.needs_erase = matches!(a, SegA::Damaged | SegA::Repaired(_));
                    } else if a != SegA::Absent
                        && b_written
                        && !record::scan(layout.nonce, &buf, SEG_HEADER)
                            .records
                            .iter()
                            .all(|f| !f.body_ok)
                    {
                        // Records follow a header B that decayed: keep them (see `Seg::orphan`).
                        seg.has_a = true;
                        seg.state = SegState::Used;
                        seg.orphan = true;
                        used.push((0, s));
                        report.damaged.push(DamagedRecord {
                            segment: s,
                            offset: SEG_A as u32,
                            qid: None,
                            at_tail: false,
                            repaired: false,
                        });
                    } else {
                        if a != SegA::Absent && b_written {
                            // A header B with nothing sound after it: torn while the segment was
                            // taken into use, or decayed in a segment that held nothing yet.
                            report.damaged.push(DamagedRecord {
                                segment: s,
                                offset: SEG_A as u32,
                                qid: None,
                                at_tail: true,
                                repaired: false,
                            });
                        }
                        seg.needs_erase = true;
                    }
                }
            }
            segs.push(seg);
        }
        let known_max = segs
            .iter()
            .enumerate()
            .filter(|(i, _)| !unknown.contains(&(*i as u32)))
            .map(|(_, s)| s.erase_count)
            .max()
            .unwrap_or(0);
        for &s in &unknown {
            segs[s as usize].erase_count = known_max;
        }
        report.erase_counts_estimated = unknown.len() as u32;

        used.sort_unstable();
        let newest = used
            .iter()
            .rev()
            .find(|(_, s)| !segs[*s as usize].orphan)
            .map(|(_, s)| *s);
        let mut head = None;
        let mut seen: HashMap<u64, Seen> = HashMap::new();
        // Records at the log's end that were one bit off, as they were written: (where, bytes).
        let mut repaired: Vec<(Loc, Header, Vec<u8>)> = Vec::new();
        for &(_, s) in &used {
            let base = layout.segment_addr(s);
            flash.read(base, &mut buf)?;
            report.scanned_bytes += buf.len() as u64;
            let scan = record::scan(layout.nonce, &buf, SEG_HEADER);
            segs[s as usize].used = scan.append_at.unwrap_or(layout.segment_size());
            if Some(s) == newest && scan.append_at.is_some() {
                head = Some(s);
            }
            let last_ok = scan
                .records
                .iter()
                .rev()
                .find(|f| f.body_ok)
                .map(|f| f.offset);
            let at_tail = |off: u32| Some(s) == newest && last_ok.is_none_or(|l| off > l);
            // Damage after the last sound record of the newest segment may be a write the power
            // cut tore (never synced, so nothing is lost), but it may as well be decay in the
            // last record synced: the commit the client was answered 250 for. A record one bit
            // off is taken back as it was written (see `record::repair_record`); the rest is
            // taken for a tear.
            let repair = |off: u32| {
                let room = (buf.len() as u32).checked_sub(off + HEADER)? as usize;
                record::repair_record(layout.nonce, &buf, off as usize, room)
            };
            for &(off, header) in &scan.damaged {
                let fixed = at_tail(off).then(|| repair(off)).flatten();
                report.damaged.push(DamagedRecord {
                    segment: s,
                    offset: off,
                    qid: header.map(|h| QueueId(h.qid)),
                    at_tail: at_tail(off),
                    repaired: fixed.is_some(),
                });
                if let Some(fixed) = fixed {
                    max_qid = max_qid.max(fixed.0.qid);
                    take_repaired(&mut seen, &mut repaired, base + off, fixed);
                    continue;
                }
                if let Some(h) = header
                    && h.kind == Kind::Commit
                    && !at_tail(off)
                {
                    seen.entry(h.qid).or_default().commit_damaged = true;
                }
            }
            for f in &scan.records {
                let h = f.header;
                max_qid = max_qid.max(h.qid);
                if !f.body_ok {
                    let fixed = at_tail(f.offset).then(|| repair(f.offset)).flatten();
                    report.damaged.push(DamagedRecord {
                        segment: s,
                        offset: f.offset,
                        qid: Some(QueueId(h.qid)),
                        at_tail: at_tail(f.offset),
                        repaired: fixed.is_some(),
                    });
                    if let Some(bytes) = fixed {
                        take_repaired(&mut seen, &mut repaired, base + f.offset, bytes);
                    } else if h.kind == Kind::Commit && !at_tail(f.offset) {
                        seen.entry(h.qid).or_default().commit_damaged = true;
                    }
                    continue;
                }
                let entry = seen.entry(h.qid).or_default();
                let loc = Loc {
                    addr: base + f.offset,
                    len: h.len,
                };
                let start = (f.offset + HEADER) as usize;
                let body = &buf[start..start + h.len as usize];
                absorb(entry, h.kind, loc, body);
            }
        }

        let mut index = BTreeMap::new();
        for (qid, s) in seen {
            let qid = QueueId(qid);
            if s.end {
                continue;
            }
            match build_entry(s) {
                Built::Entry(e) => {
                    index.insert(qid, *e);
                }
                Built::Uncommitted => report.dropped_uncommitted += 1,
                Built::Nothing => {}
                Built::Lost(reason) => report.lost.push(LostMessage { qid, reason }),
            }
        }
        report.lost.sort_by_key(|l| l.qid);

        let next_seq = used.last().map_or(1, |(seq, _)| seq + 1);
        report.segments_used = used.len() as u32;
        report.segments_free = segs.iter().filter(|s| s.state == SegState::Free).count() as u32;
        report.max_qid = (max_qid > 0).then_some(QueueId(max_qid));
        report.messages = index.len();

        let mut spool = Spool {
            flash,
            layout,
            settings,
            segs,
            head,
            next_seq,
            index: BTreeMap::new(),
            last_qid: max_qid,
            pending: Vec::new(),
            slots: [SlotView::default(); 2],
            stats: Stats::default(),
            failed: false,
        };
        for e in index.values() {
            for loc in e.locs() {
                spool.add_live(loc);
            }
        }
        spool.index = index;
        spool.rewrite_repaired(repaired)?;
        spool.slots = [
            spool.scan_slots(Region::Config)?,
            spool.scan_slots(Region::Directory)?,
        ];
        Ok((spool, report))
    }
}

/// Takes a repaired record into what is known of its message, like a sound one.
fn take_repaired(
    seen: &mut HashMap<u64, Seen>,
    repaired: &mut Vec<(Loc, Header, Vec<u8>)>,
    addr: u32,
    (h, bytes): (Header, Vec<u8>),
) {
    let loc = Loc { addr, len: h.len };
    if let Some(body) = bytes.get(HEADER as usize..) {
        absorb(seen.entry(h.qid).or_default(), h.kind, loc, body);
    }
    repaired.push((loc, h, bytes));
}

impl<F: Flash> Spool<F> {
    /// Writes sound copies of the records recovery repaired, and syncs: on flash the originals
    /// still fail their CRC, and compaction and body reads trust only sound records. Copies of
    /// records no message needs any more are not made, except end records, which keep a removed
    /// message removed.
    fn rewrite_repaired(
        &mut self,
        repaired: Vec<(Loc, Header, Vec<u8>)>,
    ) -> Result<(), SpoolError> {
        let mut wrote = false;
        for (old, h, bytes) in repaired {
            let qid = QueueId(h.qid);
            let live = self
                .index
                .get(&qid)
                .is_some_and(|e| e.locs().any(|l| l.addr == old.addr));
            if !live && h.kind != Kind::End {
                continue;
            }
            let new = self.put(&bytes, Purpose::Compaction)?;
            wrote = true;
            if live && let Some(e) = self.index.get_mut(&qid) {
                e.relocate(old.addr, new);
                self.sub_live(old);
                self.add_live(new);
            }
        }
        if wrote {
            self.sync_flash()?;
        }
        Ok(())
    }
}

fn read_superblock<F: Flash>(flash: &mut F) -> Result<Layout, SpoolError> {
    let fg = flash.geometry();
    let mut block = vec![0u8; fg.erase_size as usize];
    flash.read(0, &mut block)?;
    let [a, b] = Layout::superblock_offsets(fg.erase_size);
    let copies = [
        Layout::decode(&block[a as usize..b as usize]),
        Layout::decode(&block[b as usize..]),
    ];
    let layout = match copies {
        [Ok(Some(l)), _] | [_, Ok(Some(l))] => l,
        [Ok(None), Ok(None)] => return Err(SpoolError::NotFormatted),
        [Err(e @ SpoolError::UnsupportedVersion(_)), _]
        | [_, Err(e @ SpoolError::UnsupportedVersion(_))] => return Err(e),
        [Err(e), _] | [_, Err(e)] => return Err(e),
    };
    // Everything else follows from the geometry: recompute it rather than trust the numbers.
    let again = Layout::new(
        fg,
        SpoolGeometry {
            config_slot_blocks: layout.config_slot_blocks,
            directory_slot_blocks: layout.directory_slot_blocks,
            segment_blocks: layout.segment_blocks,
        },
        layout.nonce,
    );
    if layout.erase_size == fg.erase_size
        && layout.blocks == fg.blocks()
        && again.as_ref().ok() != Some(&layout)
    {
        return Err(SpoolError::BadSuperblock(
            "superblock regions do not add up".into(),
        ));
    }
    if layout.erase_size != fg.erase_size || layout.blocks != fg.blocks() {
        return Err(SpoolError::GeometryMismatch(format!(
            "superblock says {} blocks of {} bytes, the device has {} blocks of {} bytes",
            layout.blocks,
            layout.erase_size,
            fg.blocks(),
            fg.erase_size
        )));
    }
    Ok(layout)
}

/// Takes one sound record into what is known of its message. Later copies win, except state
/// changes, where the highest version wins.
fn absorb(s: &mut Seen, kind: Kind, loc: Loc, body: &[u8]) {
    match kind {
        Kind::Begin => {
            if let Ok(env) = postcard::from_bytes::<Envelope>(body) {
                s.begin = Some((loc, env));
            }
        }
        Kind::Chunk => {
            if body.len() >= 4 {
                s.chunks.push((le32(body), loc));
            }
        }
        Kind::Commit => match postcard::from_bytes::<CommitBody>(body) {
            Ok(c) => s.commit = Some((loc, c)),
            Err(_) => s.commit_damaged = true,
        },
        Kind::Recipient => {
            if let Ok(r) = postcard::from_bytes::<RecipientBody>(body) {
                s.outcomes.push((r.index, loc, r.outcome));
            }
        }
        Kind::State => {
            if let Ok(st) = postcard::from_bytes::<StateBody>(body)
                && s.state.as_ref().is_none_or(|(v, _, _)| st.version >= *v)
            {
                s.state = Some((st.version, loc, st.state));
            }
        }
        Kind::End => s.end = true,
    }
}

enum Built {
    Entry(Box<Entry>),
    Uncommitted,
    Nothing,
    Lost(String),
}

fn build_entry(s: Seen) -> Built {
    let Some((commit_loc, commit)) = s.commit else {
        if s.commit_damaged {
            return Built::Lost("commit record damaged".into());
        }
        return if s.begin.is_some() || !s.chunks.is_empty() {
            Built::Uncommitted
        } else {
            Built::Nothing
        };
    };
    let Some((begin_loc, envelope)) = s.begin else {
        return Built::Lost("begin record (envelope) missing or damaged".into());
    };
    let mut found = s.chunks;
    // Stable: copies of one chunk stay in log order, and the later one wins.
    found.sort_by_key(|(i, _)| *i);
    let mut chunks: Vec<Loc> = Vec::with_capacity(commit.chunks as usize);
    for (i, loc) in found {
        let i = i as usize;
        if i >= commit.chunks as usize || i + 1 < chunks.len() {
            continue;
        }
        if i + 1 == chunks.len() {
            if let Some(last) = chunks.last_mut() {
                *last = loc;
            }
        } else if i == chunks.len() {
            chunks.push(loc);
        } else {
            break;
        }
    }
    if chunks.len() < commit.chunks as usize {
        return Built::Lost(format!("body chunk {} missing or damaged", chunks.len()));
    }
    let size: u64 = chunks
        .iter()
        .map(|l| u64::from(l.len.saturating_sub(4)))
        .sum();
    if size != commit.size {
        return Built::Lost(format!(
            "body is {size} bytes, its commit record says {}",
            commit.size
        ));
    }
    let mut e = Entry::new(envelope, begin_loc);
    e.chunks = chunks;
    e.size = size;
    e.commit = Some(commit_loc);
    e.durable = true;
    for (i, loc, outcome) in s.outcomes {
        if let Some(slot) = e.outcomes.get_mut(i as usize) {
            *slot = Some((outcome, loc));
        }
    }
    if let Some((version, loc, state)) = s.state {
        e.state = state;
        e.state_version = version;
        e.state_loc = Some(loc);
    }
    Built::Entry(Box::new(e))
}
