//! The Zimbra schema: which entries the sync reads and what they mean, following the queries of
//! Zimbra's own Postfix maps (ldap-vmd/-vad for domains, ldap-vmm for mailboxes, ldap-vam for
//! aliases, lists and catch-all, ldap-transport for transports), so a box reading a real Zimbra
//! LDAP as `zmpostfix` routes as Zimbra's Postfix would.
//!
//! The filter matches on attribute presence as well as objectClass: the `zmpostfix` identity may
//! read only the routing attributes, and a filter term it cannot read is undefined, not true.

use std::sync::Arc;

use super::entry::RawEntry;
use super::model::Schema;
use super::object::{
    AliasEntry, ConfigEntry, DomainEntry, LdapObject, MailboxEntry, MailboxKind, SkipReason,
};
use crate::config::MtaConfig;
use crate::directory::domain_dkim;

/// Every entry the directory is built from.
pub const FILTER: &str = "(|(objectClass=zimbraDomain)(objectClass=zimbraAccount)\
(objectClass=zimbraDistributionList)(objectClass=zimbraGroup)(objectClass=zimbraAlias)\
(objectClass=zimbraGlobalConfig)(objectClass=zimbraServer)\
(zimbraDomainName=*)(zimbraMailDeliveryAddress=*)(zimbraAliasTargetId=*)(zimbraServiceHostname=*))";

/// The attributes read (nothing else is fetched).
pub const ATTRS: &[&str] = &[
    "objectClass",
    "zimbraId",
    "uid",
    "zimbraDomainName",
    "zimbraDomainType",
    "zimbraMailStatus",
    "zimbraAccountStatus",
    "zimbraMailCatchAllAddress",
    "zimbraMailCatchAllForwardingAddress",
    "zimbraMailTransport",
    "zimbraMailDeliveryAddress",
    "zimbraMailAlias",
    "zimbraMailForwardingAddress",
    "zimbraPrefMailForwardingAddress",
    "zimbraPrefMailLocalDeliveryDisabled",
    "zimbraAliasTargetId",
    "zimbraMemberOf",
    "userPassword",
    "zimbraServiceHostname",
    "cn",
    "zimbraMtaRelayHost",
    "zimbraMtaDnsLookupsEnabled",
    "zimbraMtaMyNetworks",
    "zimbraMtaRestriction",
    "zimbraMtaMaxMessageSize",
    "zimbraMtaQueueRunDelay",
    "zimbraMtaMinimalBackoffTime",
    "zimbraMtaMaximalBackoffTime",
    "zimbraMtaMaximalQueueLifetime",
    "zimbraMtaBounceQueueLifetime",
    "zimbraMtaDelayWarningTime",
    "zimbraMtaMyHostname",
    "zimbraAuthMech",
    "zimbraAuthLdapURL",
    "zimbraAuthLdapBindDn",
    "zimbraDKIMSelector",
    "zimbraDKIMPrivateKey",
    "zimbraDKIMDomain",
    "zimbraDKIMIdentity",
    "DKIMSelector",
    "DKIMKey",
    "DKIMDomain",
    "DKIMIdentity",
    "modifyTimestamp",
    "entryUUID",
];

/// A domain's AUTH settings (how its users' passwords are checked), read as the domain's own.
const DOMAIN_AUTH: [&str; 3] = [
    "zimbraAuthMech",
    "zimbraAuthLdapURL",
    "zimbraAuthLdapBindDn",
];

/// A domain's DKIM key, by its name here and the names LDAP may hold it under: Zimbra's
/// `zimbraDKIM...` and the OpenDKIM schema's (`DKIMSelector`, `DKIMKey`, ...) that
/// `zmdkimkeyutil` writes on the domain entry for OpenDKIM's `KeyTable`.
const DOMAIN_DKIM: [(&str, [&str; 2]); 4] = [
    (
        domain_dkim::SELECTOR,
        ["zimbraDKIMSelector", "DKIMSelector"],
    ),
    (
        domain_dkim::PRIVATE_KEY,
        ["zimbraDKIMPrivateKey", "DKIMKey"],
    ),
    (
        domain_dkim::SIGNING_DOMAIN,
        ["zimbraDKIMDomain", "DKIMDomain"],
    ),
    (
        domain_dkim::IDENTITY,
        ["zimbraDKIMIdentity", "DKIMIdentity"],
    ),
];

/// The Zimbra schema, as the sync uses it.
pub const SCHEMA: Schema = Schema {
    filter: FILTER,
    attrs: ATTRS,
    map,
};

fn owned(v: Option<&str>) -> Option<String> {
    v.map(str::to_string)
}

fn boxed(v: Option<&str>) -> Option<Box<str>> {
    v.map(Box::from)
}

fn enabled(e: &RawEntry) -> bool {
    // Absent means enabled: Zimbra always writes it, other tools may not.
    !e.first("zimbraMailStatus")
        .is_some_and(|s| s.eq_ignore_ascii_case("disabled"))
}

