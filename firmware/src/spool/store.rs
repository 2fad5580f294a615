//! The sync core: appends records, syncs, compacts the segment ring, answers reads.

use std::hash::{BuildHasher, Hasher};

use hal::flash::Flash;

use crate::mail::{Envelope, QueueId, RecipientOutcome, StateChange};

use super::entry::{EntryRef, Message};
use super::format::{Layout, SEG_HEADER, SpoolGeometry, encode_seg_a, encode_seg_b};
use super::index::{Index, Loc, MessageSummary};
use super::record::{self, CommitBody, HEADER, Kind, RecipientBody, StateBody, record_size};
use super::slots::SlotView;
use super::stamp::{self, RecipientStamp, StateStamp};
use super::{FlashInfo, Region, RegionInfo, SpoolError, SpoolSettings};

/// Who wants room on flash; each may dig deeper into the reserve than the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A new message (begin, body): stops at `reserve_segments` free segments.
    Message,
    /// Commit, delivery state, removal, and bounces (the queue's own mail about mail it holds):
    /// may use all but the last free segment.
    Delivery,
    /// Copies made by compaction: may use the last one.
    Compaction,
}

impl Purpose {
    fn new_mail(bounce: bool) -> Purpose {
        if bounce {
            Purpose::Delivery
        } else {
            Purpose::Message
        }
    }
}

/// A message's envelope as its begin record holds it, with what the index keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedEnvelope {
    pub bytes: Vec<u8>,
    pub recipients: u32,
    pub bounce: bool,
}

