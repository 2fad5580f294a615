//! What a sync changed in the directory served, as `postern ldap sync` prints it: the LDAP
//! domains, accounts and aliases added, modified and deleted. Comparing directories (not LDAP
//! replies) also tells the truth after a restart, when the model starts empty.

use std::collections::HashMap;

use super::model::Changes;
use crate::config::MtaConfig;
use crate::directory::{Account, Directory, Source};

fn aliases(d: &Directory) -> HashMap<&str, &str> {
    d.aliases
        .iter()
        .filter_map(|a| {
            let owner = d.accounts.get(a.account as usize)?;
            (owner.source() == Source::Ldap).then_some((&*a.name, owner.address()))
        })
        .collect()
}

fn ldap_accounts(d: &Directory) -> HashMap<&str, &Account> {
    d.accounts()
        .filter(|a| a.source() == Source::Ldap)
        .map(|a| (a.address(), a))
        .collect()
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
    let (oa, na) = (ldap_accounts(old), ldap_accounts(new));
    let kind = |a: &Account| match a.delivers_locally() {
        true => "account",
        false => "forwarding",
    };
    for (addr, a) in &na {
        match oa.get(addr) {
            None => c.add(format!("{} {addr}", kind(a))),
            Some(o) if o != a => c.modify(format!("{} {addr}", kind(a))),
            Some(_) => {}
        }
    }
    for (addr, a) in &oa {
        if !na.contains_key(addr) {
            c.delete(format!("{} {addr}", kind(a)));
        }
    }
    let (ol, nl) = (aliases(old), aliases(new));
    for (alias, owner) in &nl {
        match ol.get(alias) {
            None => c.add(format!("alias {alias} -> {owner}")),
            Some(o) if o != owner => c.modify(format!("alias {alias} -> {owner}")),
            Some(_) => {}
        }
    }
    for (alias, owner) in &ol {
        if !nl.contains_key(alias) {
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
