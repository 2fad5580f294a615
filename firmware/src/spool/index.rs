//! The in-RAM index: for every message, where each of its records sits on flash, in a fixed-size
//! entry. Envelopes, outcomes and state reasons stay on flash and are read back on demand
//! (see `summary.rs`): a backup MX holding a million messages for a secondary that is down must
//! not hold a million envelopes in RAM.

use crate::mail::{Envelope, QueueId, QueueState, RecipientOutcome, StateEvent};

use super::record::record_size;

/// Where a record is: flash address of its header and its body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub addr: u32,
    pub len: u32,
}

impl Loc {
    /// No record (yet). No record can start at the last byte of the address space.
    pub const NONE: Loc = Loc {
        addr: u32::MAX,
        len: 0,
    };

    /// Bytes the record takes on flash.
    pub fn size(&self) -> u64 {
        record_size(self.len).into()
    }

    pub fn is_some(&self) -> bool {
        *self != Loc::NONE
    }

    pub fn get(self) -> Option<Loc> {
        self.is_some().then_some(self)
    }
}

use std::num::NonZeroU8;

/// Always set: `flags` is never zero, so `Option<Entry>` (a hole in the index) costs nothing.
const ENTRY: u8 = 1;
const HEAD_HELD: u8 = 2;
const DURABLE: u8 = 4;
const BOUNCE: u8 = 8;

/// One message the spool holds (committed, or still receiving its body). 48 bytes: the common
/// message (one body chunk, no recipient done yet) needs no allocation of its own.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub begin: Loc,
    /// The first body chunk; the others are in `more`.
    first_chunk: Loc,
    pub commit: Loc,
    pub state_loc: Loc,
    pub state_version: u32,
    /// Envelope recipients (the full count is in `more` past `u16::MAX`).
    recipients: u16,
    flags: NonZeroU8,
    more: Option<Box<More>>,
}

/// What only some messages have: more than one chunk, recipients with an outcome on flash, or
/// a huge recipient count.
#[derive(Debug, Clone, Default)]
struct More {
    chunks: Vec<Loc>,
    /// Per recipient, the location of its outcome record (`Loc::NONE`: still to do); empty until
    /// the first outcome.
    outcomes: Vec<Loc>,
    recipients: Option<u32>,
}

impl Entry {
    pub fn new(envelope: &Envelope, begin: Loc) -> Entry {
        Entry::with(
            begin,
            envelope.recipients.len() as u32,
            envelope.is_bounce(),
        )
    }

    /// An entry for a message with `recipients` recipients whose begin record is at `begin`.
    pub fn with(begin: Loc, recipients: u32, bounce: bool) -> Entry {
        let mut e = Entry {
            begin,
            first_chunk: Loc::NONE,
            commit: Loc::NONE,
            state_loc: Loc::NONE,
            state_version: 0,
            recipients: 0,
            flags: NonZeroU8::MIN.saturating_add(if bounce { BOUNCE } else { 0 }),
            more: None,
        };
        match u16::try_from(recipients) {
            Ok(n) => e.recipients = n,
            Err(_) => {
                e.recipients = u16::MAX;
                e.more_mut().recipients = Some(recipients);
            }
        }
        e
    }

    fn more_mut(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    fn flag(&self, f: u8) -> bool {
        self.flags.get() & f != 0
    }

    fn set_flag(&mut self, f: u8, on: bool) {
        let bits = if on {
            self.flags.get() | f
        } else {
            self.flags.get() & !f
        };
        self.flags = NonZeroU8::new(bits | ENTRY).unwrap_or(NonZeroU8::MIN);
    }

    /// Chunk 0 is kept for the header section, written last (see [`Spool::hold_head`]).
    ///
    /// [`Spool::hold_head`]: super::Spool::hold_head
    pub fn head_held(&self) -> bool {
        self.flag(HEAD_HELD)
    }

    pub fn set_head_held(&mut self, on: bool) {
        self.set_flag(HEAD_HELD, on);
    }

    /// The commit record has been synced: the client may have been told 250.
    pub fn durable(&self) -> bool {
        self.flag(DURABLE)
    }

    pub fn set_durable(&mut self) {
        self.set_flag(DURABLE, true);
    }

    /// From the null sender: it may dig into the delivery reserve.
    pub fn bounce(&self) -> bool {
        self.flag(BOUNCE)
    }

    pub fn committed(&self) -> bool {
        self.commit.is_some()
    }

    pub fn recipients(&self) -> usize {
        match self.more.as_ref().and_then(|m| m.recipients) {
            Some(n) => n as usize,
            None => usize::from(self.recipients),
        }
    }

    /// The body chunks in order.
    pub fn chunks(&self) -> impl Iterator<Item = Loc> + '_ {
        self.first_chunk
            .get()
            .into_iter()
            .chain(self.more.iter().flat_map(|m| m.chunks.iter().copied()))
    }

    pub fn chunk_count(&self) -> u32 {
        self.chunks().count() as u32
    }

