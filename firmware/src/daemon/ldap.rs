//! The daemon's LDAP sync: its settings from the config slot, its snapshots into the directory
//! slot, and the service started beside the listeners.

use std::sync::Arc;

use crate::admin::ldap::{LdapContext, load};
use crate::directory::SharedDirectory;
use crate::directory::ldap::{SaveError, SnapshotStore, service};
use crate::spool::{Region, SpoolHandle};

/// The flash's directory slot as the sync's snapshot store. `save` blocks: the sync calls it
/// off the runtime's workers.
pub struct SlotStore {
    pub spool: SpoolHandle,
    pub runtime: tokio::runtime::Handle,
}

impl SnapshotStore for SlotStore {
    fn save(&self, snapshot: Vec<u8>) -> Result<(), SaveError> {
        self.runtime
            .block_on(self.spool.write_slot(Region::Directory, snapshot))
            .map_err(|e| SaveError(Box::new(e)))
    }
}

/// What the LDAP admin commands need; with `run_service`, the sync service is started (it syncs
/// at once if `ldap_url` is set). Must be called inside the runtime.
pub async fn context(
    spool: &SpoolHandle,
    directory: &Arc<SharedDirectory>,
    hostname: &str,
    run_service: bool,
) -> LdapContext {
    let store: Arc<dyn SnapshotStore> = Arc::new(SlotStore {
        spool: spool.clone(),
        runtime: tokio::runtime::Handle::current(),
    });
    let service = match run_service {
        false => None,
        true => {
            let settings = load(spool).await.unwrap_or_else(|e| {
                eprintln!("postern/ldap: stored localconfig unreadable ({e}); LDAP sync off");
                Default::default()
            });
            if settings.ldap_enabled() {
                let urls: Vec<String> = settings.ldap_urls.iter().map(|u| u.to_string()).collect();
                eprintln!("postern/ldap: syncing from {}", urls.join(" "));
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
