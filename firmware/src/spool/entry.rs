//! One message in the index: a 32-byte entry with no pointer in it, and a side entry for what
//! only some messages have (more than one body chunk, recipient outcomes on flash, a count or
//! length past its inline field). A backup MX holding a million deferred one-recipient
//! messages holds a million 32-byte entries and no side entry at all.
//!
//! Reads go through [`EntryRef`] and writes through [`EntryMut`], which see both halves; the
//! halves live in the index ([`super::index::Index`]) or together in a [`Message`] (recovery
//! builds them so, and copies are taken so).

use std::collections::HashMap;
use std::num::NonZeroU8;

use crate::mail::QueueId;

use super::index::Loc;

/// Always set: `flags` is never zero, so `Option<Entry>` (a hole in the index) costs nothing.
const ENTRY: u8 = 1;
const HEAD_HELD: u8 = 2;
const DURABLE: u8 = 4;
const BOUNCE: u8 = 8;
/// The message has a side entry.
const MORE: u8 = 16;

/// An inline length or count at its field's maximum is kept in the side entry.
const WIDE_U8: u8 = u8::MAX;
const WIDE_U16: u16 = u16::MAX;

/// What the index holds of every message: 32 bytes, aligned to 4, so that with its 8-byte queue
/// id a slot of the index is 40 bytes.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    begin: Loc,
    /// The first body chunk; the others are in the side entry.
    first_chunk: Loc,
    commit_addr: u32,
    state_addr: u32,
    state_len: u16,
    state_version: u16,
    /// Envelope recipients.
    recipients: u16,
    /// A commit record's body is a few bytes.
    commit_len: u8,
    flags: NonZeroU8,
}

/// What only some messages have.
#[derive(Debug, Clone, Default)]
pub(crate) struct More {
    chunks: Vec<Loc>,
    /// Per recipient, the location of its outcome record (`Loc::NONE`: still to do); empty until
    /// the first outcome.
    outcomes: Vec<Loc>,
    /// The values whose inline field reads as its maximum.
    recipients: u32,
    commit_len: u32,
    state_len: u32,
    state_version: u32,
}

/// A message's entry with its side entry, owned: recovery builds these, and copies are taken
/// so to read a message while the index changes.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) entry: Entry,
    pub(crate) more: Option<Box<More>>,
}

impl Message {
    /// A message with `recipients` recipients whose begin record is at `begin`.
    pub fn with(begin: Loc, recipients: u32, bounce: bool) -> Message {
        let mut m = Message {
            entry: Entry {
                begin,
                first_chunk: Loc::NONE,
                commit_addr: Loc::NONE.addr,
                state_addr: Loc::NONE.addr,
                state_len: 0,
                state_version: 0,
                recipients: 0,
                commit_len: 0,
                flags: NonZeroU8::MIN.saturating_add(if bounce { BOUNCE } else { 0 }),
            },
            more: None,
        };
        m.as_mut().set_recipients(recipients);
        m
    }

    pub fn as_ref(&self) -> EntryRef<'_> {
        EntryRef {
            e: &self.entry,
            more: self.more.as_deref(),
        }
    }

    pub fn as_mut(&mut self) -> EntryMut<'_> {
        EntryMut {
            e: &mut self.entry,
            more: MoreSlot::Owned(&mut self.more),
        }
    }
}

/// Where a writer finds or makes the side entry.
enum MoreSlot<'a> {
    Owned(&'a mut Option<Box<More>>),
    Side(&'a mut HashMap<QueueId, Box<More>>, QueueId),
}

impl Entry {
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

    pub fn has_more(&self) -> bool {
        self.flag(MORE)
    }
}

/// A message as the index holds it, to read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryRef<'a> {
    e: &'a Entry,
    more: Option<&'a More>,
}

