//! What a sync changed in the directory served, as `postern ldap sync` prints it: the LDAP
//! domains, accounts and aliases added, modified and deleted. Comparing directories (not LDAP
//! replies) also tells the truth after a restart, when the model starts empty.

use std::collections::HashMap;

use super::model::Changes;
use crate::config::MtaConfig;
use crate::directory::{Account, Directory, Entry, Source};

/// The LDAP aliases of `d`, with their owners' addresses.
fn aliases(d: &Directory) -> impl Iterator<Item = (&str, &str)> {
    d.aliases.iter().filter_map(|a| {
        let owner = d.accounts.get(a.account as usize)?;
        (owner.source() == Source::Ldap).then_some((&*a.name, owner.address()))
    })
}

/// The owner of the LDAP alias `name` in `d`, found through the directory's own index (maps of
/// 100 000 accounts built only to compare were ~9 MB at the peak of a sync).
fn alias_owner<'a>(d: &'a Directory, name: &str) -> Option<&'a str> {
    let Entry::Alias(i) = d.entry(name)? else {
        return None;
    };
    let owner = d
        .accounts
        .get(d.aliases.get(i as usize)?.account as usize)?;
    (owner.source() == Source::Ldap).then_some(owner.address())
}

fn ldap_accounts(d: &Directory) -> impl Iterator<Item = &Account> {
    d.accounts().filter(|a| a.source() == Source::Ldap)
}

fn ldap_account<'a>(d: &'a Directory, address: &str) -> Option<&'a Account> {
    d.account(address).filter(|a| a.source() == Source::Ldap)
}

/// The LDAP part of `new` compared with that of `old`.
pub fn diff(old: &Directory, new: &Directory) -> Changes {
    let mut c = Changes::default();
    let ldap_domains = |d: &Directory| {
        d.domains()
            .filter(|x| x.source() == Source::Ldap)
            .map(|x| (x.name().to_string(), x.clone()))
            .collect::<HashMap<_, _>>()
    };
    let (od, nd) = (ldap_domains(old), ldap_domains(new));
    for (name, d) in &nd {
        match od.get(name) {
            None => c.add(format!("domain {name}")),
            Some(o) if o != d => c.modify(format!("domain {name}")),
            Some(_) => {}
        }
    }
    for n in od.keys().filter(|n| !nd.contains_key(*n)) {
        c.delete(format!("domain {n}"));
    }
    let kind = |a: &Account| match a.delivers_locally() {
        true => "account",
        false => "forwarding",
    };
    for a in ldap_accounts(new) {
        let addr = a.address();
        match ldap_account(old, addr) {
            None => c.add(format!("{} {addr}", kind(a))),
            Some(o) if o != a => c.modify(format!("{} {addr}", kind(a))),
            Some(_) => {}
        }
    }
    for a in ldap_accounts(old) {
        if ldap_account(new, a.address()).is_none() {
            c.delete(format!("{} {}", kind(a), a.address()));
        }
    }
    for (alias, owner) in aliases(new) {
        match alias_owner(old, alias) {
            None => c.add(format!("alias {alias} -> {owner}")),
            Some(o) if o != owner => c.modify(format!("alias {alias} -> {owner}")),
            Some(_) => {}
        }
    }
    for (alias, owner) in aliases(old) {
        if alias_owner(new, alias).is_none() {
            c.delete(format!("alias {alias} -> {owner}"));
        }
    }
    for attr in MtaConfig::ATTRS {
        let (o, n) = (old.config().values(attr), new.config().values(attr));
        if let (Ok(o), Ok(n)) = (o, n)
            && o != n
        {
            c.settings.push(format!(
                "config {attr}: {:?} -> {:?}",
                o.join(" "),
                n.join(" ")
            ));
        }
    }
    c.sort();
    c
}
