//! Recovery step 2: read the records of every segment in the log and gather them per queue id,
//! whatever segment and order they are in (compaction copies records forward, so a begin may sit
//! after its commit). Every damaged record is reported; at the log's end, one a bit off is taken
//! back as it was written.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use hal::flash::Flash;

use crate::mail::{QueueId, Transport};

use super::super::format::{Layout, SEG_HEADER, le32};
use super::super::index::Loc;
use super::super::record::{self, CommitBody, HEADER, Header, Kind, RecipientBody};
use super::super::recovered::{Interner, RecoveredState};
use super::super::{DamagedRecord, RecoveryReport, SpoolError};
use super::borrowed::{EnvelopeView, QueueStateView, StateView};
use super::scan::Segments;

/// What the queue needs of an envelope; its recipients' next hops are
/// `Gathered::hop_ids[first_hop..first_hop + recipients]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Begin {
    pub arrival: u64,
    pub bounce: bool,
    pub recipients: u32,
    pub first_hop: u32,
}

/// Everything found for one queue id. Recovery of a million messages holds a million of
/// these, so what most messages have (a begin, one chunk, a commit, a state) is inline, absent
/// as `Loc::NONE`, and the rest (more chunks, recipients' outcomes) behind one pointer:
/// ~100 bytes, without allocations for an ordinary message.
pub(super) struct Seen {
    begin_loc: Loc,
    arrival: u64,
    recipients: u32,
    first_hop: u32,
    /// The first chunk found: (chunk index, location).
    first_chunk: (u32, Loc),
    commit_loc: Loc,
    commit_chunks: u32,
    commit_size: u64,
    state_loc: Loc,
    state_version: u32,
    state: RecoveredState,
    rare: Option<Box<Rare>>,
    flags: u8,
}

/// What few messages have.
#[derive(Default)]
struct Rare {
    /// (chunk index, location) of the chunks after the first, in log order.
    more_chunks: Vec<(u32, Loc)>,
    /// (recipient index, location), in log order.
    outcomes: Vec<(u32, Loc)>,
}

const BOUNCE: u8 = 1;
const END: u8 = 2;
/// A damaged commit record not explained by a torn write at the log's end.
const COMMIT_DAMAGED: u8 = 4;

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            begin_loc: Loc::NONE,
            arrival: 0,
            recipients: 0,
            first_hop: 0,
            first_chunk: (0, Loc::NONE),
            commit_loc: Loc::NONE,
            commit_chunks: 0,
            commit_size: 0,
            state_loc: Loc::NONE,
            state_version: 0,
            state: RecoveredState::Active,
            rare: None,
            flags: 0,
        }
    }
}

impl Seen {
    pub fn begin(&self) -> Option<(Loc, Begin)> {
        let begin = Begin {
            arrival: self.arrival,
            bounce: self.flags & BOUNCE != 0,
            recipients: self.recipients,
            first_hop: self.first_hop,
        };
        self.begin_loc.get().map(|loc| (loc, begin))
    }

    fn set_begin(&mut self, loc: Loc, b: Begin) {
        self.begin_loc = loc;
        self.arrival = b.arrival;
        self.recipients = b.recipients;
        self.first_hop = b.first_hop;
        self.set_flag(BOUNCE, b.bounce);
    }

    pub fn first_chunk(&self) -> Option<(u32, Loc)> {
        let (i, loc) = self.first_chunk;
        loc.get().map(|loc| (i, loc))
    }

    /// Chunks after the first, in log order.
    pub fn more_chunks(&self) -> &[(u32, Loc)] {
        self.rare.as_ref().map_or(&[], |r| &r.more_chunks)
    }

