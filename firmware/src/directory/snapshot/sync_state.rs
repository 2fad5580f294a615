//! The LDAP sync's state as a version 4 snapshot stores it: the settings it was read with, the
//! RFC 4533 cookie, the `modifyTimestamp` mark, and the model, every entry exactly as mapped (a
//! poll compares what it reads with it, a build makes the directory from it).
//!
//! Compact as the directory records are: DN parents, domains, transports and password schemes
//! once in a string table; a DN `uid=<local part>` is not spelled out; UUIDs (entryUUID, Zimbra's
//! ids) as 16 bytes; a key that repeats the entry's own id or DN is not stored again. Read back,
//! every value is what was written, so a model read from flash is the one that was saved.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::DecodeError;
use super::compact::{Password, Strings, join_hash, split_hash};
use crate::config::MtaConfig;
use crate::config::localconfig::LdapSchema;
use crate::directory::domain_dkim::DomainDkim;
use crate::directory::ldap::entry::MalformedEntry;
use crate::directory::ldap::model::{Mapped, Model, UNREADABLE};
use crate::directory::ldap::object::{
    AliasEntry, ConfigEntry, DomainEntry, LdapObject, MailboxEntry, MailboxKind, SkipReason,
    Skipped,
};
use crate::directory::ldap::packed::{Blocks, Flags, Packed, Table};
use crate::directory::ldap::state::{Origin, SyncState, Syncrepl};
use crate::directory::ldap::syncrepl::{uuid_bytes, uuid_text};
use crate::directory::ldap::{plain, zimbra};

/// The state record; `E` is its entries: read, a `Vec` of [`EntryRecord`]s; written,
/// [`LazyEntries`], which makes each record as it is written (100 000 records at once were
/// tens of MB of a sync's peak). The bytes are the same.
#[derive(Serialize, Deserialize)]
pub(super) struct StateRecord<E> {
    urls: Vec<String>,
    search_base: String,
    schema: u8,
    bind_dn: String,
    server: String,
    progress: Progress,
    strings: Vec<String>,
    entries: E,
}

/// Where the sync stands besides its entries, stored in the state record and, as each poll left
/// it, in every journal record ([`delta`]). Postcard writes a nested struct as its fields, so
/// the state record's bytes are those of the fields written out in place.
#[derive(Serialize, Deserialize)]
pub(super) struct Progress {
    cookie: Option<Vec<u8>>,
    syncrepl: u8,
    last_full: Option<u64>,
    newest_stamp: Option<String>,
    unreadable: Vec<MalformedEntry>,
}

impl Progress {
    /// `None` if an entry the server sent unreadable has no stored form.
    fn of(state: &SyncState) -> Option<Progress> {
        Some(Progress {
            cookie: state.cookie.clone(),
            syncrepl: syncrepl_number(state.syncrepl),
            last_full: state.last_full,
            newest_stamp: state.model.newest_stamp().map(str::to_string),
            unreadable: unreadable_records(&state.model)?,
        })
    }

    /// Sets it on `state` (its model's mark and unreadable entries too); on an error `state` is
    /// as it was.
    fn set_on(self, state: &mut SyncState) -> Result<(), DecodeError> {
        let syncrepl = syncrepl_of(self.syncrepl)?;
        std::sync::Arc::make_mut(&mut state.model)
            .set_progress(unreadable_of(self.unreadable), self.newest_stamp);
        state.cookie = self.cookie;
        state.syncrepl = syncrepl;
        state.last_full = self.last_full;
        Ok(())
    }
}

/// The state record as stored.
pub(super) type Stored<'a> = StateRecord<Vec<EntryRecord<'a>>>;

