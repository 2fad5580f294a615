//! The address index: account addresses and aliases to entries, in open-addressing tables of
//! 8-byte slots (a hash tag and an entry number). The keys themselves are the strings the
//! accounts and aliases already hold, so no address is stored twice; a lookup hashes once and
//! compares the string only when the tag matches. Load stays at or under 3/4.
//!
//! The tables are 1024 parts, an address's part chosen by its hash's top bits, each shared
//! between copies of the index: the directory a poll changes is a copy of the one served, and
//! a hundred changes copy ~100 parts of a few KB (one table was 4 MB copied at every poll). A
//! part's size is any number of slots, not a power of two, so a directory built whole sizes
//! each for its share and no more.
//!
//! Removing shifts back the rest of the entry's run (no tombstones), so a poll that replaces a
//! hundred accounts touches a hundred runs, not the whole table.

use std::hash::BuildHasher;
use std::sync::Arc;

use super::hash::BuildAddressHasher;

/// What an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Account(u32),
    Alias(u32),
}

const EMPTY: u32 = u32::MAX;
const ALIAS_BIT: u32 = 1 << 31;

#[derive(Debug, Clone, Copy)]
struct Slot {
    tag: u32,
    entry: u32,
}

const FREE: Slot = Slot {
    tag: 0,
    entry: EMPTY,
};

impl Slot {
    fn entry(self) -> Option<Entry> {
        match self.entry {
            EMPTY => None,
            e if e & ALIAS_BIT != 0 => Some(Entry::Alias(e & !ALIAS_BIT)),
            e => Some(Entry::Account(e)),
        }
    }
}

fn encode(e: Entry) -> u32 {
    match e {
        Entry::Account(i) => i & !ALIAS_BIT,
        Entry::Alias(i) => (i & !ALIAS_BIT) | ALIAS_BIT,
    }
}

/// The most entries of each kind (the top bit of a slot tells accounts from aliases).
pub(crate) const MAX_ENTRIES: usize = (ALIAS_BIT - 1) as usize;

/// Parts, by the hash's top ten bits.
const PARTS: usize = 1024;

fn part_of(h: u64) -> usize {
    (h >> 54) as usize % PARTS
}

fn tag_of(h: u64) -> u32 {
    (h >> 32) as u32
}

/// Slots that hold `len` entries at 3/4 load with one free (a probe ends at a free slot).
fn slots_for(len: usize) -> usize {
    (len * 4).div_ceil(3) + 1
}

/// One part: a table of linear probing over `slots.len()` slots.
#[derive(Debug, Clone, Default)]
struct Part {
    slots: Vec<Slot>,
    len: usize,
}

impl Part {
    /// Where a probe for hash `h` starts: the low 32 bits scaled to the table's size.
    fn home(&self, h: u64) -> usize {
        (((h & 0xffff_ffff) * self.slots.len() as u64) >> 32) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 >= self.slots.len() { 0 } else { i + 1 }
    }

    fn find<'a>(&self, h: u64, key: &str, name: impl Fn(Entry) -> &'a str) -> Option<Entry> {
        let tag = tag_of(h);
        let mut i = self.home(h);
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(i)?;
            let e = slot.entry()?;
            if slot.tag == tag && name(e) == key {
                return Some(e);
            }
            i = self.next(i);
        }
        None
    }

    fn place(&mut self, h: u64, entry: Entry) {
        let mut i = self.home(h);
        // The load limit keeps a free slot, so this ends.
        for _ in 0..self.slots.len() {
            let next = self.next(i);
            if let Some(slot) = self.slots.get_mut(i)
                && slot.entry == EMPTY
            {
                *slot = Slot {
                    tag: tag_of(h),
                    entry: encode(entry),
                };
                return;
            }
            i = next;
        }
    }

    /// Sizes the table for `len` entries, placing again those it has.
    fn resize(&mut self, len: usize, hash: impl Fn(Entry) -> u64) {
        let old = std::mem::replace(&mut self.slots, vec![FREE; slots_for(len)]);
        for e in old.iter().filter_map(|s| s.entry()) {
            self.place(hash(e), e);
        }
    }

    /// The slot holding `entry`, found from its key's hash (compares entry numbers, not keys).
    fn slot_of(&self, h: u64, entry: Entry) -> Option<usize> {
        let code = encode(entry);
        let mut i = self.home(h);
        for _ in 0..self.slots.len() {
            match self.slots.get(i)?.entry {
                EMPTY => return None,
                e if e == code => return Some(i),
                _ => i = self.next(i),
            }
        }
        None
    }

    /// Removes the entry in slot `hole`, shifting back the entries after it in its run.
    fn remove_at(&mut self, mut hole: usize, hash: impl Fn(Entry) -> u64) {
        let n = self.slots.len();
        let mut j = self.next(hole);
        while let Some(slot) = self.slots.get(j).copied() {
            let Some(e) = slot.entry() else { break };
            let home = self.home(hash(e));
            // The entry at `j` may fill the hole when the hole lies between its home and `j`
            // (distances around the table).
            if (j + n - home) % n >= (j + n - hole) % n {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = slot;
                }
                hole = j;
            }
            j = self.next(j);
        }
        if let Some(h) = self.slots.get_mut(hole) {
            h.entry = EMPTY;
        }
        self.len = self.len.saturating_sub(1);
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    /// Empty until the first entry, then `PARTS` long.
    parts: Vec<Arc<Part>>,
    len: usize,
    hasher: BuildAddressHasher,
}

