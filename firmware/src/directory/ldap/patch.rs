//! A poll's few changed accounts applied to the directory served, without building the other
//! 100 000 again. Only plain accounts are patched: whatever a full build decides by looking
//! at other entries (lists and groups, alias entries, catch-alls on accounts, domains, config,
//! duplicate addresses, entries skipped before) is left to [`build`](super::build::build): then
//! [`patch`] answers `None` and the caller builds.

use std::collections::{HashMap, HashSet};

use super::build::{Counts, account_of};
use super::model::{Changes, Mapped, Model, Touched};
use super::object::{LdapObject, MailboxEntry, MailboxKind, SkipReason, Skipped};
use crate::directory::{Directory, Source};

/// The patched directory and what changed in it.
pub struct Patched {
    pub directory: Directory,
    pub changes: Changes,
    pub counts: Counts,
}

/// A plain account: nothing about it depends on another entry.
fn plain_account(m: &Mapped) -> Option<&MailboxEntry> {
    match &m.object {
        Ok(LdapObject::Mailbox(x))
            if x.kind == MailboxKind::Account
                && x.member_of.is_empty()
                && x.catch_all.is_none() =>
        {
            Some(x)
        }
        _ => None,
    }
}

/// Its aliases as a full build adds them: lowercase, once, not its own address.
fn aliases(m: &MailboxEntry) -> Vec<String> {
    let own = m.address.to_ascii_lowercase();
    let mut seen = HashSet::new();
    m.aliases
        .iter()
        .map(|a| a.to_ascii_lowercase())
        .filter(|a| *a != own && seen.insert(a.clone()))
        .collect()
}

/// Whether another entry of the model names one of these accounts (an alias entry by its id, a
/// group by its DN).
fn referenced(model: &Model, ids: &HashSet<&str>, dns: &HashSet<String>) -> bool {
    model.referrers() > 0
        && model.entries().any(|e| match &e.object {
            Ok(LdapObject::Alias(a)) => ids.contains(a.target_id.as_str()),
            Ok(LdapObject::Mailbox(m)) => m
                .member_dns
                .iter()
                .any(|dn| dns.contains(&dn.to_ascii_lowercase())),
            _ => false,
        })
}

/// Whether a skip would come out differently: an entry of this poll was skipped, or another
/// was skipped for an address that this poll frees.
fn skips_involved(skipped: &[Skipped], dns: &HashSet<String>, freed: &HashSet<String>) -> bool {
    skipped.iter().any(|s| {
        dns.contains(&s.dn.to_ascii_lowercase())
            || matches!(&s.reason, SkipReason::DuplicateAddress { address, .. }
                if freed.contains(&address.to_ascii_lowercase()))
    })
}

/// The aliases of the accounts named in `owners` (lowercase addresses), in one pass over all
/// aliases: `aliases_of` for each of a poll's accounts would be one pass per account.
fn aliases_by_owner<'d>(
    d: &'d Directory,
    owners: &HashSet<String>,
) -> HashMap<&'d str, Vec<&'d str>> {
    // Owners by their numbers, found in the index: the walk then compares numbers, not names.
    let mut numbers: Vec<u32> = owners.iter().filter_map(|a| d.account_number(a)).collect();
    numbers.sort_unstable();
    let mut by_owner: HashMap<&str, Vec<&str>> = HashMap::new();
    for alias in &d.aliases {
        if numbers.binary_search(&alias.account).is_ok()
            && let Some(owner) = d.accounts.get(alias.account as usize)
        {
            by_owner
                .entry(owner.address())
                .or_default()
                .push(&alias.name);
        }
    }
    by_owner
}