    /// Body bytes: each chunk holds its index (4 bytes) and then body bytes.
    pub fn size(&self) -> u64 {
        self.chunks()
            .map(|l| u64::from(l.len.saturating_sub(4)))
            .sum()
    }

    pub fn push_chunk(&mut self, loc: Loc) {
        if self.first_chunk.is_some() {
            self.more_mut().chunks.push(loc);
        } else {
            self.first_chunk = loc;
        }
    }

    /// Puts the held chunk 0 in front of the chunks written meanwhile.
    pub fn insert_head(&mut self, loc: Loc) {
        let old = std::mem::replace(&mut self.first_chunk, loc);
        if old.is_some() {
            self.more_mut().chunks.insert(0, old);
        }
    }

    /// Where recipient `index`'s outcome record is, if it has one.
    pub fn outcome(&self, index: usize) -> Option<Loc> {
        self.more
            .as_ref()
            .and_then(|m| m.outcomes.get(index).copied())
            .and_then(Loc::get)
    }

    /// Records where recipient `index`'s outcome is; the location it replaces, if any.
    pub fn set_outcome(&mut self, index: usize, loc: Loc) -> Option<Loc> {
        let n = self.recipients();
        let outcomes = &mut self.more_mut().outcomes;
        if outcomes.len() < n {
            outcomes.resize(n, Loc::NONE);
        }
        outcomes
            .get_mut(index)
            .and_then(|slot| std::mem::replace(slot, loc).get())
    }

    /// Every record location of the message.
    pub fn locs(&self) -> impl Iterator<Item = Loc> + '_ {
        let outcomes = self
            .more
            .iter()
            .flat_map(|m| m.outcomes.iter().copied())
            .filter(Loc::is_some);
        [self.begin, self.commit, self.state_loc]
            .into_iter()
            .filter(Loc::is_some)
            .chain(self.chunks())
            .chain(outcomes)
    }

    /// Points the record at `old` to `new` (compaction moved it). False if no record is at `old`.
    pub fn relocate(&mut self, old: u32, new: Loc) -> bool {
        let fixed = [
            &mut self.begin,
            &mut self.first_chunk,
            &mut self.commit,
            &mut self.state_loc,
        ];
        let more = self
            .more
            .iter_mut()
            .flat_map(|m| m.chunks.iter_mut().chain(m.outcomes.iter_mut()));
        for l in fixed.into_iter().chain(more) {
            if l.is_some() && l.addr == old {
                *l = new;
                return true;
            }
        }
        false
    }
}

/// What the queue manager and the admin see of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    pub qid: QueueId,
    pub envelope: Envelope,
    /// Final outcome per recipient (same order as `envelope.recipients`); `None`: still to do.
    pub outcomes: Vec<Option<RecipientOutcome>>,
    pub state: QueueState,
    /// Body size in bytes.
    pub size: u64,
}

/// One message with the times its records carry (`postern queue show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHistory {
    pub summary: MessageSummary,
    /// When each recipient's outcome was written; None without an outcome, or for one written
    /// by firmware that kept no times.
    pub outcome_times: Vec<Option<OutcomeTime>>,
    /// Its queue state changes, oldest first; the last is the state it is in. Empty if it never
    /// changed (active since arrival).
    pub changes: Vec<StateEvent>,
    /// Changes before `changes[0]` that the spool no longer keeps.
    pub changes_before: u32,
}

/// When a recipient's outcome was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeTime {
    /// Unix seconds.
    pub at: u64,
    /// It came after this many of the message's state changes, before the next.
    pub after_changes: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(addr: u32) -> Loc {
        Loc { addr, len: 104 }
    }

    #[test]
    fn an_ordinary_message_fits_in_48_bytes() {
        assert!(std::mem::size_of::<Entry>() <= 48);
        assert_eq!(
            std::mem::size_of::<Option<Entry>>(),
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn chunks_outcomes_and_relocation() {
        let mut e = Entry::with(loc(0), 3, false);
        e.push_chunk(loc(200));
        e.push_chunk(loc(400));
        e.insert_head(loc(600));
        let chunks: Vec<u32> = e.chunks().map(|l| l.addr).collect();
        assert_eq!(chunks, [600, 200, 400]);
        assert_eq!(e.size(), 300);
        assert_eq!(e.set_outcome(2, loc(800)), None);
        assert_eq!(e.set_outcome(2, loc(900)), Some(loc(800)));
        assert_eq!(e.outcome(2), Some(loc(900)));
        assert_eq!(e.outcome(0), None);
        assert!(e.relocate(900, loc(1000)));
        assert!(e.relocate(200, loc(1200)));
        assert!(!e.relocate(77, loc(1)));
        let mut all: Vec<u32> = e.locs().map(|l| l.addr).collect();
        all.sort_unstable();
        assert_eq!(all, [0, 400, 600, 1000, 1200]);
    }

    #[test]
    fn huge_recipient_counts_survive() {
        let e = Entry::with(loc(0), 70_000, false);
        assert_eq!(e.recipients(), 70_000);
    }
}