fn is_true(e: &RawEntry, attr: &str) -> bool {
    e.first(attr)
        .is_some_and(|v| v.eq_ignore_ascii_case("TRUE"))
}

/// What an entry is, or why it is skipped; `Ok(None)` for an entry the router has no use for.
pub fn map(e: &RawEntry) -> Result<Option<LdapObject>, SkipReason> {
    if let Some(c) = config(e) {
        return Ok(Some(LdapObject::Config(c)));
    }
    if e.has_class("zimbraDomain") || !e.values("zimbraDomainName").is_empty() {
        return domain(e).map(|d| Some(LdapObject::Domain(d)));
    }
    if e.has_class("zimbraAlias") || !e.values("zimbraAliasTargetId").is_empty() {
        return alias(e).map(|a| Some(LdapObject::Alias(a)));
    }
    let kind = if e.has_class("zimbraGroup") {
        MailboxKind::Group
    } else if e.has_class("zimbraDistributionList") {
        MailboxKind::List
    } else if e.has_class("zimbraAccount") || !e.values("zimbraMailDeliveryAddress").is_empty() {
        // Without objectClass (a restricted bind), a list looks like an account that forwards
        // and has no mailbox of its own.
        let list_like = !e.classes_known()
            && e.first("zimbraMailTransport").is_none()
            && e.first("userPassword").is_none()
            && !e.values("zimbraMailForwardingAddress").is_empty();
        if list_like {
            MailboxKind::List
        } else {
            MailboxKind::Account
        }
    } else {
        return Ok(None);
    };
    mailbox(e, kind).map(|m| Some(LdapObject::Mailbox(m)))
}

/// The global config or a server entry, by class or, for a bind that cannot read objectClass,
/// by where Zimbra keeps them.
fn config(e: &RawEntry) -> Option<ConfigEntry> {
    let dn = e.dn.to_ascii_lowercase().replace(' ', "");
    let server = if e.has_class("zimbraGlobalConfig") || dn == "cn=config,cn=zimbra" {
        None
    } else if e.has_class("zimbraServer") || dn.ends_with(",cn=servers,cn=zimbra") {
        let name = e.first("zimbraServiceHostname").or_else(|| e.first("cn"))?;
        Some(name.to_ascii_lowercase())
    } else {
        return None;
    };
    let values = MtaConfig::ATTRS
        .iter()
        .filter(|a| a.starts_with("zimbraMta"))
        .filter_map(|a| {
            let v: Vec<String> = e.values(a).iter().map(|v| v.trim().to_string()).collect();
            (!v.is_empty()).then_some((*a, v))
        })
        .collect();
    Some(ConfigEntry { server, values })
}

fn domain(e: &RawEntry) -> Result<DomainEntry, SkipReason> {
    let name = e
        .first("zimbraDomainName")
        .ok_or(SkipReason::MissingAttribute("zimbraDomainName"))?;
    Ok(DomainEntry {
        name: name.to_string(),
        enabled: enabled(e),
        alias: e
            .first("zimbraDomainType")
            .is_some_and(|t| t.eq_ignore_ascii_case("alias")),
        catch_all: owned(e.first("zimbraMailCatchAllAddress")),
        catch_all_forward: owned(e.first("zimbraMailCatchAllForwardingAddress")),
        transport: owned(e.first("zimbraMailTransport")),
        auth: DOMAIN_AUTH
            .into_iter()
            .filter_map(|a| {
                let v = e.values(a).join(" ");
                (!v.trim().is_empty()).then_some((a, v))
            })
            .collect(),
        dkim: DOMAIN_DKIM
            .into_iter()
            .filter_map(|(name, spellings)| {
                let v = spellings.iter().find_map(|s| e.first(s))?.trim();
                (!v.is_empty()).then(|| (name, v.to_string()))
            })
            .collect(),
    })
}