    /// Chunks in log order.
    pub fn chunks(&self) -> impl Iterator<Item = (u32, Loc)> + '_ {
        self.first_chunk()
            .into_iter()
            .chain(self.more_chunks().iter().copied())
    }

    pub fn commit(&self) -> Option<(Loc, CommitBody)> {
        let body = CommitBody {
            chunks: self.commit_chunks,
            size: self.commit_size,
        };
        self.commit_loc.get().map(|loc| (loc, body))
    }

    /// (recipient index, location) of the outcomes found, in log order.
    pub fn outcomes(&self) -> &[(u32, Loc)] {
        self.rare.as_ref().map_or(&[], |r| &r.outcomes)
    }

    /// The newest state change: (version, location, state).
    pub fn state(&self) -> Option<(u32, Loc, RecoveredState)> {
        self.state_loc
            .get()
            .map(|loc| (self.state_version, loc, self.state))
    }

    /// An end record was found: the message is gone.
    pub fn end(&self) -> bool {
        self.flags & END != 0
    }

    pub fn commit_damaged(&self) -> bool {
        self.flags & COMMIT_DAMAGED != 0
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }
}

/// A record at the log's end that was one bit off: where it is, and its bytes as written.
pub(super) type Repaired = (Loc, Header, Vec<u8>);

/// The records of the whole log.
#[derive(Default)]
pub(super) struct Gathered {
    pub seen: SeenTable,
    pub interned: Interned,
    pub repaired: Vec<Repaired>,
    /// The segment new records go to: the newest, if it has room.
    pub head: Option<u32>,
    pub max_qid: u64,
}

/// Where the log ends in one segment: damage after its last sound record, in the newest segment,
/// may be a write the power cut tore.
struct Tail {
    newest: bool,
    last_sound: Option<u32>,
}

/// Next hops and deferral reasons, each kept once, and every begin record's next hops.
#[derive(Default)]
pub(super) struct Interned {
    pub hops: Interner<Transport>,
    pub reasons: Interner<String>,
    pub hop_ids: Vec<u32>,
}

impl Tail {
    fn holds(&self, off: u32) -> bool {
        self.newest && self.last_sound.is_none_or(|l| off > l)
    }
}

/// Reads every segment in the log, in log order. `buf` is one segment long.
pub(super) fn gather_records<F: Flash>(
    flash: &mut F,
    layout: &Layout,
    segments: &mut Segments,
    buf: &mut [u8],
    report: &mut RecoveryReport,
) -> Result<Gathered, SpoolError> {
    let newest = segments.newest();
    let mut out = Gathered {
        max_qid: segments.qid_floor,
        ..Gathered::default()
    };
    let total = segments.log.len();
    // No log holds more messages than this: each has a begin and a commit record at least.
    let most = total.saturating_mul(layout.segment_size() as usize) / (2 * HEADER as usize);
    for (done, &(_, s)) in segments.log.iter().enumerate() {
        // Room for as many messages as the log holds at this rate, made while the table is
        // small: grown by doubling, a million messages' table was copied and rehashed ~20 times.
        let rate = out.seen.len().saturating_mul(total) / done.max(1);
        out.seen.expect(rate.min(most));
        let base = layout.segment_addr(s);
        flash.read(base, buf)?;
        report.scanned_bytes += buf.len() as u64;
        let scan = record::scan(layout.nonce, buf, SEG_HEADER);
        segments.segs[s as usize].used = scan.append_at.unwrap_or(layout.segment_size());
        if Some(s) == newest && scan.append_at.is_some() {
            out.head = Some(s);
        }
        let tail = Tail {
            newest: Some(s) == newest,
            last_sound: scan
                .records
                .iter()
                .rev()
                .find(|f| f.body_ok)
                .map(|f| f.offset),
        };
        let at = |offset| Place {
            segment: s,
            base,
            offset,
            at_tail: tail.holds(offset),
        };
        for &(off, header) in &scan.damaged {
            out.damaged(layout.nonce, buf, at(off), header, report);
        }
        for f in &scan.records {
            let h = f.header;
            out.max_qid = out.max_qid.max(h.qid);
            if !f.body_ok {
                out.damaged(layout.nonce, buf, at(f.offset), Some(h), report);
                continue;
            }
            let loc = Loc {
                addr: base + f.offset,
                len: h.len,
            };
            let start = (f.offset + HEADER) as usize;
            let body = &buf[start..start + h.len as usize];
            let seen = out.seen.of(h.qid);
            absorb(seen, &mut out.interned, h.kind, loc, body);
        }
    }
    Ok(out)
}

