//! Where a directory entry came from: typed in with `prov`, or synced from LDAP. LDAP entries are
//! read-only here (LDAP is their master; a local change would be undone by the next sync).

/// The origin of a domain or account (an alias shares its account's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    #[default]
    Local,
    Ldap,
}
