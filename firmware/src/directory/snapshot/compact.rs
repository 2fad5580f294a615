//! Snapshot versions 3 and 4, sized for 100 000 accounts and more: every domain name, transport
//! and password scheme is stored once in a string table and named by number; an address is its
//! local part and a domain number; aliases sit inside their account instead of repeating its
//! address; a `{SCHEME}base64` hash is kept as its bytes. About half the size of version 2.
//!
//! Version 4 adds the LDAP sync's state ([`sync_state`](super::sync_state)). With it, the
//! accounts from LDAP are not stored as accounts: the state's model holds them, and the
//! directory is built from it when read (two copies would not fit the slot at 100 000).
//!
//! Values still go through `prov`'s checks when read back, so a snapshot can never put into RAM
//! what could not be set; a transport is parsed once per distinct string.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::sync_state::{self, Stored};
use super::{Attrs, DecodeError, load_config, load_domain};
use crate::config::attr::Typed;
use crate::directory::hash::BuildAddressHasher;
use crate::directory::ldap::state::SyncState;
use crate::directory::{
    Account, Directory, DirectoryError, Domain, MailStatus, Source, account, address,
};
use crate::mail::Transport;

/// The version number this module writes.
pub(super) const VERSION: u32 = 4;

/// The version before the sync state was stored; still read.
pub(super) const VERSION_3: u32 = 3;

const DISABLED: u8 = 1;
const LOCAL_DELIVERY_DISABLED: u8 = 2;
const FROM_LDAP: u8 = 4;

/// Records borrow what they can from the directory when written (100 000 accounts, no copy of
/// their addresses) and own it when read; the bytes are the same.
#[derive(Serialize, Deserialize)]
struct Body<'a> {
    config: Attrs,
    ldap_synced: Option<u64>,
    /// The config attributes LDAP sets.
    ldap_config: Vec<String>,
    /// Domain names, transports and password schemes, each once.
    strings: Vec<String>,
    domains: Vec<DomainRecord>,
    #[serde(borrow)]
    accounts: Vec<AccountRecord<'a>>,
}

#[derive(Serialize, Deserialize)]
struct DomainRecord {
    name: String,
    ldap: bool,
    attrs: Attrs,
}

#[derive(Serialize, Deserialize)]
struct AccountRecord<'a> {
    #[serde(borrow)]
    local: Cow<'a, str>,
    /// Index into `strings`.
    domain: u32,
    flags: u8,
    /// 0: none; else index + 1 into `strings`.
    transport: u32,
    #[serde(borrow)]
    password: Option<Password<'a>>,
    forwarding: Vec<String>,
    pref_forwarding: Option<String>,
    /// (local part, domain index)
    #[serde(borrow)]
    aliases: Vec<(Cow<'a, str>, u32)>,
}

#[derive(Serialize, Deserialize)]
pub(super) enum Password<'a> {
    /// Anything that is not `{SCHEME}` and canonical base64 (`{CRYPT}$6$...`, PBKDF2...).
    #[serde(borrow)]
    Text(Cow<'a, str>),
    /// `{SCHEME}` (index into `strings`) and the bytes its base64 stood for.
    Base64 { scheme: u32, hash: Vec<u8> },
}

impl Password<'_> {
    fn into_owned(self) -> Password<'static> {
        match self {
            Password::Text(t) => Password::Text(Cow::Owned(t.into_owned())),
            Password::Base64 { scheme, hash } => Password::Base64 { scheme, hash },
        }
    }
}

/// The string table being built (and the LDAP model's, which packs its entries as these records).
#[derive(Debug, Clone, Default)]
pub(crate) struct Strings {
    pub list: Vec<String>,
    /// Asked several times per entry (domain, DN parent, transport, scheme): std's SipHash was
    /// a good part of writing a snapshot.
    index: HashMap<String, u32, BuildAddressHasher>,
}

impl Strings {
    /// A table as a snapshot stored it (a string twice is found by its first number).
    pub(crate) fn from_list(list: Vec<String>) -> Strings {
        let mut index = HashMap::with_capacity_and_hasher(list.len(), Default::default());
        for (i, s) in list.iter().enumerate() {
            index.entry(s.clone()).or_insert(i as u32);
        }
        Strings { list, index }
    }

    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// `{SSHA512}c2Vj...` as scheme and bytes, when the base64 reads back to the very same text.
pub(super) fn split_hash<'a>(strings: &mut Strings, password: &'a str) -> Password<'a> {
    let packed = password.find('}').and_then(|close| {
        let (scheme, b64) = password.split_at(close + 1);
        if !scheme.starts_with('{') || b64.is_empty() {
            return None;
        }
        let hash = STANDARD.decode(b64).ok()?;
        // Canonical only: padding and trailing bits as an encoder writes them.
        let mut again = [0u8; 1024];
        let n = STANDARD.encode_slice(&hash, &mut again).ok()?;
        (again.get(..n)? == b64.as_bytes()).then_some((scheme, hash))
    });
    match packed {
        Some((scheme, hash)) => Password::Base64 {
            scheme: strings.id(scheme),
            hash,
        },
        None => Password::Text(Cow::Borrowed(password)),
    }
}

