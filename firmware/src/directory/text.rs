//! An address as the directory keeps it: inline when short (most are), else on the heap.
//! At 100 000 accounts the directory held 200 000 small string allocations (each address and
//! alias); between them, what a sync allocated and freed while building stayed as ~18 MB of
//! holes the allocator could not give back. Inline, an address lives in its account's chunk.

use std::fmt;
use std::ops::Deref;

/// Bytes kept inline: 38 makes the type 40 bytes, and covers `first.last@example.com` forms.
const INLINE: usize = 38;

#[derive(Clone)]
pub(crate) enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    pub fn new(s: &str) -> Text {
        match s.len() {
            n if n <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..n].copy_from_slice(s.as_bytes());
                Text::Inline {
                    len: n as u8,
                    bytes,
                }
            }
            _ => Text::Heap(s.into()),
        }
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            // Only `new` fills it, from a whole `str`: the bytes up to `len` are that str.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Text::Heap(s) => s,
        }
    }
}

impl From<Box<str>> for Text {
    fn from(s: Box<str>) -> Text {
        match s.len() <= INLINE {
            true => Text::new(&s),
            false => Text::Heap(s),
        }
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        **self == **other
    }
}

impl Eq for Text {}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_text_read_back_the_same() {
        let long = format!("{}@example.com", "a".repeat(60));
        for s in ["", "u1@example.com", "é@ü.example", &long, &long[..INLINE]] {
            let t = Text::new(s);
            assert_eq!(&*t, s);
            assert_eq!(Text::from(Box::<str>::from(s)), t);
            assert_eq!(matches!(t, Text::Inline { .. }), s.len() <= INLINE);
        }
        assert_eq!(std::mem::size_of::<Text>(), 40);
    }
}
