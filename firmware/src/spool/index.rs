//! The in-RAM index: for every message, where each of its records sits on flash, in a fixed-size
//! entry. Envelopes, outcomes and state reasons stay on flash and are read back on demand
//! (see `summary.rs`): a backup MX holding a million messages for a secondary that is down must
//! not hold a million envelopes in RAM.

use std::collections::HashMap;

use crate::mail::{Envelope, QueueId, QueueState, RecipientOutcome, StateEvent};

use super::entry::{Entry, EntryMut, EntryRef, Message, More};
use super::qid_map::QidMap;
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

/// The index proper: every message's entry in queue id order, and the side entries of the few
/// that need one.
#[derive(Default)]
pub(crate) struct Index {
    entries: QidMap<Entry>,
    more: HashMap<QueueId, Box<More>>,
}

impl Index {
    /// From messages in any order; a later duplicate of a queue id is dropped.
    pub fn from_messages(messages: Vec<(QueueId, Message)>) -> Index {
        let mut more = HashMap::new();
        let entries = messages
            .into_iter()
            .map(|(qid, m)| {
                if let Some(side) = m.more {
                    more.entry(qid).or_insert(side);
                }
                (qid, m.entry)
            })
            .collect();
        let mut index = Index {
            entries: QidMap::from_unsorted(entries),
            more,
        };
        // A duplicate's side entry may have been kept where its entry was not.
        let entries = &index.entries;
        index
            .more
            .retain(|qid, _| entries.get(qid).is_some_and(Entry::has_more));
        index
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn side(&self, qid: &QueueId, e: &Entry) -> Option<&More> {
        if e.has_more() {
            self.more.get(qid).map(|m| &**m)
        } else {
            None
        }
    }

    pub fn get(&self, qid: &QueueId) -> Option<EntryRef<'_>> {
        let e = self.entries.get(qid)?;
        Some(EntryRef::new(e, self.side(qid, e)))
    }

    pub fn get_mut(&mut self, qid: &QueueId) -> Option<EntryMut<'_>> {
        let e = self.entries.get_mut(qid)?;
        Some(EntryMut::side(e, &mut self.more, *qid))
    }

    /// Adds a message; false (and `m` dropped) if the queue id is there already.
    pub fn insert(&mut self, qid: QueueId, m: Message) -> bool {
        if !self.entries.insert(qid, m.entry) {
            return false;
        }
        match m.more {
            Some(side) => drop(self.more.insert(qid, side)),
            None => drop(self.more.remove(&qid)),
        }
        true
    }

    pub fn remove(&mut self, qid: &QueueId) -> Option<Message> {
        let entry = self.entries.remove(qid)?;
        let more = self.more.remove(qid);
        if self.more.capacity() > 64 && self.more.len() < self.more.capacity() / 4 {
            self.more.shrink_to(self.more.len() * 2);
        }
        Some(Message { entry, more })
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (QueueId, EntryRef<'_>)> + '_ {
        self.entries
            .iter()
            .map(|(q, e)| (q, EntryRef::new(e, self.side(&q, e))))
    }

    pub fn values(&self) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        self.iter().map(|(_, e)| e)
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
    fn a_slot_of_the_index_is_40_bytes() {
        assert_eq!(std::mem::size_of::<(QueueId, Option<Entry>)>(), 40);
    }

    #[test]
    fn side_entries_come_and_go_with_their_messages() {
        let mut index = Index::default();
        let (a, b) = (QueueId(1), QueueId(2));
        assert!(index.insert(a, Message::with(loc(0), 1, false)));
        assert!(index.insert(b, Message::with(loc(200), 1, false)));
        assert!(!index.insert(b, Message::with(loc(400), 1, false)));
        let mut e = index.get_mut(&b).unwrap();
        e.push_chunk(loc(600));
        e.push_chunk(loc(800));
        assert_eq!(index.more.len(), 1);
        let chunks: Vec<u32> = index.get(&b).unwrap().chunks().map(|l| l.addr).collect();
        assert_eq!(chunks, [600, 800]);
        assert_eq!(index.get(&a).unwrap().chunk_count(), 0);
        let copy = index.get(&b).unwrap().to_message();
        let removed = index.remove(&b).unwrap();
        assert!(index.more.is_empty());
        assert_eq!(removed.as_ref().chunk_count(), 2);
        assert_eq!(copy.as_ref().chunk_count(), 2);
        // Back in, with its side entry.
        assert!(index.insert(b, removed));
        assert_eq!(index.get(&b).unwrap().chunk_count(), 2);
        assert_eq!(index.values().count(), 2);
    }

    #[test]
    fn from_messages_keeps_the_first_of_duplicates_with_its_own_side_entry() {
        let q = QueueId(9);
        let mut big = Message::with(loc(0), 1, false);
        big.as_mut().push_chunk(loc(100));
        big.as_mut().push_chunk(loc(200));
        let small = Message::with(loc(300), 1, false);
        let index = Index::from_messages(vec![(q, small), (q, big)]);
        assert_eq!(index.len(), 1);
        assert_eq!(index.get(&q).unwrap().begin(), loc(300));
        assert_eq!(index.get(&q).unwrap().chunk_count(), 0);
        assert!(index.more.is_empty());
    }
}