impl<'a> EntryRef<'a> {
    pub(crate) fn new(e: &'a Entry, more: Option<&'a More>) -> EntryRef<'a> {
        EntryRef { e, more }
    }

    /// A copy that outlives changes to the index.
    pub fn to_message(self) -> Message {
        Message {
            entry: self.e.clone(),
            more: self.more.map(|m| Box::new(m.clone())),
        }
    }

    fn wide(&self, f: impl Fn(&More) -> u32) -> u32 {
        self.more.map_or(0, f)
    }

    pub fn begin(&self) -> Loc {
        self.e.begin
    }

    pub fn commit(&self) -> Loc {
        let len = match self.e.commit_len {
            WIDE_U8 => self.wide(|m| m.commit_len),
            n => u32::from(n),
        };
        Loc {
            addr: self.e.commit_addr,
            len,
        }
    }

    pub fn state_loc(&self) -> Loc {
        let len = match self.e.state_len {
            WIDE_U16 => self.wide(|m| m.state_len),
            n => u32::from(n),
        };
        Loc {
            addr: self.e.state_addr,
            len,
        }
    }

    /// Counts the message's state changes (see `StateBody::version`).
    pub fn state_version(&self) -> u32 {
        match self.e.state_version {
            WIDE_U16 => self.wide(|m| m.state_version),
            n => u32::from(n),
        }
    }

    /// Chunk 0 is kept for the header section, written last (see [`Spool::hold_head`]).
    ///
    /// [`Spool::hold_head`]: super::Spool::hold_head
    pub fn head_held(&self) -> bool {
        self.e.flag(HEAD_HELD)
    }

    /// The commit record has been synced: the client may have been told 250.
    pub fn durable(&self) -> bool {
        self.e.flag(DURABLE)
    }

    /// From the null sender: it may dig into the delivery reserve.
    pub fn bounce(&self) -> bool {
        self.e.flag(BOUNCE)
    }

    pub fn committed(&self) -> bool {
        self.commit().is_some()
    }

    pub fn recipients(&self) -> usize {
        match self.e.recipients {
            WIDE_U16 => self.wide(|m| m.recipients) as usize,
            n => usize::from(n),
        }
    }

    /// The body chunks in order.
    pub fn chunks(&self) -> impl Iterator<Item = Loc> + 'a {
        self.e
            .first_chunk
            .get()
            .into_iter()
            .chain(self.more.into_iter().flat_map(|m| m.chunks.iter().copied()))
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

    /// Where recipient `index`'s outcome record is, if it has one.
    pub fn outcome(&self, index: usize) -> Option<Loc> {
        self.more
            .and_then(|m| m.outcomes.get(index).copied())
            .and_then(Loc::get)
    }

    /// Every record location of the message.
    pub fn locs(&self) -> impl Iterator<Item = Loc> + 'a {
        let outcomes = self
            .more
            .into_iter()
            .flat_map(|m| m.outcomes.iter().copied())
            .filter(Loc::is_some);
        [self.begin(), self.commit(), self.state_loc()]
            .into_iter()
            .filter(Loc::is_some)
            .chain(self.chunks())
            .chain(outcomes)
    }
}

/// A message as the index holds it, to change.
pub(crate) struct EntryMut<'a> {
    e: &'a mut Entry,
    more: MoreSlot<'a>,
}

