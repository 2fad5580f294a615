//! What one sync leaves for the next: the model of LDAP, the RFC 4533 cookie, whether the server
//! does RFC 4533, when the last full sync ran, and which settings it all was read with.
//!
//! It travels with the directory that was built from it and is written to flash in the same
//! snapshot (the LDAP entries are stored as this model, and the directory is built from it at
//! boot), so the first sync after a restart carries on from exactly what is served: a cookie on
//! flash can never be newer than the entries on flash, whatever moment the power went.

use std::sync::Arc;

use super::build::Counts;
use super::model::Model;
use super::object::Skipped;
use crate::config::localconfig::{LdapSchema, LocalConfig};

/// Whether the server does RFC 4533 (OpenLDAP's syncprov), as a sync found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syncrepl {
    Unknown,
    Yes,
    No,
}

/// The settings a sync read LDAP with: state read with other ones does not carry over (another
/// server's cookie, or entries another base or bind could not see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub urls: Vec<String>,
    pub search_base: String,
    pub schema: LdapSchema,
    pub bind_dn: String,
    /// The server entry whose MTA settings were applied.
    pub server: String,
}

impl Origin {
    pub fn of(settings: &LocalConfig) -> Origin {
        Origin {
            urls: settings.ldap_urls.iter().map(|u| u.to_string()).collect(),
            search_base: settings.search_base.clone(),
            schema: settings.schema,
            bind_dn: settings.user_dn.clone(),
            server: settings.server_hostname.to_ascii_lowercase(),
        }
    }
}

/// The sync's memory, as of the directory it is attached to.
#[derive(Clone)]
pub struct SyncState {
    /// Shared with the syncer until its next poll changes something.
    pub model: Arc<Model>,
    pub cookie: Option<Vec<u8>>,
    pub syncrepl: Syncrepl,
    /// Unix seconds of the last full sync: the periodic full sync keeps its schedule across a
    /// restart.
    pub last_full: Option<u64>,
    pub origin: Origin,
    /// What building the model left out, and what it holds: a poll patches the directory only
    /// when these say a build would give the same. Not stored; the build at boot remakes them.
    pub skipped: Vec<Skipped>,
    pub counts: Counts,
}

/// A summary: the model of a large directory is 100 000 entries.
impl std::fmt::Debug for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncState")
            .field("entries", &self.model.len())
            .field("newest_stamp", &self.model.newest_stamp())
            .field(
                "cookie",
                &self.cookie.as_deref().map(String::from_utf8_lossy),
            )
            .field("syncrepl", &self.syncrepl)
            .field("last_full", &self.last_full)
            .field("origin", &self.origin)
            .field("skipped", &self.skipped.len())
            .field("counts", &self.counts)
            .finish()
    }
}
