//! A map keyed by queue id, kept as one sorted vector: the spool's and the queue's per-message
//! index. Queue ids are handed out in increasing order, so new messages land at (or near) the
//! end; a tree would spend a node per handful of messages and a hash table its spare buckets,
//! where a million queued messages must fit in a few tens of megabytes.
//!
//! Removal leaves a hole that is swept out once holes are half of the vector, so a removal is
//! amortised O(1) and a lookup a binary search.

use crate::mail::QueueId;

/// Sorted by queue id; `None` marks a removed message not swept out yet.
pub struct QidMap<T> {
    slots: Vec<(QueueId, Option<T>)>,
    holes: usize,
}

impl<T> Default for QidMap<T> {
    fn default() -> Self {
        QidMap {
            slots: Vec::new(),
            holes: 0,
        }
    }
}

impl<T> QidMap<T> {
    pub fn new() -> QidMap<T> {
        QidMap::default()
    }

    /// From entries in any order; a later duplicate of a queue id is dropped.
    pub fn from_unsorted(mut entries: Vec<(QueueId, T)>) -> QidMap<T> {
        entries.sort_by_key(|(q, _)| *q);
        entries.dedup_by_key(|(q, _)| *q);
        // Collected in place when `Option<T>` is no bigger than `T`: no second copy of a
        // million entries at start.
        let mut slots: Vec<_> = entries.into_iter().map(|(q, t)| (q, Some(t))).collect();
        // Collecting in place from bigger items keeps the bigger allocation: give back the rest.
        slots.shrink_to_fit();
        QidMap { slots, holes: 0 }
    }

    /// Room for `more` messages, allocated once (a queue filled at start).
    pub fn reserve(&mut self, more: usize) {
        self.slots.reserve_exact(more);
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.holes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn find(&self, qid: &QueueId) -> Result<usize, usize> {
        // The newest messages are the busiest: look at the end before searching.
        match self.slots.last() {
            None => Err(0),
            Some((last, _)) if *qid > *last => Err(self.slots.len()),
            _ => self.slots.binary_search_by_key(qid, |(q, _)| *q),
        }
    }

    pub fn get(&self, qid: &QueueId) -> Option<&T> {
        let i = self.find(qid).ok()?;
        self.slots[i].1.as_ref()
    }

    pub fn get_mut(&mut self, qid: &QueueId) -> Option<&mut T> {
        let i = self.find(qid).ok()?;
        self.slots[i].1.as_mut()
    }

    pub fn contains_key(&self, qid: &QueueId) -> bool {
        self.get(qid).is_some()
    }

    /// Adds a message; false (and `value` dropped) if the queue id is there already.
    pub fn insert(&mut self, qid: QueueId, value: T) -> bool {
        match self.find(&qid) {
            Ok(i) => {
                let slot = &mut self.slots[i].1;
                if slot.is_some() {
                    return false;
                }
                *slot = Some(value);
                self.holes -= 1;
            }
            Err(i) => self.slots.insert(i, (qid, Some(value))),
        }
        true
    }

    pub fn remove(&mut self, qid: &QueueId) -> Option<T> {
        let i = self.find(qid).ok()?;
        let value = self.slots[i].1.take()?;
        self.holes += 1;
        if self.holes > 32 && self.holes * 2 > self.slots.len() {
            self.slots.retain(|(_, v)| v.is_some());
            self.holes = 0;
            if self.slots.capacity() > 4 * self.slots.len().max(64) {
                self.slots.shrink_to(2 * self.slots.len());
            }
        }
        Some(value)
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (QueueId, &T)> + '_ {
        self.slots
            .iter()
            .filter_map(|(q, v)| v.as_ref().map(|v| (*q, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_through_inserts_and_removals() {
        let mut m = QidMap::new();
        for q in [5u64, 1, 9, 3, 7] {
            assert!(m.insert(QueueId(q), q * 10));
        }
        assert!(!m.insert(QueueId(3), 0), "a second add of an id is refused");
        assert_eq!(m.remove(&QueueId(9)), Some(90));
        assert_eq!(m.remove(&QueueId(9)), None);
        assert!(m.insert(QueueId(9), 91), "a removed id can come back");
        let keys: Vec<u64> = m.iter().map(|(q, _)| q.0).collect();
        assert_eq!(keys, [1, 3, 5, 7, 9]);
        assert_eq!(m.get(&QueueId(9)), Some(&91));
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn sweeps_holes_without_losing_entries() {
        let mut m = QidMap::new();
        for q in 0..1000u64 {
            m.insert(QueueId(q), q);
        }
        for q in (0..1000u64).filter(|q| q % 3 != 0) {
            assert_eq!(m.remove(&QueueId(q)), Some(q));
        }
        assert_eq!(m.len(), 334);
        assert!(m.slots.len() < 700, "holes are swept out");
        assert!(m.iter().all(|(q, v)| q.0 == *v && v % 3 == 0));
        assert_eq!(m.get(&QueueId(999)), Some(&999));
    }

    #[test]
    fn from_unsorted_sorts_and_drops_duplicates() {
        let m = QidMap::from_unsorted(vec![
            (QueueId(3), 'a'),
            (QueueId(1), 'b'),
            (QueueId(3), 'c'),
        ]);
        let all: Vec<(u64, char)> = m.iter().map(|(q, v)| (q.0, *v)).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], (1, 'b'));
    }
}