impl<'a> EntryMut<'a> {
    pub(crate) fn side(
        e: &'a mut Entry,
        side: &'a mut HashMap<QueueId, Box<More>>,
        qid: QueueId,
    ) -> EntryMut<'a> {
        EntryMut {
            e,
            more: MoreSlot::Side(side, qid),
        }
    }

    pub fn as_ref(&self) -> EntryRef<'_> {
        let more = match &self.more {
            MoreSlot::Owned(m) => m.as_deref(),
            MoreSlot::Side(side, qid) if self.e.has_more() => side.get(qid).map(|m| &**m),
            MoreSlot::Side(..) => None,
        };
        EntryRef { e: self.e, more }
    }

    fn more_mut(&mut self) -> &mut More {
        self.e.set_flag(MORE, true);
        match &mut self.more {
            MoreSlot::Owned(m) => m.get_or_insert_with(Box::default),
            MoreSlot::Side(side, qid) => side.entry(*qid).or_default(),
        }
    }

    fn set_recipients(&mut self, n: u32) {
        match u16::try_from(n) {
            Ok(small) if small != WIDE_U16 => self.e.recipients = small,
            _ => {
                self.e.recipients = WIDE_U16;
                self.more_mut().recipients = n;
            }
        }
    }

    pub fn set_head_held(&mut self, on: bool) {
        self.e.set_flag(HEAD_HELD, on);
    }

    pub fn set_durable(&mut self) {
        self.e.set_flag(DURABLE, true);
    }

    pub fn set_commit(&mut self, loc: Loc) {
        self.e.commit_addr = loc.addr;
        match u8::try_from(loc.len) {
            Ok(small) if small != WIDE_U8 => self.e.commit_len = small,
            _ => {
                self.e.commit_len = WIDE_U8;
                self.more_mut().commit_len = loc.len;
            }
        }
    }

    pub fn set_state_loc(&mut self, loc: Loc) {
        self.e.state_addr = loc.addr;
        match u16::try_from(loc.len) {
            Ok(small) if small != WIDE_U16 => self.e.state_len = small,
            _ => {
                self.e.state_len = WIDE_U16;
                self.more_mut().state_len = loc.len;
            }
        }
    }

    pub fn set_state_version(&mut self, version: u32) {
        match u16::try_from(version) {
            Ok(small) if small != WIDE_U16 => self.e.state_version = small,
            _ => {
                self.e.state_version = WIDE_U16;
                self.more_mut().state_version = version;
            }
        }
    }

    pub fn push_chunk(&mut self, loc: Loc) {
        if self.e.first_chunk.is_some() {
            self.more_mut().chunks.push(loc);
        } else {
            self.e.first_chunk = loc;
        }
    }

    /// Puts the held chunk 0 in front of the chunks written meanwhile.
    pub fn insert_head(&mut self, loc: Loc) {
        let old = std::mem::replace(&mut self.e.first_chunk, loc);
        if old.is_some() {
            self.more_mut().chunks.insert(0, old);
        }
    }

    /// Records where recipient `index`'s outcome is; the location it replaces, if any.
    pub fn set_outcome(&mut self, index: usize, loc: Loc) -> Option<Loc> {
        let n = self.as_ref().recipients();
        let outcomes = &mut self.more_mut().outcomes;
        if outcomes.len() < n {
            outcomes.resize(n, Loc::NONE);
        }
        outcomes
            .get_mut(index)
            .and_then(|slot| std::mem::replace(slot, loc).get())
    }

    /// Points the record at `old` to `new` (compaction moved it). False if no record is at `old`.
    pub fn relocate(&mut self, old: u32, new: Loc) -> bool {
        let (commit, state) = (self.as_ref().commit(), self.as_ref().state_loc());
        if commit.is_some() && commit.addr == old {
            self.set_commit(new);
            return true;
        }
        if state.is_some() && state.addr == old {
            self.set_state_loc(new);
            return true;
        }
        for l in [&mut self.e.begin, &mut self.e.first_chunk] {
            if l.is_some() && l.addr == old {
                *l = new;
                return true;
            }
        }
        if !self.e.has_more() {
            return false;
        }
        let more = self.more_mut();
        for l in more.chunks.iter_mut().chain(more.outcomes.iter_mut()) {
            if l.is_some() && l.addr == old {
                *l = new;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(addr: u32) -> Loc {
        Loc { addr, len: 104 }
    }

    #[test]
    fn an_ordinary_message_fits_in_32_bytes_without_a_pointer() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
        assert_eq!(std::mem::align_of::<Entry>(), 4);
        assert_eq!(
            std::mem::size_of::<Option<Entry>>(),
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn chunks_outcomes_and_relocation() {
        let mut m = Message::with(loc(0), 3, false);
        let mut e = m.as_mut();
        e.push_chunk(loc(200));
        e.push_chunk(loc(400));
        e.insert_head(loc(600));
        let chunks: Vec<u32> = e.as_ref().chunks().map(|l| l.addr).collect();
        assert_eq!(chunks, [600, 200, 400]);
        assert_eq!(e.as_ref().size(), 300);
        assert_eq!(e.set_outcome(2, loc(800)), None);
        assert_eq!(e.set_outcome(2, loc(900)), Some(loc(800)));
        assert_eq!(e.as_ref().outcome(2), Some(loc(900)));
        assert_eq!(e.as_ref().outcome(0), None);
        assert!(e.relocate(900, loc(1000)));
        assert!(e.relocate(200, loc(1200)));
        assert!(!e.relocate(77, loc(1)));
        e.set_commit(loc(1400));
        e.set_state_loc(loc(1600));
        assert!(e.relocate(1400, loc(1800)));
        assert!(e.relocate(1600, loc(2000)));
        let mut all: Vec<u32> = m.as_ref().locs().map(|l| l.addr).collect();
        all.sort_unstable();
        assert_eq!(all, [0, 400, 600, 1000, 1200, 1800, 2000]);
    }

    #[test]
    fn an_ordinary_message_needs_no_side_entry() {
        let mut m = Message::with(loc(0), 1, false);
        let mut e = m.as_mut();
        e.push_chunk(loc(200));
        e.set_commit(Loc { addr: 400, len: 9 });
        e.set_state_loc(Loc {
            addr: 500,
            len: 300,
        });
        e.set_state_version(7);
        e.set_durable();
        assert!(m.more.is_none());
        assert!(!m.entry.has_more());
        let e = m.as_ref();
        assert_eq!(e.commit(), Loc { addr: 400, len: 9 });
        assert_eq!(e.state_loc().len, 300);
        assert_eq!((e.state_version(), e.recipients()), (7, 1));
        assert!(e.durable() && e.committed() && !e.bounce() && !e.head_held());
    }

    #[test]
    fn values_past_their_inline_fields_survive() {
        let mut m = Message::with(loc(0), 70_000, true);
        let mut e = m.as_mut();
        e.set_commit(Loc { addr: 8, len: 255 });
        e.set_state_loc(Loc {
            addr: 16,
            len: 70_000,
        });
        e.set_state_version(65_535);
        let e = m.as_ref();
        assert_eq!(e.recipients(), 70_000);
        assert_eq!(e.commit(), Loc { addr: 8, len: 255 });
        assert_eq!(
            e.state_loc(),
            Loc {
                addr: 16,
                len: 70_000
            }
        );
        assert_eq!(e.state_version(), 65_535);
        assert!(e.bounce());
        // And back below: the inline field again.
        let mut e = m.as_mut();
        e.set_state_version(65_536);
        e.set_state_version(3);
        assert_eq!(m.as_ref().state_version(), 3);
    }

    #[test]
    fn the_index_side_entry_is_made_on_first_need() {
        let mut m = Message::with(loc(0), 1, false);
        let mut side = HashMap::new();
        let q = QueueId(5);
        let mut e = EntryMut::side(&mut m.entry, &mut side, q);
        e.push_chunk(loc(100));
        assert!(side.is_empty());
        let mut e = EntryMut::side(&mut m.entry, &mut side, q);
        e.push_chunk(loc(200));
        assert_eq!(side.len(), 1);
        assert!(m.entry.has_more());
        let chunks: Vec<u32> = EntryRef::new(&m.entry, side.get(&q).map(|b| &**b))
            .chunks()
            .map(|l| l.addr)
            .collect();
        assert_eq!(chunks, [100, 200]);
    }
}