/// `current` with the accounts of `touched` replaced; `None` when only a full build gets it
/// right (see the module doc).
pub fn patch(
    current: &Directory,
    model: &Model,
    touched: &[Touched],
    skipped: &[Skipped],
    counts: Counts,
    synced_at: u64,
) -> Option<Patched> {
    let mut before = Vec::new();
    let mut after = Vec::new();
    for (old, new) in touched {
        if let Some(old) = old {
            before.push((old.dn.as_str(), plain_account(old)?));
        }
        if let Some(new) = new {
            after.push((new.dn.as_str(), plain_account(new)?));
        }
    }
    let dns: HashSet<String> = before
        .iter()
        .chain(&after)
        .map(|(dn, _)| dn.to_ascii_lowercase())
        .collect();
    let ids: HashSet<&str> = before
        .iter()
        .chain(&after)
        .filter_map(|(_, m)| m.id.as_deref())
        .collect();
    let freed: HashSet<String> = before
        .iter()
        .flat_map(|(_, m)| {
            aliases(m)
                .into_iter()
                .chain([m.address.to_ascii_lowercase()])
        })
        .collect();
    if skips_involved(skipped, &dns, &freed) || referenced(model, &ids, &dns) {
        return None;
    }
    let addresses: HashSet<String> = before
        .iter()
        .chain(&after)
        .map(|(_, m)| m.address.to_ascii_lowercase())
        .collect();
    let old_aliases = aliases_by_owner(current, &addresses);
    let mut dir = current.clone();
    let mut changes = Changes::default();
    let mut counts = counts;
    // Each old account must be in the directory as LDAP's, with the aliases a build gave it.
    let mut gone = HashSet::new();
    for (_, m) in &before {
        let a = current.account(&m.address)?;
        let had = old_aliases.get(a.address()).map_or(0, Vec::len);
        if a.source() != Source::Ldap || had != aliases(m).len() {
            return None;
        }
        gone.insert(a.address());
        counts.accounts = counts.accounts.saturating_sub(1);
        counts.aliases = counts.aliases.saturating_sub(aliases(m).len());
    }
    dir.remove_accounts(&gone);
    for (_, m) in &after {
        let a = account_of(m, &m.forwarding).ok()?;
        let address = a.address().to_string();
        dir.add_account(a).ok()?;
        for alias in aliases(m) {
            dir.add_alias(&address, &alias).ok()?;
        }
        counts.accounts += 1;
        counts.aliases += aliases(m).len();
    }
    dir.ldap_synced = Some(synced_at);
    let new_aliases = aliases_by_owner(&dir, &addresses);
    describe(
        current,
        &dir,
        &addresses,
        [&old_aliases, &new_aliases],
        &mut changes,
    );
    Some(Patched {
        directory: dir,
        changes,
        counts,
    })
}

/// The changes as [`diff`](super::diff::diff) words them, for the touched addresses only.
fn describe(
    old: &Directory,
    new: &Directory,
    addresses: &HashSet<String>,
    aliases: [&HashMap<&str, Vec<&str>>; 2],
    c: &mut Changes,
) {
    let kind = |a: &crate::directory::Account| match a.delivers_locally() {
        true => "account",
        false => "forwarding",
    };
    for addr in addresses {
        match (old.account(addr), new.account(addr)) {
            (None, Some(a)) => c.add(format!("{} {addr}", kind(a))),
            (Some(o), Some(a)) if o != a => c.modify(format!("{} {addr}", kind(a))),
            (Some(o), None) => c.delete(format!("{} {addr}", kind(o))),
            _ => {}
        }
    }
    let mut alias_names: Vec<&str> = aliases
        .iter()
        .flat_map(|m| m.values().flatten().copied())
        .collect();
    alias_names.sort();
    alias_names.dedup();
    let owner = |d: &Directory, alias: &str| match d.lookup(alias) {
        crate::directory::Lookup::Account {
            account,
            via_alias: true,
            ..
        } => Some(account.address().to_string()),
        _ => None,
    };
    for alias in &alias_names {
        match (owner(old, alias), owner(new, alias)) {
            (None, Some(o)) => c.add(format!("alias {alias} -> {o}")),
            (Some(a), Some(b)) if a != b => c.modify(format!("alias {alias} -> {b}")),
            (Some(a), None) => c.delete(format!("alias {alias} -> {a}")),
            _ => {}
        }
    }
    c.sort();
}

#[cfg(test)]
mod tests {
    use super::super::build::build;
    use super::super::entry::RawEntry;
    use super::super::zimbra;
    use super::*;

    fn entry(uid: &str, attrs: &[(&str, &[&str])]) -> RawEntry {
        let id = format!("id-{uid}");
        let id_attr = [id.as_str()];
        let mut all: Vec<(&str, &[&str])> = vec![("zimbraId", &id_attr)];
        all.extend_from_slice(attrs);
        RawEntry::new(&format!("uid={uid},ou=people,dc=example,dc=com"), &all)
    }

    fn account(uid: &str, extra: &[(&str, &[&str])]) -> RawEntry {
        let addr = format!("{uid}@example.com");
        let a = [addr.as_str()];
        let mut attrs: Vec<(&str, &[&str])> = vec![
            ("objectClass", &["zimbraAccount"]),
            ("zimbraMailDeliveryAddress", &a),
        ];
        attrs.extend_from_slice(extra);
        entry(uid, &attrs)
    }

