//! Directories that are not Zimbra's: `inetorgperson` (OpenLDAP and the like: `mail`,
//! `mailAlternateAddress` or `mailLocalAddress`, `groupOfNames` with `mail`) and `ad` (Active
//! Directory: `mail`, `proxyAddresses` with `smtp:` prefixes stripped and other address types
//! skipped, disabled accounts by `userAccountControl`, groups by `member`).
//!
//! Such directories have no domain entries: the box's domains are made with `prov cd` (with
//! their transport), and an address in a domain the box does not serve is skipped. Active
//! Directory never shows password hashes: set `zimbraAuthMech ad` on the domain for AUTH.

use std::sync::Arc;

use super::entry::RawEntry;
use super::model::Schema;
use super::object::{LdapObject, MailboxEntry, MailboxKind, SkipReason};

/// The inetOrgPerson schema.
pub const INET_ORG_PERSON: Schema = Schema {
    filter: "(|(&(objectClass=inetOrgPerson)(mail=*))(&(objectClass=groupOfNames)(mail=*))\
             (&(objectClass=groupOfUniqueNames)(mail=*)))",
    attrs: &[
        "objectClass",
        "mail",
        "mailAlternateAddress",
        "mailLocalAddress",
        "member",
        "uniqueMember",
        "userPassword",
        "modifyTimestamp",
        "entryUUID",
    ],
    map: map_inet_org_person,
};

/// The Active Directory schema.
pub const ACTIVE_DIRECTORY: Schema = Schema {
    filter: "(|(&(objectClass=user)(objectCategory=person)(mail=*))(&(objectClass=group)(mail=*)))",
    attrs: &[
        "objectClass",
        "mail",
        "proxyAddresses",
        "userAccountControl",
        "member",
        "modifyTimestamp",
    ],
    map: map_active_directory,
};

/// `userAccountControl` ACCOUNTDISABLE.
const ACCOUNT_DISABLE: u32 = 0x2;

fn mailbox(kind: MailboxKind, address: &str, aliases: Vec<String>) -> MailboxEntry {
    MailboxEntry {
        kind,
        id: None,
        address: address.into(),
        aliases: aliases.into(),
        enabled: true,
        transport: None,
        forwarding: Box::default(),
        pref_forwarding: None,
        local_delivery_disabled: kind != MailboxKind::Account,
        password: None,
        catch_all: None,
        member_of: Box::default(),
        member_dns: Box::default(),
    }
}