#[derive(Serialize, Deserialize)]
pub(super) struct EntryRecord<'a> {
    /// The DN up to its first comma; `None`: `uid=` and the mailbox's local part.
    #[serde(borrow)]
    rdn: Option<Cow<'a, str>>,
    /// The rest of the DN: 0 none, else index + 1 into `strings`.
    parent: u32,
    #[serde(borrow)]
    key: KeyRecord<'a>,
    #[serde(borrow)]
    object: ObjectRecord<'a>,
}

#[derive(Serialize, Deserialize)]
enum KeyRecord<'a> {
    /// `id:` and the mailbox's own id, lowercase.
    OwnId,
    /// `dn:` and the DN, lowercase.
    Dn,
    /// `id:` and this UUID as text.
    Uuid([u8; 16]),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

#[derive(Serialize, Deserialize)]
enum ObjectRecord<'a> {
    #[serde(borrow)]
    Mailbox(Box<MailboxRecord<'a>>),
    Domain(DomainRecord),
    Alias {
        address: String,
        target_id: String,
    },
    Config {
        server: Option<String>,
        values: Vec<(String, Vec<String>)>,
    },
    /// Skipped when mapped: a required attribute is missing.
    MissingAttribute(String),
    /// Skipped when mapped: a list without members.
    EmptyList,
}

#[derive(Serialize, Deserialize)]
struct DomainRecord {
    name: String,
    enabled: bool,
    alias: bool,
    catch_all: Option<String>,
    catch_all_forward: Option<String>,
    transport: Option<String>,
    auth: Vec<(String, String)>,
}

const ENABLED: u8 = 1;
const LOCAL_DELIVERY_DISABLED: u8 = 2;

#[derive(Serialize, Deserialize)]
struct MailboxRecord<'a> {
    kind: u8,
    flags: u8,
    #[serde(borrow)]
    id: Option<IdRecord<'a>>,
    #[serde(borrow)]
    address: AddressRecord<'a>,
    #[serde(borrow)]
    aliases: Vec<AddressRecord<'a>>,
    /// 0 none, else index + 1 into `strings`.
    transport: u32,
    forwarding: Vec<String>,
    pref_forwarding: Option<String>,
    #[serde(borrow)]
    password: Option<Password<'a>>,
    catch_all: Option<String>,
    member_of: Vec<String>,
    member_dns: Vec<String>,
}

#[derive(Serialize, Deserialize)]
enum IdRecord<'a> {
    Uuid([u8; 16]),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

/// An address as LDAP holds it (it may not even be one): the text before its last `@`, and what
/// follows it (0: there was no `@`; else index + 1 into `strings`).
#[derive(Serialize, Deserialize)]
struct AddressRecord<'a> {
    #[serde(borrow)]
    local: Cow<'a, str>,
    domain: u32,
}

/// Whether `text` lowercased is `lower`, without making the lowercase copy.
fn lowercases_to(text: &str, lower: &str) -> bool {
    text.len() == lower.len()
        && text
            .bytes()
            .zip(lower.bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == b)
}

/// Attribute names a mapped entry names (`&'static` in memory): each schema's, the MTA config's.
fn known_attr(name: &str) -> Option<&'static str> {
    const DN_PART: &[&str] = &["dc"];
    [
        zimbra::ATTRS,
        plain::INET_ORG_PERSON.attrs,
        plain::ACTIVE_DIRECTORY.attrs,
        MtaConfig::ATTRS,
        DN_PART,
    ]
    .into_iter()
    .flatten()
    .find(|a| **a == name)
    .copied()
}

fn schema_number(s: LdapSchema) -> u8 {
    match s {
        LdapSchema::Zimbra => 0,
        LdapSchema::InetOrgPerson => 1,
        LdapSchema::ActiveDirectory => 2,
    }
}

fn address<'a>(strings: &mut Strings, text: &'a str) -> AddressRecord<'a> {
    match text.rfind('@') {
        Some(at) => AddressRecord {
            local: Cow::Borrowed(&text[..at]),
            domain: strings.id(&text[at + 1..]) + 1,
        },
        None => AddressRecord {
            local: Cow::Borrowed(text),
            domain: 0,
        },
    }
}