    fn base() -> Vec<RawEntry> {
        let mut v = vec![RawEntry::new(
            "dc=example,dc=com",
            &[
                ("objectClass", &["zimbraDomain"]),
                ("zimbraDomainName", &["example.com"]),
                ("zimbraMailStatus", &["enabled"]),
                ("zimbraId", &["d-1"]),
            ],
        )];
        for i in 0..20 {
            let alias = format!("al{i}@example.com");
            v.push(account(
                &format!("u{i}"),
                &[
                    ("zimbraMailAlias", &[alias.as_str()]),
                    ("zimbraMailTransport", &["lmtp:mbox.example.com:7025"]),
                ],
            ));
        }
        v.push(entry(
            "list",
            &[
                ("objectClass", &["zimbraDistributionList"]),
                ("zimbraMailDeliveryAddress", &["list@example.com"]),
                ("zimbraMailForwardingAddress", &["u1@example.com"]),
            ],
        ));
        v.push(account("twin", &[("zimbraMailAlias", &["u2@example.com"])]));
        v
    }

    /// Applies `poll` both ways: patched (if it answers) and built whole; they must agree.
    fn both_ways(poll: Vec<RawEntry>) -> Option<Changes> {
        let mut model = Model::default();
        model.replace(base().into_iter().map(Ok), zimbra::map);
        let built = build(&Directory::default(), &model, 1, "mta");
        model.start_journal();
        model.update(poll.into_iter().map(Ok), zimbra::map);
        let touched = model.take_journal();
        let whole = build(&built.directory, &model, 2, "mta");
        let p = patch(
            &built.directory,
            &model,
            &touched,
            &built.skipped,
            built.counts,
            2,
        )?;
        assert_eq!(p.directory.encode(), whole.directory.encode());
        assert_eq!(p.counts, whole.counts);
        assert_eq!(
            p.changes,
            super::super::diff::diff(&built.directory, &whole.directory)
        );
        Some(p.changes)
    }

    #[test]
    fn plain_account_changes_are_patched_as_a_build_would_make_them() {
        let moved = both_ways(vec![
            account(
                "u3",
                &[("zimbraMailTransport", &["smtp:other.example.com:25"])],
            ),
            account(
                "new",
                &[("zimbraMailAlias", &["n@example.com", "n@example.com"])],
            ),
        ])
        .expect("plain accounts are patched");
        assert_eq!(
            moved.added,
            [
                "account new@example.com",
                "alias n@example.com -> new@example.com"
            ]
        );
        assert_eq!(moved.modified, ["account u3@example.com"]);
        assert_eq!(moved.deleted, ["alias al3@example.com -> u3@example.com"]);
        // A rename: same entry, new address.
        let renamed = both_ways(vec![entry(
            "u4",
            &[
                ("objectClass", &["zimbraAccount"]),
                ("zimbraMailDeliveryAddress", &["renamed@example.com"]),
            ],
        )])
        .expect("a rename of a plain account is patched");
        assert!(
            renamed
                .deleted
                .contains(&"account u4@example.com".to_string())
        );
        assert!(
            renamed
                .added
                .contains(&"account renamed@example.com".to_string())
        );
    }

    #[test]
    fn what_depends_on_other_entries_is_left_to_a_full_build() {
        // A list member changes: the list is not touched, but a list names it by address only,
        // so this one is plain.
        assert!(both_ways(vec![account("u1", &[("zimbraMailStatus", &["disabled"])])]).is_some());
        // The list itself.
        assert!(
            both_ways(vec![entry(
                "list",
                &[
                    ("objectClass", &["zimbraDistributionList"]),
                    ("zimbraMailDeliveryAddress", &["list@example.com"]),
                    ("zimbraMailForwardingAddress", &["u5@example.com"]),
                ],
            )])
            .is_none()
        );
        // An address another entry was skipped for: the other may take it now.
        assert!(both_ways(vec![account("u2", &[])]).is_none());
        // The entry that was skipped.
        assert!(both_ways(vec![account("twin", &[])]).is_none());
        // An address that is taken.
        assert!(
            both_ways(vec![account(
                "u6",
                &[("zimbraMailAlias", &["u7@example.com"])]
            )])
            .is_none()
        );
        // An address in a domain this box does not serve.
        assert!(
            both_ways(vec![entry(
                "far",
                &[
                    ("objectClass", &["zimbraAccount"]),
                    ("zimbraMailDeliveryAddress", &["far@elsewhere.org"]),
                ],
            )])
            .is_none()
        );
    }
}
