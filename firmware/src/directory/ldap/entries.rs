//! The entries of one search, kept packed: each one is postcard bytes as soon as it is read, and
//! is unpacked only when the model takes it (then dropped at once). 100 000 accounts as
//! [`RawEntry`] values are ~180 MB of small allocations; packed they are ~30-50 MB (the bench's
//! Zimbra accounts: 52 MiB), which is also what a fetch child sends, chunk by chunk. The bytes are kept in chunks of about 1 MiB, each freed
//! once the model has taken its entries: one buffer grown by doubling was up to twice the data,
//! and all of it stayed until the whole model was built beside it.

use serde::{Deserialize, Serialize};

use super::entry::{MalformedEntry, RawEntry};

#[derive(Serialize, Deserialize)]
enum Packed {
    Entry {
        dn: String,
        attrs: Vec<(String, Vec<String>)>,
    },
    Malformed(MalformedEntry),
}

/// A chunk is closed once it holds this much (an entry is never split between chunks).
const CHUNK: usize = 1 << 20;

/// A search's entries in the order read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Entries {
    chunks: Vec<Vec<u8>>,
    count: usize,
}

impl Entries {
    pub fn push(&mut self, entry: Result<RawEntry, MalformedEntry>) {
        let packed = match entry {
            Ok(e) => {
                let (dn, attrs) = e.into_parts();
                Packed::Entry { dn, attrs }
            }
            Err(m) => Packed::Malformed(m),
        };
        // Serialising to a Vec cannot fail for this type; were it to, the entry is counted as
        // unreadable, so sync states stay in step.
        let bytes = postcard::to_allocvec(&packed).unwrap_or_else(|_| {
            postcard::to_allocvec(&Packed::Malformed(MalformedEntry::Shape)).unwrap_or_default()
        });
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.extend_from_slice(&bytes),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK + bytes.len());
                chunk.extend_from_slice(&bytes);
                self.chunks.push(chunk);
            }
        }
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The chunks and the count, to send one chunk at a time (a fetch child's reply).
    pub(super) fn into_chunks(self) -> (Vec<Vec<u8>>, usize) {
        (self.chunks, self.count)
    }

    /// Entries from chunks as [`Entries::into_chunks`] gave them, and their count. Nothing is
    /// trusted: bytes that do not decode read as unreadable entries (see [`IntoIter`]).
    pub(super) fn from_chunks(chunks: Vec<Vec<u8>>, count: usize) -> Entries {
        Entries { chunks, count }
    }

    /// Bytes held (for figures).
    pub fn packed_size(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }
}

impl FromIterator<Result<RawEntry, MalformedEntry>> for Entries {
    fn from_iter<I: IntoIterator<Item = Result<RawEntry, MalformedEntry>>>(iter: I) -> Self {
        let mut e = Entries::default();
        for x in iter {
            e.push(x);
        }
        e
    }
}

/// Unpacks one entry at a time. Bytes that do not decode (a fetch child's reply is not
/// trusted) make every entry still to come unreadable, so there are always `count` of them.
pub struct IntoIter {
    /// The chunks still to read, the current one first; each is dropped when read to its end.
    chunks: std::collections::VecDeque<Vec<u8>>,
    at: usize,
    left: usize,
    broken: bool,
}

impl Iterator for IntoIter {
    type Item = Result<RawEntry, MalformedEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        if self.broken {
            return Some(Err(MalformedEntry::Shape));
        }
        // A chunk read to its end is freed now, not with the rest.
        while self.chunks.front().is_some_and(|c| self.at >= c.len()) {
            self.chunks.pop_front();
            self.at = 0;
        }
        let chunk = self.chunks.front().map_or(&[][..], Vec::as_slice);
        let rest = chunk.get(self.at..).unwrap_or_default();
        match postcard::take_from_bytes::<Packed>(rest) {
            Ok((packed, after)) => {
                self.at = chunk.len() - after.len();
                Some(match packed {
                    Packed::Entry { dn, attrs } => Ok(RawEntry::from_parts(dn, attrs)),
                    Packed::Malformed(m) => Err(m),
                })
            }
            Err(_) => {
                self.broken = true;
                Some(Err(MalformedEntry::Shape))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl IntoIterator for Entries {
    type Item = Result<RawEntry, MalformedEntry>;
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter {
            chunks: self.chunks.into(),
            at: 0,
            left: self.count,
            broken: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_in_order_and_broken_bytes_stay_in_step() {
        let a = RawEntry::new(
            "uid=a,dc=e",
            &[("mail", &["a@e.com"]), ("cn", &["A", "Ay"])],
        );
        let b = RawEntry::new("uid=b,dc=e", &[]);
        let all: Entries = [Ok(a.clone()), Err(MalformedEntry::NotUtf8), Ok(b.clone())]
            .into_iter()
            .collect();
        assert_eq!(all.len(), 3);
        let back: Vec<_> = all.clone().into_iter().collect();
        assert_eq!(back, [Ok(a.clone()), Err(MalformedEntry::NotUtf8), Ok(b)]);
        // A reply cut short: the entries it lost are unreadable, still three in all.
        let mut cut = all;
        if let Some(last) = cut.chunks.last_mut() {
            last.truncate(last.len() - 3);
        }
        let back: Vec<_> = cut.into_iter().collect();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], Ok(a));
        assert_eq!(back[2], Err(MalformedEntry::Shape));
    }

    #[test]
    fn entries_over_many_chunks_come_back_whole_and_in_order() {
        let big = "x".repeat(300 << 10);
        let all: Entries = (0..20)
            .map(|i| {
                Ok(RawEntry::new(
                    &format!("uid={i},dc=e"),
                    &[("cn", &[big.as_str()])],
                ))
            })
            .collect();
        assert!(all.chunks.len() > 4);
        assert!(all.chunks.iter().all(|c| c.len() < CHUNK + big.len() + 100));
        let back: Vec<_> = all.into_iter().collect();
        assert_eq!(back.len(), 20);
        for (i, e) in back.iter().enumerate() {
            let e = e.as_ref().unwrap();
            assert_eq!(e.dn, format!("uid={i},dc=e"));
            assert_eq!(e.first("cn"), Some(big.as_str()));
        }
    }
}