impl EncodedEnvelope {
    pub fn new(envelope: &Envelope) -> Result<EncodedEnvelope, SpoolError> {
        let encode = |e: postcard::Error| SpoolError::Encode(e.to_string());
        // Sized first: grown piece by piece, the bytes took a dozen reallocations.
        let size = postcard::experimental::serialized_size(envelope).map_err(encode)?;
        Ok(EncodedEnvelope {
            bytes: postcard::to_extend(envelope, Vec::with_capacity(size)).map_err(encode)?,
            recipients: envelope.recipients.len() as u32,
            bounce: envelope.is_bounce(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegState {
    Free,
    Used,
    /// Failed a program or erase: out of service.
    Bad,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Seg {
    pub state: SegState,
    pub erase_count: u32,
    /// Part A of the header is on flash and everything after it is erased.
    pub has_a: bool,
    /// Holds something other than a clean header: erase before use.
    pub needs_erase: bool,
    pub seq: u64,
    /// End of the records (offset in the segment).
    pub used: u32,
    /// Bytes of records the index still points to.
    pub live: u64,
    /// Found with sound records but a damaged header B (sequence unknown): compacted first, and
    /// its end records are carried forward so no removed message can come back.
    pub orphan: bool,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub bytes_written: u64,
    pub erases: u64,
    pub syncs: u64,
    pub compactions: u64,
}

/// The spool on one flash device.
pub struct Spool<F: Flash> {
    pub(crate) flash: F,
    pub(crate) layout: Layout,
    pub(crate) settings: SpoolSettings,
    pub(crate) segs: Vec<Seg>,
    pub(crate) head: Option<u32>,
    pub(crate) next_seq: u64,
    pub(crate) index: Index,
    /// What recovery found, for the queue manager, until it takes it.
    pub(crate) recovered: Option<super::RecoveredQueue>,
    pub(crate) last_qid: u64,
    pub(crate) pending: Vec<QueueId>,
    pub(crate) slots: [SlotView; 2],
    pub(crate) stats: Stats,
    pub(crate) failed: bool,
    pub(crate) ring: super::logring::LogRing,
    /// Where records are encoded before they are written (at most a chunk and a header).
    pub(crate) scratch: Vec<u8>,
}

impl<F: Flash> std::fmt::Debug for Spool<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("layout", &self.layout)
            .field("messages", &self.index.len())
            .field("head", &self.head)
            .finish()
    }
}

fn new_nonce() -> u64 {
    // RandomState is seeded from the OS once per process and stepped per instance.
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl<F: Flash> Spool<F> {
    /// Writes a new, empty spool over the whole device: superblock, empty slots, empty segments.
    /// Whatever the flash held is gone; this is only ever done on an explicit request.
    pub fn format(flash: &mut F, geometry: SpoolGeometry) -> Result<(), SpoolError> {
        Self::format_with_nonce(flash, geometry, new_nonce())
    }

    /// [`Spool::format`] with a chosen nonce instead of a random one, so that a test can replay
    /// the exact bytes of a layout (every CRC on flash is keyed with the nonce). Not for
    /// production: two spools formatted alike would accept each other's records.
    #[doc(hidden)]
    pub fn format_with_nonce(
        flash: &mut F,
        geometry: SpoolGeometry,
        nonce: u64,
    ) -> Result<(), SpoolError> {
        let layout = Layout::new(flash.geometry(), geometry, nonce)?;
        let eb = layout.erase_size;
        // The superblock goes last: a format cut short leaves a flash that says "not formatted".
        erase_if_needed(flash, 0, eb)?;
        for region in [Region::Config, Region::Directory] {
            for slot in 0..2 {
                let (from, to) = layout.slot_range(region, slot);
                erase_if_needed(flash, from, to)?;
            }
        }
        let (log_from, log_to) = layout.log_range();
        erase_if_needed(flash, log_from, log_to)?;
        for s in 0..layout.segments {
            let at = layout.segment_addr(s);
            erase_if_needed(flash, at, at + layout.segment_size())?;
            flash.write(at, &encode_seg_a(layout.nonce, s, 0))?;
        }
        let sb = layout.encode()?;
        for off in Layout::superblock_offsets(eb) {
            flash.write(off, &sb)?;
        }
        flash.sync()?;
        Ok(())
    }

    /// Allocates a queue id and writes the begin record of a new message. `now_unix_millis` is the
    /// arrival time; ids still increase if the clock goes back.
    pub fn begin(
        &mut self,
        envelope: &Envelope,
        now_unix_millis: u64,
    ) -> Result<QueueId, SpoolError> {
        let qid = next_qid(self.last_qid, now_unix_millis);
        self.begin_as(qid, envelope)
    }

    /// The newest queue id this spool has given or seen: the next is above it.
    pub fn last_qid(&self) -> u64 {
        self.last_qid
    }

    /// Whether new mail (not a bounce) is taken now: the flash works and has room for a begin
    /// record and a chunk (twice a chunk) besides what is kept for delivery records and
    /// compaction. A session is refused at DATA by this, rather than after sending a message
    /// the spool has no room for.
    pub fn admission(&self) -> Admission {
        if self.failed {
            Admission::Failed
        } else if self
            .admit(2 * u64::from(self.settings.chunk_size), Purpose::Message)
            .is_err()
        {
            Admission::Full
        } else {
            Admission::Open
        }
    }

    /// [`Spool::begin`] under a queue id given by the caller: the spool service hands them out
    /// in the sessions ([`next_qid`] over a shared counter), so a session does not wait for the
    /// writer to start a message. Refused if the id is in use.
    pub fn begin_as(&mut self, qid: QueueId, envelope: &Envelope) -> Result<QueueId, SpoolError> {
        self.begin_encoded(qid, &EncodedEnvelope::new(envelope)?)
    }

    /// [`Spool::begin_as`] with the envelope encoded by the caller: the spool service's
    /// sessions encode their own, so the one writer thread neither does it nor frees the
    /// envelope's many small allocations (each a lock on the session thread's malloc arena).
    pub(crate) fn begin_encoded(
        &mut self,
        qid: QueueId,
        envelope: &EncodedEnvelope,
    ) -> Result<QueueId, SpoolError> {
        self.check_writable()?;
        let purpose = Purpose::new_mail(envelope.bounce);
        self.admit(0, purpose)?;
        if self.index.get(&qid).is_some() {
            return Err(SpoolError::Encode(format!("queue id {qid} is in use")));
        }
        self.make_room(purpose)?;
        self.last_qid = self.last_qid.max(qid.0);
        let loc = self.append(Kind::Begin, qid.0, &[&envelope.bytes], purpose)?;
        self.add_live(loc);
        self.index.insert(
            qid,
            Message::with(loc, envelope.recipients, envelope.bounce),
        );
        Ok(qid)
    }

    /// Appends body bytes to a message that is not committed yet, in chunks of at most
    /// `chunk_size` bytes.
    pub fn append_body(&mut self, qid: QueueId, data: &[u8]) -> Result<(), SpoolError> {
        self.check_writable()?;
        let chunk_size = self.settings.chunk_size as usize;
        for piece in data.chunks(chunk_size) {
            let (n, purpose) = match self.index.get(&qid) {
                Some(e) if !e.committed() => {
                    (e.chunk_count() + u32::from(e.head_held()), purpose_of(e))
                }
                _ => return Err(SpoolError::NoSuchMessage(qid)),
            };
            self.admit(piece.len() as u64, purpose)?;
            let loc = self.append(Kind::Chunk, qid.0, &[&n.to_le_bytes(), piece], purpose)?;
            self.add_live(loc);
            if let Some(mut e) = self.index.get_mut(&qid) {
                e.push_chunk(loc);
            }
        }
        Ok(())
    }

    /// Keeps chunk 0 of a message that has no body yet for its header section, written later by
    /// [`Spool::write_head`]: the content stage edits the headers (a spam tag) after the body
    /// behind them is on flash. Recovery orders chunks by index, so nothing else changes.
    pub fn hold_head(&mut self, qid: QueueId) -> Result<(), SpoolError> {
        match self.index.get_mut(&qid) {
            Some(mut e) if !e.as_ref().committed() && e.as_ref().chunk_count() == 0 => {
                e.set_head_held(true);
                Ok(())
            }
            _ => Err(SpoolError::NoSuchMessage(qid)),
        }
    }

    /// Writes the held chunk 0 (any length the segment takes; a header section is small).
    pub fn write_head(&mut self, qid: QueueId, data: &[u8]) -> Result<(), SpoolError> {
        self.check_writable()?;
        let purpose = match self.index.get(&qid) {
            Some(e) if !e.committed() && e.head_held() => purpose_of(e),
            _ => return Err(SpoolError::NoSuchMessage(qid)),
        };
        self.admit(data.len() as u64, purpose)?;
        let loc = self.append(Kind::Chunk, qid.0, &[&0u32.to_le_bytes(), data], purpose)?;
        self.add_live(loc);
        if let Some(mut e) = self.index.get_mut(&qid) {
            e.insert_head(loc);
            e.set_head_held(false);
        }
        Ok(())
    }

    /// Writes the commit record. The message exists for good after the next successful
    /// [`Spool::sync`]; only then may the client be told 250.
    pub fn commit(&mut self, qid: QueueId) -> Result<(), SpoolError> {
        self.check_writable()?;
        if self.index.get(&qid).is_some_and(|e| e.head_held()) {
            self.write_head(qid, b"")?;
        }
        let body = match self.index.get(&qid) {
            Some(e) if !e.committed() => CommitBody {
                chunks: e.chunk_count(),
                size: e.size(),
            },
            _ => return Err(SpoolError::NoSuchMessage(qid)),
        };
        let body = postcard::to_allocvec(&body).map_err(|e| SpoolError::Encode(e.to_string()))?;
        let loc = self.append(Kind::Commit, qid.0, &[&body], Purpose::Delivery)?;
        self.add_live(loc);
        if let Some(mut e) = self.index.get_mut(&qid) {
            e.set_commit(loc);
        }
        self.pending.push(qid);
        Ok(())
    }

    /// Forgets a message that was begun but not committed. Nothing is written: without a commit
    /// record its records are garbage, reclaimed by compaction.
    pub fn abandon(&mut self, qid: QueueId) {
        if self.index.get(&qid).is_some_and(|e| !e.committed()) {
            self.drop_entry(qid);
        }
    }

    /// Records the final outcome of recipient `index`, reached at `at` (Unix seconds).
    pub fn mark_recipient(
        &mut self,
        qid: QueueId,
        index: usize,
        outcome: RecipientOutcome,
        at: u64,
    ) -> Result<(), SpoolError> {
        self.check_writable()?;
        let after_changes = match self.index.get(&qid) {
            Some(e) if e.committed() => {
                if index >= e.recipients() {
                    return Err(SpoolError::NoSuchRecipient { qid, index });
                }
                e.state_version()
            }
            _ => return Err(SpoolError::NoSuchMessage(qid)),
        };
        let body = RecipientBody {
            index: index as u32,
            outcome,
        };
        let bytes = stamp::encode(&body, &RecipientStamp { at, after_changes })
            .map_err(|e| SpoolError::Encode(e.to_string()))?;
        let loc = self.append(Kind::Recipient, qid.0, &[&bytes], Purpose::Delivery)?;
        self.add_live(loc);
        let old = self
            .index
            .get_mut(&qid)
            .and_then(|mut e| e.set_outcome(index, loc));
        if let Some(old) = old {
            self.sub_live(old);
        }
        Ok(())
    }

    /// Changes the queue state (hold, release, deferred until). The record carries the changes
    /// before it (see `stamp.rs`), read back from the one it replaces.
    pub fn set_state(&mut self, qid: QueueId, change: StateChange) -> Result<(), SpoolError> {
        self.check_writable()?;
        let (version, previous) = match self.index.get(&qid) {
            Some(e) if e.committed() => (e.state_version() + 1, e.state_loc().get()),
            _ => return Err(SpoolError::NoSuchMessage(qid)),
        };
        let previous = match previous {
            // One that no longer reads back sound costs the history, not the change.
            Some(loc) => self.read_state(qid, loc).ok().map(|(mut event, old)| {
                stamp::shrink(&event.state, &mut event.waiting);
                (event, old)
            }),
            // The first change: active since its arrival, which the begin record tells.
            None => None,
        };
        let mut waiting = change.waiting;
        stamp::shrink(&change.state, &mut waiting);
        let budget = stamp::max_state_stamp(self.layout.segment_size());
        let stamp = StateStamp::carry(change.at, waiting, change.flushed, previous, budget);
        let body = StateBody {
            version,
            state: change.state,
        };
        let bytes = stamp::encode(&body, &stamp).map_err(|e| SpoolError::Encode(e.to_string()))?;
        let loc = self.append(Kind::State, qid.0, &[&bytes], Purpose::Delivery)?;
        self.add_live(loc);
        let old = self.index.get_mut(&qid).and_then(|mut e| {
            let old = e.as_ref().state_loc().get();
            e.set_state_version(version);
            e.set_state_loc(loc);
            old
        });
        if let Some(old) = old {
            self.sub_live(old);
        }
        Ok(())
    }

    /// Removes a message from the queue (delivered, bounced, or deleted by the admin).
    pub fn remove(&mut self, qid: QueueId) -> Result<(), SpoolError> {
        self.check_writable()?;
        match self.index.get(&qid) {
            None => return Err(SpoolError::NoSuchMessage(qid)),
            Some(e) if !e.committed() => {
                self.drop_entry(qid);
                return Ok(());
            }
            Some(_) => {}
        }
        self.append(Kind::End, qid.0, &[], Purpose::Delivery)?;
        self.drop_entry(qid);
        Ok(())
    }

    /// The durability barrier: returns once every record written before it is on flash.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        self.check_writable()?;
        self.sync_flash()
    }

    /// Messages whose commit is synced, oldest first, read back from flash. A message whose
    /// records no longer read back sound is left out (`get` and `read_body` say `Damaged`).
    pub fn list(&mut self) -> Vec<MessageSummary> {
        let durable: Vec<(QueueId, Message)> = self
            .index
            .iter()
            .filter(|(_, e)| e.durable())
            .map(|(q, e)| (q, e.to_message()))
            .collect();
        durable
            .into_iter()
            .filter_map(|(q, m)| self.summarize(q, m.as_ref()).ok())
            .collect()
    }

    /// The envelopes of those of `qids` whose commit is synced, read back from flash (only
    /// the begin record: a filter on sender or recipients needs no more). A message whose
    /// record no longer reads back sound is left out, as in [`list`](Self::list).
    pub fn envelopes(&mut self, qids: &[QueueId]) -> Vec<(QueueId, Envelope)> {
        let wanted: Vec<_> = (qids.iter().enumerate())
            .filter_map(|(i, &q)| {
                let e = self.index.get(&q).filter(|e| e.durable())?;
                Some((i, q, e.begin()))
            })
            .collect();
        let mut read = self.read_envelopes(wanted);
        read.sort_unstable_by_key(|(i, _, _)| *i);
        read.into_iter().map(|(_, q, e)| (q, e)).collect()
    }

    /// One message whose commit is synced, read back from flash.
    pub fn get(&mut self, qid: QueueId) -> Option<MessageSummary> {
        let m = self.index.get(&qid).filter(|e| e.durable())?.to_message();
        self.summarize(qid, m.as_ref()).ok()
    }

    /// Geometry, usage and wear, for `postern flash info`.
    pub fn info(&self) -> FlashInfo {
        let l = &self.layout;
        let counts: Vec<u32> = self.segs.iter().map(|s| s.erase_count).collect();
        let count = |st: SegState| self.segs.iter().filter(|s| s.state == st).count() as u32;
        let region = |name, r: Region, view: &SlotView| {
            let (start, _) = l.slot_range(r, 0);
            let (_, end) = l.slot_range(r, 1);
            RegionInfo {
                name,
                start,
                len: end - start,
                used: view
                    .newest
                    .map_or(0, |n| u64::from(n.len) + u64::from(n.journal_len)),
            }
        };
        let spool_start = l.segment_addr(0);
        FlashInfo {
            format_version: l.version,
            size: l.blocks * l.erase_size,
            erase_size: l.erase_size,
            regions: vec![
                RegionInfo {
                    name: "superblock",
                    start: 0,
                    len: l.erase_size,
                    used: l.encode().map_or(0, |b| b.len() as u64 * 2),
                },
                region("config", Region::Config, &self.slots[0]),
                region("directory", Region::Directory, &self.slots[1]),
                RegionInfo {
                    name: "mail log",
                    start: l.log_range().0,
                    len: l.log_range().1 - l.log_range().0,
                    used: self.ring.used(l.log_blocks, l.erase_size),
                },
                RegionInfo {
                    name: "spool",
                    start: spool_start,
                    len: l.segments * l.segment_size(),
                    used: self.segs.iter().map(|s| s.live).sum(),
                },
            ],
            segment_size: l.segment_size(),
            segments: l.segments,
            segments_used: count(SegState::Used),
            segments_free: count(SegState::Free),
            segments_bad: count(SegState::Bad),
            messages: self.index.values().filter(|e| e.durable()).count(),
            erase_min: counts.iter().copied().min().unwrap_or(0),
            erase_max: counts.iter().copied().max().unwrap_or(0),
            erase_avg: if counts.is_empty() {
                0.0
            } else {
                counts.iter().map(|&c| f64::from(c)).sum::<f64>() / counts.len() as f64
            },
            erase_counts: counts,
            bytes_written: self.stats.bytes_written,
            erases: self.stats.erases,
            syncs: self.stats.syncs,
            compactions: self.stats.compactions,
        }
    }

    /// The settings the spool runs with.
    pub fn settings(&self) -> &SpoolSettings {
        &self.settings
    }

    /// The flash device.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// Closes the spool, giving the flash device back (unsynced records may be lost).
    pub fn into_flash(self) -> F {
        self.flash
    }

    // ---- writing ------------------------------------------------------------------------

    pub(crate) fn check_writable(&self) -> Result<(), SpoolError> {
        if self.failed {
            Err(SpoolError::Failed)
        } else {
            Ok(())
        }
    }

    pub(crate) fn sync_flash(&mut self) -> Result<(), SpoolError> {
        if let Err(e) = self.flash.sync() {
            self.failed = true;
            return Err(e.into());
        }
        self.stats.syncs += 1;
        for qid in std::mem::take(&mut self.pending) {
            if let Some(mut e) = self.index.get_mut(&qid) {
                e.set_durable();
            }
        }
        Ok(())
    }

    fn append(
        &mut self,
        kind: Kind,
        qid: u64,
        body: &[&[u8]],
        purpose: Purpose,
    ) -> Result<Loc, SpoolError> {
        // Encoded in the buffer kept for it: a record's own allocation (and the growth for its
        // pad) took the writer thread's malloc lock several times per message.
        let mut bytes = std::mem::take(&mut self.scratch);
        record::encode_into(&mut bytes, self.layout.nonce, kind, qid, body);
        let len = (bytes.len() as u32).saturating_sub(HEADER);
        // The pad goes with the record, as the erased 0xFF it already is: the next record then
        // continues this one, and the flash makes a turn's records with one system call.
        bytes.resize(record_size(len) as usize, 0xFF);
        let put = self.put(&bytes, len, purpose);
        self.scratch = bytes;
        put
    }

    /// Writes one encoded record with a body of `len` bytes at the head, opening a new segment
    /// if it does not fit. `bytes` may stop before the pad: then the pad is programmed apart.
    pub(crate) fn put(
        &mut self,
        bytes: &[u8],
        len: u32,
        purpose: Purpose,
    ) -> Result<Loc, SpoolError> {
        let size = record_size(len);
        let record = (HEADER + len) as usize;
        if bytes.len() < record || bytes.len() > size as usize {
            return Err(SpoolError::Encode(format!(
                "a record of {len} body bytes given as {} bytes",
                bytes.len()
            )));
        }
        if size > self.layout.segment_size() - SEG_HEADER {
            return Err(SpoolError::Encode(format!(
                "a record of {size} bytes does not fit a segment"
            )));
        }
        let room = |s: &Self| {
            s.head
                .and_then(|h| s.segs.get(h as usize))
                .is_some_and(|seg| seg.used + size <= s.layout.segment_size())
        };
        if !room(self) {
            self.advance_head(purpose, size)?;
        }
        let head = self.head.ok_or(SpoolError::Full)?;
        let addr = self.layout.segment_addr(head) + self.segs[head as usize].used;
        // The pad is programmed too, as the erased 0xFF it already is: the next record then
        // continues this one and the flash makes a turn's records with one system call.
        let pad = &[0xFF; 3][..size as usize - bytes.len()];
        let mut written = self.flash.write(addr, bytes);
        if written.is_ok() && !pad.is_empty() {
            written = self.flash.write(addr + bytes.len() as u32, pad);
        }
        if let Err(e) = written {
            // What reached flash is unknown: never append after it.
            self.head = None;
            return Err(e.into());
        }
        self.segs[head as usize].used += size;
        self.stats.bytes_written += record as u64;
        Ok(Loc { addr, len })
    }

    /// Refuses new message bytes once live data would leave compaction too little to work with:
    /// the reserve segments, one segment for compaction, and a record's worth of end-of-segment
    /// waste per segment stay out of reach of new mail. Bounces may go one segment further.
    fn admit(&self, more: u64, purpose: Purpose) -> Result<(), SpoolError> {
        let capacity = u64::from(self.layout.segment_size() - SEG_HEADER);
        let usable = self
            .segs
            .iter()
            .filter(|s| s.state != SegState::Bad)
            .count() as u64;
        let held_back = match purpose {
            Purpose::Message => u64::from(self.settings.reserve_segments.max(2)) + 1,
            _ => u64::from(self.settings.reserve_segments.max(2)),
        };
        let waste = usable * u64::from(record_size(self.settings.chunk_size + 4));
        let limit = (usable.saturating_sub(held_back) * capacity).saturating_sub(waste);
        let live: u64 = self.segs.iter().map(|s| s.live).sum();
        if live + more + u64::from(record_size(self.settings.chunk_size + 4)) > limit {
            return Err(SpoolError::Full);
        }
        Ok(())
    }

    pub(crate) fn free_count(&self) -> usize {
        self.segs
            .iter()
            .filter(|s| s.state == SegState::Free)
            .count()
    }

    /// Bytes that compaction could give back: records no message points to.
    fn reclaimable(&self) -> u64 {
        self.segs
            .iter()
            .enumerate()
            .filter(|(i, s)| s.state == SegState::Used && self.head != Some(*i as u32))
            .map(|(_, s)| u64::from(s.used - SEG_HEADER.min(s.used)).saturating_sub(s.live))
            .sum()
    }

    /// Compacts until enough segments are free for `purpose`, or says the spool is full.
    pub(crate) fn make_room(&mut self, purpose: Purpose) -> Result<(), SpoolError> {
        let reserve = self.settings.reserve_segments.max(2) as usize;
        let need = match purpose {
            Purpose::Message => reserve,
            Purpose::Delivery => 1,
            Purpose::Compaction => 0,
        };
        if purpose != Purpose::Compaction {
            let capacity = u64::from(self.layout.segment_size() - SEG_HEADER);
            let mut rounds = 0;
            while self.free_count() <= reserve
                && rounds < self.segs.len()
                && self.reclaimable() >= capacity
            {
                if !self.compact_oldest()? {
                    break;
                }
                rounds += 1;
            }
        }
        if self.free_count() <= need {
            return Err(SpoolError::Full);
        }
        Ok(())
    }

    /// Takes the free segment with the fewest erases as the new head.
    fn advance_head(&mut self, purpose: Purpose, size: u32) -> Result<(), SpoolError> {
        loop {
            self.make_room(purpose)?;
            // Compaction may have opened a head that still has room: use it up first.
            if let Some(seg) = self.head.and_then(|h| self.segs.get(h as usize))
                && seg.used + size <= self.layout.segment_size()
            {
                return Ok(());
            }
            let pick = self
                .segs
                .iter()
                .enumerate()
                .filter(|(_, s)| s.state == SegState::Free)
                .min_by_key(|(i, s)| (s.erase_count, *i))
                .map(|(i, _)| i as u32)
                .ok_or(SpoolError::Full)?;
            match self.open_segment(pick) {
                Ok(()) => return Ok(()),
                Err(SpoolError::Flash(_)) => {
                    // A segment that cannot be erased or programmed leaves service; try another.
                    self.segs[pick as usize].state = SegState::Bad;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn open_segment(&mut self, s: u32) -> Result<(), SpoolError> {
        let at = self.layout.segment_addr(s);
        let nonce = self.layout.nonce;
        let seg = self.segs[s as usize];
        if seg.needs_erase {
            self.flash.erase(at, at + self.layout.segment_size())?;
            self.stats.erases += 1;
            let seg = &mut self.segs[s as usize];
            seg.erase_count += 1;
            seg.needs_erase = false;
            seg.has_a = false;
        }
        if !self.segs[s as usize].has_a {
            let count = self.segs[s as usize].erase_count;
            self.flash.write(at, &encode_seg_a(nonce, s, count))?;
            self.segs[s as usize].has_a = true;
        }
        let seq = self.next_seq;
        let b = encode_seg_b(nonce, s, seq, self.last_qid);
        self.flash.write(at + super::format::SEG_A as u32, &b)?;
        self.next_seq += 1;
        self.stats.bytes_written += SEG_HEADER as u64;
        let seg = &mut self.segs[s as usize];
        seg.state = SegState::Used;
        seg.seq = seq;
        seg.used = SEG_HEADER;
        seg.live = 0;
        seg.orphan = false;
        self.head = Some(s);
        Ok(())
    }

    /// Copies the live records of the oldest segment to the head, then erases it. False if there
    /// is nothing to compact.
    pub(crate) fn compact_oldest(&mut self) -> Result<bool, SpoolError> {
        let oldest = self
            .segs
            .iter()
            .enumerate()
            .filter(|(i, s)| s.state == SegState::Used && self.head != Some(*i as u32))
            .min_by_key(|(_, s)| s.seq)
            .map(|(i, _)| i as u32);
        let Some(old) = oldest else { return Ok(false) };
        if self.free_count() == 0 {
            return Ok(false);
        }
        let base = self.layout.segment_addr(old);
        let size = self.layout.segment_size();
        let mut buf = vec![0u8; size as usize];
        self.flash.read(base, &mut buf)?;
        let scan = record::scan(self.layout.nonce, &buf, SEG_HEADER);
        for found in scan.records.iter().filter(|f| f.body_ok) {
            let addr = base + found.offset;
            let qid = QueueId(found.header.qid);
            let live = self
                .index
                .get(&qid)
                .is_some_and(|e| e.locs().any(|l| l.addr == addr));
            let tombstone = self.segs[old as usize].orphan && found.header.kind == Kind::End;
            if !live && !tombstone {
                continue;
            }
            let start = found.offset as usize;
            let end = start + (HEADER + found.header.len) as usize;
            let new = self.put(&buf[start..end], found.header.len, Purpose::Compaction)?;
            if let Some(mut e) = self.index.get_mut(&qid) {
                e.relocate(addr, new);
            }
            self.add_live(new);
            self.segs[old as usize].live = self.segs[old as usize].live.saturating_sub(new.size());
        }
        // The copies must be on flash before the originals go; the old segment is marked dead
        // before its erase starts, so a torn erase can never bring old records back.
        self.sync_flash()?;
        self.flash.write(base, &[0u8; 4])?;
        self.sync_flash()?;
        let count = self.segs[old as usize].erase_count + 1;
        let erased = self.flash.erase(base, base + size).and_then(|()| {
            self.flash
                .write(base, &encode_seg_a(self.layout.nonce, old, count))
        });
        self.stats.erases += 1;
        self.stats.compactions += 1;
        let seg = &mut self.segs[old as usize];
        seg.erase_count = count;
        seg.live = 0;
        seg.used = 0;
        seg.seq = 0;
        seg.orphan = false;
        match erased {
            Ok(()) => {
                seg.state = SegState::Free;
                seg.has_a = true;
                seg.needs_erase = false;
            }
            Err(_) => seg.state = SegState::Bad,
        }
        Ok(true)
    }

    fn drop_entry(&mut self, qid: QueueId) {
        if let Some(m) = self.index.remove(&qid) {
            for loc in m.as_ref().locs() {
                self.sub_live(loc);
            }
        }
        self.pending.retain(|q| *q != qid);
    }

    pub(crate) fn add_live(&mut self, loc: Loc) {
        let s = self.layout.segment_of(loc.addr) as usize;
        if let Some(seg) = self.segs.get_mut(s) {
            seg.live += loc.size();
        }
    }

    pub(crate) fn sub_live(&mut self, loc: Loc) {
        let s = self.layout.segment_of(loc.addr) as usize;
        if let Some(seg) = self.segs.get_mut(s) {
            seg.live = seg.live.saturating_sub(loc.size());
        }
    }
}

/// New mail waits for the free segments kept back; a bounce may dig into them.
fn purpose_of(e: EntryRef<'_>) -> Purpose {
    if e.bounce() {
        Purpose::Delivery
    } else {
        Purpose::Message
    }
}

/// The queue id after `last` for a message arriving at `now_unix_millis`: the time's own id,
/// or the next one when the clock has not moved on (or went back), so ids only grow.
pub fn next_qid(last: u64, now_unix_millis: u64) -> QueueId {
    let candidate = QueueId::new(now_unix_millis, 0);
    if candidate.0 > last {
        candidate
    } else {
        QueueId(last.saturating_add(1))
    }
}

/// Whether the spool takes new mail (see [`Spool::admission`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Open,
    Full,
    Failed,
}

/// Erases `from..to` unless it already reads as erased (saves wear and time on new flash files).
fn erase_if_needed<F: Flash>(flash: &mut F, from: u32, to: u32) -> Result<(), SpoolError> {
    let eb = flash.geometry().erase_size;
    let mut buf = vec![0u8; eb as usize];
    let mut at = from;
    while at < to {
        flash.read(at, &mut buf)?;
        if buf.iter().any(|&b| b != 0xFF) {
            flash.erase(at, at + eb)?;
        }
        at += eb;
    }
    Ok(())
}
