//! The sync as a service of the running daemon: a sync at start (a poll that goes on from the
//! state on flash, else a full sync), a poll every `ldap_sync_interval`, a sync at once when the
//! settings change, and `postern ldap sync` on request. One task owns the [`Syncer`], so syncs
//! never overlap; sessions never wait for it, they read the directory in RAM.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::status::{LdapStatus, SyncKind, SyncReport, show_age};
use super::sync::{SnapshotStore, Syncer};
use crate::config::localconfig::LocalConfig;
use crate::directory::SharedDirectory;
use crate::log::console::say;
use crate::mail::unix_now;

/// Why `postern ldap sync` did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRun {
    /// `ldap_url` is empty.
    NotConfigured,
    /// The daemon is shutting down.
    Stopped,
}

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotRun::NotConfigured => {
                "LDAP sync is not configured: set ldap_url with postern localconfig -e"
            }
            NotRun::Stopped => "the LDAP sync service has stopped",
        })
    }
}

impl std::error::Error for NotRun {}

type Request = (SyncKind, oneshot::Sender<Result<SyncReport, NotRun>>);

/// What the admin side holds: ask for a sync, read the status, change the settings.
#[derive(Clone)]
pub struct LdapHandle {
    requests: mpsc::Sender<Request>,
    status: Arc<Mutex<LdapStatus>>,
    settings: Arc<watch::Sender<LocalConfig>>,
}

impl LdapHandle {
    /// Runs a sync now and waits for its report.
    pub async fn sync(&self, kind: SyncKind) -> Result<SyncReport, NotRun> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send((kind, tx))
            .await
            .map_err(|_| NotRun::Stopped)?;
        rx.await.map_err(|_| NotRun::Stopped)?
    }

    pub fn status(&self) -> LdapStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn settings(&self) -> LocalConfig {
        self.settings.borrow().clone()
    }

    /// New settings (already stored by the caller); the service syncs with them at once.
    pub fn set_settings(&self, settings: LocalConfig) {
        self.settings.send_replace(settings);
    }
}

/// Starts the service on the current runtime. `hostname` names this box's server entry when
/// `zimbra_server_hostname` is empty.
pub fn spawn(
    settings: LocalConfig,
    hostname: &str,
    shared: Arc<SharedDirectory>,
    store: Arc<dyn SnapshotStore>,
) -> LdapHandle {
    let (requests, rx) = mpsc::channel(4);
    let (settings_tx, settings_rx) = watch::channel(settings);
    let status = Arc::new(Mutex::new(LdapStatus::default()));
    let hostname = hostname.to_ascii_lowercase();
    tokio::spawn(run(
        rx,
        settings_rx,
        hostname,
        Arc::clone(&status),
        shared,
        store,
    ));
    LdapHandle {
        requests,
        status,
        settings: Arc::new(settings_tx),
    }
}

fn log(report: &SyncReport, status: &LdapStatus, shared: &SharedDirectory) {
    // Each MTA setting LDAP changed, with its old and new value.
    for change in &report.changes.settings {
        say!("postern/ldap: {change}");
    }
    if let Some(why) = &report.journal_refused {
        say!("postern/ldap: the changes were written as a whole snapshot: {why}");
    }
    match &report.error {
        None => say!(
            "postern/ldap: {} sync from {}: {} entries read, {} added, {} modified, {} deleted, \
             {} skipped, {} ms",
            report.kind_text(),
            report.server,
            report.read,
            report.changes.added_count(),
            report.changes.modified_count(),
            report.changes.deleted_count(),
            status.skipped.len(),
            report.duration.as_millis()
        ),
        Some(e) => say!(
            "postern/ldap: {} sync failed: {e}; serving the cache (age {})",
            report.kind,
            shared
                .ldap_cache_age(unix_now())
                .map_or_else(|| "unknown: never synced".to_string(), show_age)
        ),
    }
}

/// The settings with this box's server entry named.
fn effective(settings: &LocalConfig, hostname: &str) -> LocalConfig {
    let mut config = settings.clone();
    if config.server_hostname.is_empty() {
        config.server_hostname = hostname.to_string();
    }
    config
}

/// A syncer for `settings` that goes on from the state of the directory served, if it fits.
fn syncer_for(settings: &LocalConfig, shared: &SharedDirectory) -> Syncer {
    let mut syncer = Syncer::for_settings(settings);
    let resumed = syncer.resume(&shared.snapshot(), settings);
    if settings.ldap_enabled() {
        say!("postern/ldap: {resumed}");
    }
    syncer
}

async fn run(
    mut requests: mpsc::Receiver<Request>,
    mut settings: watch::Receiver<LocalConfig>,
    hostname: String,
    status: Arc<Mutex<LdapStatus>>,
    shared: Arc<SharedDirectory>,
    store: Arc<dyn SnapshotStore>,
) {
    let mut syncer = syncer_for(&effective(&settings.borrow(), &hostname), &shared);
    *status.lock().unwrap_or_else(|e| e.into_inner()) = syncer.status().clone();
    let mut next = Instant::now();
    loop {
        let config = effective(&settings.borrow_and_update(), &hostname);
        shared.set_ldap_settings(Arc::new(config.clone()));
        shared.set_ldap_max_age(match config.ldap_enabled() {
            true => config.cache_max_age,
            false => Duration::ZERO,
        });
        let (kind, reply) = tokio::select! {
            _ = tokio::time::sleep_until(next), if config.ldap_enabled() => {
                (SyncKind::Incremental, None)
            }
            request = requests.recv() => match request {
                None => return,
                Some((_, reply)) if !config.ldap_enabled() => {
                    let _ = reply.send(Err(NotRun::NotConfigured));
                    continue;
                }
                Some((kind, reply)) => (kind, Some(reply)),
            },
            changed = settings.changed() => {
                if changed.is_err() {
                    return;
                }
                // New server, base, bind or schema: what was read before may not hold, and the
                // syncer starts over; other settings keep its state.
                syncer = syncer_for(&effective(&settings.borrow(), &hostname), &shared);
                next = Instant::now();
                continue;
            }
        };
        let report = syncer
            .sync(kind, &config, &shared, &store, unix_now())
            .await;
        let now_status = syncer.status().clone();
        log(&report, &now_status, &shared);
        *status.lock().unwrap_or_else(|e| e.into_inner()) = now_status;
        if let Some(reply) = reply {
            let _ = reply.send(Ok(report));
        }
        next = Instant::now() + config.sync_interval;
    }
}
