//! What an LDAP entry means to the mail router, whatever schema it came in: a domain, a mailbox
//! (account or list) or an alias entry. Values are still the strings LDAP holds; they are checked
//! when the directory is built (the same checks as `prov`), so a bad one skips only its entry.

use std::fmt;
use std::sync::Arc;

use crate::config::AttrError;
use crate::directory::{BadAddress, DirectoryError};

use super::entry::MalformedEntry;

/// A domain entry (`zimbraDomain`).
#[derive(Clone, PartialEq, Eq)]
pub struct DomainEntry {
    pub name: String,
    /// `zimbraMailStatus` is enabled (Postfix's maps see only enabled domains).
    pub enabled: bool,
    /// `zimbraDomainType: alias`: its mail goes to another domain by catch-all forwarding.
    pub alias: bool,
    pub catch_all: Option<String>,
    pub catch_all_forward: Option<String>,
    pub transport: Option<String>,
    /// `zimbraAuthMech`, `zimbraAuthLdapURL`, `zimbraAuthLdapBindDn`, as LDAP holds them.
    pub auth: Vec<(&'static str, String)>,
    /// The DKIM key (`zimbraDKIMSelector`, `zimbraDKIMPrivateKey`, ...), by the directory's
    /// names. Never printed: see the `Debug` of the entry.
    pub dkim: Vec<(&'static str, String)>,
}

impl fmt::Debug for DomainEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dkim: Vec<&str> = self.dkim.iter().map(|(a, _)| *a).collect();
        f.debug_struct("DomainEntry")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("alias", &self.alias)
            .field("catch_all", &self.catch_all)
            .field("catch_all_forward", &self.catch_all_forward)
            .field("transport", &self.transport)
            .field("auth", &self.auth)
            // The names only: one of the values is a private key.
            .field("dkim", &dkim)
            .finish()
    }
}

/// An account or list: an address that receives mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    pub kind: MailboxKind,
    /// The directory's stable id (`zimbraId`, `objectGUID`...), if readable.
    pub id: Option<Box<str>>,
    pub address: Box<str>,
    pub aliases: Box<[String]>,
    pub enabled: bool,
    pub transport: Option<Box<str>>,
    /// List members, or an account's `zimbraMailForwardingAddress`.
    pub forwarding: Box<[String]>,
    pub pref_forwarding: Option<Box<str>>,
    pub local_delivery_disabled: bool,
    /// Handed to the account a poll builds from this entry as it is (a full build points the
    /// account at the model's record instead: see `SyncedHash`).
    pub password: Option<Arc<str>>,
    /// `zimbraMailCatchAllAddress` on an account (ZCS 5/6): it takes its domain's unknown mail.
    pub catch_all: Option<Box<str>>,
    /// Ids of the dynamic groups this account is a member of (`zimbraMemberOf`).
    pub member_of: Box<[String]>,
    /// A group's members by DN (`member`), resolved to their addresses when the directory is
    /// built.
    pub member_dns: Box<[String]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxKind {
    Account,
    /// A distribution list: forwards to its members, never delivers itself.
    List,
    /// A dynamic group: its members are the accounts that name it in `zimbraMemberOf`.
    Group,
}

/// A separate alias entry (`zimbraAlias`): an address that names its target by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasEntry {
    pub address: String,
    pub target_id: String,
}

/// MTA settings: the global config (`cn=config,cn=zimbra`) or a server entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// `None`: global; else the server's hostname.
    pub server: Option<String>,
    /// The `MtaConfig` attributes it sets.
    pub values: Vec<(&'static str, Vec<String>)>,
}

/// One entry, mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapObject {
    Domain(DomainEntry),
    Mailbox(MailboxEntry),
    Alias(AliasEntry),
    Config(ConfigEntry),
}

impl LdapObject {
    /// What `postern ldap sync` calls it: `account foo@example.com`.
    pub fn describe(&self) -> String {
        match self {
            LdapObject::Domain(d) => format!("domain {}", d.name),
            LdapObject::Mailbox(m) => {
                let kind = match m.kind {
                    MailboxKind::Account => "account",
                    MailboxKind::List => "list",
                    MailboxKind::Group => "group",
                };
                format!("{kind} {}", m.address)
            }
            LdapObject::Alias(a) => format!("alias {}", a.address),
            LdapObject::Config(c) => match &c.server {
                None => "global config".to_string(),
                Some(s) => format!("server {s}"),
            },
        }
    }
}

/// Why an entry, or one alias of it, is not in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    Malformed(MalformedEntry),
    /// A required attribute is absent or empty.
    MissingAttribute(&'static str),
    BadAddress(BadAddress),
    /// A value the same checks as `prov` refuse (a bad transport, status, forwarding address).
    Invalid(AttrError),
    /// Another entry already has this address.
    DuplicateAddress {
        address: String,
        other: String,
    },
    /// The address is in a domain the directory does not serve.
    NotLocal(String),
    /// An alias entry whose target is not a synced account.
    UnknownTarget(String),
    /// A list with no members would accept mail and deliver it nowhere.
    EmptyList,
    /// A local (`prov`) domain has this name.
    LocalDomain(String),
    /// Deleted in LDAP, but kept: local (`prov`) accounts live in it.
    KeptForLocalAccounts,
    /// Any other refusal by the directory.
    Refused(DirectoryError),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Malformed(e) => write!(f, "{e}"),
            SkipReason::MissingAttribute(a) => write!(f, "missing attribute {a}"),
            SkipReason::BadAddress(e) => write!(f, "invalid address {e}"),
            SkipReason::Invalid(e) => write!(f, "{e}"),
            SkipReason::DuplicateAddress { address, other } => {
                write!(f, "duplicate address {address} (also on {other})")
            }
            SkipReason::NotLocal(a) => write!(f, "{a} is not in a domain this box serves"),
            SkipReason::UnknownTarget(id) => write!(f, "alias target {id} is not a synced account"),
            SkipReason::EmptyList => f.write_str("distribution list without members"),
            SkipReason::LocalDomain(d) => {
                write!(
                    f,
                    "domain {d} is also a local (prov) domain; the local one is kept"
                )
            }
            SkipReason::KeptForLocalAccounts => {
                f.write_str("deleted in LDAP, kept while local (prov) accounts use it")
            }
            SkipReason::Refused(e) => write!(f, "{e}"),
        }
    }
}

/// An entry (or an alias of it) left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub dn: String,
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.dn, self.reason)
    }
}