/// What was found per queue id, in order of first sight; `slots` finds a queue id's place. The
/// map holds only small numbers, so growing it moves little: a million messages' records are
/// gathered without copying their `Seen` on every rehash.
#[derive(Default)]
pub(super) struct SeenTable {
    seen: Vec<(u64, Seen)>,
    slots: HashMap<u64, u32, BuildQidHasher>,
    /// The queue id of the last record, and its place: a message's records mostly follow each
    /// other in the log (begin, chunks, commit), so most need no lookup.
    last: Option<(u64, u32)>,
}

impl SeenTable {
    /// What is known of `qid` so far (nothing yet: a new, empty entry).
    fn of(&mut self, qid: u64) -> &mut Seen {
        let i = match self.last {
            Some((q, i)) if q == qid => i,
            _ => {
                let next = self.seen.len() as u32;
                let i = *self.slots.entry(qid).or_insert(next);
                if i == next {
                    self.seen.push((qid, Seen::default()));
                }
                self.last = Some((qid, i));
                i
            }
        };
        &mut self.seen[i as usize].1
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Makes room for `count` queue ids, and a quarter more, if there is less. Room not yet
    /// used is address space, not memory. A guess from the first segments can be far too big
    /// (tiny messages first, large ones after): if the room is refused, the table grows as it
    /// fills, as it did before.
    fn expect(&mut self, count: usize) {
        if count > self.seen.capacity() {
            let want = count.saturating_add(count / 4) - self.seen.len();
            if self.seen.try_reserve_exact(want).is_ok() {
                // Refused, the map grows as it fills too.
                let _ = self.slots.try_reserve(want);
            }
        }
    }

    /// Every queue id with what was found of it, in order of first sight.
    pub fn into_values(self) -> impl Iterator<Item = (u64, Seen)> {
        let SeenTable { seen, slots, .. } = self;
        drop(slots);
        seen.into_iter()
    }
}

/// Hashes a queue id for `SeenTable::slots`. Queue ids are a clock and a counter the box made,
/// never a client's choice, so one multiply spreads them: SipHash (std's default) was the third
/// cost of recovering a million messages, after the CRCs and the walk itself.
#[derive(Default, Clone, Copy)]
pub(super) struct QidHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for QidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        // The table takes its slot from the low bits: fold the well-mixed high half into them.
        self.0 ^ (self.0 >> 32)
    }
}

pub(super) type BuildQidHasher = BuildHasherDefault<QidHasher>;

/// Where a damaged record sits.
struct Place {
    segment: u32,
    base: u32,
    offset: u32,
    at_tail: bool,
}

impl Gathered {
    /// Reports a damaged record (`header` when its header could still be read). At the log's end
    /// it may be decay in the last record synced, the commit the client was answered 250 for, as
    /// well as a torn write (never synced, so nothing is lost): a record one bit off is taken back
    /// as it was written (see `record::repair_record`), the rest is taken for a tear.
    fn damaged(
        &mut self,
        nonce: u64,
        buf: &[u8],
        at: Place,
        header: Option<Header>,
        report: &mut RecoveryReport,
    ) {
        let fixed = at.at_tail.then(|| repair(nonce, buf, at.offset)).flatten();
        report.damaged.push(DamagedRecord {
            segment: at.segment,
            offset: at.offset,
            qid: header.map(|h| QueueId(h.qid)),
            at_tail: at.at_tail,
            repaired: fixed.is_some(),
        });
        if let Some(fixed) = fixed {
            self.max_qid = self.max_qid.max(fixed.0.qid);
            self.take_repaired(at.base + at.offset, fixed);
        } else if let Some(h) = header
            && h.kind == Kind::Commit
            && !at.at_tail
        {
            self.seen.of(h.qid).set_flag(COMMIT_DAMAGED, true);
        }
    }

