//! The daemon's LDAP sync: its settings from the config slot, its snapshots into the directory
//! slot, and the service started beside the listeners.

use std::sync::Arc;

use crate::admin::ldap::{LdapContext, load};
use crate::directory::SharedDirectory;
use crate::directory::ldap::service;
use crate::log::console::say;
use crate::spool::SpoolHandle;

/// What the LDAP admin commands need; with `run_service`, the sync service is started (it syncs
/// at once if `ldap_url` is set). Must be called inside the runtime.
pub async fn context(
    spool: &SpoolHandle,
    directory: &Arc<SharedDirectory>,
    hostname: &str,
    run_service: bool,
) -> LdapContext {
    let store = LdapContext::offline(spool).store;
    let service = match run_service {
        false => None,
        true => {
            let settings = load(spool).await.unwrap_or_else(|e| {
                say!("postern/ldap: stored localconfig unreadable ({e}); LDAP sync off");
                Default::default()
            });
            if settings.ldap_enabled() {
                let urls: Vec<String> = settings.ldap_urls.iter().map(|u| u.to_string()).collect();
                say!("postern/ldap: syncing from {}", urls.join(" "));
            }
            Some(service::spawn(
                settings,
                hostname,
                Arc::clone(directory),
                Arc::clone(&store),
            ))
        }
    };
    LdapContext { store, service }
}