fn mailbox<'a>(strings: &mut Strings, m: &'a MailboxEntry) -> MailboxRecord<'a> {
    let mut flags = 0;
    if m.enabled {
        flags |= ENABLED;
    }
    if m.local_delivery_disabled {
        flags |= LOCAL_DELIVERY_DISABLED;
    }
    MailboxRecord {
        kind: match m.kind {
            MailboxKind::Account => 0,
            MailboxKind::List => 1,
            MailboxKind::Group => 2,
        },
        flags,
        id: m.id.as_deref().map(|id| match uuid_bytes(id) {
            Some(u) => IdRecord::Uuid(u),
            None => IdRecord::Text(Cow::Borrowed(id)),
        }),
        address: address(strings, &m.address),
        aliases: m.aliases.iter().map(|a| address(strings, a)).collect(),
        transport: m.transport.as_deref().map_or(0, |t| strings.id(t) + 1),
        forwarding: m.forwarding.to_vec(),
        pref_forwarding: m.pref_forwarding.as_deref().map(str::to_string),
        password: m.password.as_deref().map(|p| split_hash(strings, p)),
        catch_all: m.catch_all.as_deref().map(str::to_string),
        member_of: m.member_of.to_vec(),
        member_dns: m.member_dns.to_vec(),
    }
}

/// `None` for what the records have no form for (a skip reason other than a mapping's).
fn object<'a>(strings: &mut Strings, m: &'a Mapped) -> Option<ObjectRecord<'a>> {
    Some(match &m.object {
        Ok(LdapObject::Mailbox(x)) => ObjectRecord::Mailbox(Box::new(mailbox(strings, x))),
        Ok(LdapObject::Domain(d)) => ObjectRecord::Domain(DomainRecord {
            name: d.name.clone(),
            enabled: d.enabled,
            alias: d.alias,
            catch_all: d.catch_all.clone(),
            catch_all_forward: d.catch_all_forward.clone(),
            transport: d.transport.clone(),
            // The DKIM pairs ride in the same list (older snapshots read back without them).
            auth: d
                .auth
                .iter()
                .chain(&d.dkim)
                .map(|(a, v)| (a.to_string(), v.clone()))
                .collect(),
        }),
        Ok(LdapObject::Alias(a)) => ObjectRecord::Alias {
            address: a.address.clone(),
            target_id: a.target_id.clone(),
        },
        Ok(LdapObject::Config(c)) => ObjectRecord::Config {
            server: c.server.clone(),
            values: c
                .values
                .iter()
                .map(|(a, v)| (a.to_string(), v.clone()))
                .collect(),
        },
        Err(SkipReason::MissingAttribute(a)) => {
            known_attr(a)?;
            ObjectRecord::MissingAttribute(a.to_string())
        }
        Err(SkipReason::EmptyList) => ObjectRecord::EmptyList,
        Err(_) => return None,
    })
}

fn entry<'a>(strings: &mut Strings, key: &'a str, m: &'a Mapped) -> Option<EntryRecord<'a>> {
    let object = object(strings, m)?;
    let (first, rest) = match m.dn.split_once(',') {
        Some((first, rest)) => (first, Some(rest)),
        None => (m.dn.as_str(), None),
    };
    let own = match &m.object {
        Ok(LdapObject::Mailbox(x)) => Some(x),
        _ => None,
    };
    let local = own.map(|x| {
        x.address
            .rfind('@')
            .map_or(&*x.address, |at| &x.address[..at])
    });
    let rdn = match local {
        Some(l) if first.strip_prefix("uid=") == Some(l) => None,
        _ => Some(Cow::Borrowed(first)),
    };
    let own_id = own.and_then(|x| x.id.as_deref());
    let key = match key.strip_prefix("id:") {
        Some(id) if own_id.is_some_and(|o| lowercases_to(o, id)) => KeyRecord::OwnId,
        _ if key
            .strip_prefix("dn:")
            .is_some_and(|dn| lowercases_to(&m.dn, dn)) =>
        {
            KeyRecord::Dn
        }
        Some(id) => match uuid_bytes(id) {
            Some(u) => KeyRecord::Uuid(u),
            None => KeyRecord::Text(Cow::Borrowed(key)),
        },
        None => KeyRecord::Text(Cow::Borrowed(key)),
    };
    Some(EntryRecord {
        rdn,
        parent: rest.map_or(0, |r| strings.id(r) + 1),
        key,
        object,
    })
}

