//! A new directory from the current one's local (`prov`) entries and the LDAP model, built off
//! to the side: nothing is served until the caller has stored it and swaps it in. Every value
//! goes through the same checks as `prov`; an entry that fails is left out and listed, the rest
//! of the sync goes on. The order is fixed (domains, then mailboxes, then aliases, each sorted),
//! so the same LDAP data always gives the same directory and the same duplicates are skipped.

use std::collections::{HashMap, HashSet};

use super::model::{Mapped, Model};
use super::object::{
    ConfigEntry, DomainEntry, LdapObject, MailboxEntry, MailboxKind, SkipReason, Skipped,
};
use super::packed::{Packed, SyncedHash};
use crate::config::MtaConfig;
use crate::directory::index::Entry;
use crate::directory::{
    Account, Directory, DirectoryError, Domain, Lookup, Source, account, address, domain,
};

/// The new directory and what was left out of it.
#[derive(Debug)]
pub struct Built {
    pub directory: Directory,
    pub skipped: Vec<Skipped>,
    pub counts: Counts,
}

/// What the LDAP part of a directory holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub domains: usize,
    pub accounts: usize,
    pub lists: usize,
    pub aliases: usize,
}

/// The source of a local (`prov`) account or alias.
const LOCAL: u32 = u32::MAX;

fn skip(dn: &str, reason: SkipReason) -> Skipped {
    Skipped {
        dn: dn.to_string(),
        reason,
    }
}

fn reason(e: DirectoryError, taken_by: impl Fn(&str) -> String) -> SkipReason {
    match e {
        DirectoryError::BadAddress(b) => SkipReason::BadAddress(b),
        DirectoryError::Attr(a) => SkipReason::Invalid(a),
        DirectoryError::AccountExists(a) => SkipReason::DuplicateAddress {
            other: taken_by(&a),
            address: a,
        },
        DirectoryError::NoSuchDomain(d) => SkipReason::NotLocal(d),
        other => SkipReason::Refused(other),
    }
}

struct Builder<'m> {
    model: &'m Model,
    dir: Directory,
    skipped: Vec<Skipped>,
    counts: Counts,
    /// The LDAP entries accounts and aliases come from: the mailboxes in the order they are
    /// added, then the alias entries.
    sources: Vec<&'m Packed>,
    /// The source of each account and alias of `dir`, by index: a number in `sources` (`LOCAL`:
    /// a local one). Indexed, not a map by address: at 100 000 accounts a map of 200 000
    /// address copies was ~20 MB of the sync's peak; numbers, not pointers, as they are held
    /// at the build's peak. Its DN is unpacked only to name it.
    account_dn: Vec<u32>,
    alias_dn: Vec<u32>,
    /// Domains LDAP has but serves no mail for (disabled): their entries are not errors.
    disabled_domains: HashSet<String>,
}

