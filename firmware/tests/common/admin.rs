//! The admin commands over a spool and queue the test made, as the daemon would run them (the
//! CLI, the control socket and the console all carry out these).

use std::path::PathBuf;
use std::sync::Arc;

use postern::admin::{Admin, BoxFacts, Handles};
use postern::directory::SharedDirectory;
use postern::queue::runner::QueueHandle;
use postern::spool::SpoolHandle;

/// An admin over `spool` and `queue`, on a RAM flash of `flash_size` bytes, with no LDAP, no
/// metrics and no listeners.
pub fn admin_of(spool: &SpoolHandle, queue: &QueueHandle, flash_size: u64) -> Admin {
    Admin::new(Handles {
        spool: spool.clone(),
        directory: Arc::new(SharedDirectory::default()),
        queue: Some(queue.clone()),
        ldap: postern::admin::ldap::LdapContext::offline(spool),
        metrics: None,
        dkim: postern::content::dkim::KeyRing::default(),
        tls: None,
        facts: Arc::new(BoxFacts {
            started: std::time::Instant::now(),
            hostname: "gw.example".into(),
            flash_path: PathBuf::from("ram"),
            flash_size,
            listeners: Vec::new(),
            control: None,
            dns_servers: Vec::new(),
        }),
    })
}