    /// Takes a repaired record into what is known of its message, like a sound one.
    fn take_repaired(&mut self, addr: u32, (h, bytes): (Header, Vec<u8>)) {
        let loc = Loc { addr, len: h.len };
        if let Some(body) = bytes.get(HEADER as usize..) {
            let seen = self.seen.of(h.qid);
            absorb(seen, &mut self.interned, h.kind, loc, body);
        }
        self.repaired.push((loc, h, bytes));
    }
}

/// The record at `off` of the segment in `buf`, one bit corrected, if that makes it sound.
fn repair(nonce: u64, buf: &[u8], off: u32) -> Option<(Header, Vec<u8>)> {
    let room = (buf.len() as u32).checked_sub(off + HEADER)? as usize;
    record::repair_record(nonce, buf, off as usize, room)
}

/// Takes one sound record into what is known of its message. Later copies win, except state
/// changes, where the highest version wins.
fn absorb(s: &mut Seen, interned: &mut Interned, kind: Kind, loc: Loc, body: &[u8]) {
    match kind {
        Kind::Begin => {
            if let Some(env) = EnvelopeView::decode(body) {
                let first_hop = interned.hop_ids.len() as u32;
                for r in env.recipients.iter() {
                    let hop = &r.next_hop;
                    let id = interned.hops.id_with(|t| hop.is(t), || hop.to_transport());
                    interned.hop_ids.push(id);
                }
                let begin = Begin {
                    arrival: env.arrival,
                    bounce: env.is_bounce(),
                    recipients: env.recipients.len() as u32,
                    first_hop,
                };
                s.set_begin(loc, begin);
            }
        }
        Kind::Chunk => {
            if body.len() >= 4 {
                let chunk = (le32(body), loc);
                if s.first_chunk.1.is_some() {
                    s.rare().more_chunks.push(chunk);
                } else {
                    s.first_chunk = chunk;
                }
            }
        }
        Kind::Commit => match postcard::from_bytes::<CommitBody>(body) {
            Ok(c) => {
                s.commit_loc = loc;
                s.commit_chunks = c.chunks;
                s.commit_size = c.size;
            }
            Err(_) => s.set_flag(COMMIT_DAMAGED, true),
        },
        Kind::Recipient => {
            if let Ok(r) = postcard::from_bytes::<RecipientBody>(body) {
                s.rare().outcomes.push((r.index, loc));
            }
        }
        Kind::State => {
            if let Some(st) = StateView::decode(body)
                && (!s.state_loc.is_some() || st.version >= s.state_version)
            {
                s.state = match st.state {
                    QueueStateView::Active => RecoveredState::Active,
                    QueueStateView::Hold => RecoveredState::Hold,
                    QueueStateView::Deferred { until, reason } => RecoveredState::Deferred {
                        until,
                        reason: interned
                            .reasons
                            .id_with(|r| r == reason, || reason.to_string()),
                    },
                };
                s.state_version = st.version;
                s.state_loc = loc;
            }
        }
        Kind::End => s.set_flag(END, true),
    }
}

#[cfg(test)]
mod tests {
    use super::Seen;

    /// A guess too big for the address space is not an abort: the table carries on.
    #[test]
    fn room_refused_is_no_failure() {
        let mut t = super::SeenTable::default();
        t.of(7).set_flag(super::END, true);
        t.expect(usize::MAX / 2);
        t.expect(1000);
        assert!(t.seen.capacity() >= 1000);
        t.of(8);
        assert_eq!(t.len(), 2);
        assert!(t.of(7).end());
    }

    /// A million are held at once: with its parts as `Option`s and two vectors inline it was
    /// 176 bytes with its queue id.
    #[test]
    fn what_is_found_of_a_queue_id_stays_small() {
        let size = std::mem::size_of::<(u64, Seen)>();
        assert!(size <= 112, "{size} bytes");
    }
}
