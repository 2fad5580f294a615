//! The name the model keys an entry by: `id:` and its entryUUID (or zimbraId), else `dn:` and
//! its DN, lowercase. Most are `id:` and a UUID (OpenLDAP gives every entry one), held as its 16
//! bytes in the key itself: as a string each key was an allocation of 64 bytes, 6 MB at
//! 100 000 accounts. Keys order as their text does.

use std::cmp::Ordering;
use std::fmt;

use super::syncrepl::{uuid_bytes, uuid_text};

#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// `id:` and this UUID as [`uuid_text`] writes it.
    Uuid([u8; 16]),
    /// Any other key, whole.
    Text(Box<str>),
}

const ID: &str = "id:";

impl Key {
    /// The key of this text; `Uuid` exactly when the text is `id:` and a UUID as
    /// [`uuid_text`] writes it, so the text comes back the same.
    pub fn of(text: &str) -> Key {
        match text.strip_prefix(ID).and_then(uuid_bytes) {
            Some(u) => Key::Uuid(u),
            None => Key::Text(text.into()),
        }
    }

    pub fn uuid(&self) -> Option<&[u8; 16]> {
        match self {
            Key::Uuid(u) => Some(u),
            Key::Text(_) => None,
        }
    }

    /// Whether it names the entry by an id (entryUUID, zimbraId), not by its DN.
    pub fn is_id(&self) -> bool {
        match self {
            Key::Uuid(_) => true,
            Key::Text(t) => t.starts_with(ID),
        }
    }

    /// The text, written into `buf` for a UUID (`id:` and 36 characters).
    fn text<'a>(&'a self, buf: &'a mut [u8; 39]) -> &'a [u8] {
        match self {
            Key::Text(t) => t.as_bytes(),
            Key::Uuid(u) => {
                buf[..3].copy_from_slice(ID.as_bytes());
                buf[3..].copy_from_slice(uuid_text(u).as_bytes());
                &buf[..]
            }
        }
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            // Lowercase hex with dashes in fixed places: the bytes order as the text.
            (Key::Uuid(a), Key::Uuid(b)) => a.cmp(b),
            (Key::Text(a), Key::Text(b)) => a.cmp(b),
            _ => {
                let (mut x, mut y) = ([0u8; 39], [0u8; 39]);
                self.text(&mut x).cmp(other.text(&mut y))
            }
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Uuid(u) => write!(f, "{ID}{}", uuid_text(u)),
            Key::Text(t) => f.write_str(t),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_and_order_as_their_text() {
        let texts = [
            "dn:uid=a,dc=e,dc=com",
            "id:0a0b0c0d-0000-1111-2222-333344445555",
            "id:0a0b0c0d-0000-1111-2222-33334444555",
            "id:5f3c1122-3344-5566-7788-99aabbccddee",
            "id:5F3C1122-3344-5566-7788-99AABBCCDDEE",
            "id:5f3c1122-3344-5566-7788-99aabbccddee-x",
            "id:5f3c1122-3344-5566-7788-99aabbccddef",
            "id:id-17",
            "id:",
        ];
        let keys: Vec<Key> = texts.iter().map(|t| Key::of(t)).collect();
        for (k, t) in keys.iter().zip(texts) {
            assert_eq!(k.to_string(), t);
        }
        assert!(keys[1].uuid().is_some() && keys[3].uuid().is_some());
        // Not as uuid_text writes it: kept as text, or its text would change.
        assert!(keys[4].uuid().is_none() && keys[2].uuid().is_none());
        assert!(keys[7].is_id() && !keys[0].is_id() && keys[3].is_id());
        for a in &keys {
            for b in &keys {
                assert_eq!(a.cmp(b), a.to_string().cmp(&b.to_string()), "{a} {b}");
            }
        }
    }
}
