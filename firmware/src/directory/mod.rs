//! The directory cache: accounts, aliases, domains and MTA config in RAM, a snapshot on flash.
//!
//! A [`Directory`] is a value: sessions hold an `Arc<Directory>` and keep it for their life; a
//! change (from `postern prov`, later from the LDAP sync) builds a new value from a clone and swaps
//! the `Arc`, so new sessions see it at once and running ones are never disturbed.
//!
//! Lookups ([`Directory::lookup`]) are O(1) and never allocate: exact address, then alias, then the
//! domain's catch-all. The attribute names are Zimbra's, so `zmprov` habits carry over.

mod account;
pub mod address;
mod auth;
mod chunks;
mod domain;
pub mod domain_auth;
pub mod domain_dkim;
mod hash;
mod index;
pub mod ldap;
pub mod password;
pub mod prov;
mod shared;
mod snapshot;
mod source;
mod text;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

pub use account::{Account, Forwarding, MailStatus};
pub use address::BadAddress;
pub use domain::Domain;
pub use shared::SharedDirectory;
pub use snapshot::{DecodeError, PartSink, SNAPSHOT_VERSION};
pub use source::Source;

use crate::config::attr::Typed;
use crate::config::{AttrError, MtaConfig};
use crate::mail::Transport;
use index::{Entry, Index};

/// What the directory knows of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// An account, by its own address or by an alias.
    Account {
        account: &'a Account,
        domain: &'a Domain,
        via_alias: bool,
    },
    /// A local domain that has no such address.
    Unknown { domain: &'a Domain },
    /// Not one of the box's domains.
    NotLocal,
    /// Not an address (no `@`, or longer than any address can be).
    Invalid,
}

/// An alias: another address of an account (`zimbraMailAlias`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Alias {
    name: text::Text,
    account: u32,
}

/// Why a directory change was refused; shown as zmprov shows its service errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryError {
    NoSuchDomain(String),
    DomainExists(String),
    /// A domain still has accounts or aliases.
    DomainNotEmpty(String),
    NoSuchAccount(String),
    /// The address is already an account or an alias.
    AccountExists(String),
    NoSuchAlias(String),
    BadAddress(BadAddress),
    Attr(AttrError),
    /// More accounts or aliases than the index can number.
    Full,
    /// The entry is synced from LDAP: change it there.
    FromLdap(String),
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectoryError::NoSuchDomain(d) => {
                write!(f, "account.NO_SUCH_DOMAIN (no such domain: {d})")
            }
            DirectoryError::DomainExists(d) => {
                write!(f, "account.DOMAIN_EXISTS (domain already exists: {d})")
            }
            DirectoryError::DomainNotEmpty(d) => {
                write!(
                    f,
                    "account.DOMAIN_NOT_EMPTY (domain not empty: {d}; delete its accounts first)"
                )
            }
            DirectoryError::NoSuchAccount(a) => {
                write!(f, "account.NO_SUCH_ACCOUNT (no such account: {a})")
            }
            DirectoryError::AccountExists(a) => {
                write!(
                    f,
                    "account.ACCOUNT_EXISTS (email address already exists: {a})"
                )
            }
            DirectoryError::NoSuchAlias(a) => {
                write!(f, "account.NO_SUCH_ALIAS (no such alias: {a})")
            }
            DirectoryError::BadAddress(e) => {
                write!(f, "service.INVALID_REQUEST (invalid address {e})")
            }
            DirectoryError::Attr(e) => write!(f, "{} ({e})", e.code()),
            DirectoryError::Full => f.write_str("service.FAILURE (directory full)"),
            DirectoryError::FromLdap(name) => write!(
                f,
                "service.PERM_DENIED ({name} is synced from LDAP and read-only here; change it in LDAP)"
            ),
        }
    }
}

impl std::error::Error for DirectoryError {}

impl From<BadAddress> for DirectoryError {
    fn from(e: BadAddress) -> Self {
        DirectoryError::BadAddress(e)
    }
}

impl From<AttrError> for DirectoryError {
    fn from(e: AttrError) -> Self {
        DirectoryError::Attr(e)
    }
}

