//! The model's entries as it keeps them in RAM: each one the bytes of the record a snapshot
//! stores it as (see `snapshot::sync_state`), its DN parent, domains, transport and password
//! scheme numbered in a string table the model holds. Mapped and kept as values, an account was
//! ~560 bytes in a dozen small allocations, and the model sat beside the directory built from
//! it (56 MiB at 100 000 accounts); as a record it is ~140 bytes in one. An entry is unpacked
//! when something reads it: a build, a poll's comparison, a listing.

use std::sync::Arc;

use super::model::{Mapped, UNREADABLE};
use super::object::{LdapObject, SkipReason};
use crate::directory::snapshot::{Strings, pack_entry, pack_entry_in, unpack_entry};

/// One entry of the model.
#[derive(Debug, Clone)]
pub(crate) enum Packed {
    /// A [`Flags`] byte, then its record's bytes, strings numbered in the model's [`Table`].
    Record(Record),
    /// An entry with no record form (a skip reason no mapping gives), kept as it is.
    Whole(Arc<Mapped>),
}

/// A record's bytes: a range of a block that other records share, or a block of its own. A
/// full sync or a snapshot read writes its records one after another into [`Blocks`]: one
/// allocation each cost ~32 bytes a record (3 MB at 100 000) in the allocator's headers and
/// rounding, and their holes among what reading allocated and freed stayed resident.
#[derive(Clone)]
pub(crate) struct Record {
    block: Arc<Vec<u8>>,
    at: u32,
    len: u32,
}

impl Record {
    /// A record in a block of its own (a poll's few).
    pub fn own(mut bytes: Vec<u8>) -> Record {
        // Held as long as its entry is: not with the room a growing buffer left.
        bytes.shrink_to_fit();
        let len = bytes.len() as u32;
        Record {
            block: Arc::new(bytes),
            at: 0,
            len,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        let (at, len) = (self.at as usize, self.len as usize);
        self.block.get(at..at + len).unwrap_or_default()
    }

    /// Whether it is this very record, not a copy.
    pub fn is(&self, other: &Record) -> bool {
        Arc::ptr_eq(&self.block, &other.block) && self.at == other.at
    }

    /// Its block and the bytes written in it, to count what the records kept use of it.
    pub fn block(&self) -> (*const Vec<u8>, usize) {
        (Arc::as_ptr(&self.block), self.block.len())
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Record({:?})", self.bytes())
    }
}

/// Records being written one after another into blocks, made [`Record`]s once all are written
/// (a block is shared only when no more is written to it).
#[derive(Default)]
pub(crate) struct Blocks {
    blocks: Vec<Vec<u8>>,
}

/// Where [`Blocks::write`] put a record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    block: usize,
    at: u32,
    len: u32,
}

/// A block's size: under glibc's threshold for mapping an allocation apart (128 KiB). Records
/// written into one buffer (15 MB at 100 000) were mapped apart, and freeing that raised the
/// threshold to its size, so that later buffers that big (a message's) stayed resident.
const BLOCK: usize = 64 << 10;

impl Blocks {
    /// Writes `bytes` at the end of the last block, or of a new one if it has no room.
    pub fn write(&mut self, bytes: &[u8]) -> Written {
        let n = bytes.len();
        let room = |b: &Vec<u8>| b.capacity() - b.len() >= n;
        if !self.blocks.last().is_some_and(room) {
            self.blocks.push(Vec::with_capacity(BLOCK.max(n)));
        }
        let block = self.blocks.len().saturating_sub(1);
        let at = self.blocks.last().map_or(0, Vec::len);
        if let Some(b) = self.blocks.last_mut() {
            b.extend_from_slice(bytes);
        }
        Written {
            block,
            at: at as u32,
            len: n as u32,
        }
    }

    /// The blocks, shared, for [`Sealed::record`].
    pub fn seal(mut self) -> Sealed {
        // The last one is the only one with room to spare.
        if let Some(last) = self.blocks.last_mut() {
            last.shrink_to_fit();
        }
        Sealed(self.blocks.into_iter().map(Arc::new).collect())
    }
}

/// Blocks no longer written to.
pub(crate) struct Sealed(Vec<Arc<Vec<u8>>>);

impl Sealed {
    /// The record written at `w`.
    pub fn record(&self, w: Written) -> Record {
        match self.0.get(w.block) {
            Some(block) => Record {
                block: Arc::clone(block),
                at: w.at,
                len: w.len,
            },
            // Not reached: `w` came from these blocks. An empty record reads as unreadable.
            None => Record::own(Vec::new()),
        }
    }
}

/// What the model counts about an entry without unpacking it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// It names other entries (an alias entry, a group by member DN).
    pub refers: bool,
    pub domain: bool,
}