/// A model's entries as records, each read from the model's packed form as it is written and
/// its strings numbered as in the snapshot's table ([`Renumber`]).
pub(super) struct LazyEntries<'a> {
    model: &'a Model,
    numbers: Renumber,
}

impl Serialize for LazyEntries<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.model.len()))?;
        for (_, p) in self.model.packed() {
            // Every entry has a record that reads back, its strings numbered (`record` made
            // sure of both).
            let mut rec = p
                .record()
                .and_then(|b| postcard::from_bytes::<EntryRecord>(b).ok())
                .ok_or_else(|| S::Error::custom("an entry of the model has no record"))?;
            let mut missing = false;
            renumber(&mut rec, &mut |n| {
                let to = self.numbers.to.get(n as usize).copied().flatten();
                missing |= to.is_none();
                to.unwrap_or(0)
            });
            if missing {
                return Err(S::Error::custom("sync state changed while written"));
            }
            seq.serialize_element(&rec)?;
        }
        seq.end()
    }
}

/// The model's string numbers as the snapshot's: the table holds only the strings the entries
/// use, in the order they are first used, so a snapshot is the same bytes whatever strings the
/// model gathered since it started (and a model read back writes what was read).
#[derive(Default)]
struct Renumber {
    /// By the model's number: the snapshot's.
    to: Vec<Option<u32>>,
    list: Vec<String>,
}

/// Calls `f` on every string number of `rec`, in the order [`entry`] numbers them, and puts
/// back what it returns.
fn renumber(rec: &mut EntryRecord, f: &mut impl FnMut(u32) -> u32) {
    // 0: none; else the number + 1.
    fn optional(n: &mut u32, f: &mut impl FnMut(u32) -> u32) {
        if *n > 0 {
            *n = f(*n - 1) + 1;
        }
    }
    if let ObjectRecord::Mailbox(m) = &mut rec.object {
        optional(&mut m.address.domain, f);
        m.aliases
            .iter_mut()
            .for_each(|a| optional(&mut a.domain, f));
        optional(&mut m.transport, f);
        if let Some(Password::Base64 { scheme, .. }) = &mut m.password {
            *scheme = f(*scheme);
        }
    }
    optional(&mut rec.parent, f);
}

/// An entry as the LDAP model keeps it in RAM: `flags`, then its record, strings numbered in the
/// model's table `strings`; `None` if it has no record form.
pub(crate) fn pack_entry(
    strings: &mut Strings,
    key: &str,
    m: &Mapped,
    flags: u8,
) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    pack_entry_in(strings, key, m, flags, &mut bytes).then_some(bytes)
}

/// [`pack_entry`] into `buf`, cleared first (a buffer used again for each entry allocates
/// nothing); `false` for an entry with no record form.
pub(crate) fn pack_entry_in(
    strings: &mut Strings,
    key: &str,
    m: &Mapped,
    flags: u8,
    buf: &mut Vec<u8>,
) -> bool {
    buf.clear();
    let Some(rec) = entry(strings, key, m) else {
        return false;
    };
    buf.push(flags);
    match postcard::to_extend(&rec, std::mem::take(buf)) {
        Ok(bytes) => {
            *buf = bytes;
            true
        }
        Err(_) => false,
    }
}