impl<'m> Builder<'m> {
    /// The LDAP entry that holds `address`, if one does.
    fn owner(&self, address: &str) -> Option<&'m Packed> {
        let list = match self.dir.entry(address)? {
            Entry::Account(i) => self.account_dn.get(i as usize),
            Entry::Alias(i) => self.alias_dn.get(i as usize),
        };
        self.sources.get(*list? as usize).copied()
    }

    fn taken_by(&self, address: &str) -> String {
        self.owner(address).map_or_else(
            || "a local (prov) entry".to_string(),
            |p| self.model.unpack(p).dn,
        )
    }

    /// Records source `src` as the entry behind the account or alias just added.
    fn owned(&mut self, src: u32, account: bool) {
        let (v, len) = match account {
            true => (&mut self.account_dn, self.dir.accounts.len()),
            false => (&mut self.alias_dn, self.dir.aliases.len()),
        };
        // Local entries copied before have no DN.
        v.resize(len.saturating_sub(1), LOCAL);
        v.push(src);
    }

    fn domain(&mut self, dn: &str, e: &DomainEntry) {
        if !e.enabled {
            self.disabled_domains.insert(e.name.to_ascii_lowercase());
            return;
        }
        let made = (|| {
            let mut d = Domain::new(&e.name)?;
            if self.dir.domain(d.name()).is_some() {
                return Err(SkipReason::LocalDomain(d.name().to_string()));
            }
            d.set_source(Source::Ldap);
            let one = |v: &Option<String>| v.iter().cloned().collect::<Vec<_>>();
            let mut catch_all = one(&e.catch_all);
            if e.alias && catch_all.is_empty() {
                // An alias domain takes all its mail: that is what makes it an alias.
                catch_all = vec![format!("@{}", d.name())];
            }
            if e.alias && e.catch_all_forward.is_none() {
                return Err(SkipReason::MissingAttribute(
                    "zimbraMailCatchAllForwardingAddress",
                ));
            }
            d.set(domain::CATCH_ALL, &catch_all)?;
            d.set(domain::CATCH_ALL_FORWARD, &one(&e.catch_all_forward))?;
            d.set(domain::TRANSPORT, &one(&e.transport))?;
            Ok::<_, SkipReason>(d)
        })();
        // A bad AUTH setting leaves the domain's users on their synced hashes, a bad DKIM key
        // leaves its mail unsigned; neither takes the domain's mail away.
        let made = made.map(|mut d| {
            for (attr, value) in e.auth.iter().chain(&e.dkim) {
                let before = d.clone();
                if let Err(why) = d.set(attr, std::slice::from_ref(value)) {
                    d = before;
                    self.skipped.push(skip(dn, SkipReason::Invalid(why)));
                }
            }
            d
        });
        match made.and_then(|d| self.dir.add_domain(d).map_err(|e| reason(e, |a| a.into()))) {
            Ok(()) => self.counts.domains += 1,
            Err(why) => self.skipped.push(skip(dn, why)),
        }
    }

    /// Adds the mailbox of source `src`.
    fn mailbox(&mut self, src: u32, dn: &str, m: &MailboxEntry, members: &[String]) -> bool {
        let dom = address::split(&m.address).map_or("", |(_, d)| d);
        if self.disabled_domains.contains(&dom.to_ascii_lowercase()) {
            return false;
        }
        if m.kind == MailboxKind::Group && members.is_empty() {
            self.skipped.push(skip(dn, SkipReason::EmptyList));
            return false;
        }
        let model = self.model;
        let added = account_of(m, members).and_then(|mut a| {
            if m.password.is_some()
                && let Some(p) = self.sources.get(src as usize)
                && let Some(hash) = SyncedHash::of(p, model.table())
            {
                a.use_synced_password(hash);
            }
            let name = a.address().to_string();
            self.dir
                .add_account(a)
                .map_err(|e| reason(e, |x| self.taken_by(x)))?;
            Ok(name)
        });
        let name = match added {
            Ok(name) => name,
            Err(why) => {
                self.skipped.push(skip(dn, why));
                return false;
            }
        };
        self.owned(src, true);
        match m.kind {
            MailboxKind::Account => self.counts.accounts += 1,
            _ => self.counts.lists += 1,
        }
        if let Some(ca) = &m.catch_all {
            // ZCS 5/6 put the catch-all on the account: the domain's unknown mail goes to it.
            let set = |d: &mut Domain| {
                d.set(domain::CATCH_ALL, &[ca.to_string()])?;
                d.set(domain::CATCH_ALL_FORWARD, std::slice::from_ref(&name))
            };
            if let Err(e) = self.dir.modify_domain(dom, set) {
                self.skipped.push(skip(dn, reason(e, |x| x.into())));
            }
        }
        true
    }

    /// Adds `alias` of `account`, from source `src` (whose DN is unpacked only to name it).
    fn alias(&mut self, src: u32, account: &str, alias: &str) {
        let Some(&entry) = self.sources.get(src as usize) else {
            return;
        };
        if self.owner(alias).is_some_and(|p| p.is(entry)) {
            return; // the same alias twice on one entry
        }
        // `zmprov aaa` writes both zimbraMailAlias on the account and an alias entry naming it:
        // one alias, not two entries claiming one address.
        let same_account = matches!(self.dir.lookup(alias),
            Lookup::Account { account: a, via_alias: true, .. }
                if a.address().eq_ignore_ascii_case(account));
        if same_account {
            return;
        }
        let dom = address::split(alias).map_or("", |(_, d)| d);
        if self.disabled_domains.contains(&dom.to_ascii_lowercase()) {
            return;
        }
        match self.dir.add_alias(account, alias) {
            Ok(()) => {
                self.counts.aliases += 1;
                self.owned(src, false);
            }
            Err(e) => {
                let why = reason(e, |x| self.taken_by(x));
                let dn = self.model.unpack(entry).dn;
                self.skipped.push(skip(&dn, why));
            }
        }
    }
}