/// The whole directory: domains, accounts, aliases and the global MTA config.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    domains: HashMap<Box<str>, Domain, hash::BuildAddressHasher>,
    accounts: chunks::Chunks<Account>,
    aliases: chunks::Chunks<Alias>,
    index: Index,
    /// One shared copy of each transport: thousands of accounts name the same few next hops.
    transports: HashSet<Arc<Typed<Transport>>>,
    config: MtaConfig,
    /// When the LDAP entries in this directory were last synced (Unix seconds); `None` if it
    /// holds none from LDAP.
    ldap_synced: Option<u64>,
    /// The MTA settings LDAP sets (global config and this server's entry): read-only for `mcf`.
    ldap_config: Vec<&'static str>,
    /// What the sync that built this directory's LDAP entries left for the next one; stored
    /// with it, so a restart resumes from it.
    ldap_sync: Option<Arc<ldap::state::SyncState>>,
}

impl PartialEq for Directory {
    fn eq(&self, other: &Directory) -> bool {
        self.encode() == other.encode()
    }
}

fn entry_name<'a>(
    accounts: &'a chunks::Chunks<Account>,
    aliases: &'a chunks::Chunks<Alias>,
) -> impl Fn(Entry) -> &'a str {
    move |e| match e {
        Entry::Account(i) => accounts.get(i as usize).map_or("", |a| a.address()),
        Entry::Alias(i) => aliases.get(i as usize).map_or("", |a| &a.name),
    }
}

impl Directory {
    /// An empty directory with the given MTA config.
    pub fn new(config: MtaConfig) -> Directory {
        Directory {
            config,
            ..Directory::default()
        }
    }

    /// When its LDAP entries were synced (Unix seconds), if it holds any.
    pub fn ldap_synced(&self) -> Option<u64> {
        self.ldap_synced
    }

    /// The MTA settings that come from LDAP.
    pub fn ldap_config(&self) -> &[&'static str] {
        &self.ldap_config
    }

    /// The LDAP sync's state as of this directory (`None`: never synced, or loaded from a
    /// snapshot that had none).
    pub fn ldap_sync_state(&self) -> Option<&Arc<ldap::state::SyncState>> {
        self.ldap_sync.as_ref()
    }

    /// Attaches the state of the sync that built this directory.
    pub fn set_ldap_sync_state(&mut self, state: Option<Arc<ldap::state::SyncState>>) {
        self.ldap_sync = state;
    }

    pub fn config(&self) -> &MtaConfig {
        &self.config
    }

    /// Replaces the MTA config (it was validated when it was built or set).
    pub fn set_config(&mut self, config: MtaConfig) {
        self.config = config;
    }

    pub fn config_mut(&mut self) -> &mut MtaConfig {
        &mut self.config
    }

