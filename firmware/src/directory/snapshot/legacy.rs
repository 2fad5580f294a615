//! Snapshot versions 1 and 2, as older firmware wrote them: every account record spelled out
//! (full addresses, hashes in base64, each alias with its owner's address again). Read only, so
//! a box keeps its directory across an update; the next save writes the compact version.
//!
//! Version 2 appends [`Origins`]: which records came from LDAP, and when they were synced.
//! Version 1 (no LDAP) is read with every entry local.

use serde::{Deserialize, Serialize};

use super::{Attrs, DecodeError, load_config, load_domain};
use crate::directory::{Account, Directory, DirectoryError, Source, account};

#[derive(Serialize, Deserialize)]
pub(super) struct DomainRecord {
    pub name: String,
    pub attrs: Attrs,
}

#[derive(Serialize, Deserialize)]
pub(super) struct AccountRecord {
    pub address: String,
    pub disabled: bool,
    pub transport: Option<String>,
    pub password: Option<String>,
    pub forwarding: Vec<String>,
    pub pref_forwarding: Option<String>,
    pub local_delivery_disabled: bool,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Snapshot {
    pub config: Attrs,
    pub domains: Vec<DomainRecord>,
    pub accounts: Vec<AccountRecord>,
    /// (alias, account)
    pub aliases: Vec<(String, String)>,
}

/// Which records are LDAP's, in the order of the snapshot's domains and accounts.
#[derive(Serialize, Deserialize, Default)]
pub(super) struct Origins {
    pub ldap_synced: Option<u64>,
    pub ldap_domains: Vec<bool>,
    pub ldap_accounts: Vec<bool>,
    /// The config attributes LDAP sets.
    pub ldap_config: Vec<String>,
}

/// Reads the body of a version 1 or 2 snapshot (after its version number).
pub(super) fn decode(version: u32, rest: &[u8]) -> Result<Directory, DecodeError> {
    let (snap, rest) =
        postcard::take_from_bytes::<Snapshot>(rest).map_err(|_| DecodeError::Corrupt)?;
    let (origins, rest) = match version {
        1 => (Origins::default(), rest),
        _ => postcard::take_from_bytes::<Origins>(rest).map_err(|_| DecodeError::Corrupt)?,
    };
    if !rest.is_empty() {
        return Err(DecodeError::Corrupt);
    }
    build(snap, origins).map_err(DecodeError::Invalid)
}

fn build(snap: Snapshot, origins: Origins) -> Result<Directory, DirectoryError> {
    let source = |flags: &[bool], i: usize| match flags.get(i) {
        Some(true) => Source::Ldap,
        _ => Source::Local,
    };
    let mut dir = Directory::new(load_config(&snap.config)?);
    dir.ldap_synced = origins.ldap_synced;
    dir.ldap_config = super::ldap_config_names(&origins.ldap_config)?;
    for (i, rec) in snap.domains.into_iter().enumerate() {
        let d = load_domain(&rec.name, &rec.attrs, source(&origins.ldap_domains, i))?;
        dir.add_domain(d)?;
    }
    for (i, rec) in snap.accounts.into_iter().enumerate() {
        let mut a = Account::new(&rec.address)?;
        a.set_source(source(&origins.ldap_accounts, i));
        let one = |v: Option<String>| v.into_iter().collect::<Vec<_>>();
        if rec.disabled {
            a.set(account::STATUS, &["disabled".to_string()])?;
        }
        a.set(account::TRANSPORT, &one(rec.transport))?;
        a.set(account::FORWARD, &rec.forwarding)?;
        a.set(account::PREF_FORWARD, &one(rec.pref_forwarding))?;
        if rec.local_delivery_disabled {
            a.set(account::LOCAL_DISABLED, &["TRUE".to_string()])?;
        }
        a.set_password_hash(rec.password);
        dir.add_account(a)?;
    }
    for (alias, owner) in snap.aliases {
        dir.add_alias(&owner, &alias)?;
    }
    Ok(dir)
}

/// What the firmware before the compact format wrote (version 2), for tests that an old flash
/// still loads.
#[cfg(test)]
pub(super) fn encode_v2(dir: &Directory) -> Vec<u8> {
    use crate::directory::{Domain, MailStatus};
    let mut domains: Vec<&Domain> = dir.domains.values().collect();
    domains.sort_by(|a, b| a.name().cmp(b.name()));
    let mut accounts: Vec<&Account> = dir.accounts.iter().collect();
    accounts.sort_by(|a, b| a.address().cmp(b.address()));
    let mut aliases: Vec<(String, String)> = dir
        .aliases
        .iter()
        .filter_map(|a| {
            let owner = dir.accounts.get(a.account as usize)?;
            Some((a.name.to_string(), owner.address().to_string()))
        })
        .collect();
    aliases.sort();
    let origins = Origins {
        ldap_synced: dir.ldap_synced,
        ldap_domains: domains.iter().map(|d| d.source() == Source::Ldap).collect(),
        ldap_accounts: accounts
            .iter()
            .map(|a| a.source() == Source::Ldap)
            .collect(),
        ldap_config: dir.ldap_config.iter().map(|a| a.to_string()).collect(),
    };
    let snap = Snapshot {
        config: super::config_attrs(dir),
        domains: domains
            .iter()
            .map(|d| DomainRecord {
                name: d.name().to_string(),
                attrs: super::domain_attrs(d),
            })
            .collect(),
        accounts: accounts
            .iter()
            .map(|a| {
                let f = a.forwarding();
                AccountRecord {
                    address: a.address().to_string(),
                    disabled: a.status() == MailStatus::Disabled,
                    transport: a.values(account::TRANSPORT).unwrap_or_default().pop(),
                    password: a.password().map(std::borrow::Cow::into_owned),
                    forwarding: a.values(account::FORWARD).unwrap_or_default(),
                    pref_forwarding: a.values(account::PREF_FORWARD).unwrap_or_default().pop(),
                    local_delivery_disabled: f.is_some_and(|f| f.local_delivery_disabled),
                }
            })
            .collect(),
        aliases,
    };
    postcard::to_allocvec(&(2u32, snap, origins)).unwrap_or_default()
}
