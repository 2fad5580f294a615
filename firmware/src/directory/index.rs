//! The address index: account addresses and aliases to entries, in one open-addressing table of
//! 8-byte slots (a hash tag and an entry number). The keys themselves are the strings the
//! accounts and aliases already hold, so no address is stored twice; a lookup hashes once and
//! compares the string only when the tag matches. Load stays at or under 3/4.
//!
//! Removing shifts back the rest of the entry's run (no tombstones), so a poll that replaces a
//! hundred accounts touches a hundred runs, not the whole table.

use std::hash::BuildHasher;

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

#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    slots: Vec<Slot>,
    len: usize,
    hasher: BuildAddressHasher,
}

impl Index {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key.as_bytes())
    }

    /// The entry for `key` (already lowercase); `name` gives the key an entry holds.
    pub(crate) fn find<'a>(&self, key: &str, name: impl Fn(Entry) -> &'a str) -> Option<Entry> {
        if self.slots.is_empty() {
            return None;
        }
        let h = self.hash(key);
        let mask = self.slots.len() - 1;
        let tag = (h >> 32) as u32;
        let mut i = h as usize & mask;
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(i)?;
            let e = slot.entry()?;
            if slot.tag == tag && name(e) == key {
                return Some(e);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Adds `entry` under `key`; the caller has checked that `key` is not present.
    pub(crate) fn insert<'a>(&mut self, key: &str, entry: Entry, name: impl Fn(Entry) -> &'a str) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow(&name);
        }
        let h = self.hash(key);
        self.place(h, entry);
        self.len += 1;
    }

    fn place(&mut self, h: u64, entry: Entry) {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        // The load limit keeps a free slot, so this ends.
        while let Some(slot) = self.slots.get_mut(i) {
            if slot.entry == EMPTY {
                *slot = Slot {
                    tag: (h >> 32) as u32,
                    entry: encode(entry),
                };
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Makes room for `more` entries at once: a directory built whole grows its table before
    /// it fills, not by doubling as it goes (the last doubling held the old table and the new,
    /// ~6 MB at 200 000 addresses).
    pub(crate) fn reserve<'a>(&mut self, more: usize, name: impl Fn(Entry) -> &'a str) {
        while (self.len + more) * 4 > self.slots.len() * 3 {
            self.grow(&name);
        }
    }

    fn grow<'a>(&mut self, name: &impl Fn(Entry) -> &'a str) {
        let old = std::mem::take(&mut self.slots);
        let size = (old.len() * 2).max(16);
        self.slots = vec![
            Slot {
                tag: 0,
                entry: EMPTY
            };
            size
        ];
        for e in old.iter().filter_map(|s| s.entry()) {
            let h = self.hash(name(e));
            self.place(h, e);
        }
    }

    /// The slot holding `entry`, found from its key's hash (compares entry numbers, not keys).
    fn slot_of(&self, key: &str, entry: Entry) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let code = encode(entry);
        let mask = self.slots.len() - 1;
        let mut i = self.hash(key) as usize & mask;
        for _ in 0..self.slots.len() {
            match self.slots.get(i)?.entry {
                EMPTY => return None,
                e if e == code => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
        None
    }

    /// Removes `entry` (stored under `key`), shifting back the entries after it in its run so
    /// every lookup still finds its entry without tombstones; `name` gives the key an entry
    /// holds, as at insertion.
    pub(crate) fn remove<'a>(&mut self, key: &str, entry: Entry, name: impl Fn(Entry) -> &'a str) {
        let Some(mut hole) = self.slot_of(key, entry) else {
            return;
        };
        let mask = self.slots.len() - 1;
        let mut j = (hole + 1) & mask;
        while let Some(slot) = self.slots.get(j).copied() {
            let Some(e) = slot.entry() else { break };
            let home = self.hash(name(e)) as usize & mask;
            // The entry at `j` may fill the hole when the hole lies between its home and `j`.
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = slot;
                }
                hole = j;
            }
            j = (j + 1) & mask;
        }
        if let Some(h) = self.slots.get_mut(hole) {
            h.entry = EMPTY;
        }
        self.len = self.len.saturating_sub(1);
    }

    /// `from` (stored under `key`) is now numbered `to`.
    pub(crate) fn renumber(&mut self, key: &str, from: Entry, to: Entry) {
        if let Some(slot) = self.slot_of(key, from).and_then(|i| self.slots.get_mut(i)) {
            slot.entry = encode(to);
        }
    }

    /// Bytes the table takes on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let size = idx.slots.len();
        assert!(size * 3 >= 1000 * 4, "{size}");
        // What was there before the room was made is still found.
        assert_eq!(idx.find(&names[3], name), Some(Entry::Account(3)));
        for i in 10..1000u32 {
            idx.insert(&names[i as usize], Entry::Alias(i), name);
        }
        assert_eq!(idx.slots.len(), size);
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
        assert_eq!(idx.slots.len(), size);
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
        assert!(idx.slots.iter().all(|s| s.entry().is_none()));
    }
}
