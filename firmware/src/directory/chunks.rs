//! The directory's lists of accounts and aliases, in shared chunks: a copy of the directory
//! shares every chunk, and a change copies only the chunk it writes to. A poll that changes a
//! hundred of 100 000 accounts then copies a few thousand of them, not all (the directory
//! served stays untouched until the new one is swapped in), and dropping the old directory
//! frees only what the new one no longer shares.

use std::ops::Index;
use std::sync::Arc;

/// Entries per chunk: small enough that a hundred changes copy little, large enough that the
/// chunk pointers stay a small part of the list.
const CHUNK: usize = 64;

#[derive(Clone)]
pub(crate) struct Chunks<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Default for Chunks<T> {
    fn default() -> Chunks<T> {
        Chunks {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Chunks<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterates a list's entries in order.
pub(crate) type Iter<'a, T> = std::iter::FlatMap<
    std::slice::Iter<'a, Arc<Vec<T>>>,
    std::slice::Iter<'a, T>,
    fn(&'a Arc<Vec<T>>) -> std::slice::Iter<'a, T>,
>;

impl<T> Chunks<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    pub fn last(&self) -> Option<&T> {
        self.get(self.len.checked_sub(1)?)
    }

    pub fn iter(&self) -> Iter<'_, T> {
        self.chunks
            .iter()
            .flat_map((|c| c.iter()) as fn(&Arc<Vec<T>>) -> std::slice::Iter<'_, T>)
    }

    /// Chunks this list shares with `other` (the same chunk, not equal ones): a test's view of
    /// what a change copied.
    #[cfg(test)]
    pub fn shared_with(&self, other: &Chunks<T>) -> usize {
        self.chunks
            .iter()
            .filter(|c| other.chunks.iter().any(|o| Arc::ptr_eq(c, o)))
            .count()
    }
}

impl<T: Clone> Chunks<T> {
    /// The entry to change; its chunk is copied first if another list shares it.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        Arc::make_mut(self.chunks.get_mut(i / CHUNK)?).get_mut(i % CHUNK)
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
    }

    /// Removes entry `i`, the last entry taking its place, as `Vec::swap_remove`; `None` if
    /// there is no entry `i`.
    pub fn swap_remove(&mut self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        let last = Arc::make_mut(self.chunks.last_mut()?).pop()?;
        if self.chunks.last().is_some_and(|c| c.is_empty()) {
            self.chunks.pop();
        }
        self.len -= 1;
        if i == self.len {
            return Some(last);
        }
        self.get_mut(i).map(|slot| std::mem::replace(slot, last))
    }
}

impl<T> Index<usize> for Chunks<T> {
    type Output = T;

    /// As a slice's: panics past the end (only for indexes the caller took from `0..len()`).
    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<'a, T> IntoIterator for &'a Chunks<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Push(u32),
        SwapRemove(usize),
        Set(usize, u32),
        Copy,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u32>().prop_map(Op::Push),
            2 => (0usize..400).prop_map(Op::SwapRemove),
            1 => (0usize..400, any::<u32>()).prop_map(|(i, v)| Op::Set(i, v)),
            1 => Just(Op::Copy),
        ]
    }

    proptest! {
        /// Whatever is done to it, the list holds what a `Vec` would, and a copy taken along
        /// the way keeps what it held then.
        #[test]
        fn behaves_as_a_vec(ops in proptest::collection::vec(op(), 0..600)) {
            let (mut list, mut vec) = (Chunks::default(), Vec::new());
            let mut copies: Vec<(Chunks<u32>, Vec<u32>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(v) => {
                        list.push(v);
                        vec.push(v);
                    }
                    Op::SwapRemove(i) => {
                        let want = (i < vec.len()).then(|| vec.swap_remove(i));
                        prop_assert_eq!(list.swap_remove(i), want);
                    }
                    Op::Set(i, v) => {
                        if let Some(slot) = vec.get_mut(i) {
                            *slot = v;
                        }
                        if let Some(slot) = list.get_mut(i) {
                            *slot = v;
                        }
                    }
                    Op::Copy => copies.push((list.clone(), vec.clone())),
                }
                prop_assert_eq!(list.len(), vec.len());
                prop_assert_eq!(list.last(), vec.last());
            }
            prop_assert!(list.iter().eq(vec.iter()));
            for (i, v) in vec.iter().enumerate() {
                prop_assert_eq!(&list[i], v);
            }
            for (copy, was) in copies {
                prop_assert!(copy.iter().eq(was.iter()));
            }
        }
    }

    #[test]
    fn a_change_copies_only_its_chunk() {
        let mut a = Chunks::default();
        (0..CHUNK as u32 * 10).for_each(|v| a.push(v));
        let mut b = a.clone();
        if let Some(v) = b.get_mut(3 * CHUNK + 5) {
            *v = 7;
        }
        assert_eq!(b.shared_with(&a), 9);
        assert_eq!(a[3 * CHUNK + 5], 3 * CHUNK as u32 + 5);
        assert_eq!(b[3 * CHUNK + 5], 7);
        // Removing copies the chunk with the gap and the last one, which gives its entry.
        b.swap_remove(0);
        assert_eq!(b.shared_with(&a), 7);
        assert_eq!(b[0], CHUNK as u32 * 10 - 1);
    }
}