impl Flags {
    pub fn of(m: &Mapped) -> Flags {
        Flags {
            refers: match &m.object {
                Ok(LdapObject::Alias(_)) => true,
                Ok(LdapObject::Mailbox(x)) => !x.member_dns.is_empty(),
                _ => false,
            },
            domain: matches!(m.object, Ok(LdapObject::Domain(_))),
        }
    }

    pub fn byte(self) -> u8 {
        u8::from(self.refers) | u8::from(self.domain) << 1
    }

    fn from_byte(b: u8) -> Flags {
        Flags {
            refers: b & 1 != 0,
            domain: b & 2 != 0,
        }
    }
}

impl Packed {
    pub fn flags(&self) -> Flags {
        match self {
            Packed::Record(r) => Flags::from_byte(r.bytes().first().copied().unwrap_or(0)),
            Packed::Whole(m) => Flags::of(m),
        }
    }

    /// The record's bytes without the flags byte (strings numbered in the model's table);
    /// `None` for an entry kept whole.
    pub fn record(&self) -> Option<&[u8]> {
        match self {
            Packed::Record(r) => r.bytes().get(1..),
            Packed::Whole(_) => None,
        }
    }

    /// The record's bytes with its flags byte, as [`Table::pack_in`] writes them.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Packed::Record(r) => Some(r.bytes()),
            Packed::Whole(_) => None,
        }
    }

    /// Whether it is this very entry (not a copy of it).
    pub fn is(&self, other: &Packed) -> bool {
        match (self, other) {
            (Packed::Record(a), Packed::Record(b)) => a.is(b),
            (Packed::Whole(a), Packed::Whole(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// An LDAP account's `userPassword` where the model keeps it: in the record of its entry. The
/// directory's accounts point there instead of holding the hash again as text (~14 MB at
/// 100 000 accounts).
#[derive(Clone)]
pub struct SyncedHash {
    record: Record,
    table: Table,
}

impl SyncedHash {
    /// Where the entry `p`, packed with `table`, keeps its hash; `None` for an entry kept whole.
    pub(crate) fn of(p: &Packed, table: &Table) -> Option<SyncedHash> {
        match p {
            Packed::Record(r) => Some(SyncedHash {
                record: r.clone(),
                table: table.clone(),
            }),
            Packed::Whole(_) => None,
        }
    }

    /// The hash as LDAP holds it (`{SSHA512}...`).
    pub fn text(&self) -> Option<String> {
        match self
            .table
            .unpack(&Packed::Record(self.record.clone()))
            .object
        {
            Ok(LdapObject::Mailbox(m)) => m.password.map(|p| p.to_string()),
            _ => None,
        }
    }
}

impl PartialEq for SyncedHash {
    fn eq(&self, other: &SyncedHash) -> bool {
        // A full sync's entries that did not change are the records of before (see
        // `Model::replace_after`), so most compare by pointer.
        self.record.is(&other.record) || self.text() == other.text()
    }
}

impl Eq for SyncedHash {}

impl std::fmt::Debug for SyncedHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncedHash(..)")
    }
}

/// The string table of a model and of its copies. Strings are only ever added, so what one
/// copy packed reads the same in the copies made after it; a copy that packs an entry copies
/// the table first, if it shares it (a few dozen strings: domains, DN parents, transports).
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    strings: Arc<Strings>,
}

impl Table {
    /// The table a snapshot's records were written with.
    pub fn from_strings(strings: Strings) -> Table {
        Table {
            strings: Arc::new(strings),
        }
    }

    /// `m` packed, keyed by `key`.
    pub fn pack(&mut self, key: &str, m: &Mapped) -> Packed {
        let flags = Flags::of(m).byte();
        match pack_entry(Arc::make_mut(&mut self.strings), key, m, flags) {
            Some(bytes) => Packed::Record(Record::own(bytes)),
            None => Packed::Whole(Arc::new(m.clone())),
        }
    }

    /// `m`'s record, its flags byte first, written in `buf` (cleared first); `false` for an
    /// entry with no record form ([`Table::pack`] keeps those whole).
    pub fn pack_in(&mut self, key: &str, m: &Mapped, buf: &mut Vec<u8>) -> bool {
        let flags = Flags::of(m).byte();
        pack_entry_in(Arc::make_mut(&mut self.strings), key, m, flags, buf)
    }

    /// The entry as mapped. Records are only made by [`Table::pack`]; one that did not read back
    /// (a bug) is listed as an unreadable entry rather than stopping the sync.
    pub fn unpack(&self, p: &Packed) -> Mapped {
        match p {
            Packed::Whole(m) => (**m).clone(),
            Packed::Record(_) => {
                let rest = p.record().unwrap_or_default();
                unpack_entry(&self.strings.list, rest).unwrap_or_else(|_| Mapped {
                    dn: UNREADABLE.to_string(),
                    object: Err(SkipReason::Malformed(super::entry::MalformedEntry::Shape)),
                })
            }
        }
    }

    pub fn strings(&self) -> &[String] {
        &self.strings.list
    }

    /// Whether records of `self` and of `other` mean the same when their bytes are the same:
    /// one table is the other, or the start of it.
    pub fn agrees(&self, other: &Table) -> bool {
        let (a, b) = (self.strings(), other.strings());
        let n = a.len().min(b.len());
        Arc::ptr_eq(&self.strings, &other.strings) || a[..n] == b[..n]
    }

    /// Whether `a` (packed with `self`) and `b` (with `other`) are the same entry; `agree` is
    /// [`Table::agrees`] of the two.
    pub fn same(&self, a: &Packed, other: &Table, b: &Packed, agree: bool) -> bool {
        match (a, b) {
            (Packed::Record(x), Packed::Record(y)) if agree => x.is(y) || x.bytes() == y.bytes(),
            _ => self.unpack(a) == other.unpack(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::object::{AliasEntry, MailboxEntry, MailboxKind};
    use super::*;

    fn mailbox(dn: &str, address: &str, transport: &str) -> Mapped {
        Mapped {
            dn: dn.into(),
            object: Ok(LdapObject::Mailbox(MailboxEntry {
                kind: MailboxKind::Account,
                id: Some("0a0b0c0d-0000-1111-2222-333344445555".into()),
                address: address.into(),
                aliases: vec!["al@example.com".to_string()].into(),
                enabled: true,
                transport: Some(transport.into()),
                forwarding: Box::default(),
                pref_forwarding: None,
                local_delivery_disabled: false,
                password: Some(Arc::from("{SSHA512}c2VjcmV0c2FsdA==")),
                catch_all: None,
                member_of: Box::default(),
                member_dns: vec!["uid=x,dc=example,dc=com".to_string()].into(),
            })),
        }
    }

    #[test]
    fn entries_unpack_as_they_were_packed() {
        let mut t = Table::default();
        let m = mailbox(
            "uid=alice,ou=people,dc=example,dc=com",
            "alice@example.com",
            "lmtp:mbox1.example.com:7025",
        );
        let p = t.pack("id:5f3c1122-3344-5566-7788-99aabbccddee", &m);
        assert!(matches!(p, Packed::Record(_)));
        assert_eq!(t.unpack(&p), m);
        assert_eq!(
            p.flags(),
            Flags {
                refers: true,
                domain: false
            }
        );
        // Smaller than the 179 bytes of text it stands for: DN parent, domain, transport and
        // scheme are numbers, the id and the hash are bytes.
        assert!(p.record().is_some_and(|r| r.len() < 100), "{p:?}");
        // What a mapping never gives has no record: kept as it is.
        let odd = Mapped {
            dn: "uid=odd".into(),
            object: Err(SkipReason::NotLocal("x@elsewhere.org".into())),
        };
        let w = t.pack("dn:uid=odd", &odd);
        assert!(matches!(w, Packed::Whole(_)) && w.record().is_none());
        assert_eq!(t.unpack(&w), odd);
        let alias = Mapped {
            dn: "uid=a2,dc=example,dc=com".into(),
            object: Ok(LdapObject::Alias(AliasEntry {
                address: "a2@example.com".into(),
                target_id: "ID-Bob".into(),
            })),
        };
        assert!(t.pack("id:x-1", &alias).flags().refers);
    }

    #[test]
    fn a_copy_adds_strings_to_its_own_table_and_still_agrees() {
        let mut a = Table::default();
        let alice = mailbox(
            "uid=alice,dc=example,dc=com",
            "alice@example.com",
            "smtp:a:25",
        );
        let pa = a.pack("id:1", &alice);
        let mut b = a.clone();
        let bob = mailbox("uid=bob,dc=other,dc=org", "bob@other.org", "smtp:b:25");
        let pb = b.pack("id:2", &bob);
        // The original table is untouched: the copy's new strings are its own.
        assert!(a.strings().len() < b.strings().len());
        assert!(a.agrees(&b) && b.agrees(&a));
        assert_eq!(b.unpack(&pa), alice);
        assert_eq!(b.unpack(&pb), bob);
        let again = b.pack("id:1", &alice);
        assert!(a.same(&pa, &b, &again, true));
        assert!(!b.same(&pb, &b, &pa, true));
        // A table that numbered the same strings otherwise: compared as values.
        let mut c = Table::default();
        let pc = c.pack("id:2", &bob);
        let pc_alice = c.pack("id:1", &alice);
        assert!(!c.agrees(&a));
        assert!(c.same(&pc_alice, &a, &pa, false));
        assert!(!c.same(&pc, &a, &pa, false));
    }
}
