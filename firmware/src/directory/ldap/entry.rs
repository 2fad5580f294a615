//! One search result entry, taken apart without trusting the server: ldap3's
//! `SearchEntry::construct` panics on a malformed entry, and the release build aborts on a panic,
//! so the BER structure is walked here and anything unexpected is an error for that entry only.

use std::fmt;

use ldap3::asn1::{PL, StructureTag};

/// An entry as the server sent it: its DN and its attributes (names lowercased, since LDAP
/// attribute names are case-insensitive; values that are not UTF-8 are dropped).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawEntry {
    pub dn: String,
    attrs: Vec<(String, Vec<String>)>,
}

/// Why an entry could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MalformedEntry {
    /// Not a SearchResultEntry (application tag 4) with a DN and an attribute list.
    Shape,
    /// The DN or an attribute name is not UTF-8.
    NotUtf8,
    /// Its RFC 4533 Sync State control does not decode.
    SyncControl(super::syncrepl::BadControl),
}

impl fmt::Display for MalformedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MalformedEntry::Shape => "malformed search result entry",
            MalformedEntry::NotUtf8 => "DN or attribute name is not UTF-8",
            MalformedEntry::SyncControl(e) => return write!(f, "{e}"),
        })
    }
}

impl std::error::Error for MalformedEntry {}

fn constructed(t: StructureTag) -> Result<Vec<StructureTag>, MalformedEntry> {
    match t.payload {
        PL::C(v) => Ok(v),
        PL::P(_) => Err(MalformedEntry::Shape),
    }
}

fn text(t: StructureTag) -> Result<String, MalformedEntry> {
    match t.payload {
        PL::P(bytes) => String::from_utf8(bytes).map_err(|_| MalformedEntry::NotUtf8),
        PL::C(_) => Err(MalformedEntry::Shape),
    }
}

impl RawEntry {
    /// A hand-made entry (tests, and the attribute lists the schema mapping builds).
    pub fn new(dn: &str, attrs: &[(&str, &[&str])]) -> RawEntry {
        let mut e = RawEntry {
            dn: dn.to_string(),
            attrs: Vec::new(),
        };
        for (name, values) in attrs {
            e.push(name, values.iter().map(|v| v.to_string()).collect());
        }
        e
    }

    /// An entry from its DN and attributes (as a fetch child sent them).
    pub fn from_parts(dn: String, attrs: Vec<(String, Vec<String>)>) -> RawEntry {
        let mut e = RawEntry {
            dn,
            attrs: Vec::with_capacity(attrs.len()),
        };
        for (name, values) in attrs {
            e.push(&name, values);
        }
        e
    }

    /// The DN and attributes, to send on.
    pub fn into_parts(self) -> (String, Vec<(String, Vec<String>)>) {
        (self.dn, self.attrs)
    }

    fn push(&mut self, name: &str, values: Vec<String>) {
        let name = name.to_ascii_lowercase();
        match self.attrs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.extend(values),
            None => self.attrs.push((name, values)),
        }
    }

    /// Reads a SearchResultEntry: `[APPLICATION 4] SEQUENCE { objectName, attributes SEQUENCE OF
    /// SEQUENCE { type, vals SET OF value } }` (RFC 4511 §4.5.2).
    pub fn parse(tag: StructureTag) -> Result<RawEntry, MalformedEntry> {
        if tag.id != 4 {
            return Err(MalformedEntry::Shape);
        }
        let mut parts = constructed(tag)?.into_iter();
        let dn = text(parts.next().ok_or(MalformedEntry::Shape)?)?;
        let list = constructed(parts.next().ok_or(MalformedEntry::Shape)?)?;
        let mut entry = RawEntry {
            dn,
            attrs: Vec::with_capacity(list.len()),
        };
        for attr in list {
            let mut pair = constructed(attr)?.into_iter();
            let name = text(pair.next().ok_or(MalformedEntry::Shape)?)?;
            let values = match pair.next() {
                Some(set) => constructed(set)?
                    .into_iter()
                    .filter_map(|v| match v.payload {
                        PL::P(bytes) => String::from_utf8(bytes).ok(),
                        PL::C(_) => None,
                    })
                    .collect(),
                None => Vec::new(),
            };
            entry.push(&name, values);
        }
        Ok(entry)
    }

    /// Gives the entry the `entryUUID` an RFC 4533 Sync State named, if it did not come with
    /// one (a bind may not read operational attributes).
    pub fn ensure_uuid(&mut self, uuid: &str) {
        if self.values("entryUUID").is_empty() {
            self.push("entryUUID", vec![uuid.to_string()]);
        }
    }

    /// All values of an attribute (any case); empty if the entry does not have it.
    pub fn values(&self, name: &str) -> &[String] {
        self.attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The first value of an attribute, trimmed; `None` if absent or empty.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name)
            .iter()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }

    /// Whether the entry has `class` among its objectClass values.
    pub fn has_class(&self, class: &str) -> bool {
        self.values("objectClass")
            .iter()
            .any(|c| c.trim().eq_ignore_ascii_case(class))
    }

    /// Whether the server returned objectClass at all (a restricted bind may not read it).
    pub fn classes_known(&self) -> bool {
        !self.values("objectClass").is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::TagClass;

    fn prim(id: u64, bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn cons(class: TagClass, id: u64, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::C(inner),
        }
    }

    fn entry(dn: &[u8], attrs: Vec<StructureTag>) -> StructureTag {
        cons(
            TagClass::Application,
            4,
            vec![prim(4, dn), cons(TagClass::Universal, 16, attrs)],
        )
    }

    fn attr(name: &str, vals: &[&[u8]]) -> StructureTag {
        cons(
            TagClass::Universal,
            16,
            vec![
                prim(4, name.as_bytes()),
                cons(
                    TagClass::Universal,
                    17,
                    vals.iter().map(|v| prim(4, v)).collect(),
                ),
            ],
        )
    }

    #[test]
    fn reads_a_well_formed_entry_case_insensitively() {
        let e = RawEntry::parse(entry(
            b"uid=foo,ou=people,dc=example,dc=com",
            vec![
                attr("zimbraMailAlias", &[b"a@example.com", b"b@example.com"]),
                attr("userPassword", &[b"{SSHA}x", b"\xff\xfe"]),
            ],
        ))
        .unwrap();
        assert_eq!(e.dn, "uid=foo,ou=people,dc=example,dc=com");
        assert_eq!(e.values("ZIMBRAMAILALIAS").len(), 2);
        assert_eq!(e.first("userpassword"), Some("{SSHA}x"));
        assert!(e.values("mail").is_empty());
    }

    #[test]
    fn malformed_entries_are_errors_not_panics() {
        let bad = [
            prim(4, b"x"),
            cons(TagClass::Application, 4, vec![]),
            cons(TagClass::Application, 4, vec![prim(4, b"dn")]),
            cons(
                TagClass::Application,
                4,
                vec![prim(4, b"dn"), prim(4, b"not a sequence")],
            ),
            entry(b"dn", vec![prim(4, b"not a pair")]),
            entry(b"dn", vec![cons(TagClass::Universal, 16, vec![])]),
            entry(b"\xff", vec![]),
            cons(TagClass::Application, 5, vec![]),
        ];
        for tag in bad {
            assert!(RawEntry::parse(tag).is_err());
        }
        // An attribute without a value set is read as having no values.
        let e = RawEntry::parse(entry(
            b"dn",
            vec![cons(TagClass::Universal, 16, vec![prim(4, b"mail")])],
        ))
        .unwrap();
        assert!(e.values("mail").is_empty());
    }
}