/// An LDAP mailbox as a directory account, through `prov`'s checks; `members` are where a list
/// forwards (an account's own forwarding addresses otherwise).
pub(super) fn account_of(m: &MailboxEntry, members: &[String]) -> Result<Account, SkipReason> {
    let mut a = Account::new(&m.address)?;
    a.set_source(Source::Ldap);
    let one = |v: &Option<Box<str>>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    if !m.enabled {
        a.set(account::STATUS, &["disabled".to_string()])?;
    }
    a.set(account::TRANSPORT, &one(&m.transport))?;
    a.set(account::FORWARD, members)?;
    a.set(account::PREF_FORWARD, &one(&m.pref_forwarding))?;
    if m.local_delivery_disabled {
        a.set(account::LOCAL_DISABLED, &["TRUE".to_string()])?;
    }
    a.share_password_hash(m.password.clone());
    Ok(a)
}

/// Builds the directory: `current`'s config and local entries, then everything in `model`.
/// `server` names this box's server entry, whose MTA settings override the global config's.
///
/// Mailboxes are unpacked to be sorted, again to be added, and those with aliases once more to
/// add them: the model unpacked whole would be as big as it was before it was packed.
pub fn build(current: &Directory, model: &Model, synced_at: u64, server: &str) -> Built {
    let mut b = Builder {
        model,
        dir: Directory::new(current.config().clone()),
        skipped: model.unreadable().to_vec(),
        counts: Counts::default(),
        sources: Vec::new(),
        account_dn: Vec::new(),
        alias_dn: Vec::new(),
        disabled_domains: HashSet::new(),
    };
    b.dir.ldap_synced = Some(synced_at);
    for d in current.domains().filter(|d| d.source() == Source::Local) {
        let _ = b.dir.add_domain(d.clone());
    }
    let mut domains = Vec::new();
    let mut mailboxes = Vec::new();
    let mut alias_entries = Vec::new();
    let mut configs = Vec::new();
    // Dynamic groups: members are the accounts that name the group.
    let mut group_members: HashMap<String, Vec<String>> = HashMap::new();
    let mut member_dns = false;
    // Addresses the mailboxes and aliases may add (some are skipped: a bound, not a count).
    let mut addresses = 0;
    for (_, p) in model.packed() {
        let m = model.unpack(p);
        match m.object {
            Ok(LdapObject::Config(c)) => configs.push((m.dn, c)),
            Ok(LdapObject::Domain(d)) => domains.push((m.dn, d)),
            Ok(LdapObject::Mailbox(x)) => {
                if x.kind == MailboxKind::Account && x.enabled {
                    for g in &x.member_of {
                        group_members
                            .entry(g.clone())
                            .or_default()
                            .push(x.address.to_string());
                    }
                }
                member_dns |= !x.member_dns.is_empty();
                addresses += 1 + x.aliases.len();
                mailboxes.push((order_key(&x.address, &m.dn), p));
            }
            Ok(LdapObject::Alias(a)) => {
                addresses += 1;
                alias_entries.push((p, m.dn, a));
            }
            Err(why) => b.skipped.push(skip(&m.dn, why)),
        }
    }
    domains.sort_by_cached_key(|(dn, d)| (d.name.to_ascii_lowercase(), dn.to_ascii_lowercase()));
    for (dn, d) in &domains {
        b.domain(dn, d);
    }
    copy_local_accounts(current, &mut b);
    mailboxes.sort_by(|x, y| x.0.cmp(&y.0));
    // A vector of its own: collected in place, it kept the keys' allocation (3 MB).
    b.sources = Vec::with_capacity(mailboxes.len() + alias_entries.len());
    b.sources.extend(mailboxes.iter().map(|(_, p)| *p));
    drop(mailboxes);
    let mailboxes = b.sources.len();
    b.dir.reserve_addresses(addresses);
    b.account_dn.reserve(mailboxes);
    b.alias_dn.reserve(addresses.saturating_sub(mailboxes));
    let mailbox = |p: &Packed| match model.unpack(p) {
        Mapped {
            dn,
            object: Ok(LdapObject::Mailbox(x)),
        } => Some((dn, x)),
        _ => None,
    };
    // Groups that name members by DN: each member's address (built only when a group does:
    // 100 000 lowercased DNs are ~15 MB).
    let by_dn: HashMap<String, String> = match member_dns {
        false => HashMap::new(),
        true => b
            .sources
            .iter()
            .filter_map(|p| mailbox(p))
            .filter(|(_, m)| m.kind == MailboxKind::Account && m.enabled)
            .map(|(dn, m)| (dn.to_ascii_lowercase(), m.address.to_string()))
            .collect(),
    };
    // Alias entries name their accounts by id (kept only when there are some).
    let mut by_id: HashMap<String, String> = HashMap::new();
    // The mailboxes added that have aliases, by source number (a bit each: a pointer each was
    // 0.8 MB of the peak).
    let mut added = vec![0u64; mailboxes.div_ceil(64)];
    for src in 0..mailboxes {
        let Some((dn, m)) = b.sources.get(src).and_then(|p| mailbox(p)) else {
            continue;
        };
        let mut members = m.forwarding.to_vec();
        if m.kind == MailboxKind::Group {
            if let Some(id) = m.id.as_deref() {
                members.extend(group_members.get(id).cloned().unwrap_or_default());
            }
            members.extend(
                m.member_dns
                    .iter()
                    .filter_map(|dn| by_dn.get(&dn.to_ascii_lowercase()))
                    .cloned(),
            );
        }
        if b.mailbox(src as u32, &dn, &m, &members) {
            if !alias_entries.is_empty()
                && let Some(id) = &m.id
            {
                by_id.insert(id.to_string(), m.address.to_string());
            }
            // Added after every mailbox (an address is a mailbox's before it is an alias),
            // unpacked again then: held until then, they were ~12 MB of the peak.
            if !m.aliases.is_empty()
                && let Some(bits) = added.get_mut(src / 64)
            {
                *bits |= 1 << (src % 64);
            }
        }
    }
    for src in 0..mailboxes {
        if added
            .get(src / 64)
            .is_some_and(|bits| bits & 1 << (src % 64) != 0)
            && let Some((_, m)) = b.sources.get(src).and_then(|p| mailbox(p))
        {
            for alias in &m.aliases {
                b.alias(src as u32, &m.address, alias);
            }
        }
    }
    drop(added);
    alias_entries
        .sort_by_cached_key(|(_, dn, a)| (a.address.to_ascii_lowercase(), dn.to_ascii_lowercase()));
    b.sources.extend(alias_entries.iter().map(|(p, _, _)| *p));
    for (n, (_, dn, a)) in alias_entries.iter().enumerate() {
        let src = (mailboxes + n) as u32;
        match by_id.get(a.target_id.as_str()) {
            Some(target) => b.alias(src, target, &a.address),
            None => b
                .skipped
                .push(skip(dn, SkipReason::UnknownTarget(a.target_id.clone()))),
        }
    }
    let configs: Vec<(&str, &ConfigEntry)> = configs.iter().map(|(dn, c)| (&**dn, c)).collect();
    apply_config(&mut b, current, &configs, server);
    Built {
        directory: b.dir,
        skipped: b.skipped,
        counts: b.counts,
    }
}