fn trimmed(e: &RawEntry, attr: &str) -> Vec<String> {
    e.values(attr)
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn map_inet_org_person(e: &RawEntry) -> Result<Option<LdapObject>, SkipReason> {
    let Some(address) = e.first("mail") else {
        return Err(SkipReason::MissingAttribute("mail"));
    };
    let group = e.has_class("groupOfNames") || e.has_class("groupOfUniqueNames");
    let mut aliases = trimmed(e, "mailAlternateAddress");
    aliases.extend(trimmed(e, "mailLocalAddress"));
    aliases.retain(|a| !a.eq_ignore_ascii_case(address));
    let mut m = match group {
        true => {
            let mut m = mailbox(MailboxKind::Group, address, aliases);
            let mut members = trimmed(e, "member");
            members.extend(trimmed(e, "uniqueMember"));
            m.member_dns = members.into();
            m
        }
        false => {
            let mut m = mailbox(MailboxKind::Account, address, aliases);
            m.password = e.first("userPassword").map(Arc::from);
            m
        }
    };
    m.id = e.first("entryUUID").map(Box::from);
    Ok(Some(LdapObject::Mailbox(m)))
}

/// `proxyAddresses`: `SMTP:` is the primary address, `smtp:` the others; `X500:`, `SIP:` and
/// the rest are not mail addresses.
fn smtp_addresses(e: &RawEntry) -> (Option<String>, Vec<String>) {
    let mut primary = None;
    let mut others = Vec::new();
    for v in e.values("proxyAddresses") {
        let Some((kind, addr)) = v.trim().split_once(':') else {
            continue;
        };
        match kind {
            "SMTP" => primary = Some(addr.to_string()),
            k if k.eq_ignore_ascii_case("smtp") => others.push(addr.to_string()),
            _ => {}
        }
    }
    (primary, others)
}

pub fn map_active_directory(e: &RawEntry) -> Result<Option<LdapObject>, SkipReason> {
    let (primary, mut aliases) = smtp_addresses(e);
    let Some(address) = primary.or_else(|| e.first("mail").map(str::to_string)) else {
        return Err(SkipReason::MissingAttribute("mail"));
    };
    if let Some(mail) = e.first("mail") {
        aliases.push(mail.to_string());
    }
    let mut seen = vec![address.to_ascii_lowercase()];
    aliases.retain(|a| {
        let lower = a.to_ascii_lowercase();
        let new = !seen.contains(&lower);
        seen.push(lower);
        new
    });
    let group = e.has_class("group");
    let kind = if group {
        MailboxKind::Group
    } else {
        MailboxKind::Account
    };
    let mut m = mailbox(kind, &address, aliases);
    if group {
        m.member_dns = trimmed(e, "member").into();
    }
    let uac = e
        .first("userAccountControl")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    m.enabled = uac & ACCOUNT_DISABLE == 0;
    Ok(Some(LdapObject::Mailbox(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(o: Result<Option<LdapObject>, SkipReason>) -> MailboxEntry {
        match o {
            Ok(Some(LdapObject::Mailbox(m))) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn active_directory_addresses_and_disabled_accounts() {
        let u = RawEntry::new(
            "CN=Joe,OU=Staff,DC=corp,DC=example,DC=com",
            &[
                ("objectClass", &["top", "person", "user"]),
                ("mail", &["joe@example.com"]),
                (
                    "proxyAddresses",
                    &[
                        "SMTP:Joe.Smith@example.com",
                        "smtp:joe@example.com",
                        "smtp:js@example.org",
                        "X500:/o=Org/ou=Site/cn=Recipients/cn=joe",
                        "SIP:joe@example.com",
                    ],
                ),
                ("userAccountControl", &["514"]),
            ],
        );
        let m = mb(map_active_directory(&u));
        assert_eq!(&*m.address, "Joe.Smith@example.com");
        assert_eq!(&*m.aliases, ["joe@example.com", "js@example.org"]);
        assert!(!m.enabled, "514 has ACCOUNTDISABLE");
        assert_eq!(m.password, None);
        let g = RawEntry::new(
            "CN=Sales,DC=corp",
            &[
                ("objectClass", &["group"]),
                ("mail", &["sales@example.com"]),
                ("member", &["CN=Joe,OU=Staff,DC=corp,DC=example,DC=com"]),
            ],
        );
        let g = mb(map_active_directory(&g));
        assert_eq!(g.kind, MailboxKind::Group);
        assert_eq!(g.member_dns.len(), 1);
        assert!(
            map_active_directory(&RawEntry::new("CN=x", &[("objectClass", &["user"])])).is_err()
        );
    }

    #[test]
    fn inet_org_person_accounts_and_groups() {
        let p = RawEntry::new(
            "uid=ann,ou=people,dc=example,dc=com",
            &[
                ("objectClass", &["inetOrgPerson"]),
                ("mail", &["ann@example.com"]),
                ("mailLocalAddress", &["a@example.com", "ann@example.com"]),
                ("userPassword", &["{SSHA}x"]),
            ],
        );
        let m = mb(map_inet_org_person(&p));
        assert_eq!(&*m.aliases, ["a@example.com"]);
        assert_eq!(m.password.as_deref(), Some("{SSHA}x"));
        assert!(m.enabled && m.kind == MailboxKind::Account);
    }
}