/// The password text again from [`split_hash`]'s form.
pub(super) fn join_hash(strings: &[String], p: Password) -> Result<String, DecodeError> {
    Ok(match p {
        Password::Text(t) => t.into_owned(),
        Password::Base64 { scheme, hash } => {
            let scheme = strings.get(scheme as usize).ok_or(DecodeError::Corrupt)?;
            format!("{scheme}{}", STANDARD.encode(hash))
        }
    })
}

fn local_and_domain<'a>(strings: &mut Strings, address: &'a str) -> (&'a str, u32) {
    let (local, domain) = address::split(address).unwrap_or((address, ""));
    (local, strings.id(domain))
}

fn account_record<'a>(
    strings: &mut Strings,
    a: &'a Account,
    aliases: &[&'a str],
) -> AccountRecord<'a> {
    let (local, domain) = local_and_domain(strings, a.address());
    let fwd = a.forwarding();
    let mut flags = 0;
    if a.status() == MailStatus::Disabled {
        flags |= DISABLED;
    }
    if fwd.is_some_and(|f| f.local_delivery_disabled) {
        flags |= LOCAL_DELIVERY_DISABLED;
    }
    if a.source() == Source::Ldap {
        flags |= FROM_LDAP;
    }
    AccountRecord {
        local: Cow::Borrowed(local),
        domain,
        flags,
        transport: a
            .transport
            .as_deref()
            .map_or(0, |t| strings.id(t.text()) + 1),
        password: a.password().map(|p| match p {
            Cow::Borrowed(p) => split_hash(strings, p),
            Cow::Owned(p) => split_hash(strings, &p).into_owned(),
        }),
        forwarding: match fwd {
            Some(_) => a.values(account::FORWARD).unwrap_or_default(),
            None => Vec::new(),
        },
        pref_forwarding: match fwd {
            Some(_) => a.values(account::PREF_FORWARD).unwrap_or_default().pop(),
            None => None,
        },
        aliases: aliases
            .iter()
            .map(|alias| {
                let (l, d) = local_and_domain(strings, alias);
                (Cow::Borrowed(l), d)
            })
            .collect(),
    }
}

/// The snapshot bytes (deterministic: sorted by name), and whether they hold the LDAP sync's
/// state.
/// A snapshot as written: its version, the body, the sync state.
type Snapshot<'a> = (
    u32,
    Body<'a>,
    Option<sync_state::StateRecord<sync_state::LazyEntries<'a>>>,
);