impl Index {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key.as_bytes())
    }

    fn part(&self, h: u64) -> Option<&Part> {
        self.parts.get(part_of(h)).map(|p| &**p)
    }

    /// The part of `h` to write to: copied first if a copy of the index shares it.
    fn part_mut(&mut self, h: u64) -> Option<&mut Part> {
        if self.parts.is_empty() {
            // One empty part, shared on purpose until each is first written.
            let empty = Arc::new(Part::default());
            self.parts = (0..PARTS).map(|_| Arc::clone(&empty)).collect();
        }
        self.parts.get_mut(part_of(h)).map(Arc::make_mut)
    }

    /// The entry for `key` (already lowercase); `name` gives the key an entry holds.
    pub(crate) fn find<'a>(&self, key: &str, name: impl Fn(Entry) -> &'a str) -> Option<Entry> {
        let h = self.hash(key);
        self.part(h)?.find(h, key, name)
    }

    /// Adds `entry` under `key`; the caller has checked that `key` is not present.
    pub(crate) fn insert<'a>(&mut self, key: &str, entry: Entry, name: impl Fn(Entry) -> &'a str) {
        let h = self.hash(key);
        let hasher = self.hasher.clone();
        let Some(part) = self.part_mut(h) else {
            return;
        };
        if slots_for(part.len + 1) > part.slots.len() {
            let hash = |e: Entry| hasher.hash_one(name(e).as_bytes());
            part.resize((part.len + 1) * 2, hash);
        }
        part.place(h, entry);
        part.len += 1;
        self.len += 1;
    }

    /// Makes room for `more` entries at once, each part for its share and four standard
    /// deviations more (a part holds ~share ± √share): a directory built whole sizes its parts
    /// once, not by doubling as it fills them (the tables outgrown were left as holes among
    /// what the build kept).
    pub(crate) fn reserve<'a>(&mut self, more: usize, name: impl Fn(Entry) -> &'a str) {
        if more == 0 {
            return;
        }
        let share = more.div_ceil(PARTS);
        let room = share + 4 * share.isqrt() + 4;
        let hasher = self.hasher.clone();
        let hash = |e: Entry| hasher.hash_one(name(e).as_bytes());
        // Through `part_mut`, which sets the parts up; any hash of a part reaches it.
        for i in 0..PARTS {
            let Some(part) = self.part_mut((i as u64) << 54) else {
                return;
            };
            if slots_for(part.len + room) > part.slots.len() {
                part.resize(part.len + room, hash);
            }
        }
    }

    /// Removes `entry` (stored under `key`), shifting back the entries after it in its run so
    /// every lookup still finds its entry without tombstones; `name` gives the key an entry
    /// holds, as at insertion.
    pub(crate) fn remove<'a>(&mut self, key: &str, entry: Entry, name: impl Fn(Entry) -> &'a str) {
        let h = self.hash(key);
        let Some(hole) = self.part(h).and_then(|p| p.slot_of(h, entry)) else {
            return;
        };
        let hasher = self.hasher.clone();
        if let Some(part) = self.part_mut(h) {
            part.remove_at(hole, |e| hasher.hash_one(name(e).as_bytes()));
            self.len = self.len.saturating_sub(1);
        }
    }

    /// `from` (stored under `key`) is now numbered `to`.
    pub(crate) fn renumber(&mut self, key: &str, from: Entry, to: Entry) {
        let h = self.hash(key);
        let Some(i) = self.part(h).and_then(|p| p.slot_of(h, from)) else {
            return;
        };
        if let Some(slot) = self.part_mut(h).and_then(|p| p.slots.get_mut(i)) {
            slot.entry = encode(to);
        }
    }

    /// Bytes the tables take on the heap (each part counted once, whoever shares it).
    pub(crate) fn heap_bytes(&self) -> usize {
        let parts = self.parts.capacity() * std::mem::size_of::<Arc<Part>>();
        let mut seen = std::collections::HashSet::new();
        let tables: usize = (self.parts.iter())
            .filter(|p| seen.insert(Arc::as_ptr(p)))
            .map(|p| p.slots.capacity() * std::mem::size_of::<Slot>())
            .sum();
        parts + tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Index {
        /// Slots in all parts.
        fn slots(&self) -> usize {
            self.parts.iter().map(|p| p.slots.len()).sum()
        }
    }

    #[test]
    fn finds_what_was_inserted_across_growth() {
        let names: Vec<String> = (0..1000).map(|i| format!("user{i}@example.com")).collect();
        let name = |e: Entry| match e {
            Entry::Account(i) | Entry::Alias(i) => names[i as usize].as_str(),
        };
        let mut idx = Index::default();
        for i in 0..1000u32 {
            let e = if i % 3 == 0 {
                Entry::Alias(i)
            } else {
                Entry::Account(i)
            };
            idx.insert(&names[i as usize], e, name);
        }
        for i in 0..1000u32 {
            let e = if i % 3 == 0 {
                Entry::Alias(i)
            } else {
                Entry::Account(i)
            };
            assert_eq!(idx.find(&names[i as usize], name), Some(e));
        }
        assert_eq!(idx.find("nobody@example.com", name), None);
    }

    #[test]
    fn room_reserved_takes_what_was_announced_without_growing() {
        let names: Vec<String> = (0..1000).map(|i| format!("r{i}@example.com")).collect();
        let name = |e: Entry| match e {
            Entry::Account(i) | Entry::Alias(i) => names[i as usize].as_str(),
        };
        let mut idx = Index::default();
        for i in 0..10u32 {
            idx.insert(&names[i as usize], Entry::Account(i), name);
        }
        idx.reserve(990, name);
        let size = idx.slots();
        assert!(size * 3 >= 1000 * 4, "{size}");
        // What was there before the room was made is still found.
        assert_eq!(idx.find(&names[3], name), Some(Entry::Account(3)));
        for i in 10..1000u32 {
            idx.insert(&names[i as usize], Entry::Alias(i), name);
        }
        assert_eq!(idx.slots(), size);
        for i in 0..1000u32 {
            let want = if i < 10 {
                Entry::Account(i)
            } else {
                Entry::Alias(i)
            };
            assert_eq!(idx.find(&names[i as usize], name), Some(want));
        }
        // Room that is there already changes nothing.
        idx.reserve(0, name);
        assert_eq!(idx.slots(), size);
    }

    /// A copy shares the parts; writing to it copies only the parts written to, and the
    /// original finds what it had and only that.
    #[test]
    fn a_copy_shares_all_but_the_parts_written_to() {
        let names: Vec<String> = (0..5000).map(|i| format!("c{i}@example.com")).collect();
        let name = |e: Entry| match e {
            Entry::Account(i) | Entry::Alias(i) => names[i as usize].as_str(),
        };
        let mut idx = Index::default();
        idx.reserve(4000, name);
        for i in 0..4000u32 {
            idx.insert(&names[i as usize], Entry::Account(i), name);
        }
        let mut copy = idx.clone();
        copy.insert(&names[4000], Entry::Alias(4000), name);
        copy.remove(&names[7], Entry::Account(7), name);
        copy.renumber(&names[9], Entry::Account(9), Entry::Alias(9));
        let shared = (idx.parts.iter().zip(&copy.parts))
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(shared >= PARTS - 3, "{shared}");
        assert_eq!(idx.find(&names[4000], name), None);
        assert_eq!(idx.find(&names[7], name), Some(Entry::Account(7)));
        assert_eq!(idx.find(&names[9], name), Some(Entry::Account(9)));
        assert_eq!(copy.find(&names[4000], name), Some(Entry::Alias(4000)));
        assert_eq!(copy.find(&names[7], name), None);
        assert_eq!(copy.find(&names[9], name), Some(Entry::Alias(9)));
        assert_eq!((idx.len, copy.len), (4000, 4000));
    }

    /// Removing shifts runs back: whatever is left is found, whatever went is not, in any
    /// order of removal (every third entry, then the rest from the end), down to empty.
    #[test]
    fn removal_in_place_keeps_every_other_entry_found() {
        let names: Vec<String> = (0..2000).map(|i| format!("u{i}@example.com")).collect();
        let name = |e: Entry| match e {
            Entry::Account(i) | Entry::Alias(i) => names[i as usize].as_str(),
        };
        let mut idx = Index::default();
        for i in 0..2000u32 {
            idx.insert(&names[i as usize], Entry::Account(i), name);
        }
        let mut present = vec![true; 2000];
        let order = (0..2000u32)
            .filter(|i| i % 3 == 1)
            .chain((0..2000u32).rev().filter(|i| i % 3 != 1));
        for (n, i) in order.enumerate() {
            idx.remove(&names[i as usize], Entry::Account(i), name);
            present[i as usize] = false;
            if n % 97 == 0 || n > 1990 {
                for (j, &p) in present.iter().enumerate() {
                    let want = p.then_some(Entry::Account(j as u32));
                    assert_eq!(idx.find(&names[j], name), want, "after {n} removals");
                }
            }
        }
        assert_eq!(idx.len, 0);
        assert!(idx.parts.iter().all(|p| p.len == 0));
        assert!(
            (idx.parts.iter())
                .flat_map(|p| p.slots.iter())
                .all(|s| s.entry().is_none())
        );
    }
}