/// The entry a record of [`pack_entry`] holds (without its flags byte).
pub(crate) fn unpack_entry(strings: &[String], record: &[u8]) -> Result<Mapped, DecodeError> {
    let rec: EntryRecord = postcard::from_bytes(record).map_err(|_| DecodeError::Corrupt)?;
    let reader = Reader {
        strings,
        // The model's own table: nothing to bound.
        budget: std::cell::Cell::new(usize::MAX),
    };
    reader.keyed(rec, false).map(|(_, m)| m)
}

fn syncrepl_number(s: Syncrepl) -> u8 {
    match s {
        Syncrepl::Unknown => 0,
        Syncrepl::Yes => 1,
        Syncrepl::No => 2,
    }
}

fn syncrepl_of(n: u8) -> Result<Syncrepl, DecodeError> {
    match n {
        0 => Ok(Syncrepl::Unknown),
        1 => Ok(Syncrepl::Yes),
        2 => Ok(Syncrepl::No),
        _ => Err(DecodeError::Corrupt),
    }
}

/// The entries the server sent unreadable, as stored; `None` if one has no stored form.
fn unreadable_records(model: &Model) -> Option<Vec<MalformedEntry>> {
    model
        .unreadable()
        .iter()
        .map(|s| match &s.reason {
            SkipReason::Malformed(m) if s.dn == UNREADABLE => Some(*m),
            _ => None,
        })
        .collect()
}

fn unreadable_of(stored: Vec<MalformedEntry>) -> Vec<Skipped> {
    stored
        .into_iter()
        .map(|m| Skipped {
            dn: UNREADABLE.to_string(),
            reason: SkipReason::Malformed(m),
        })
        .collect()
}

/// The state as stored, borrowing from it; `None` if some entry has no stored form.
pub(super) fn record(state: &SyncState) -> Option<StateRecord<LazyEntries<'_>>> {
    let progress = Progress::of(state)?;
    // First pass: every entry has a record, and the snapshot's table is whole.
    let table = state.model.table();
    let mut numbers = Renumber {
        to: vec![None; table.strings().len()],
        list: Vec::new(),
    };
    for (_, p) in state.model.packed() {
        let mut rec: EntryRecord = postcard::from_bytes(p.record()?).ok()?;
        let mut bad = false;
        renumber(&mut rec, &mut |n| {
            let Some(slot) = numbers.to.get_mut(n as usize) else {
                bad = true;
                return 0;
            };
            *slot.get_or_insert_with(|| {
                numbers
                    .list
                    .push(table.strings().get(n as usize).cloned().unwrap_or_default());
                numbers.list.len() as u32 - 1
            })
        });
        if bad {
            return None;
        }
    }
    let o = &state.origin;
    Some(StateRecord {
        urls: o.urls.clone(),
        search_base: o.search_base.clone(),
        schema: schema_number(o.schema),
        bind_dn: o.bind_dn.clone(),
        server: o.server.clone(),
        progress,
        strings: std::mem::take(&mut numbers.list),
        entries: LazyEntries {
            model: &state.model,
            numbers,
        },
    })
}

/// How many bytes the string table may give out per byte of snapshot, and a little more: a
/// reference costs a byte or two and names up to a whole domain or DN, so without a bound a few
/// KiB of hostile snapshot would fill RAM. Real snapshots use a small fraction (a domain and a
/// DN per account record of 30 bytes and more).
const TABLE_BYTES_PER_BYTE: usize = 64;
const TABLE_BYTES_EXTRA: usize = 64 << 10;

/// Reads records back into the values they were made from.
struct Reader<'s> {
    strings: &'s [String],
    /// Bytes the string table may still give out.
    budget: std::cell::Cell<usize>,
}