/// The snapshot of `dir` and its encoded size, to `write`; and whether the sync state went in.
fn encode_with<T>(dir: &Directory, write: impl FnOnce(&Snapshot<'_>, usize) -> T) -> (T, bool) {
    // A state that cannot be stored (a skip reason the records have no form for) is left out:
    // the LDAP accounts are stored as accounts, and the next start syncs in full.
    let sync = dir.ldap_sync.as_deref().and_then(sync_state::record);
    let with_state = sync.is_some();
    let stored = |a: &Account| sync.is_none() || a.source() == Source::Local;
    let mut strings = Strings::default();
    let mut domains: Vec<&Domain> = dir.domains.values().collect();
    domains.sort_by(|a, b| a.name().cmp(b.name()));
    let mut order: Vec<usize> = (0..dir.accounts.len())
        .filter(|&i| stored(&dir.accounts[i]))
        .collect();
    order.sort_by(|&a, &b| dir.accounts[a].address().cmp(dir.accounts[b].address()));
    // Only the stored accounts' aliases: the LDAP accounts' (a list each, 100 000 of them)
    // are in the sync state.
    // By account, then name; only as many as are stored (a list per account, empty for every
    // LDAP one, was 2.4 MB of the full sync's peak at 100 000 accounts).
    let mut aliases: Vec<(usize, &str)> = dir
        .aliases
        .iter()
        .map(|a| (a.account as usize, &*a.name))
        .filter(|(i, _)| dir.accounts.get(*i).is_some_and(stored))
        .collect();
    aliases.sort_unstable();
    let aliases_of = |i: usize| -> Vec<&str> {
        let from = aliases.partition_point(|(j, _)| *j < i);
        let of = aliases.get(from..).unwrap_or_default().iter();
        of.take_while(|(j, _)| *j == i).map(|(_, n)| *n).collect()
    };
    let domains = domains
        .iter()
        .map(|d| DomainRecord {
            name: d.name().to_string(),
            ldap: d.source() == Source::Ldap,
            attrs: super::domain_attrs(d),
        })
        .collect();
    let accounts = order
        .iter()
        .map(|&i| account_record(&mut strings, &dir.accounts[i], &aliases_of(i)))
        .collect();
    let body = Body {
        config: super::config_attrs(dir),
        ldap_synced: dir.ldap_synced,
        ldap_config: dir.ldap_config.iter().map(|a| a.to_string()).collect(),
        strings: strings.list,
        domains,
        accounts,
    };
    let value = (VERSION, body, sync);
    // Measured first: a buffer is then made once at its size, or the store told the length
    // before the parts.
    let size = postcard::serialize_with_flavor(&value, postcard::ser_flavors::Size::default())
        .unwrap_or(0);
    (write(&value, size), with_state)
}

/// The directory's snapshot, one buffer (see [`Parts`] for one in parts).
pub(super) fn encode(dir: &Directory) -> (Vec<u8>, bool) {
    // Serialising to a Vec cannot fail for these types; an empty result would fail decode.
    // Made once at its size: grown by doubling, 13 MiB of snapshot at 100 000 accounts took
    // 16 MiB, and the 8 MiB before it while copied.
    encode_with(dir, |value, size| {
        postcard::to_extend(value, Vec::with_capacity(size)).unwrap_or_default()
    })
}

/// The directory's snapshot given to `sink` in parts of [`PART`] bytes, after its whole
/// length: the snapshot is never whole in RAM (13 MiB at 100 000 accounts, at the top of a
/// sync's peak). Returns the sink's first error, and whether the sync state went in.
pub(super) fn encode_parts<E>(
    dir: &Directory,
    sink: &mut dyn PartSink<E>,
) -> (Result<(), E>, bool) {
    encode_with(dir, |value, size| {
        sink.begin(size)?;
        let parts = Parts {
            buf: Vec::with_capacity(PART),
            sink: &mut *sink,
            failed: None,
        };
        match postcard::serialize_with_flavor(value, parts) {
            Ok(r) => r,
            // Encoding cannot fail for these types but by the sink: it was told the length,
            // and gets fewer bytes, which it refuses.
            Err(_) => Ok(()),
        }
    })
}

/// Where [`encode_parts`] puts a snapshot.
pub trait PartSink<E> {
    fn begin(&mut self, len: usize) -> Result<(), E>;
    fn part(&mut self, bytes: &[u8]) -> Result<(), E>;
}

/// Bytes per part.
const PART: usize = 256 << 10;

/// A postcard flavor that hands its bytes on every [`PART`].
struct Parts<'a, E> {
    buf: Vec<u8>,
    sink: &'a mut dyn PartSink<E>,
    failed: Option<E>,
}

impl<E> Parts<'_, E> {
    fn flush(&mut self) -> postcard::Result<()> {
        if self.failed.is_some() {
            return Err(postcard::Error::SerializeBufferFull);
        }
        if let Err(e) = self.sink.part(&self.buf) {
            self.failed = Some(e);
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.buf.clear();
        Ok(())
    }
}