/// The domain a DN's `dc=` parts spell (`uid=x,ou=people,dc=example,dc=com` → `example.com`).
fn dn_domain(dn: &str) -> Option<String> {
    let parts: Vec<&str> = dn
        .split(',')
        .filter_map(|rdn| {
            let (k, v) = rdn.trim().split_once('=')?;
            k.trim().eq_ignore_ascii_case("dc").then(|| v.trim())
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

fn alias(e: &RawEntry) -> Result<AliasEntry, SkipReason> {
    let target_id = e
        .first("zimbraAliasTargetId")
        .ok_or(SkipReason::MissingAttribute("zimbraAliasTargetId"))?;
    let uid = e.first("uid").ok_or(SkipReason::MissingAttribute("uid"))?;
    let address = match uid.contains('@') {
        true => uid.to_string(),
        false => {
            let domain = dn_domain(&e.dn).ok_or(SkipReason::MissingAttribute("dc"))?;
            format!("{uid}@{domain}")
        }
    };
    Ok(AliasEntry {
        address,
        target_id: target_id.to_string(),
    })
}

fn mailbox(e: &RawEntry, kind: MailboxKind) -> Result<MailboxEntry, SkipReason> {
    let address = e
        .first("zimbraMailDeliveryAddress")
        .ok_or(SkipReason::MissingAttribute("zimbraMailDeliveryAddress"))?;
    let closed = e
        .first("zimbraAccountStatus")
        .is_some_and(|s| s.eq_ignore_ascii_case("closed"));
    let list = |attr| -> Vec<String> {
        e.values(attr)
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    };
    let forwarding = list("zimbraMailForwardingAddress");
    if kind == MailboxKind::List && forwarding.is_empty() {
        return Err(SkipReason::EmptyList);
    }
    Ok(MailboxEntry {
        kind,
        id: boxed(e.first("zimbraId")),
        address: address.into(),
        aliases: list("zimbraMailAlias").into(),
        enabled: enabled(e) && !closed,
        transport: boxed(e.first("zimbraMailTransport")),
        forwarding: forwarding.into(),
        pref_forwarding: boxed(e.first("zimbraPrefMailForwardingAddress")),
        local_delivery_disabled: kind != MailboxKind::Account
            || is_true(e, "zimbraPrefMailLocalDeliveryDisabled"),
        password: match kind {
            MailboxKind::Account => e.first("userPassword").map(Arc::from),
            _ => None,
        },
        catch_all: boxed(e.first("zimbraMailCatchAllAddress")),
        member_of: list("zimbraMemberOf").into(),
        member_dns: Box::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_map_by_class_or_by_attribute() {
        let d = RawEntry::new(
            "dc=alias,dc=org",
            &[
                ("objectClass", &["dcObject", "zimbraDomain"]),
                ("zimbraDomainName", &["alias.org"]),
                ("zimbraDomainType", &["alias"]),
                ("zimbraMailCatchAllForwardingAddress", &["@example.com"]),
            ],
        );
        match map(&d) {
            Ok(Some(LdapObject::Domain(d))) => {
                assert!(d.alias && d.enabled);
                assert_eq!(d.catch_all_forward.as_deref(), Some("@example.com"));
            }
            other => panic!("{other:?}"),
        }
        // No objectClass readable: a forwarding-only entry is a list.
        let l = RawEntry::new(
            "uid=all,ou=people,dc=example,dc=com",
            &[
                ("zimbraMailDeliveryAddress", &["all@example.com"]),
                (
                    "zimbraMailForwardingAddress",
                    &["a@example.com", "b@example.com"],
                ),
            ],
        );
        match map(&l) {
            Ok(Some(LdapObject::Mailbox(m))) => {
                assert_eq!(m.kind, MailboxKind::List);
                assert!(m.local_delivery_disabled);
            }
            other => panic!("{other:?}"),
        }
        let a = RawEntry::new(
            "uid=x,ou=people,dc=example,dc=com",
            &[
                ("objectClass", &["zimbraAlias"]),
                ("uid", &["x"]),
                ("zimbraAliasTargetId", &["1234"]),
            ],
        );
        assert_eq!(
            map(&a),
            Ok(Some(LdapObject::Alias(AliasEntry {
                address: "x@example.com".into(),
                target_id: "1234".into()
            })))
        );
        let cos = RawEntry::new(
            "cn=default,cn=cos,cn=zimbra",
            &[("objectClass", &["zimbraCOS"])],
        );
        assert_eq!(map(&cos), Ok(None));
    }

    #[test]
    fn a_domain_takes_only_its_auth_settings_as_its_own() {
        // cn and the MTA settings belong to config and server entries, not to a domain's AUTH.
        let d = RawEntry::new(
            "dc=example,dc=com",
            &[
                ("objectClass", &["zimbraDomain"]),
                ("zimbraDomainName", &["example.com"]),
                ("cn", &["example"]),
                ("zimbraMtaRelayHost", &["relay.example.net"]),
                ("zimbraAuthMech", &["ldap"]),
            ],
        );
        match map(&d) {
            Ok(Some(LdapObject::Domain(d))) => {
                assert_eq!(d.auth, vec![("zimbraAuthMech", "ldap".to_string())]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_attributes_and_empty_lists_are_reasons() {
        let e = RawEntry::new("uid=x,dc=e,dc=com", &[("objectClass", &["zimbraAccount"])]);
        assert_eq!(
            map(&e),
            Err(SkipReason::MissingAttribute("zimbraMailDeliveryAddress"))
        );
        let l = RawEntry::new(
            "cn=l,dc=e,dc=com",
            &[
                ("objectClass", &["zimbraDistributionList"]),
                ("zimbraMailDeliveryAddress", &["l@e.com"]),
            ],
        );
        assert_eq!(map(&l), Err(SkipReason::EmptyList));
        let closed = RawEntry::new(
            "uid=c,dc=e,dc=com",
            &[
                ("objectClass", &["zimbraAccount"]),
                ("zimbraMailDeliveryAddress", &["c@e.com"]),
                ("zimbraAccountStatus", &["closed"]),
                ("zimbraMailStatus", &["enabled"]),
            ],
        );
        match map(&closed) {
            Ok(Some(LdapObject::Mailbox(m))) => assert!(!m.enabled),
            other => panic!("{other:?}"),
        }
    }
}