impl Reader<'_> {
    fn string(&self, i: u32) -> Result<&str, DecodeError> {
        let s = self.strings.get(i as usize).ok_or(DecodeError::Corrupt)?;
        let left = self.budget.get().checked_sub(s.len());
        self.budget.set(left.ok_or(DecodeError::Corrupt)?);
        Ok(s)
    }

    /// `0` is none; else the string at `n - 1`.
    fn optional(&self, n: u32) -> Result<Option<&str>, DecodeError> {
        n.checked_sub(1).map(|i| self.string(i)).transpose()
    }

    fn address(&self, a: &AddressRecord) -> Result<String, DecodeError> {
        Ok(match self.optional(a.domain)? {
            Some(d) => format!("{}@{d}", a.local),
            None => a.local.to_string(),
        })
    }

    fn password(&self, p: Password) -> Result<String, DecodeError> {
        if let Password::Base64 { scheme, .. } = &p {
            self.string(*scheme)?;
        }
        join_hash(self.strings, p)
    }

    fn mailbox(&self, r: MailboxRecord) -> Result<MailboxEntry, DecodeError> {
        Ok(MailboxEntry {
            kind: match r.kind {
                0 => MailboxKind::Account,
                1 => MailboxKind::List,
                2 => MailboxKind::Group,
                _ => return Err(DecodeError::Corrupt),
            },
            id: r.id.map(|id| match id {
                IdRecord::Uuid(u) => uuid_text(&u).into(),
                IdRecord::Text(t) => t.into(),
            }),
            address: self.address(&r.address)?.into(),
            aliases: r
                .aliases
                .iter()
                .map(|a| self.address(a))
                .collect::<Result<_, _>>()?,
            enabled: r.flags & ENABLED != 0,
            transport: self.optional(r.transport)?.map(Box::from),
            forwarding: r.forwarding.into(),
            pref_forwarding: r.pref_forwarding.map(String::into_boxed_str),
            local_delivery_disabled: r.flags & LOCAL_DELIVERY_DISABLED != 0,
            password: (r.password)
                .map(|p| self.password(p).map(Arc::from))
                .transpose()?,
            catch_all: r.catch_all.map(String::into_boxed_str),
            member_of: r.member_of.into(),
            member_dns: r.member_dns.into(),
        })
    }

    fn object(&self, r: ObjectRecord) -> Result<Result<LdapObject, SkipReason>, DecodeError> {
        let attr = |a: &str| known_attr(a).ok_or(DecodeError::Corrupt);
        Ok(Ok(match r {
            ObjectRecord::Mailbox(m) => LdapObject::Mailbox(self.mailbox(*m)?),
            ObjectRecord::Domain(d) => {
                let pairs = d
                    .auth
                    .into_iter()
                    .map(|(a, v)| Ok((attr(&a)?, v)))
                    .collect::<Result<Vec<_>, DecodeError>>()?;
                let (dkim, auth) = pairs.into_iter().partition(|(a, _)| DomainDkim::owns(a));
                LdapObject::Domain(DomainEntry {
                    name: d.name,
                    enabled: d.enabled,
                    alias: d.alias,
                    catch_all: d.catch_all,
                    catch_all_forward: d.catch_all_forward,
                    transport: d.transport,
                    auth,
                    dkim,
                })
            }
            ObjectRecord::Alias { address, target_id } => {
                LdapObject::Alias(AliasEntry { address, target_id })
            }
            ObjectRecord::Config { server, values } => LdapObject::Config(ConfigEntry {
                server,
                values: values
                    .into_iter()
                    .map(|(a, v)| Ok((attr(&a)?, v)))
                    .collect::<Result<_, DecodeError>>()?,
            }),
            ObjectRecord::MissingAttribute(a) => {
                return Ok(Err(SkipReason::MissingAttribute(attr(&a)?)));
            }
            ObjectRecord::EmptyList => return Ok(Err(SkipReason::EmptyList)),
        }))
    }

    fn entry(&self, r: EntryRecord) -> Result<(String, Mapped), DecodeError> {
        let (key, m) = self.keyed(r, true)?;
        Ok((key.unwrap_or_default(), m))
    }

    /// The entry, and its key if `with_key` (the model, which has the key, unpacks without).
    fn keyed(
        &self,
        r: EntryRecord,
        with_key: bool,
    ) -> Result<(Option<String>, Mapped), DecodeError> {
        let object = self.object(r.object)?;
        let own = match &object {
            Ok(LdapObject::Mailbox(x)) => Some(x),
            _ => None,
        };
        let first = match (r.rdn, own) {
            (Some(rdn), _) => rdn.into_owned(),
            (None, Some(x)) => {
                let local = x
                    .address
                    .rfind('@')
                    .map_or(&*x.address, |at| &x.address[..at]);
                format!("uid={local}")
            }
            (None, None) => return Err(DecodeError::Corrupt),
        };
        let dn = match self.optional(r.parent)? {
            Some(rest) => format!("{first},{rest}"),
            None => first,
        };
        let key = match r.key {
            KeyRecord::OwnId if own.and_then(|x| x.id.as_deref()).is_none() => {
                return Err(DecodeError::Corrupt);
            }
            _ if !with_key => None,
            KeyRecord::OwnId => own
                .and_then(|x| x.id.as_deref())
                .map(|id| format!("id:{}", id.to_ascii_lowercase())),
            KeyRecord::Dn => Some(format!("dn:{}", dn.to_ascii_lowercase())),
            KeyRecord::Uuid(u) => Some(format!("id:{}", uuid_text(&u))),
            KeyRecord::Text(t) => Some(t.into_owned()),
        };
        Ok((key, Mapped { dn, object }))
    }
}