impl<E> postcard::ser_flavors::Flavor for Parts<'_, E> {
    type Output = Result<(), E>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let take = (PART - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == PART {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(mut self) -> postcard::Result<Result<(), E>> {
        if !self.buf.is_empty() {
            let _ = self.flush();
        }
        Ok(match self.failed {
            Some(e) => Err(e),
            None => Ok(()),
        })
    }
}

/// Reads the body of a version 3 or 4 snapshot (after its version number): the directory as
/// stored, and the sync state whose model its LDAP entries are still to be built from.
pub(super) fn decode(
    version: u32,
    rest: &[u8],
) -> Result<(Directory, Option<SyncState>), DecodeError> {
    let snapshot_len = rest.len();
    let (body, rest) = postcard::take_from_bytes::<Body>(rest).map_err(|_| DecodeError::Corrupt)?;
    let (sync, rest) = match version {
        VERSION_3 => (None, rest),
        _ => postcard::take_from_bytes::<Option<Stored>>(rest).map_err(|_| DecodeError::Corrupt)?,
    };
    if !rest.is_empty() {
        return Err(DecodeError::Corrupt);
    }
    let dir = build(body)?;
    let sync = sync
        .map(|s| sync_state::state(s, snapshot_len))
        .transpose()?;
    Ok((dir, sync))
}

struct Reader {
    strings: Vec<String>,
    /// Parsed transports by string index, so 100 000 accounts parse a handful.
    transports: HashMap<u32, Option<Arc<Typed<Transport>>>>,
}

impl Reader {
    fn string(&self, i: u32) -> Result<&str, DecodeError> {
        self.strings
            .get(i as usize)
            .map(String::as_str)
            .ok_or(DecodeError::Corrupt)
    }

    fn address(&self, local: &str, domain: u32) -> Result<String, DecodeError> {
        Ok(format!("{local}@{}", self.string(domain)?))
    }

    fn password(&self, p: Option<Password>) -> Result<Option<String>, DecodeError> {
        p.map(|p| join_hash(&self.strings, p)).transpose()
    }

    fn account(&mut self, rec: AccountRecord) -> Result<Account, DecodeError> {
        let invalid = |e: DirectoryError| DecodeError::Invalid(e);
        let addr = self.address(&rec.local, rec.domain)?;
        let mut a = Account::new(&addr).map_err(|e| invalid(e.into()))?;
        if rec.flags & FROM_LDAP != 0 {
            a.set_source(Source::Ldap);
        }
        let set = |a: &mut Account, attr: &str, v: Vec<String>| {
            a.set(attr, &v).map_err(|e| invalid(e.into()))
        };
        if rec.flags & DISABLED != 0 {
            set(&mut a, account::STATUS, vec!["disabled".into()])?;
        }
        if rec.transport > 0 {
            let i = rec.transport - 1;
            match self.transports.get(&i) {
                Some(t) => a.transport = t.clone(),
                None => {
                    set(
                        &mut a,
                        account::TRANSPORT,
                        vec![self.string(i)?.to_string()],
                    )?;
                    self.transports.insert(i, a.transport.clone());
                }
            }
        }
        if !rec.forwarding.is_empty() {
            set(&mut a, account::FORWARD, rec.forwarding)?;
        }
        if let Some(pref) = rec.pref_forwarding {
            set(&mut a, account::PREF_FORWARD, vec![pref])?;
        }
        if rec.flags & LOCAL_DELIVERY_DISABLED != 0 {
            set(&mut a, account::LOCAL_DISABLED, vec!["TRUE".into()])?;
        }
        a.set_password_hash(self.password(rec.password)?);
        Ok(a)
    }
}

fn build(body: Body) -> Result<Directory, DecodeError> {
    let invalid = DecodeError::Invalid;
    let mut dir = Directory::new(load_config(&body.config).map_err(invalid)?);
    dir.ldap_synced = body.ldap_synced;
    dir.ldap_config = super::ldap_config_names(&body.ldap_config).map_err(invalid)?;
    for rec in &body.domains {
        let source = match rec.ldap {
            true => Source::Ldap,
            false => Source::Local,
        };
        let d = load_domain(&rec.name, &rec.attrs, source).map_err(invalid)?;
        dir.add_domain(d).map_err(invalid)?;
    }
    let mut reader = Reader {
        strings: body.strings,
        transports: HashMap::new(),
    };
    for mut rec in body.accounts {
        let aliases = std::mem::take(&mut rec.aliases);
        let a = reader.account(rec)?;
        let owner = a.address().to_string();
        dir.add_account(a).map_err(invalid)?;
        for (local, domain) in aliases {
            let alias = reader.address(&local, domain)?;
            dir.add_alias(&owner, &alias).map_err(invalid)?;
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::super::legacy;
    use super::*;

    /// Accounts shaped like a Zimbra directory's: an alias each, one of a few mailbox servers,
    /// a salted SHA-512 hash.
    fn zimbra_like(n: usize) -> Directory {
        let mut d = Directory::default();
        let mut dom = Domain::new("example.com").unwrap();
        dom.set_source(Source::Ldap);
        d.add_domain(dom).unwrap();
        let hash = format!("{{SSHA512}}{}", STANDARD.encode([7u8; 72]));
        for i in 0..n {
            let mut a = Account::new(&format!("user{i}@example.com")).unwrap();
            a.set_source(Source::Ldap);
            let t = format!("lmtp:mbox{}.example.com:7025", i % 8);
            a.set(account::TRANSPORT, &[t]).unwrap();
            a.set_password_hash(Some(hash.clone()));
            d.add_account(a).unwrap();
            d.add_alias(
                &format!("user{i}@example.com"),
                &format!("alias{i}@example.com"),
            )
            .unwrap();
        }
        d
    }

    /// The defect this format fixes: 100 000 accounts made a 20 MiB version 2 snapshot, more
    /// than the 16 MiB directory slot of a 256 MiB flash, so the sync could never be saved.
    #[test]
    fn a_hundred_thousand_accounts_fit_a_16_mib_slot() {
        let n = 20_000;
        let d = zimbra_like(n);
        let bytes = encode(&d).0;
        let old = legacy::encode_v2(&d);
        let per_account = bytes.len() / n;
        assert!(per_account <= 110, "{per_account} bytes per account");
        assert!(
            bytes.len() * 2 < old.len() + old.len() / 10,
            "{} vs {}",
            bytes.len(),
            old.len()
        );
        assert!(per_account * 100_000 < 16 << 20);
        let back = Directory::decode(&bytes).unwrap();
        assert_eq!(back.counts(), (n, n));
        assert_eq!(back.encode(), bytes);
        let a = back.account("user77@example.com").unwrap();
        assert_eq!(
            a.password(),
            d.account("user77@example.com").unwrap().password()
        );
        assert_eq!(a.source(), Source::Ldap);
        assert!(matches!(
            back.lookup("ALIAS77@example.com"),
            crate::directory::Lookup::Account {
                via_alias: true,
                ..
            }
        ));
    }

    #[test]
    fn every_password_form_comes_back_as_it_was() {
        let mut d = Directory::default();
        d.add_domain(Domain::new("example.com").unwrap()).unwrap();
        d.add_domain(Domain::new("example.org").unwrap()).unwrap();
        let forms = [
            "{SSHA512}c2VjcmV0c2FsdA==",
            "{SSHA}c2VjcmV0",
            "{CRYPT}$6$salt$abcdefghijklmnop",
            "{PBKDF2-SHA512}10000$c2FsdA==$aGFzaA==",
            // Decodes, but not to the same text: kept as it is.
            "{SSHA}c2VjcmV0c",
            "{SSHA}",
            "plain",
            "{unclosed",
        ];
        for (i, p) in forms.iter().enumerate() {
            let mut a = Account::new(&format!("u{i}@example.com")).unwrap();
            a.set_password_hash(Some(p.to_string()));
            if i == 0 {
                a.set(account::STATUS, &["disabled".into()]).unwrap();
                a.set(
                    account::FORWARD,
                    &["x@elsewhere.net".into(), "y@elsewhere.net".into()],
                )
                .unwrap();
                a.set(account::PREF_FORWARD, &["z@elsewhere.net".into()])
                    .unwrap();
                a.set(account::LOCAL_DISABLED, &["TRUE".into()]).unwrap();
            }
            d.add_account(a).unwrap();
        }
        // An alias in another local domain than its account.
        d.add_alias("u0@example.com", "other@example.org").unwrap();
        let back = Directory::decode(&encode(&d).0).unwrap();
        for (i, p) in forms.iter().enumerate() {
            let a = back.account(&format!("u{i}@example.com")).unwrap();
            assert_eq!(a.password().as_deref(), Some(*p));
        }
        let u0 = back.account("u0@example.com").unwrap();
        assert_eq!(u0, d.account("u0@example.com").unwrap());
        assert_eq!(
            back.aliases_of("u0@example.com").collect::<Vec<_>>(),
            ["other@example.org"]
        );
    }

    /// A string number that points nowhere is corruption, not a panic.
    #[test]
    fn a_string_index_out_of_range_is_corrupt() {
        let body = Body {
            config: vec![],
            ldap_synced: None,
            ldap_config: vec![],
            strings: vec!["example.com".into()],
            domains: vec![DomainRecord {
                name: "example.com".into(),
                ldap: false,
                attrs: vec![],
            }],
            accounts: vec![AccountRecord {
                local: "a".into(),
                domain: 0,
                flags: 0,
                transport: 9,
                password: None,
                forwarding: vec![],
                pref_forwarding: None,
                aliases: vec![],
            }],
        };
        let bytes = postcard::to_allocvec(&(VERSION_3, body)).unwrap();
        assert_eq!(Directory::decode(&bytes).unwrap_err(), DecodeError::Corrupt);
    }
}
