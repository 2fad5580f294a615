//! The model's entries by key, in shards a copy shares. The directory served keeps the model it
//! was built from, so a poll changes a copy: with one map, the copy cloned 100 000 pointers
//! and the old one freed them again, and finding what the poll changed walked both whole. A
//! copy now shares every shard; a change copies its shard only, and two models compare shard by
//! shard, skipping the ones they share.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::key::Key;
use super::packed::Packed;

pub(super) type Shard = BTreeMap<Key, Packed>;

/// Shards: at 100 000 entries ~100 each, so a poll's hundred changes copy ~10 000 pointers.
const SHARDS: usize = 1024;

static EMPTY: Shard = BTreeMap::new();

#[derive(Debug, Clone, Default)]
pub(super) struct EntryMap {
    /// Empty until the first entry, then `SHARDS` long.
    shards: Vec<Arc<Shard>>,
    len: usize,
}

/// The shard of a key. Keys that name a UUID go by its first ten bits, so that walking the
/// shards in order walks them in key order: OpenLDAP's UUIDs are time-based, so key order is
/// often the order the entries were read and allocated in, and a walk in that order (the
/// snapshot's encoding, twice over every entry) reads memory in order. Other keys go by FNV-1a.
/// Either is the same in every process (a model read back from flash is compared with one built
/// since).
fn shard_of(key: &Key) -> usize {
    match key {
        Key::Uuid(u) => (usize::from(u[0]) << 2 | usize::from(u[1] >> 6)) % SHARDS,
        Key::Text(t) => {
            let h = t.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            (h % SHARDS as u64) as usize
        }
    }
}

impl EntryMap {
    fn shard(&self, i: usize) -> &Shard {
        self.shards.get(i).map_or(&EMPTY, |s| s)
    }

    pub fn get(&self, key: &Key) -> Option<&Packed> {
        self.shard(shard_of(key)).get(key)
    }

    pub fn insert(&mut self, key: Key, m: Packed) -> Option<Packed> {
        if self.shards.is_empty() {
            // One empty shard, shared on purpose until each is first written.
            let empty = Arc::new(BTreeMap::new());
            self.shards = (0..SHARDS).map(|_| Arc::clone(&empty)).collect();
        }
        let shard = self.shards.get_mut(shard_of(&key))?;
        let old = Arc::make_mut(shard).insert(key, m);
        self.len += usize::from(old.is_none());
        old
    }

    pub fn remove(&mut self, key: &Key) -> Option<Packed> {
        let shard = self.shards.get_mut(shard_of(key))?;
        if !shard.contains_key(key) {
            // Not copied for nothing.
            return None;
        }
        let old = Arc::make_mut(shard).remove(key);
        self.len -= usize::from(old.is_some());
        old
    }

    /// A map of `entries` built in one go, each shard from its entries sorted; of two with one
    /// key, the later is kept. Filled an entry at a time, a shard's nodes are half to two
    /// thirds full (~74 bytes an entry), and a full sync's, allocated among its records, left
    /// holes the allocator could not give back when they were freed. Built whole they are full
    /// (~49 bytes an entry) and allocated together.
    pub fn from_entries(mut entries: Vec<(Key, Packed)>) -> EntryMap {
        // Stable: the later of two entries with one key stays the later.
        entries.sort_by_cached_key(|(k, _)| shard_of(k));
        let empty = Arc::new(BTreeMap::new());
        let mut map = EntryMap {
            shards: (0..SHARDS).map(|_| Arc::clone(&empty)).collect(),
            len: 0,
        };
        let mut entries = entries.into_iter().peekable();
        while let Some(first) = entries.peek() {
            let at = shard_of(&first.0);
            let run = std::iter::from_fn(|| entries.next_if(|(k, _)| shard_of(k) == at));
            // Sorts, then builds full nodes; the later of equal keys is kept.
            let shard: Shard = run.collect();
            map.len += shard.len();
            if let Some(s) = map.shards.get_mut(at) {
                *s = Arc::new(shard);
            }
        }
        map
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, shard by shard (in key order within a shard).
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Packed)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Packed> {
        self.iter().map(|(_, m)| m)
    }

    /// The shards of `self` and `before` at the same place, where they are not the same shard.
    pub fn differing<'a, 'b>(
        &'a self,
        before: &'b EntryMap,
    ) -> impl Iterator<Item = (&'a Shard, &'b Shard)> {
        (0..SHARDS)
            .map(move |i| (self.shard(i), before.shard(i)))
            .filter(|(a, b)| !std::ptr::eq(*a, *b))
    }
}

impl FromIterator<(Key, Packed)> for EntryMap {
    fn from_iter<I: IntoIterator<Item = (Key, Packed)>>(iter: I) -> EntryMap {
        EntryMap::from_entries(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(dn: &str) -> Packed {
        Packed::Whole(Arc::new(super::super::model::Mapped {
            dn: dn.into(),
            object: Err(super::super::object::SkipReason::EmptyList),
        }))
    }

    fn dn(p: Option<&Packed>) -> Option<&str> {
        match p {
            Some(Packed::Whole(m)) => Some(&m.dn),
            _ => None,
        }
    }

    #[test]
    fn a_copy_shares_all_but_the_shards_changed() {
        let mut a: EntryMap = (0..5000)
            .map(|i| (Key::of(&format!("id:{i}")), mapped(&format!("uid={i}"))))
            .collect();
        assert_eq!(a.len(), 5000);
        let before = a.clone();
        assert_eq!(a.differing(&before).count(), 0);
        a.insert(Key::of("id:17"), mapped("uid=changed"));
        a.insert(Key::of("id:new"), mapped("uid=new"));
        let removed = a.remove(&Key::of("id:4"));
        assert!(
            removed
                .zip(before.get(&Key::of("id:4")))
                .is_some_and(|(x, y)| x.is(y))
        );
        assert!(a.remove(&Key::of("id:absent")).is_none());
        assert_eq!(a.len(), 5000);
        let differing = a.differing(&before).count();
        assert!((1..=3).contains(&differing), "{differing}");
        assert_eq!(dn(a.get(&Key::of("id:17"))), Some("uid=changed"));
        assert_eq!(dn(before.get(&Key::of("id:17"))), Some("uid=17"));
        assert_eq!(a.iter().count(), 5000);
        assert!(EntryMap::default().get(&Key::of("id:1")).is_none());
        // UUID keys walk in key order.
        let uuids: EntryMap = (0..3000u32)
            .map(|i| {
                let mut u = [0u8; 16];
                u[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
                let key = format!("id:{}", super::super::syncrepl::uuid_text(&u));
                (Key::of(&key), mapped("uid=x"))
            })
            .collect();
        let keys: Vec<&Key> = uuids.keys().collect();
        assert!(keys.iter().all(|k| k.uuid().is_some()));
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            EntryMap::default().differing(&EntryMap::default()).count(),
            0
        );
    }
}
