//! The entries of one search, kept packed: each one is postcard bytes as soon as it is read,
//! written against the entries before it (see [`Packed`]), and is unpacked only when the model
//! takes it (then dropped at once). 100 000 accounts as [`RawEntry`] values are ~180 MB of
//! small allocations; packed whole they were 52 MiB for the bench's Zimbra accounts, written
//! against each other 20 MiB. That is also what a fetch child sends, chunk by chunk. The bytes
//! are kept in chunks of about 1 MiB, each freed once the model has taken its entries: one
//! buffer grown by doubling was up to twice the data, and all of it stayed until the whole
//! model was built beside it.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::entry::{MalformedEntry, RawEntry};

/// One entry as stored. Entries of one search repeat most of each other (attribute names, the
/// DN's parent, objectClass and status values), so each is written against what came before it,
/// and read back in the same order: a name already seen is its number, a value equal to the one
/// at the same place in the last entry that had that attribute is [`Value::Same`], and the DN
/// names how many of its last bytes it shares with the DN before. At 100 000 Zimbra accounts
/// that takes the bytes held while a sync reads from 52 to 20 MiB.
#[derive(Serialize, Deserialize)]
enum Packed<'a> {
    Entry {
        /// Bytes at the end of the DN that are the last ones of the DN before.
        dn_shared: u32,
        dn_rest: Cow<'a, str>,
        attrs: Vec<(Name<'a>, Vec<Value<'a>>)>,
    },
    Malformed(MalformedEntry),
}

#[derive(Serialize, Deserialize)]
enum Name<'a> {
    /// The n-th name first written as [`Name::New`] (while fewer than [`MAX_NAMES`]).
    Seen(u32),
    New(Cow<'a, str>),
}

#[derive(Serialize, Deserialize)]
enum Value<'a> {
    Same,
    Text(Cow<'a, str>),
}

/// Names numbered at most: a server sending ever new attribute names cannot grow the tables
/// past this (the names after it are written whole each time).
const MAX_NAMES: usize = 1024;

/// A chunk is closed once it holds this much (an entry is never split between chunks).
const CHUNK: usize = 1 << 20;

/// What the entries so far leave for the next one: the same on the writing and the reading
/// side, as each goes through the entries in order.
#[derive(Debug, Clone, Default)]
struct Context {
    dn: String,
    /// The numbered names, and for each the values of the last entry that had it.
    last: Vec<(String, Vec<String>)>,
}

impl Context {
    /// Remembers `values` as the last of name number `n` (if numbered).
    fn keep(&mut self, n: Option<usize>, values: Vec<String>) {
        if let Some(slot) = n.and_then(|n| self.last.get_mut(n)) {
            slot.1 = values;
        }
    }
}

/// How many bytes at the end of `a` and `b` are the same, ending on a character boundary.
fn shared_tail(a: &str, b: &str) -> usize {
    let n = a
        .bytes()
        .rev()
        .zip(b.bytes().rev())
        .take_while(|(x, y)| x == y)
        .count();
    // The bytes are the same, so a boundary in one is a boundary in the other.
    (0..=n)
        .rev()
        .find(|&k| a.is_char_boundary(a.len() - k))
        .unwrap_or(0)
}

/// A search's entries in the order read. Chunks are read back in order only (each entry is
/// written against those before it), and only an `Entries` that pushed them may push more.
#[derive(Debug, Clone, Default)]
pub struct Entries {
    chunks: Vec<Vec<u8>>,
    count: usize,
    context: Context,
    numbers: HashMap<String, usize>,
}