    /// The local domain `name` (any case).
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        let mut buf = [0; address::MAX_ADDRESS];
        let name = address::lower(name, &mut buf)?;
        self.domains.get(name.strip_suffix('.').unwrap_or(name))
    }

    /// Whether a domain has a DKIM key to sign with (from LDAP, or set with `md`).
    pub fn has_dkim_keys(&self) -> bool {
        self.domains
            .values()
            .any(|d| d.dkim().is_some_and(|k| k.signing().is_some()))
    }

    /// All local domains, in no particular order.
    pub fn domains(&self) -> impl Iterator<Item = &Domain> {
        self.domains.values()
    }

    /// The account whose own address is `address` (aliases not followed).
    pub fn account(&self, address: &str) -> Option<&Account> {
        match self.entry(address)? {
            Entry::Account(i) => self.accounts.get(i as usize),
            Entry::Alias(_) => None,
        }
    }

    /// The number of the account whose own address is `address`: its place in the list, until
    /// an account is removed.
    pub(crate) fn account_number(&self, address: &str) -> Option<u32> {
        match self.entry(address)? {
            Entry::Account(i) => Some(i),
            Entry::Alias(_) => None,
        }
    }

    /// All accounts, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter()
    }

    /// The aliases of the account `address`.
    pub fn aliases_of(&self, address: &str) -> impl Iterator<Item = &str> {
        let id = match self.entry(address) {
            Some(Entry::Account(i)) => Some(i),
            _ => None,
        };
        self.aliases
            .iter()
            .filter(move |a| Some(a.account) == id)
            .map(|a| &*a.name)
    }

    /// Number of accounts and aliases.
    pub fn counts(&self) -> (usize, usize) {
        (self.accounts.len(), self.aliases.len())
    }

    fn entry(&self, address: &str) -> Option<Entry> {
        let mut buf = [0; address::MAX_ADDRESS];
        let key = address::lower(address, &mut buf)?;
        self.index
            .find(key, entry_name(&self.accounts, &self.aliases))
    }

    /// What `address` is: an account (directly or by alias), an unknown address of a local domain,
    /// or not local. Never allocates.
    pub fn lookup(&self, address: &str) -> Lookup<'_> {
        let mut buf = [0; address::MAX_ADDRESS];
        let Some(key) = address::lower(address, &mut buf) else {
            return Lookup::Invalid;
        };
        let Some((_, dom)) = address::split(key) else {
            return Lookup::Invalid;
        };
        let Some(domain) = self.domains.get(dom.strip_suffix('.').unwrap_or(dom)) else {
            return Lookup::NotLocal;
        };
        let found = self
            .index
            .find(key, entry_name(&self.accounts, &self.aliases));
        let (account, via_alias) = match found {
            Some(Entry::Account(i)) => (self.accounts.get(i as usize), false),
            Some(Entry::Alias(i)) => {
                let target = self.aliases.get(i as usize).map(|a| a.account);
                (target.and_then(|t| self.accounts.get(t as usize)), true)
            }
            None => (None, false),
        };
        match account {
            Some(account) => {
                // An alias may live in another local domain than its account.
                let domain = if account.domain() == domain.name() {
                    domain
                } else {
                    self.domains.get(account.domain()).unwrap_or(domain)
                };
                Lookup::Account {
                    account,
                    domain,
                    via_alias,
                }
            }
            None => Lookup::Unknown { domain },
        }
    }

    fn intern(&mut self, t: &mut Option<Arc<Typed<Transport>>>) {
        if let Some(tr) = t {
            match self.transports.get(&**tr) {
                Some(shared) => *tr = Arc::clone(shared),
                None => {
                    self.transports.insert(Arc::clone(tr));
                }
            }
        }
    }

    /// Adds a domain (`cd`).
    pub fn add_domain(&mut self, mut domain: Domain) -> Result<(), DirectoryError> {
        if self.domains.contains_key(domain.name()) {
            return Err(DirectoryError::DomainExists(domain.name().to_string()));
        }
        self.intern(&mut domain.transport);
        self.domains.insert(domain.name().into(), domain);
        Ok(())
    }

    /// Changes a domain (`md`): `change` works on a copy that replaces the domain only if it
    /// succeeds.
    pub fn modify_domain<E: Into<DirectoryError>>(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut Domain) -> Result<(), E>,
    ) -> Result<(), DirectoryError> {
        let mut d = self
            .domain(name)
            .cloned()
            .ok_or_else(|| DirectoryError::NoSuchDomain(name.to_string()))?;
        change(&mut d).map_err(Into::into)?;
        self.intern(&mut d.transport);
        self.domains.insert(d.name().into(), d);
        Ok(())
    }

    /// Removes a domain that has no accounts or aliases left (`dd`).
    pub fn remove_domain(&mut self, name: &str) -> Result<(), DirectoryError> {
        let d = self
            .domain(name)
            .ok_or_else(|| DirectoryError::NoSuchDomain(name.to_string()))?;
        let key: Box<str> = d.name().into();
        let used = self.accounts.iter().any(|a| a.domain() == &*key)
            || self
                .aliases
                .iter()
                .any(|a| address::split(&a.name).is_some_and(|(_, d)| d == &*key));
        if used {
            return Err(DirectoryError::DomainNotEmpty(key.to_string()));
        }
        let gone = self.domains.remove(&key).and_then(|d| d.transport);
        self.prune_transports_of(gone.into_iter().collect());
        Ok(())
    }

    fn check_free(&self, address: &str) -> Result<(), DirectoryError> {
        let dom = address::split(address).map_or("", |(_, d)| d);
        if !self.domains.contains_key(dom) {
            return Err(DirectoryError::NoSuchDomain(dom.to_string()));
        }
        if self.entry(address).is_some() {
            return Err(DirectoryError::AccountExists(address.to_string()));
        }
        Ok(())
    }

    /// Adds an account (`ca`); its domain must exist and its address must be free.
    pub fn add_account(&mut self, mut account: Account) -> Result<(), DirectoryError> {
        self.check_free(account.address())?;
        if self.accounts.len() >= index::MAX_ENTRIES {
            return Err(DirectoryError::Full);
        }
        self.intern(&mut account.transport);
        let id = self.accounts.len() as u32;
        self.accounts.push(account);
        let key = self.accounts.last().map_or("", |a| a.address());
        self.index.insert(
            key,
            Entry::Account(id),
            entry_name(&self.accounts, &self.aliases),
        );
        Ok(())
    }

    /// Makes room in the address index for `more` accounts and aliases about to be added.
    pub(crate) fn reserve_addresses(&mut self, more: usize) {
        self.index
            .reserve(more, entry_name(&self.accounts, &self.aliases));
    }

    /// Changes an account (`ma`, `sp`): `change` works on a copy that replaces the account only if
    /// it succeeds. The address cannot change.
    pub fn modify_account<E: Into<DirectoryError>>(
        &mut self,
        address: &str,
        change: impl FnOnce(&mut Account) -> Result<(), E>,
    ) -> Result<(), DirectoryError> {
        let no_such = || DirectoryError::NoSuchAccount(address.to_string());
        let i = match self.entry(address) {
            Some(Entry::Account(i)) => i as usize,
            _ => return Err(no_such()),
        };
        let mut a = self.accounts.get(i).cloned().ok_or_else(no_such)?;
        change(&mut a).map_err(Into::into)?;
        self.intern(&mut a.transport);
        if let Some(slot) = self.accounts.get_mut(i) {
            *slot = a;
        }
        Ok(())
    }

    /// Removes the accounts whose addresses are in `addresses`, with their aliases: each gap is
    /// filled by the last entry, and only the entries removed or moved change in the index (a
    /// poll's hundred accounts out of 100 000: no rebuild of the whole index).
    pub(crate) fn remove_accounts(&mut self, addresses: &HashSet<&str>) {
        let mut gone: Vec<u32> = addresses
            .iter()
            .filter_map(|a| match self.entry(a) {
                Some(Entry::Account(i)) => Some(i),
                _ => None,
            })
            .collect();
        gone.sort_unstable();
        let mut transports: Vec<Arc<Typed<Transport>>> = Vec::new();
        for t in gone
            .iter()
            .filter_map(|&i| self.accounts.get(i as usize)?.transport.as_ref())
        {
            if !transports.iter().any(|c| Arc::ptr_eq(c, t)) {
                transports.push(Arc::clone(t));
            }
        }
        // One bit an account: the walk over every alias asks a bit, not a search.
        let mut is_gone = vec![0u64; self.accounts.len().div_ceil(64)];
        for &i in &gone {
            if let Some(word) = is_gone.get_mut(i as usize / 64) {
                *word |= 1 << (i % 64);
            }
        }
        let bit = |i: u32| {
            is_gone
                .get(i as usize / 64)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
        };
        let mut aliases_gone: Vec<u32> = (self.aliases.iter().zip(0u32..))
            .filter_map(|(a, j)| bit(a.account).then_some(j))
            .collect();
        aliases_gone.reverse();
        for j in aliases_gone {
            self.take_entry(Entry::Alias(j));
        }
        // Where each account moved to: (its number before, its number now).
        let mut moved: HashMap<u32, u32> = HashMap::new();
        for &i in gone.iter().rev() {
            if let Some(from) = self.take_entry(Entry::Account(i)) {
                let original = moved.remove(&from).unwrap_or(from);
                moved.insert(i, original);
            }
        }
        // (number before, number now), sorted: only accounts from the end of the list moved,
        // so most aliases are told apart by one comparison with the lowest.
        let mut now: Vec<(u32, u32)> = moved.into_iter().map(|(at, was)| (was, at)).collect();
        now.sort_unstable();
        let lowest = now.first().map_or(u32::MAX, |&(was, _)| was);
        let new_number = |account: u32| {
            let i = now.binary_search_by_key(&account, |&(was, _)| was).ok()?;
            now.get(i).map(|&(_, at)| at)
        };
        // Only the aliases that change are written: a write copies the chunk it is in.
        let renumbered: Vec<(usize, u32)> = (self.aliases.iter().enumerate())
            .filter(|(_, a)| a.account >= lowest)
            .filter_map(|(j, a)| new_number(a.account).map(|at| (j, at)))
            .collect();
        for (j, at) in renumbered {
            if let Some(alias) = self.aliases.get_mut(j) {
                alias.account = at;
            }
        }
        self.prune_transports_of(transports);
    }

    /// Takes `e` out of the index and its list, the list's last entry filling its place;
    /// returns the number that last entry had, if one moved.
    fn take_entry(&mut self, e: Entry) -> Option<u32> {
        let names = entry_name(&self.accounts, &self.aliases);
        let key = names(e).to_string();
        self.index.remove(&key, e, names);
        let (i, last) = match e {
            Entry::Account(i) => {
                let last = self.accounts.len().checked_sub(1)? as u32;
                self.accounts.swap_remove(i as usize);
                (i, last)
            }
            Entry::Alias(j) => {
                let last = self.aliases.len().checked_sub(1)? as u32;
                self.aliases.swap_remove(j as usize);
                (j, last)
            }
        };
        if i == last {
            return None;
        }
        let (from, to) = match e {
            Entry::Account(_) => (Entry::Account(last), Entry::Account(i)),
            Entry::Alias(_) => (Entry::Alias(last), Entry::Alias(i)),
        };
        let key = entry_name(&self.accounts, &self.aliases)(to).to_string();
        self.index.renumber(&key, from, to);
        Some(last)
    }

    /// Removes an account and its aliases (`da`).
    pub fn remove_account(&mut self, address: &str) -> Result<(), DirectoryError> {
        let key = match self.entry(address) {
            Some(Entry::Account(i)) => self
                .accounts
                .get(i as usize)
                .map(|a| a.address().to_string()),
            _ => None,
        };
        let Some(key) = key else {
            return Err(DirectoryError::NoSuchAccount(address.to_string()));
        };
        self.remove_accounts(&HashSet::from([key.as_str()]));
        Ok(())
    }

    /// Adds an alias of an account (`aaa`); the alias's domain must be local.
    pub fn add_alias(&mut self, account: &str, alias: &str) -> Result<(), DirectoryError> {
        let alias = address::address(alias)?;
        let id = match self.entry(account) {
            Some(Entry::Account(i)) => i,
            _ => return Err(DirectoryError::NoSuchAccount(account.to_string())),
        };
        self.check_free(&alias)?;
        if self.aliases.len() >= index::MAX_ENTRIES {
            return Err(DirectoryError::Full);
        }
        let aid = self.aliases.len() as u32;
        self.aliases.push(Alias {
            name: alias.into(),
            account: id,
        });
        let key = self.aliases.last().map_or("", |a| &*a.name);
        self.index.insert(
            key,
            Entry::Alias(aid),
            entry_name(&self.accounts, &self.aliases),
        );
        Ok(())
    }

    /// Removes an alias of an account (`raa`).
    pub fn remove_alias(&mut self, account: &str, alias: &str) -> Result<(), DirectoryError> {
        let id = match self.entry(account) {
            Some(Entry::Account(i)) => i,
            _ => return Err(DirectoryError::NoSuchAccount(account.to_string())),
        };
        match self.entry(alias) {
            Some(Entry::Alias(j))
                if self
                    .aliases
                    .get(j as usize)
                    .is_some_and(|a| a.account == id) =>
            {
                self.take_entry(Entry::Alias(j));
                Ok(())
            }
            _ => Err(DirectoryError::NoSuchAlias(alias.to_string())),
        }
    }

    /// Drops those of `candidates` (the transports of the accounts or domain just removed) that
    /// nobody names any more: a few checks that stop at the first user, not a set of every
    /// account's.
    fn prune_transports_of(&mut self, candidates: Vec<Arc<Typed<Transport>>>) {
        for c in candidates {
            let names = |t: &Option<Arc<Typed<Transport>>>| {
                t.as_ref().is_some_and(|t| Arc::ptr_eq(t, &c) || **t == *c)
            };
            let used = self.accounts.iter().any(|a| names(&a.transport))
                || self.domains.values().any(|d| names(&d.transport));
            if !used {
                self.transports.remove(&*c);
            }
        }
    }

    /// Bytes this directory holds on the heap beyond the strings (addresses, passwords): a figure
    /// for `postern status` and the benchmark.
    pub fn index_bytes(&self) -> usize {
        self.index.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn dir() -> Directory {
        let mut d = Directory::default();
        d.add_domain(Domain::new("example.com").unwrap()).unwrap();
        d.add_domain(Domain::new("example.org").unwrap()).unwrap();
        d.add_account(Account::new("foo@example.com").unwrap())
            .unwrap();
        d.add_account(Account::new("bar@example.com").unwrap())
            .unwrap();
        d.add_alias("foo@example.com", "f@example.org").unwrap();
        d
    }

    #[test]
    fn lookup_exact_then_alias_any_case() {
        let d = dir();
        match d.lookup("FOO@Example.COM") {
            Lookup::Account {
                account, via_alias, ..
            } => {
                assert_eq!(account.address(), "foo@example.com");
                assert!(!via_alias);
            }
            other => panic!("{other:?}"),
        }
        match d.lookup("F@EXAMPLE.ORG") {
            Lookup::Account {
                account,
                via_alias,
                domain,
            } => {
                assert_eq!(account.address(), "foo@example.com");
                assert_eq!(domain.name(), "example.com");
                assert!(via_alias);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            d.lookup("nobody@example.com"),
            Lookup::Unknown { .. }
        ));
        assert_eq!(d.lookup("someone@example.net"), Lookup::NotLocal);
        assert_eq!(d.lookup("no-at-sign"), Lookup::Invalid);
        assert_eq!(d.lookup(&"x".repeat(1000)), Lookup::Invalid);
    }

    #[test]
    fn names_are_unique_across_accounts_and_aliases() {
        let mut d = dir();
        assert!(matches!(
            d.add_account(Account::new("F@example.org").unwrap()),
            Err(DirectoryError::AccountExists(_))
        ));
        assert!(matches!(
            d.add_alias("bar@example.com", "foo@example.com"),
            Err(DirectoryError::AccountExists(_))
        ));
        assert!(matches!(
            d.add_account(Account::new("x@example.net").unwrap()),
            Err(DirectoryError::NoSuchDomain(_))
        ));
        assert!(matches!(
            d.remove_domain("example.org"),
            Err(DirectoryError::DomainNotEmpty(_))
        ));
    }

    #[test]
    fn removal_keeps_the_rest_reachable() {
        let mut d = dir();
        d.add_alias("bar@example.com", "b@example.com").unwrap();
        d.remove_account("foo@example.com").unwrap();
        assert!(matches!(d.lookup("f@example.org"), Lookup::Unknown { .. }));
        match d.lookup("b@example.com") {
            Lookup::Account { account, .. } => assert_eq!(account.address(), "bar@example.com"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            d.aliases_of("bar@example.com").collect::<Vec<_>>(),
            ["b@example.com"]
        );
        d.remove_alias("bar@example.com", "B@example.com").unwrap();
        assert!(matches!(d.lookup("b@example.com"), Lookup::Unknown { .. }));
        assert!(matches!(
            d.remove_alias("bar@example.com", "b@example.com"),
            Err(DirectoryError::NoSuchAlias(_))
        ));
        d.remove_domain("example.org").unwrap();
        assert_eq!(d.lookup("x@example.org"), Lookup::NotLocal);
    }

    #[derive(Debug, Clone)]
    enum Op {
        AddAccount(u8),
        AddAlias(u8, u8),
        RemoveAccount(u8),
        RemoveAlias(u8, u8),
        /// A poll's removals: several accounts at once, with their aliases.
        RemoveAccounts(Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..24).prop_map(Op::AddAccount),
            (0u8..24, 0u8..24).prop_map(|(a, b)| Op::AddAlias(a, b)),
            (0u8..24).prop_map(Op::RemoveAccount),
            (0u8..24, 0u8..24).prop_map(|(a, b)| Op::RemoveAlias(a, b)),
            proptest::collection::vec(0u8..24, 0..8).prop_map(Op::RemoveAccounts),
        ]
    }

    fn acct(i: u8) -> String {
        format!("u{i}@example.com")
    }

    fn alias(i: u8) -> String {
        format!("A{i}@Example.org")
    }

    proptest! {
        /// The store agrees with a plain map after any sequence of changes, and after a snapshot
        /// round trip.
        #[test]
        fn store_matches_a_model(ops in proptest::collection::vec(op(), 0..120)) {
            let mut d = Directory::default();
            d.add_domain(Domain::new("example.com").unwrap()).unwrap();
            d.add_domain(Domain::new("example.org").unwrap()).unwrap();
            // address (lowercase) -> owning account
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::AddAccount(i) => {
                        let r = d.add_account(Account::new(&acct(i)).unwrap());
                        prop_assert_eq!(r.is_ok(), !model.contains_key(&acct(i)));
                        model.entry(acct(i)).or_insert_with(|| acct(i));
                    }
                    Op::AddAlias(a, i) => {
                        let key = alias(a).to_ascii_lowercase();
                        let owner_ok = model.get(&acct(i)) == Some(&acct(i));
                        let r = d.add_alias(&acct(i), &alias(a));
                        prop_assert_eq!(r.is_ok(), owner_ok && !model.contains_key(&key));
                        if r.is_ok() {
                            model.insert(key, acct(i));
                        }
                    }
                    Op::RemoveAccount(i) => {
                        let r = d.remove_account(&acct(i));
                        prop_assert_eq!(r.is_ok(), model.get(&acct(i)) == Some(&acct(i)));
                        model.retain(|_, owner| *owner != acct(i));
                    }
                    Op::RemoveAccounts(list) => {
                        let addrs: Vec<String> = list.iter().map(|&i| acct(i)).collect();
                        d.remove_accounts(&addrs.iter().map(String::as_str).collect());
                        model.retain(|_, owner| !addrs.contains(owner));
                    }
                    Op::RemoveAlias(a, i) => {
                        let key = alias(a).to_ascii_lowercase();
                        let r = d.remove_alias(&acct(i), &alias(a));
                        let ok = key != acct(i) && model.get(&key) == Some(&acct(i));
                        prop_assert_eq!(r.is_ok(), ok);
                        if ok {
                            model.remove(&key);
                        }
                    }
                }
            }
            let back = Directory::decode(&d.encode()).unwrap();
            for dir in [&d, &back] {
                prop_assert_eq!(dir.counts().0 + dir.counts().1, model.len());
                for i in 0..24 {
                    for addr in [acct(i), alias(i)] {
                        let want = model.get(&addr.to_ascii_lowercase()).cloned();
                        let got = match dir.lookup(&addr) {
                            Lookup::Account { account, .. } => Some(account.address().to_string()),
                            _ => None,
                        };
                        prop_assert_eq!(got, want);
                    }
                    let mut aliases: Vec<String> =
                        dir.aliases_of(&acct(i)).map(str::to_string).collect();
                    aliases.sort();
                    let want: Vec<String> = model
                        .iter()
                        .filter(|(addr, owner)| **owner == acct(i) && **addr != acct(i))
                        .map(|(addr, _)| addr.clone())
                        .collect();
                    prop_assert_eq!(aliases, want);
                }
            }
        }
    }

    #[test]
    fn transports_are_shared() {
        let mut d = dir();
        let set = |a: &mut Account| a.set("zimbraMailTransport", &["smtp:mail.example.com".into()]);
        d.modify_account("foo@example.com", set).unwrap();
        d.modify_account("bar@example.com", set).unwrap();
        let a = d
            .account("foo@example.com")
            .unwrap()
            .transport
            .clone()
            .unwrap();
        let b = d
            .account("bar@example.com")
            .unwrap()
            .transport
            .clone()
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn transports_nobody_names_are_dropped() {
        let mut d = dir();
        let set = |a: &mut Account| a.set("zimbraMailTransport", &["smtp:mail.example.com".into()]);
        d.modify_account("foo@example.com", set).unwrap();
        d.modify_account("bar@example.com", set).unwrap();
        d.remove_account("foo@example.com").unwrap();
        assert_eq!(d.transports.len(), 1, "bar still names it");
        d.remove_account("bar@example.com").unwrap();
        assert!(d.transports.is_empty());
        let mut dom = Domain::new("relay.example").unwrap();
        dom.set("zimbraMailTransport", &["smtp:[10.0.0.1]:25".into()])
            .unwrap();
        d.add_domain(dom).unwrap();
        assert_eq!(d.transports.len(), 1);
        d.remove_domain("relay.example").unwrap();
        assert!(d.transports.is_empty());
    }
}