/// The state a record holds, read from a snapshot of `snapshot_len` bytes; what its build
/// leaves out and counts is filled in by the caller.
pub(super) fn state(r: Stored<'_>, snapshot_len: usize) -> Result<SyncState, DecodeError> {
    let budget = snapshot_len
        .saturating_mul(TABLE_BYTES_PER_BYTE)
        .saturating_add(TABLE_BYTES_EXTRA);
    let strings = r.strings;
    let reader = Reader {
        strings: &strings,
        budget: std::cell::Cell::new(budget),
    };
    // Each record is read to check it, and kept as its bytes: the model packs its entries as
    // these very records, numbered by this table. They are written into blocks, as a full
    // sync's are (see `Blocks`).
    let mut written = Vec::with_capacity(r.entries.len());
    let mut blocks = Blocks::default();
    let mut bytes = Vec::new();
    for e in r.entries {
        bytes.clear();
        bytes.push(0);
        bytes = postcard::to_extend(&e, bytes).map_err(|_| DecodeError::Corrupt)?;
        let (key, m) = reader.entry(e)?;
        if let Some(flags) = bytes.first_mut() {
            *flags = Flags::of(&m).byte();
        }
        written.push((key, blocks.write(&bytes)));
    }
    let sealed = blocks.seal();
    let records = (written.into_iter()).map(|(key, w)| (key, Packed::Record(sealed.record(w))));
    let table = Table::from_strings(Strings::from_list(strings));
    let mut state = SyncState {
        model: std::sync::Arc::new(Model::from_records(table, records, Vec::new(), None)),
        cookie: None,
        syncrepl: Syncrepl::Unknown,
        last_full: None,
        origin: Origin {
            urls: r.urls,
            search_base: r.search_base,
            schema: match r.schema {
                0 => LdapSchema::Zimbra,
                1 => LdapSchema::InetOrgPerson,
                2 => LdapSchema::ActiveDirectory,
                _ => return Err(DecodeError::Corrupt),
            },
            bind_dn: r.bind_dn,
            server: r.server,
        },
        skipped: Vec::new(),
        counts: Default::default(),
    };
    r.progress.set_on(&mut state)?;
    Ok(state)
}

pub(super) mod delta;

#[cfg(test)]
mod tests;