/// The order mailboxes are added in, so the same data always gives the same directory: by
/// address, then DN, both lowercase (one string: the key of every mailbox is held while they
/// are sorted).
fn order_key(address: &str, dn: &str) -> String {
    let mut k = String::with_capacity(address.len() + dn.len() + 1);
    k.extend(address.chars().map(|c| c.to_ascii_lowercase()));
    k.push('\0');
    k.extend(dn.chars().map(|c| c.to_ascii_lowercase()));
    k
}

/// The MTA settings from LDAP: the global config, then this server's entry over it (Zimbra's
/// server-inherited attributes). LDAP's values win over `mcf`; an attribute LDAP no longer sets
/// returns to its default. A value the box refuses is skipped with its reason; the attribute
/// keeps what it had.
fn apply_config(
    b: &mut Builder<'_>,
    current: &Directory,
    configs: &[(&str, &ConfigEntry)],
    server: &str,
) {
    let mut wanted: Vec<(&'static str, &[String], &str)> = Vec::new();
    let scopes = [None, Some(server.to_ascii_lowercase())];
    for scope in &scopes {
        for (dn, c) in configs.iter().filter(|(_, c)| c.server == *scope) {
            for (attr, values) in &c.values {
                wanted.retain(|(a, _, _)| a != attr);
                wanted.push((attr, values, dn));
            }
        }
    }
    let mut config = current.config().clone();
    for attr in current.ldap_config() {
        if !wanted.iter().any(|(a, _, _)| a == attr) {
            // Back to the default: what `mcf` had set before LDAP took it over is gone.
            let _ = config.set(attr, &[]);
        }
    }
    let mut owned = Vec::new();
    for (attr, values, dn) in wanted {
        match config.set(attr, values) {
            Ok(()) => owned.push(attr),
            Err(why) => b.skipped.push(skip(dn, SkipReason::Invalid(why))),
        }
    }
    owned.sort_by_key(|a| MtaConfig::ATTRS.iter().position(|x| x == a));
    b.dir.set_config(config);
    b.dir.ldap_config = owned;
}

/// Copies the `prov` accounts and their aliases (valid together before, so they fit again). A
/// local account whose domain came from LDAP and is gone keeps that domain alive: a sync never
/// loses what an admin typed in.
fn copy_local_accounts(current: &Directory, b: &mut Builder<'_>) {
    for a in current.accounts().filter(|a| a.source() == Source::Local) {
        if b.dir.domain(a.domain()).is_none()
            && let Some(d) = current.domain(a.domain())
            && b.dir.add_domain(d.clone()).is_ok()
        {
            b.skipped
                .push(skip(d.name(), SkipReason::KeptForLocalAccounts));
        }
        if b.dir.add_account(a.clone()).is_ok() {
            for alias in current.aliases_of(a.address()) {
                let _ = b.dir.add_alias(a.address(), alias);
            }
        }
    }
}

impl From<crate::directory::BadAddress> for SkipReason {
    fn from(e: crate::directory::BadAddress) -> Self {
        SkipReason::BadAddress(e)
    }
}

impl From<crate::config::AttrError> for SkipReason {
    fn from(e: crate::config::AttrError) -> Self {
        SkipReason::Invalid(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::entry::RawEntry;
    use super::super::zimbra;
    use super::*;
    use crate::directory::{MailStatus, prov};

    fn domain(name: &str, extra: &[(&str, &[&str])]) -> RawEntry {
        let mut attrs: Vec<(&str, &[&str])> = vec![
            ("objectClass", &["zimbraDomain"]),
            ("zimbraMailStatus", &["enabled"]),
        ];
        attrs.extend_from_slice(extra);
        let mut e = RawEntry::new(&format!("dc={name}"), &attrs);
        e = RawEntry::new(
            &e.dn,
            &[attrs.as_slice(), &[("zimbraDomainName", &[name][..])]].concat(),
        );
        e
    }

    fn account(uid: &str, extra: &[(&str, &[&str])]) -> RawEntry {
        let addr = format!("{uid}@example.com");
        let mut attrs: Vec<(&str, &[&str])> = vec![("objectClass", &["zimbraAccount"])];
        attrs.extend_from_slice(extra);
        let a = [addr.as_str()];
        attrs.push(("zimbraMailDeliveryAddress", &a));
        RawEntry::new(&format!("uid={uid},ou=people,dc=example,dc=com"), &attrs)
    }

    fn model(entries: Vec<RawEntry>) -> Model {
        let mut m = Model::default();
        m.replace(entries.into_iter().map(Ok), zimbra::map);
        m
    }

    fn local() -> Directory {
        let mut d = Directory::default();
        for line in ["cd local.org", "ca me@local.org pw"] {
            let args: Vec<String> = line.split(' ').map(str::to_string).collect();
            d = prov::execute(&d, &args).unwrap().directory.unwrap();
        }
        d
    }

    /// `zmdkimkeyutil`'s attributes on a domain entry give the domain its signing key; a key
    /// that does not load is skipped for its domain, named, never shown, and the domain stays.
    #[test]
    fn a_domains_dkim_key_comes_from_ldap_and_a_bad_one_skips_only_the_key() {
        let pem = crate::directory::domain_dkim::tests::ed25519_pem();
        let garbled = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        let m = model(vec![
            domain(
                "example.com",
                &[
                    ("DKIMSelector", &["zimbra1"]),
                    ("DKIMKey", &[pem.as_str()]),
                    ("DKIMIdentity", &["@example.com"]),
                ],
            ),
            domain(
                "bad.example",
                &[
                    ("zimbraDKIMSelector", &["s1"]),
                    ("zimbraDKIMPrivateKey", &[garbled]),
                ],
            ),
        ]);
        let built = build(&Directory::default(), &m, 1, "");
        let d = &built.directory;
        let dkim = d.domain("example.com").and_then(|x| x.dkim()).unwrap();
        assert_eq!(dkim.signing().map(|(s, _)| s), Some("zimbra1"));
        assert_eq!(dkim.identity(), Some("@example.com"));
        assert!(d.has_dkim_keys());
        let bad = d.domain("bad.example").expect("the domain stays");
        assert!(bad.dkim().and_then(|k| k.signing()).is_none());
        let skipped: Vec<String> = built.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(
            skipped[0].starts_with("dc=bad.example: ")
                && skipped[0].contains("zimbraDKIMPrivateKey")
                && !skipped[0].contains("c2VjcmV0"),
            "{skipped:?}"
        );
        // Nor does the model's debug output show a key.
        assert!(!format!("{m:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn zimbra_entries_become_a_directory_beside_local_ones() {
        let m = model(vec![
            domain("example.com", &[]),
            domain(
                "alias.example.net",
                &[
                    ("zimbraDomainType", &["alias"]),
                    ("zimbraMailCatchAllForwardingAddress", &["@example.com"]),
                ],
            ),
            account(
                "foo",
                &[
                    ("zimbraMailAlias", &["f@example.com", "f@example.com"]),
                    ("zimbraMailTransport", &["lmtp:mail.example.com:7025"]),
                    ("userPassword", &["{SSHA512}abc"]),
                ],
            ),
            account("off", &[("zimbraMailStatus", &["disabled"])]),
            RawEntry::new(
                "cn=all,ou=people,dc=example,dc=com",
                &[
                    ("objectClass", &["zimbraDistributionList"]),
                    ("zimbraMailDeliveryAddress", &["all@example.com"]),
                    (
                        "zimbraMailForwardingAddress",
                        &["foo@example.com", "x@other.org"],
                    ),
                ],
            ),
        ]);
        let built = build(&local(), &m, 42, "");
        assert_eq!(built.skipped, vec![]);
        assert_eq!(
            built.counts,
            Counts {
                domains: 2,
                accounts: 2,
                lists: 1,
                aliases: 1
            }
        );
        let d = &built.directory;
        assert_eq!(d.ldap_synced(), Some(42));
        match d.lookup("F@example.com") {
            Lookup::Account { account, .. } => {
                assert_eq!(account.address(), "foo@example.com");
                assert_eq!(account.source(), Source::Ldap);
                assert_eq!(account.password().as_deref(), Some("{SSHA512}abc"));
                // Kept in the model's record, equal to the same hash kept as text (a poll's
                // accounts), unequal to another.
                let mut text = account.clone();
                text.set_password_hash(Some("{SSHA512}abc".into()));
                assert_eq!(&text, account);
                assert_eq!(account, &text);
                text.set_password_hash(Some("{SSHA512}abd".into()));
                assert_ne!(account, &text);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(d.lookup("off@example.com"), Lookup::Account { account, .. } if account.status() == MailStatus::Disabled)
        );
        let list = d.account("all@example.com").unwrap();
        assert!(!list.delivers_locally());
        assert_eq!(list.forward_targets().count(), 2);
        assert_eq!(
            d.domain("alias.example.net")
                .unwrap()
                .catch_all_forwarding(),
            Some("@example.com")
        );
        assert_eq!(d.account("me@local.org").unwrap().source(), Source::Local);
        // prov refuses to change what LDAP owns, naming LDAP.
        let args: Vec<String> = ["ma", "f@example.com", "zimbraMailStatus", "disabled"]
            .map(String::from)
            .to_vec();
        let e = prov::execute(d, &args).unwrap_err().to_string();
        assert!(e.contains("LDAP") && e.contains("foo@example.com"), "{e}");
        let args: Vec<String> = ["dd", "example.com"].map(String::from).to_vec();
        assert!(
            prov::execute(d, &args)
                .unwrap_err()
                .to_string()
                .contains("LDAP")
        );
        // ...and the sync keeps what prov made.
        let again = build(d, &m, 43, "");
        assert_eq!(again.directory.counts(), d.counts());
    }

    #[test]
    fn an_alias_entry_beside_the_accounts_zimbra_mail_alias_is_one_alias() {
        let alias_entry = |uid: &str, target: &str| {
            RawEntry::new(
                &format!("uid={uid},ou=people,dc=example,dc=com"),
                &[
                    ("objectClass", &["zimbraAlias"][..]),
                    ("uid", &[uid]),
                    ("zimbraAliasTargetId", &[target]),
                ],
            )
        };
        let m = model(vec![
            domain("example.com", &[]),
            account(
                "foo",
                &[
                    ("zimbraId", &["id-foo"]),
                    ("zimbraMailAlias", &["info@example.com"]),
                ],
            ),
            account("bar", &[("zimbraId", &["id-bar"])]),
            alias_entry("info", "id-foo"),
            // The same address for another account is still a conflict.
            alias_entry("info", "id-bar"),
        ]);
        let built = build(&Directory::default(), &m, 1, "");
        assert_eq!(built.counts.aliases, 1);
        assert_eq!(built.skipped.len(), 1, "{:?}", built.skipped);
        assert!(
            matches!(&built.skipped[0].reason, SkipReason::DuplicateAddress { address, .. }
                if address == "info@example.com"),
            "{:?}",
            built.skipped
        );
        assert!(matches!(built.directory.lookup("info@example.com"),
            Lookup::Account { account, .. } if account.address() == "foo@example.com"));
    }

    #[test]
    fn bad_entries_are_skipped_with_their_reasons() {
        let m = model(vec![
            domain("example.com", &[]),
            domain("local.org", &[]),
            account("good", &[]),
            account("badtransport", &[("zimbraMailTransport", &["smtp:"])]),
            account(
                "dup",
                &[("zimbraMailAlias", &["good@example.com", "ok@example.com"])],
            ),
            RawEntry::new(
                "uid=twin,ou=people,dc=example,dc=com",
                &[
                    ("objectClass", &["zimbraAccount"]),
                    ("zimbraMailDeliveryAddress", &["GOOD@example.com"]),
                ],
            ),
            RawEntry::new(
                "uid=nomail,dc=example,dc=com",
                &[("objectClass", &["zimbraAccount"])],
            ),
            RawEntry::new(
                "uid=elsewhere,dc=example,dc=com",
                &[
                    ("objectClass", &["zimbraAccount"]),
                    ("zimbraMailDeliveryAddress", &["x@nowhere.net"]),
                ],
            ),
        ]);
        let built = build(&local(), &m, 1, "");
        let text: Vec<String> = built.skipped.iter().map(|s| s.to_string()).collect();
        let has = |dn: &str, what: &str| {
            assert!(
                text.iter().any(|t| t.starts_with(dn) && t.contains(what)),
                "{dn} {what}: {text:#?}"
            )
        };
        has("dc=local.org", "local (prov) domain");
        has("uid=badtransport", "zimbraMailTransport");
        has(
            "uid=dup",
            "duplicate address good@example.com (also on uid=good",
        );
        has("uid=twin", "duplicate address good@example.com");
        has("uid=nomail", "missing attribute zimbraMailDeliveryAddress");
        has("uid=elsewhere", "nowhere.net");
        assert_eq!(text.len(), 6, "{text:#?}");
        let d = &built.directory;
        assert!(d.account("good@example.com").is_some());
        assert!(d.account("dup@example.com").is_some());
        assert!(matches!(d.lookup("ok@example.com"), Lookup::Account { .. }));
        assert!(matches!(
            d.lookup("badtransport@example.com"),
            Lookup::Unknown { .. }
        ));
    }

    #[test]
    fn a_local_account_keeps_its_vanished_ldap_domain() {
        let m = model(vec![domain("example.com", &[])]);
        let first = build(&Directory::default(), &m, 1, "").directory;
        let args: Vec<String> = ["ca", "mine@example.com", "pw"].map(String::from).to_vec();
        let with_local = prov::execute(&first, &args).unwrap().directory.unwrap();
        let after = build(&with_local, &model(vec![]), 2, "");
        assert!(after.directory.account("mine@example.com").is_some());
        assert_eq!(after.skipped[0].reason, SkipReason::KeptForLocalAccounts);
    }
}