impl Entries {
    pub fn push(&mut self, entry: Result<RawEntry, MalformedEntry>) {
        let bytes = match entry {
            Ok(e) => self.pack(e),
            Err(m) => postcard::to_allocvec(&Packed::Malformed(m)).unwrap_or_default(),
        };
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

    /// Writes `e` against the entries before it, and makes it their last.
    fn pack(&mut self, e: RawEntry) -> Vec<u8> {
        let (dn, attrs) = e.into_parts();
        let dn_shared = shared_tail(&dn, &self.context.dn);
        let mut written = Vec::with_capacity(attrs.len());
        let mut numbered = Vec::with_capacity(attrs.len());
        // Names first written in this entry are numbered in order, as the reader numbers them.
        let mut next = self.context.last.len();
        for (name, values) in &attrs {
            let known = self.numbers.get(name.as_str()).copied();
            let n = known.or_else(|| {
                let n = (next < MAX_NAMES).then_some(next);
                next += usize::from(n.is_some());
                n
            });
            let before = known.and_then(|n| self.context.last.get(n)).map(|l| &l.1);
            let values = values
                .iter()
                .enumerate()
                .map(|(i, v)| match before.and_then(|b| b.get(i)) {
                    Some(b) if b == v => Value::Same,
                    _ => Value::Text(Cow::Borrowed(v)),
                })
                .collect();
            let name_out = match known {
                Some(n) => Name::Seen(n as u32),
                None => Name::New(Cow::Borrowed(name)),
            };
            written.push((name_out, values));
            numbered.push((known.is_some(), n));
        }
        let packed = Packed::Entry {
            dn_shared: dn_shared as u32,
            dn_rest: Cow::Borrowed(&dn[..dn.len() - dn_shared]),
            attrs: written,
        };
        // Serialising to a Vec cannot fail for this type; were it to, the entry is stored as
        // unreadable (the context is then left as it was, on both sides).
        let Ok(bytes) = postcard::to_allocvec(&packed) else {
            return postcard::to_allocvec(&Packed::<'_>::Malformed(MalformedEntry::Shape))
                .unwrap_or_default();
        };
        drop(packed);
        for ((name, values), (known, n)) in attrs.into_iter().zip(numbered) {
            if !known && let Some(n) = n {
                self.numbers.insert(name.clone(), n);
                self.context.last.push((name, Vec::new()));
            }
            self.context.keep(n, values);
        }
        self.context.dn = dn;
        bytes
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
        Entries {
            chunks,
            count,
            ..Entries::default()
        }
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

/// Unpacks one entry at a time. Bytes that do not decode, or that name what came before
/// wrongly (a fetch child's reply is not trusted), make every entry still to come unreadable,
/// so there are always `count` of them.
pub struct IntoIter {
    /// The chunks still to read, the current one first; each is dropped when read to its end.
    chunks: std::collections::VecDeque<Vec<u8>>,
    at: usize,
    left: usize,
    broken: bool,
    context: Context,
}

impl Context {
    /// An entry written against this context, or `None` if it names what is not there.
    fn unpack(
        &mut self,
        dn_shared: u32,
        dn_rest: Cow<'_, str>,
        attrs: Vec<(Name<'_>, Vec<Value<'_>>)>,
    ) -> Option<RawEntry> {
        let from = self.dn.len().checked_sub(dn_shared as usize)?;
        let dn = format!("{dn_rest}{}", self.dn.get(from..)?);
        let mut out = Vec::with_capacity(attrs.len());
        let mut numbered = Vec::with_capacity(attrs.len());
        for (name, values) in attrs {
            let (name, n) = match name {
                Name::Seen(n) => (self.last.get(n as usize)?.0.clone(), Some(n as usize)),
                Name::New(s) => {
                    let n = (self.last.len() < MAX_NAMES).then_some(self.last.len());
                    if n.is_some() {
                        self.last.push((s.to_string(), Vec::new()));
                    }
                    (s.into_owned(), n)
                }
            };
            let before = n.and_then(|n| self.last.get(n)).map(|l| &l.1);
            let values = values
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Same => before.and_then(|b| b.get(i)).cloned(),
                    Value::Text(t) => Some(t.into_owned()),
                })
                .collect::<Option<Vec<String>>>()?;
            numbered.push(n);
            out.push((name, values));
        }
        for (n, (_, values)) in numbered.into_iter().zip(&out) {
            self.keep(n, values.clone());
        }
        self.dn.clone_from(&dn);
        Some(RawEntry::from_parts(dn, out))
    }
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
        let unpacked = match postcard::take_from_bytes::<Packed>(rest) {
            Ok((packed, after)) => {
                self.at = chunk.len() - after.len();
                match packed {
                    Packed::Entry {
                        dn_shared,
                        dn_rest,
                        attrs,
                    } => self.context.unpack(dn_shared, dn_rest, attrs).map(Ok),
                    Packed::Malformed(m) => Some(Err(m)),
                }
            }
            Err(_) => None,
        };
        // Bytes that do not decode, or an entry that names what is not there: where they end,
        // or what they left out of the context, is unknown, so nothing after them is read.
        Some(unpacked.unwrap_or_else(|| {
            self.broken = true;
            Err(MalformedEntry::Shape)
        }))
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
            context: Context::default(),
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
        // Each value differs from the one before (a value the same is not written again).
        let value = |i: usize| format!("{i}{big}");
        let all: Entries = (0..20)
            .map(|i| {
                Ok(RawEntry::new(
                    &format!("uid={i},dc=e"),
                    &[("cn", &[value(i).as_str()])],
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
            assert_eq!(e.first("cn"), Some(value(i).as_str()));
        }
    }

    #[test]
    fn entries_written_against_each_other_come_back_as_they_were() {
        let e = |dn: &str, attrs: &[(&str, &[&str])]| Ok(RawEntry::new(dn, attrs));
        let many: Vec<String> = (0..MAX_NAMES + 5).map(|i| format!("a{i}")).collect();
        let wide: Vec<(&str, &[&str])> = many.iter().map(|n| (n.as_str(), &["v"][..])).collect();
        let read = vec![
            e(
                "uid=a,ou=people,dc=e",
                &[("objectClass", &["top", "zimbraAccount"]), ("cn", &["A"])],
            ),
            // Names seen, values the same and not, in another order, one value fewer.
            e(
                "uid=b,ou=people,dc=e",
                &[
                    ("cn", &["B"]),
                    ("objectClass", &["top"]),
                    ("new", &["x", "x"]),
                ],
            ),
            Err(MalformedEntry::NotUtf8),
            // A DN that is all the end of the one before, and one that shares nothing.
            e(
                "ou=people,dc=e",
                &[("objectClass", &["top", "zimbraAccount"])],
            ),
            e("cn=é,o=ü", &[]),
            e("cn=ü,o=ü", &[("new", &["x", "y", "x"])]),
            // Past the names numbered: the rest are written whole each time.
            e("uid=w,dc=e", &wide),
            e("uid=w2,dc=e", &wide),
            e("", &[("cn", &["A"])]),
        ];
        let all: Entries = read.clone().into_iter().collect();
        let back: Vec<_> = all.clone().into_iter().collect();
        assert_eq!(back, read);
        // Shared parts are written once: the second of two alike entries is much smaller.
        let one: Entries = read[..1].iter().cloned().collect();
        let two: Entries = [read[0].clone(), read[0].clone()].into_iter().collect();
        assert!(two.packed_size() - one.packed_size() < one.packed_size() / 3);
    }

    #[test]
    fn entries_that_name_what_is_not_there_make_the_rest_unreadable() {
        let first = Packed::Entry {
            dn_shared: 0,
            dn_rest: "uid=a,dc=e".into(),
            attrs: vec![(Name::New("cn".into()), vec![Value::Text("A".into())])],
        };
        let bad = [
            Packed::Entry {
                dn_shared: 99,
                dn_rest: "".into(),
                attrs: vec![],
            },
            Packed::Entry {
                dn_shared: 0,
                dn_rest: "x".into(),
                attrs: vec![(Name::Seen(7), vec![])],
            },
            Packed::Entry {
                dn_shared: 0,
                dn_rest: "x".into(),
                attrs: vec![(Name::Seen(0), vec![Value::Same, Value::Same])],
            },
            Packed::Entry {
                dn_shared: 0,
                dn_rest: "x".into(),
                attrs: vec![(Name::New("sn".into()), vec![Value::Same])],
            },
        ];
        for b in bad {
            let mut bytes = postcard::to_allocvec(&first).unwrap();
            bytes.extend(postcard::to_allocvec(&b).unwrap());
            bytes.extend(postcard::to_allocvec(&first).unwrap());
            let back: Vec<_> = Entries::from_chunks(vec![bytes], 3).into_iter().collect();
            assert_eq!(back[0], Ok(RawEntry::new("uid=a,dc=e", &[("cn", &["A"])])));
            assert_eq!(
                back[1..],
                [Err(MalformedEntry::Shape), Err(MalformedEntry::Shape)]
            );
        }
        // A DN shared into the middle of a character is refused, not a panic.
        let mut bytes = postcard::to_allocvec(&Packed::Entry {
            dn_shared: 0,
            dn_rest: "cn=é".into(),
            attrs: vec![],
        })
        .unwrap();
        bytes.extend(
            postcard::to_allocvec(&Packed::Entry {
                dn_shared: 1,
                dn_rest: "".into(),
                attrs: vec![],
            })
            .unwrap(),
        );
        let back: Vec<_> = Entries::from_chunks(vec![bytes], 2).into_iter().collect();
        assert_eq!(back[1], Err(MalformedEntry::Shape));
    }

    #[test]
    fn shared_tails_end_on_a_character() {
        assert_eq!(shared_tail("uid=a,dc=e", "uid=b,dc=e"), 5);
        assert_eq!(shared_tail("xé", "yé"), 2);
        // 'é' and 'è' share their last byte only: not a boundary.
        assert_eq!(shared_tail("é", "è"), 0);
        assert_eq!(shared_tail("", "abc"), 0);
    }

    proptest::proptest! {
        /// Bytes from a child are not trusted: whatever they are, as many entries come back as
        /// were announced, and nothing panics.
        #[test]
        fn any_bytes_read_as_the_entries_announced(
            flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..8),
            cut in 0usize..4096,
        ) {
            let read: Vec<_> = (0..20)
                .map(|i| {
                    Ok(RawEntry::new(
                        &format!("uid=u{i},ou=people,dc=e"),
                        &[("objectClass", &["top", "zimbraAccount"]), ("cn", &[&*format!("{i}")])],
                    ))
                })
                .collect();
            let (mut chunks, count) = read.into_iter().collect::<Entries>().into_chunks();
            let bytes = &mut chunks[0];
            let len = bytes.len();
            for (at, b) in flips {
                bytes[at % len] ^= b;
            }
            bytes.truncate(cut.min(len));
            let back: Vec<_> = Entries::from_chunks(chunks, count).into_iter().collect();
            proptest::prop_assert_eq!(back.len(), count);
        }
    }
}
