//! The admin commands over a spool and queue the test made, as the daemon would run them (the
//! CLI, the control socket and the console all carry out these).

use std::path::PathBuf;
use std::sync::Arc;

use postern::admin::{Admin, BoxFacts, Handles};
use postern::directory::SharedDirectory;
use postern::log::LogSink;
use postern::queue::runner::{self, QueueHandle, RunnerConfig};
use postern::queue::{Deliverer, QueueSettings};
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

/// The queue runner over `spool` with the default settings, delivering through `deliverer`.
pub fn queue_over<D: Deliverer>(
    spool: &SpoolHandle,
    deliverer: Arc<D>,
) -> (QueueHandle, tokio::task::JoinHandle<()>) {
    runner::spawn(
        RunnerConfig {
            settings: QueueSettings::default(),
            hostname: "gw.example".into(),
            route: Arc::new(|_| None),
            log: LogSink::memory(),
            start_unix: None,
        },
        Arc::new(spool.clone()),
        deliverer,
    )
}
